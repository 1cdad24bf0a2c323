// bpftime-inject: loads libbpftime-agent.so into a running process and
// turns it on or off, without a helper binary in the target.
//
//   bpftime-inject attach <pid> <path of libbpftime-agent.so> <segment>
//   bpftime-inject detach <pid>
//
// How: one thread of the target is seized with ptrace (PTRACE_SEIZE +
// PTRACE_INTERRUPT) while the others keep running; its registers are saved
// and it is made to call, on its own stack, the target's dlopen() (glibc's
// libc.so.6 exports it since 2.34; __libc_dlopen_mode before that), then the
// agent's bpftime_agent_inject(segment) or bpftime_agent_detach(). Each call
// returns to address 0: the SIGSEGV stop that follows hands control back,
// the registers are restored and the thread resumes where it was (a system
// call it was blocked in restarts, as after any signal).
//
// Which thread: preferably one blocked in a system call that holds no lock
// (read, nanosleep, poll, ...) or waiting on a futex, else one whose
// instruction pointer is in a file-backed mapping other than libc, ld.so and
// the agent (it holds none of their locks, so dlopen() and malloc() cannot
// deadlock on it); see stop_rank. Threads are tried for up to two seconds.
//
// Signals that reach the hijacked thread during a call are delivered to it
// (its handlers run nested, as for any interrupted code).
//
// Exit status: 0 on success, printing one line `ok <n>` (attach: links
// attached; detach: hooks removed); 1 with a message on stderr that starts
// with the errno name (EPERM: ..., EEXIST: ...).
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <fstream>
#include <memory>
#include <optional>
#include <signal.h>
#include <sstream>
#include <string>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace {

struct failure {
	int code;
	std::string message;
};

[[noreturn]] void fail(int code, const std::string &msg)
{
	throw failure{ code, msg };
}

const char *errno_name(int e)
{
	const char *n = strerrorname_np(e);
	return n ? n : "EIO";
}

struct mapping {
	uint64_t start, end, offset;
	std::string perms, path;
};

std::string ptrace_denied_reason(pid_t pid);

std::vector<mapping> read_maps(pid_t pid)
{
	std::string file = "/proc/" + std::to_string(pid) + "/maps";
	FILE *fp = fopen(file.c_str(), "re");
	if (!fp && (errno == EACCES || errno == EPERM))
		fail(EPERM, ptrace_denied_reason(pid));
	if (!fp)
		fail(ESRCH, "process " + std::to_string(pid) + ": no such process");
	std::vector<mapping> out;
	std::string line;
	char buf[4096 + 256];
	while (fgets(buf, sizeof buf, fp)) {
		line = buf;
		if (!line.empty() && line.back() == '\n')
			line.pop_back();
		mapping m;
		char perms[8] = {};
		unsigned long long s, e, off;
		int pos = 0;
		if (sscanf(line.c_str(), "%llx-%llx %7s %llx %*s %*s%n", &s, &e,
			   perms, &off, &pos) < 4)
			continue;
		m.start = s;
		m.end = e;
		m.offset = off;
		m.perms = perms;
		std::string rest = line.substr(size_t(pos));
		size_t p = rest.find_first_not_of(' ');
		m.path = p == std::string::npos ? "" : rest.substr(p);
		out.push_back(std::move(m));
	}
	fclose(fp);
	return out;
}

std::string base_name(const std::string &p)
{
	size_t s = p.rfind('/');
	return s == std::string::npos ? p : p.substr(s + 1);
}

bool is_libc(const std::string &p)
{
	std::string b = base_name(p);
	return b.rfind("libc.so", 0) == 0 || b.rfind("libc-2.", 0) == 0;
}

bool is_ldso(const std::string &p)
{
	std::string b = base_name(p);
	return b.rfind("ld-linux", 0) == 0 || b.rfind("ld-2.", 0) == 0;
}

bool is_agent(const std::string &p)
{
	return base_name(p) == "libbpftime-agent.so";
}

