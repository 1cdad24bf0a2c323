// code_patch.cpp: see code_patch.hpp.
#include "code_patch.hpp"

#include "../log.hpp"
#include "../symbols/proc_maps.hpp"

#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <dirent.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

namespace bpftime::attach::detail {
namespace {

constexpr uint64_t PAGE = 4096;

// --- breakpoint table (read by the SIGTRAP handler) ---------------------

constexpr size_t table_size = 4096;
struct bp_slot {
	std::atomic<uint64_t> address{ 0 };
	std::atomic<uint64_t> target{ 0 };
};
bp_slot g_table[table_size];

size_t slot_of(uint64_t a) noexcept
{
	return size_t((a * 0x9e3779b97f4a7c15ULL) >> 52) & (table_size - 1);
}

bp_slot *lookup(uint64_t a) noexcept
{
	for (size_t i = 0, s = slot_of(a); i < table_size;
	     i++, s = (s + 1) & (table_size - 1)) {
		uint64_t v = g_table[s].address.load(std::memory_order_acquire);
		if (v == a)
			return &g_table[s];
		if (v == 0)
			return nullptr;
	}
	return nullptr;
}

struct sigaction g_old_trap;
bool g_trap_installed = false;

void chain(const struct sigaction &old, int sig, siginfo_t *si, void *ctx)
{
	if (old.sa_flags & SA_SIGINFO) {
		if (old.sa_sigaction)
			old.sa_sigaction(sig, si, ctx);
		return;
	}
	if (old.sa_handler == SIG_IGN)
		return;
	if (old.sa_handler == SIG_DFL) {
		// What would have happened without us: the default action,
		// delivered when this handler returns.
		struct sigaction dfl = {};
		dfl.sa_handler = SIG_DFL;
		sigaction(sig, &dfl, nullptr);
		raise(sig);
		return;
	}
	old.sa_handler(sig);
}

void on_sigtrap(int sig, siginfo_t *si, void *ctx)
{
	auto *uc = static_cast<ucontext_t *>(ctx);
	const uint64_t rip = uint64_t(uc->uc_mcontext.gregs[REG_RIP]);
	if (si->si_code == SI_KERNEL || si->si_code == TRAP_BRKPT) {
		if (bp_slot *s = lookup(rip - 1)) {
			const uint64_t t = s->target.load(std::memory_order_acquire);
			// A retired site whose byte is an int3 again: someone
			// else's (a debugger's) breakpoint, not ours to take.
			if (t != rip - 1 || *reinterpret_cast<volatile const uint8_t *>(t) != 0xcc) {
				uc->uc_mcontext.gregs[REG_RIP] = greg_t(t);
				return;
			}
		}
	}
	chain(g_old_trap, sig, si, ctx);
}

// --- stopping threads ----------------------------------------------------

// A real-time signal few programs use; our handler passes any signal it did
// not send itself to the program's own handler.
int stop_signal() noexcept
{
	return SIGRTMAX - 2;
}

constexpr uint64_t magic = 0xb9f7a77aULL << 32;
constexpr size_t max_boundaries = 32;

struct fixup_request {
	uint64_t lo = 0, hi = 0, reloc = 0;
	uint32_t n = 0;
	std::pair<uint32_t, uint32_t> b[max_boundaries];
};
fixup_request g_req;
std::atomic<uint32_t> g_generation{ 0 };
std::atomic<uint32_t> g_acks{ 0 };
// Who answered, in order (the first max_acked).
constexpr uint32_t max_acked = 1024;
std::atomic<pid_t> g_acked[max_acked];
std::atomic<uint32_t> g_ack_slots{ 0 };
// Threads whose interrupted context blocks SIGTRAP, seen by the last round
// trip, and one of their tids.
std::atomic<uint32_t> g_trap_blockers{ 0 };
std::atomic<int> g_trap_blocker_tid{ 0 };
struct sigaction g_old_stop;
bool g_stop_installed = false;

void on_stop_signal(int sig, siginfo_t *si, void *ctx)
{
	const uint64_t v = reinterpret_cast<uint64_t>(si->si_value.sival_ptr);
	if (si->si_code != SI_QUEUE || si->si_pid != getpid() ||
	    (v & ~0xffffffffULL) != magic) {
		chain(g_old_stop, sig, si, ctx);
		return;
	}
	if (uint32_t(v) != g_generation.load(std::memory_order_acquire))
		return; // a late answer to a request that timed out
	auto *uc = static_cast<ucontext_t *>(ctx);
	const uint64_t rip = uint64_t(uc->uc_mcontext.gregs[REG_RIP]);
	if (rip > g_req.lo && rip < g_req.hi) {
		for (uint32_t i = 0; i < g_req.n; i++) {
			if (g_req.lo + g_req.b[i].first == rip) {
				uc->uc_mcontext.gregs[REG_RIP] =
					greg_t(g_req.reloc + g_req.b[i].second);
				break;
			}
		}
	}
	if (sigismember(&uc->uc_sigmask, SIGTRAP)) {
		g_trap_blockers.fetch_add(1, std::memory_order_relaxed);
		g_trap_blocker_tid.store(int(syscall(SYS_gettid)), std::memory_order_relaxed);
	}
	uint32_t i = g_ack_slots.fetch_add(1, std::memory_order_relaxed);
	if (i < max_acked)
		g_acked[i].store(pid_t(syscall(SYS_gettid)), std::memory_order_relaxed);
	g_acks.fetch_add(1, std::memory_order_acq_rel);
}

status install_stop_handler()
{
	if (g_stop_installed)
		return {};
	struct sigaction sa = {};
	sa.sa_sigaction = on_stop_signal;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(stop_signal(), &sa, &g_old_stop) != 0)
		return fail(errno, std::string("sigaction: ") + strerror(errno));
	g_stop_installed = true;
	return {};
}

std::vector<pid_t> other_threads()
{
	std::vector<pid_t> out;
	const pid_t self = pid_t(syscall(SYS_gettid));
	DIR *d = opendir("/proc/self/task");
	if (!d)
		return out;
	while (dirent *e = readdir(d)) {
		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		pid_t t = pid_t(atoi(e->d_name));
		if (t != self)
			out.push_back(t);
	}
	closedir(d);
	return out;
}

// Is thread `t`, which does not take our signal, asleep in a system call
// at a user address outside (lo, hi)? /proc/<pid>/task/<tid>/syscall shows
// "nr args... sp pc" for a thread blocked in the kernel ("running"
// otherwise). Such a thread (Node's inspector thread blocks every signal
// and waits on a semaphore, for one) cannot be inside the bytes we patch.
bool asleep_outside(pid_t t, uint64_t lo, uint64_t hi)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", t);
	FILE *f = fopen(path, "re");
	if (!f)
		return true; // exited
	char line[512] = {};
	bool ok = fgets(line, sizeof(line), f) != nullptr;
	fclose(f);
	if (!ok || strncmp(line, "running", 7) == 0 || line[0] == '-')
		return false;
	// The last field is the user pc.
	const char *last = strrchr(line, ' ');
	if (!last)
		return false;
	uint64_t pc = strtoull(last + 1, nullptr, 16);
	return !(pc > lo && pc < hi);
}