// The load base of the module mapped from `path`: the start of its mapping
// at file offset 0 (our modules are linked at 0).
std::optional<uint64_t> load_base(const std::vector<mapping> &maps,
				  bool (*match)(const std::string &),
				  std::string *path)
{
	for (const auto &m : maps)
		if (!m.path.empty() && match(m.path) && m.offset == 0) {
			if (path)
				*path = m.path;
			return m.start;
		}
	return std::nullopt;
}

// Value of a defined dynamic (or static) symbol in an ELF file, read through
// /proc/<pid>/root so a target in another mount namespace still resolves.
std::optional<uint64_t> elf_symbol(const std::string &file, const char *name)
{
	int fd = open(file.c_str(), O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return std::nullopt;
	struct stat st;
	if (fstat(fd, &st) != 0 || size_t(st.st_size) < sizeof(Elf64_Ehdr)) {
		close(fd);
		return std::nullopt;
	}
	size_t size = size_t(st.st_size);
	void *p = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return std::nullopt;
	const auto *base = static_cast<const unsigned char *>(p);
	std::optional<uint64_t> found;
	const auto *eh = reinterpret_cast<const Elf64_Ehdr *>(base);
	if (memcmp(eh->e_ident, ELFMAG, SELFMAG) == 0 &&
	    eh->e_ident[EI_CLASS] == ELFCLASS64 &&
	    eh->e_shoff + uint64_t(eh->e_shnum) * sizeof(Elf64_Shdr) <= size) {
		const auto *sh = reinterpret_cast<const Elf64_Shdr *>(base + eh->e_shoff);
		for (unsigned i = 0; i < eh->e_shnum && !found; i++) {
			if (sh[i].sh_type != SHT_DYNSYM && sh[i].sh_type != SHT_SYMTAB)
				continue;
			if (sh[i].sh_link >= eh->e_shnum)
				continue;
			const Elf64_Shdr &strs = sh[sh[i].sh_link];
			if (sh[i].sh_offset + sh[i].sh_size > size ||
			    strs.sh_offset + strs.sh_size > size)
				continue;
			const auto *syms = reinterpret_cast<const Elf64_Sym *>(base + sh[i].sh_offset);
			size_t n = sh[i].sh_size / sizeof(Elf64_Sym);
			const char *str = reinterpret_cast<const char *>(base + strs.sh_offset);
			for (size_t k = 0; k < n; k++) {
				if (syms[k].st_shndx == SHN_UNDEF ||
				    syms[k].st_name >= strs.sh_size)
					continue;
				// Versioned names (dlopen@@GLIBC_2.34) are
				// matched on the name alone.
				if (strcmp(str + syms[k].st_name, name) == 0) {
					found = syms[k].st_value;
					break;
				}
			}
		}
	}
	munmap(p, size);
	return found;
}

std::string target_file(pid_t pid, const std::string &path)
{
	return "/proc/" + std::to_string(pid) + "/root" + path;
}

std::string read_first_line(const std::string &file)
{
	std::ifstream f(file);
	std::string s;
	std::getline(f, s);
	return s;
}

// Why ptrace is refused, in words, and what to do about it.
std::string ptrace_denied_reason(pid_t pid)
{
	std::string msg = "ptrace(PTRACE_SEIZE, " + std::to_string(pid) + "): not permitted: ";
	struct stat st;
	std::string proc = "/proc/" + std::to_string(pid);
	uint64_t cap_eff = 0;
	{
		std::ifstream f("/proc/self/status");
		std::string line;
		while (std::getline(f, line))
			if (line.rfind("CapEff:", 0) == 0)
				cap_eff = strtoull(line.c_str() + 7, nullptr, 16);
	}
	bool has_cap = cap_eff & (1ull << 19); // CAP_SYS_PTRACE
	if (stat(proc.c_str(), &st) == 0 && st.st_uid != geteuid() && !has_cap)
		return msg + "the process belongs to uid " + std::to_string(st.st_uid) +
		       " and we run as uid " + std::to_string(geteuid()) +
		       " without CAP_SYS_PTRACE; run bpftime attach as that user or as root";
	std::string scope = read_first_line("/proc/sys/kernel/yama/ptrace_scope");
	if (scope == "3")
		return msg + "Yama ptrace_scope is 3 (no attach at all) in /proc/sys/kernel/yama/ptrace_scope; only a reboot lowers it; start the program with `bpftime start` instead";
	if (scope == "2" && !has_cap)
		return msg + "Yama ptrace_scope is 2 (admin only) and we lack CAP_SYS_PTRACE; run as root or `sysctl kernel.yama.ptrace_scope=1`";
	if (scope == "1" && !has_cap)
		return msg + "Yama ptrace_scope is 1 (only a parent may trace) and we lack CAP_SYS_PTRACE; run as root, grant CAP_SYS_PTRACE, or `sysctl kernel.yama.ptrace_scope=0`";
	if (!has_cap)
		return msg + "we lack CAP_SYS_PTRACE (a container or seccomp may forbid ptrace); run as root or grant CAP_SYS_PTRACE";
	return msg + "refused although we hold CAP_SYS_PTRACE (another tracer, a seccomp filter or an LSM); check `grep TracerPid /proc/" +
	       std::to_string(pid) + "/status`";
}

// A thread of the target seized and stopped, with its registers as they
// were. The destructor restores them and detaches, so every path out leaves
// the thread running where it was.
class hijacked_thread {
    public:
	explicit hijacked_thread(pid_t tid) : tid_(tid) {}
	hijacked_thread(const hijacked_thread &) = delete;
	~hijacked_thread()
	{
		if (saved_ok_)
			ptrace(PTRACE_SETREGS, tid_, nullptr, &saved_);
		ptrace(PTRACE_DETACH, tid_, nullptr, nullptr);
	}
	pid_t tid() const { return tid_; }
	const user_regs_struct &regs() const { return saved_; }

	// Seizes and stops the thread: 0, or -errno (-ESRCH: it exited).
	int seize_and_stop()
	{
		if (ptrace(PTRACE_SEIZE, tid_, nullptr, nullptr) != 0)
			return -errno;
		if (ptrace(PTRACE_INTERRUPT, tid_, nullptr, nullptr) != 0)
			return -errno;
		for (;;) {
			int status;
			if (waitpid(tid_, &status, __WALL) < 0) {
				if (errno == EINTR)
					continue;
				return -errno;
			}
			if (WIFEXITED(status) || WIFSIGNALED(status))
				return -ESRCH;
			if (!WIFSTOPPED(status))
				continue;
			if ((status >> 16) == PTRACE_EVENT_STOP)
				break;
			// A signal arrived first: deliver it, wait on.
			ptrace(PTRACE_CONT, tid_, nullptr,
			       (void *)(uintptr_t)WSTOPSIG(status));
		}
		if (ptrace(PTRACE_GETREGS, tid_, nullptr, &saved_) != 0)
			return -errno;
		saved_ok_ = true;
		return 0;
	}

	void write_mem(uint64_t addr, const void *data, size_t len)
	{
		// Word by word through ptrace: the strings are short, and it
		// needs no more permission than the seize already gave.
		const auto *p = static_cast<const unsigned char *>(data);
		for (size_t off = 0; off < len; off += 8) {
			uint64_t word = 0;
			size_t n = std::min<size_t>(8, len - off);
			if (n < 8) {
				errno = 0;
				long w = ptrace(PTRACE_PEEKDATA, tid_, (void *)(addr + off), nullptr);
				if (errno)
					fail(errno, "read target memory");
				word = uint64_t(w);
			}
			memcpy(&word, p + off, n);
			if (ptrace(PTRACE_POKEDATA, tid_, (void *)(addr + off), (void *)word) != 0)
				fail(errno, "write target memory");
		}
	}

	// Up to len bytes from addr (fewer where the memory ends).
	std::string read_bytes(uint64_t addr, size_t len)
	{
		std::string s;
		for (size_t off = 0; off < len; off += 8) {
			errno = 0;
			long w = ptrace(PTRACE_PEEKDATA, tid_, (void *)(addr + off), nullptr);
			if (errno)
				break;
			s.append(reinterpret_cast<const char *>(&w), 8);
		}
		return s;
	}

	std::string read_str(uint64_t addr, size_t max)
	{
		std::string s;
		while (s.size() < max) {
			errno = 0;
			long w = ptrace(PTRACE_PEEKDATA, tid_, (void *)(addr + s.size()), nullptr);
			if (errno)
				break;
			char b[8];
			memcpy(b, &w, 8);
			for (char c : b) {
				if (!c)
					return s;
				s.push_back(c);
			}
		}
		return s;
	}

	// Calls fn(args...) on the thread, with `str` (when not empty)
	// copied below the red zone and passed as the first argument.
	// Returns rax.
	uint64_t call(uint64_t fn, const std::string &str, uint64_t a1 = 0,
		      uint64_t a2 = 0)
	{
		user_regs_struct r = saved_;
		uint64_t sp = saved_.rsp - 256; // past the red zone
		uint64_t str_at = 0;
		if (!str.empty()) {
			sp -= str.size() + 1;
			sp &= ~uint64_t(15);
			str_at = sp;
			write_mem(str_at, str.c_str(), str.size() + 1);
		}
		sp &= ~uint64_t(15);
		sp -= 8; // the return address: 0, so the return faults
		uint64_t zero = 0;
		write_mem(sp, &zero, 8);
		r.rsp = sp;
		r.rip = fn;
		r.rdi = str.empty() ? a1 : str_at;
		r.rsi = str.empty() ? a2 : a1;
		r.rax = 0;
		// No system call restart on this resume: the thread may have
		// been stopped in one.
		r.orig_rax = uint64_t(-1);
		if (ptrace(PTRACE_SETREGS, tid_, nullptr, &r) != 0)
			fail(errno, "set registers");
		int sig = 0;
		for (;;) {
			if (ptrace(PTRACE_CONT, tid_, nullptr, (void *)(uintptr_t)sig) != 0)
				fail(errno, "resume the thread");
			sig = 0;
			int status;
			while (waitpid(tid_, &status, __WALL) < 0)
				if (errno != EINTR)
					fail(errno, "wait for the thread");
			if (WIFEXITED(status) || WIFSIGNALED(status)) {
				saved_ok_ = false;
				fail(ESRCH, "the process exited during the call");
			}
			if (!WIFSTOPPED(status))
				continue;
			if ((status >> 16) != 0)
				continue; // a ptrace event stop (group stop): go on
			int s = WSTOPSIG(status);
			if (s == SIGSEGV) {
				user_regs_struct now;
				if (ptrace(PTRACE_GETREGS, tid_, nullptr, &now) != 0)
					fail(errno, "get registers");
				if (now.rip == 0)
					return now.rax;
				// A real fault in the called code: the thread
				// goes back to where it was, the fault is
				// not delivered.
				char buf[64];
				snprintf(buf, sizeof buf, "%#llx", (unsigned long long)now.rip);
				fail(EFAULT, std::string("the call faulted at ") + buf);
			}
			sig = s; // the target's own signal: deliver it
		}
	}

    private:
	pid_t tid_;
	bool saved_ok_ = false;
	user_regs_struct saved_{};
};

std::vector<pid_t> threads_of(pid_t pid)
{
	std::vector<pid_t> out;
	std::string dir = "/proc/" + std::to_string(pid) + "/task";
	DIR *d = opendir(dir.c_str());
	if (!d)
		fail(ESRCH, "process " + std::to_string(pid) + ": no such process");
	while (dirent *e = readdir(d))
		if (e->d_name[0] != '.')
			out.push_back(pid_t(atoi(e->d_name)));
	closedir(d);
	return out;
}

bool lock_free_syscall(long nr)
{
	switch (nr) {
	case SYS_read: case SYS_pread64: case SYS_readv: case SYS_write:
	case SYS_nanosleep: case SYS_clock_nanosleep: case SYS_poll:
	case SYS_ppoll: case SYS_select: case SYS_pselect6:
	case SYS_epoll_wait: case SYS_epoll_pwait: case SYS_pause:
	case SYS_rt_sigsuspend: case SYS_wait4: case SYS_waitid:
	case SYS_accept: case SYS_accept4: case SYS_recvfrom:
	case SYS_recvmsg: case SYS_sigaltstack: case SYS_rt_sigtimedwait:
		return true;
	default:
		return false;
	}
}

// How good a place the thread is stopped in, for a call into dlopen():
// 0: blocked in a system call that holds no lock (read, nanosleep, poll...);
// 1: waiting on a futex (pthread_join, a condition variable);
// 2: running code of a file-backed module other than libc, ld.so and the
//    agent (no lock of theirs is held). Less good than a system call: if
//    the agent places a hook on the very instructions the thread stopped
//    in, it would resume inside the new bytes; a thread in a system call is
//    past a function's first instructions, where hooks go;
// 3: anywhere else (libc, ld.so, the agent, a trampoline, JIT code):
//    never used.
int stop_rank(const user_regs_struct &r, const std::vector<mapping> &maps)
{
	if (int64_t(r.orig_rax) >= 0) {
		if (lock_free_syscall(long(r.orig_rax)))
			return 0;
		if (long(r.orig_rax) == SYS_futex)
			return 1;
	}
	for (const auto &m : maps)
		if (r.rip >= m.start && r.rip < m.end)
			return !m.path.empty() && m.path[0] == '/' &&
					       !is_libc(m.path) && !is_ldso(m.path) &&
					       !is_agent(m.path)
				       ? 2
				       : 3;
	return 3;
}

std::unique_ptr<hijacked_thread> hijack(pid_t pid)
{
	auto begin = std::chrono::steady_clock::now();
	for (;;) {
		auto elapsed = std::chrono::steady_clock::now() - begin;
		// Rank 2 only when no thread has been found waiting for a
		// while.
		int accept = elapsed < std::chrono::milliseconds(300) ? 1 : 2;
		std::unique_ptr<hijacked_thread> best;
		int best_rank = 4;
		for (pid_t tid : threads_of(pid)) {
			auto t = std::make_unique<hijacked_thread>(tid);
			int rc = t->seize_and_stop();
			if (rc == -EPERM)
				fail(EPERM, ptrace_denied_reason(pid));
			if (rc == -ESRCH)
				continue;
			if (rc < 0)
				fail(-rc, "ptrace thread " + std::to_string(tid));
			int rank = stop_rank(t->regs(), read_maps(pid));
			if (rank < best_rank) {
				best = std::move(t);
				best_rank = rank;
			}
			if (best_rank == 0)
				break;
		}
		if (best && best_rank <= accept)
			return best;
		best.reset();
		if (elapsed > std::chrono::seconds(2))
			fail(EBUSY, "process " + std::to_string(pid) +
					    ": no thread stopped outside libc, ld.so and the agent within 2 s; try again");
		usleep(1000);
	}
}

uint64_t resolve(pid_t pid, const std::vector<mapping> &maps,
		 bool (*match)(const std::string &), const char *what,
		 std::initializer_list<const char *> names)
{
	std::string path;
	auto base = load_base(maps, match, &path);
	if (!base)
		fail(ENOENT, std::string("process ") + std::to_string(pid) + ": " + what + " is not loaded");
	for (const char *n : names)
		if (auto v = elf_symbol(target_file(pid, path), n))
			return *base + *v;
	fail(ENOENT, std::string(what) + " (" + path + "): no symbol " + *names.begin());
}

int do_attach(pid_t pid, const std::string &agent, const std::string &segment)
{
	if (access(agent.c_str(), R_OK) != 0)
		fail(ENOENT, agent + ": " + strerror(errno));
	for (int attempt = 1;; attempt++) {
		auto t = hijack(pid);
		auto maps = read_maps(pid);
		if (!load_base(maps, is_agent, nullptr)) {
			uint64_t dlopen_at = resolve(pid, maps, is_libc, "libc",
						     { "dlopen", "__libc_dlopen_mode" });
			uint64_t h = t->call(dlopen_at, agent, RTLD_NOW);
			if (h == 0) {
				std::string why;
				try {
					uint64_t dlerror_at = resolve(pid, maps, is_libc, "libc", { "dlerror" });
					uint64_t s = t->call(dlerror_at, "");
					if (s)
						why = ": " + t->read_str(s, 512);
				} catch (const failure &) {
				}
				fail(ELIBBAD, "dlopen in process " + std::to_string(pid) + " failed" + why);
			}
			maps = read_maps(pid);
		}
		// The code around where the thread stopped: the agent stops
		// every other thread out of the bytes a hook replaces, but not
		// this one, which is calling it.
		const uint64_t around = t->regs().rip - 16;
		const std::string before = t->read_bytes(around, 32);
		uint64_t entry = resolve(pid, maps, is_agent, "libbpftime-agent.so",
					 { "bpftime_agent_inject" });
		int64_t rc = int64_t(int32_t(t->call(entry, segment)));
		if (rc == -EEXIST)
			fail(EEXIST, "process " + std::to_string(pid) +
					     ": the agent is already attached (bpftime start or an earlier bpftime attach); `bpftime detach " +
					     std::to_string(pid) + "` first");
		if (rc < 0)
			fail(int(-rc), "process " + std::to_string(pid) + ": the agent could not open segment '" + segment +
					       "' (its log, on the process's stderr, says why)");
		if (t->read_bytes(around, 32) == before) {
			printf("ok %lld\n", (long long)rc);
			return 0;
		}
		// A hook went over the instructions this thread stopped in:
		// resuming there would run half of the new bytes. Take the
		// hooks off again (original bytes back) and start over with
		// the thread stopped elsewhere.
		uint64_t detach = resolve(pid, maps, is_agent, "libbpftime-agent.so",
					  { "bpftime_agent_detach" });
		t->call(detach, "");
		if (attempt == 5)
			fail(EBUSY, "process " + std::to_string(pid) +
					    ": every thread stopped inside a function being hooked, 5 times; try again");
		t.reset();
		usleep(1000);
	}
}

int do_detach(pid_t pid)
{
	auto maps = read_maps(pid);
	if (!load_base(maps, is_agent, nullptr))
		fail(ENOENT, "process " + std::to_string(pid) + ": the agent is not loaded; nothing to detach");
	auto t = hijack(pid);
	uint64_t entry = resolve(pid, read_maps(pid), is_agent, "libbpftime-agent.so",
				 { "bpftime_agent_detach" });
	int64_t rc = int64_t(int32_t(t->call(entry, "")));
	if (rc == -ENOENT)
		fail(ENOENT, "process " + std::to_string(pid) + ": the agent is not attached; nothing to detach");
	if (rc < 0)
		fail(int(-rc), "process " + std::to_string(pid) + ": detach failed");
	printf("ok %lld\n", (long long)rc);
	return 0;
}

} // namespace

int main(int argc, char **argv)
{
	try {
		std::string cmd = argc > 1 ? argv[1] : "";
		if ((cmd == "attach" && argc == 5) || (cmd == "detach" && argc == 3)) {
			char *end = nullptr;
			long pid = strtol(argv[2], &end, 10);
			if (*end || pid <= 0)
				fail(EINVAL, std::string("'") + argv[2] + "' is not a pid");
			if (pid == getpid())
				fail(EINVAL, "cannot attach to itself");
			return cmd == "attach" ? do_attach(pid_t(pid), argv[3], argv[4])
					       : do_detach(pid_t(pid));
		}
		fprintf(stderr, "usage: bpftime-inject attach <pid> <agent.so> <segment> | detach <pid>\n");
		return 2;
	} catch (const failure &f) {
		fprintf(stderr, "%s: %s\n", errno_name(f.code), f.message.c_str());
		return 1;
	} catch (const std::exception &e) {
		fprintf(stderr, "EIO: %s\n", e.what());
		return 1;
	}
}