// Signals every other thread with the current request and waits for their
// answers. A thread that does not answer within a few milliseconds is
// accepted when it sleeps in a system call outside the request's range;
// false when some thread neither answers nor sleeps within a second.
bool round_trip()
{
	if (!install_stop_handler())
		return false;
	const uint32_t gen = g_generation.fetch_add(1) + 1;
	g_acks.store(0);
	g_trap_blockers.store(0);
	for (auto &a : g_acked)
		a.store(0, std::memory_order_relaxed);
	g_ack_slots.store(0);
	std::vector<pid_t> sent;
	const pid_t pid = getpid();
	for (pid_t t : other_threads()) {
		siginfo_t si = {};
		si.si_signo = stop_signal();
		si.si_code = SI_QUEUE;
		si.si_pid = pid;
		si.si_uid = getuid();
		si.si_value.sival_ptr = reinterpret_cast<void *>(magic | gen);
		if (syscall(SYS_rt_tgsigqueueinfo, pid, t, stop_signal(), &si) ==
		    0)
			sent.push_back(t);
	}
	timespec start;
	clock_gettime(CLOCK_MONOTONIC, &start);
	bool checked_sleepers = false;
	for (;;) {
		const uint32_t acks = g_acks.load(std::memory_order_acquire);
		if (acks >= sent.size())
			return true;
		timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		int64_t ms = (now.tv_sec - start.tv_sec) * 1000 +
			     (now.tv_nsec - start.tv_nsec) / 1000000;
		if (ms >= 5 && (!checked_sleepers || ms >= 1000)) {
			checked_sleepers = true;
			bool all = true;
			for (pid_t t : sent) {
				bool answered = false;
				for (uint32_t i = 0; i < max_acked; i++)
					if (g_acked[i].load(std::memory_order_relaxed) == t)
						answered = true;
				if (!answered && !asleep_outside(t, g_req.lo, g_req.hi)) {
					all = false;
					break;
				}
			}
			if (all && acks <= max_acked)
				return true;
			if (ms >= 1000) {
				// Bump the generation so late answers change nothing.
				g_generation.fetch_add(1);
				return false;
			}
		}
		timespec nap = { 0, 20000 };
		nanosleep(&nap, nullptr);
	}
}

bool g_membarrier = false;
bool g_membarrier_tried = false;

} // namespace

result<code_writer> code_writer::open(uint64_t addr, size_t len)
{
	auto maps = read_maps();
	if (!maps)
		return std::move(maps).error();
	code_writer w;
	const uint64_t end = addr + len;
	for (uint64_t p = addr & ~(PAGE - 1); p < end; p += PAGE) {
		const mapping *m = find_mapping(*maps, p);
		if (!m)
			return fail(EFAULT, "no mapping at 0x" +
						    [&] {
							    char b[20];
							    snprintf(b, sizeof(b), "%" PRIx64, p);
							    return std::string(b);
						    }());
		if (!w.ranges_.empty() && w.ranges_.back().end == p &&
		    w.ranges_.back().prot == m->prot())
			w.ranges_.back().end = p + PAGE;
		else
			w.ranges_.push_back({ p, p + PAGE, m->prot() });
	}
	for (size_t i = 0; i < w.ranges_.size(); i++) {
		const range &r = w.ranges_[i];
		if (mprotect(reinterpret_cast<void *>(r.start), r.end - r.start,
			     r.prot | PROT_WRITE) != 0) {
			int e = errno;
			w.ranges_.resize(i);
			return fail(e, std::string("mprotect(PROT_WRITE) of the "
						   "code page: ") +
					       strerror(e));
		}
	}
	return w;
}

code_writer::code_writer(code_writer &&o) noexcept
	: ranges_(std::move(o.ranges_))
{
	o.ranges_.clear();
}

code_writer::~code_writer()
{
	for (const range &r : ranges_)
		if (mprotect(reinterpret_cast<void *>(r.start), r.end - r.start,
			     r.prot) != 0)
			log(attach_log, log_level::warn,
			    "could not restore the protection of 0x%" PRIx64
			    ": %s",
			    r.start, strerror(errno));
}

void code_writer::write(uint64_t addr, const uint8_t *bytes, size_t n) noexcept
{
	auto *p = reinterpret_cast<volatile uint8_t *>(addr);
	for (size_t i = 0; i < n; i++)
		p[i] = bytes[i];
	__builtin___clear_cache(reinterpret_cast<char *>(addr),
				reinterpret_cast<char *>(addr + n));
}

void sync_cores() noexcept
{
	if (!g_membarrier_tried) {
		g_membarrier_tried = true;
		g_membarrier =
			syscall(SYS_membarrier,
				MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE,
				0, 0) == 0;
		if (!g_membarrier)
			log(attach_log, log_level::debug,
			    "membarrier SYNC_CORE unavailable (%s); "
			    "serialising threads by a signal round trip",
			    strerror(errno));
	}
	if (g_membarrier &&
	    syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE,
		    0, 0) == 0)
		return;
	g_req.lo = g_req.hi = 0;
	(void)round_trip();
}

status ensure_sigtrap_handler()
{
	struct sigaction cur;
	if (g_trap_installed) {
		if (sigaction(SIGTRAP, nullptr, &cur) == 0 &&
		    (cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == on_sigtrap)
			return {};
		return fail(EBUSY, "the program replaced the SIGTRAP handler "
				   "that breakpoint probes need");
	}
	struct sigaction sa = {};
	sa.sa_sigaction = on_sigtrap;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGTRAP, &sa, &g_old_trap) != 0)
		return fail(errno, std::string("sigaction(SIGTRAP): ") +
					   strerror(errno));
	g_trap_installed = true;
	return {};
}

status breakpoint_publish(uint64_t address, uint64_t target)
{
	if (bp_slot *s = lookup(address)) {
		s->target.store(target, std::memory_order_release);
		return {};
	}
	for (size_t i = 0, s = slot_of(address); i < table_size;
	     i++, s = (s + 1) & (table_size - 1)) {
		if (g_table[s].address.load() == 0) {
			g_table[s].target.store(target, std::memory_order_release);
			g_table[s].address.store(address, std::memory_order_release);
			return {};
		}
	}
	return fail(ENOSPC, "the breakpoint table is full (4096 addresses)");
}

void breakpoint_retire(uint64_t address) noexcept
{
	if (bp_slot *s = lookup(address))
		s->target.store(address, std::memory_order_release);
}

bool move_threads_out(uint64_t lo, uint64_t hi, uint64_t reloc,
		      const std::vector<std::pair<uint32_t, uint32_t>> &b)
{
	if (b.size() > max_boundaries)
		return false;
	g_req.lo = lo;
	g_req.hi = hi;
	g_req.reloc = reloc;
	g_req.n = uint32_t(b.size());
	for (size_t i = 0; i < b.size(); i++)
		g_req.b[i] = b[i];
	bool ok = round_trip();
	g_req.lo = g_req.hi = 0;
	return ok;
}

namespace {

// One round trip: the tid of a thread whose current mask blocks SIGTRAP
// (seen from its own signal context), -1 when some thread did not answer,
// or 0.
int blocking_now()
{
	sigset_t mine;
	if (pthread_sigmask(SIG_BLOCK, nullptr, &mine) == 0 &&
	    sigismember(&mine, SIGTRAP))
		return int(syscall(SYS_gettid));
	g_req.lo = g_req.hi = 0;
	if (!round_trip())
		return -1;
	return g_trap_blockers.load() ? g_trap_blocker_tid.load() : 0;
}

} // namespace

int thread_blocking_sigtrap()
{
	// pthread_create runs a new thread with every signal blocked until
	// it installs its own mask: look again a few times before deciding
	// that a thread really keeps SIGTRAP blocked.
	int t = 0;
	for (int attempt = 0; attempt < 50; attempt++) {
		if ((t = blocking_now()) <= 0)
			return 0;
		timespec nap = { 0, 200000 };
		nanosleep(&nap, nullptr);
	}
	return t;
}

} // namespace bpftime::attach::detail
