// syscall/user_dispatch.cpp: see user_dispatch.hpp.
#include "user_dispatch.hpp"

#include "dispatch.hpp"

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <dirent.h>
#include <linux/prctl.h>
#include <sched.h>
#include <string>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <ucontext.h>
#include <unistd.h>
#include <vector>

#ifndef SA_RESTORER
#define SA_RESTORER 0x04000000 // the kernel's, which glibc does not export
#endif
#ifndef SYS_USER_DISPATCH
#define SYS_USER_DISPATCH 2
#endif

// The allowed range: the only code from which a thread with dispatch on may
// make a system call that does not trap whatever its selector says.
// bpftime_sud_syscall(nr, a1, ..., a6) is syscall(2) without errno (it
// returns -errno); bpftime_sud_restorer is the SIGSYS handler's
// rt_sigreturn.
asm(".text\n"
    ".balign 64\n"
    ".globl bpftime_sud_begin\n.hidden bpftime_sud_begin\nbpftime_sud_begin:\n"
    ".globl bpftime_sud_syscall\n.hidden bpftime_sud_syscall\n"
    ".type bpftime_sud_syscall,@function\nbpftime_sud_syscall:\n"
    "mov %rdi, %rax\n mov %rsi, %rdi\n mov %rdx, %rsi\n mov %rcx, %rdx\n"
    "mov %r8, %r10\n mov %r9, %r8\n mov 8(%rsp), %r9\n syscall\n ret\n"
    ".size bpftime_sud_syscall, .-bpftime_sud_syscall\n"
    ".globl bpftime_sud_restorer\n.hidden bpftime_sud_restorer\n"
    "bpftime_sud_restorer:\n mov $15, %eax\n syscall\n ud2\n"
    ".globl bpftime_sud_end\n.hidden bpftime_sud_end\nbpftime_sud_end:\n");

extern "C" long bpftime_sud_syscall(long nr, long a1, long a2, long a3, long a4, long a5,
				    long a6) noexcept;
extern "C" void bpftime_sud_restorer();
extern "C" char bpftime_sud_begin[], bpftime_sud_end[];

namespace bpftime::attach::detail {

constinit thread_local uint8_t t_sud_sel __attribute__((tls_model("initial-exec"))) = 0;
constinit thread_local uint8_t t_sud_armed __attribute__((tls_model("initial-exec"))) = 0;
std::atomic<bool> g_sud_on{ false };

namespace {

constexpr uint8_t ALLOW = SYSCALL_DISPATCH_FILTER_ALLOW, BLOCK = SYSCALL_DISPATCH_FILTER_BLOCK;
constexpr uint64_t SIGSYS_BIT = 1ULL << (SIGSYS - 1);

// The kernel's struct sigaction for rt_sigaction (include/linux/signal_types.h
// on x86-64), which glibc's sigaction() passes through.
struct kernel_sigaction {
	void *handler;
	unsigned long flags;
	void *restorer;
	uint64_t mask;
};

// Copies the filter hands the kernel instead of the program's own, until
// the call returns (the same thread makes it next).
constinit thread_local kernel_sigaction t_act_copy __attribute__((tls_model("initial-exec"))) = {};
constinit thread_local uint64_t t_mask_copy __attribute__((tls_model("initial-exec"))) = 0;

// The program's SIGSYS action, which the kernel does not see while ours is
// installed. Written under the attach lock or by the filter (the program's
// own rt_sigaction calls, which it serialises as it would for the kernel).
kernel_sigaction g_prog_sigsys = {};

int32_t tp_offset(const void *p) noexcept
{
	uint64_t tp;
	asm("mov %%fs:0, %0" : "=r"(tp));
	return int32_t(int64_t(reinterpret_cast<uint64_t>(p) - tp));
}

long raw(long nr, long a1 = 0, long a2 = 0, long a3 = 0, long a4 = 0, long a5 = 0,
	 long a6 = 0) noexcept
{
	return bpftime_sud_syscall(nr, a1, a2, a3, a4, a5, a6);
}

// This process's id, for process_vm_readv: kept rather than asked for,
// since a getpid of ours would show in the kernel's counts and not in
// ours. Set when the fallback turns on and in the child of a fork; the
// child of a vfork (or of a clone with CLONE_VM) keeps its parent's, whose
// memory it shares.
std::atomic<long> g_pid{ 0 };

// Copies between this process's addresses without faulting on a bad one
// (the program's pointer, which the kernel would answer with EFAULT).
bool copy_in(void *to, const void *from, size_t n) noexcept
{
	iovec local{ to, n }, remote{ const_cast<void *>(from), n };
	return raw(SYS_process_vm_readv, g_pid.load(std::memory_order_relaxed), long(&local), 1,
		   long(&remote), 1, 0) == long(n);
}

bool copy_out(void *to, const void *from, size_t n) noexcept
{
	iovec local{ const_cast<void *>(from), n }, remote{ to, n };
	return raw(SYS_process_vm_writev, g_pid.load(std::memory_order_relaxed), long(&local), 1,
		   long(&remote), 1, 0) == long(n);
}

// Whether the system call that trapped at `ip` (after its instruction) is a
// trampoline's: the selector was set back to BLOCK between the trampoline's
// ALLOW and its syscall (a signal handler ran there, a restarted call). The
// 9 bytes before the syscall are then `mov byte [fs:sel], ALLOW`.
bool from_trampoline(uint64_t ip) noexcept
{
	uint8_t want[11] = { 0x64, 0xc6, 0x04, 0x25, 0, 0, 0, 0, ALLOW, 0x0f, 0x05 };
	const int32_t off = sud_sel_offset();
	memcpy(want + 4, &off, 4);
	uint8_t got[11];
	const uint64_t at = ip - sizeof got;
	if ((at >> 12) == ((ip - 1) >> 12)) {
		memcpy(got, reinterpret_cast<const void *>(at), sizeof got);
	} else {
		// Across a page boundary: the page before may be unmapped.
		if (!copy_in(got, reinterpret_cast<const void *>(at), sizeof got))
			return false;
	}
	return memcmp(got, want, sizeof got) == 0;
}

// Calls the handler cannot make on the signal frame's behalf.
bool made_again(uint64_t nr) noexcept
{
	switch (nr) {
	case SYS_rt_sigreturn:
	case SYS_rt_sigprocmask:
	case SYS_sigaltstack:
	case SYS_clone:
	case SYS_clone3:
	case SYS_fork:
	case SYS_vfork:
	case SYS_execve:
	case SYS_execveat:
		return true;
	default:
		return false;
	}
}

// A SIGSYS that is not ours (a seccomp trap): what the program asked for.
void pass_on(int sig, siginfo_t *si, void *ctx) noexcept
{
	const kernel_sigaction a = g_prog_sigsys;
	if (a.handler == reinterpret_cast<void *>(SIG_IGN))
		return;
	if (a.handler == reinterpret_cast<void *>(SIG_DFL)) {
		// The default action (core dump): ours goes, the signal again.
		kernel_sigaction dfl{};
		dfl.handler = reinterpret_cast<void *>(SIG_DFL);
		raw(SYS_rt_sigaction, SIGSYS, long(&dfl), 0, 8);
		raw(SYS_tgkill, raw(SYS_getpid), raw(SYS_gettid), SIGSYS);
		return;
	}
	if (a.flags & SA_SIGINFO)
		reinterpret_cast<void (*)(int, siginfo_t *, void *)>(a.handler)(sig, si, ctx);
	else
		reinterpret_cast<void (*)(int)>(a.handler)(sig);
}

void to_regs(const greg_t *g, pt_regs &r) noexcept
{
	r.r15 = g[REG_R15];
	r.r14 = g[REG_R14];
	r.r13 = g[REG_R13];
	r.r12 = g[REG_R12];
	r.bp = g[REG_RBP];
	r.bx = g[REG_RBX];
	r.r11 = g[REG_EFL];
	r.r10 = g[REG_R10];
	r.r9 = g[REG_R9];
	r.r8 = g[REG_R8];
	r.ax = uint64_t(-ENOSYS);
	r.cx = g[REG_RIP];
	r.dx = g[REG_RDX];
	r.si = g[REG_RSI];
	r.di = g[REG_RDI];
	r.ip = g[REG_RIP];
	r.cs = 0x33;
	r.flags = g[REG_EFL];
	r.sp = g[REG_RSP];
	r.ss = 0x2b;
}

// SIGSYS on a thread with dispatch on, for a call at a site left as it
// was: runs the hooks around the call, as the trampolines' routines do.
// SA_NODEFER: a left site reached from inside (a program's helper) traps
// again rather than meet a blocked SIGSYS, which would kill the thread.
void on_sigsys(int sig, siginfo_t *si, void *ctx)
{
	if (si->si_code != SYS_USER_DISPATCH) {
		pass_on(sig, si, ctx);
		return;
	}
	const int saved_errno = errno;
	auto *uc = static_cast<ucontext_t *>(ctx);
	greg_t *g = uc->uc_mcontext.gregs;
	const uint8_t armed = t_sud_armed;
	// Nothing the hooks do traps: the trampolines put back t_sud_armed.
	t_sud_armed = 0;
	t_sud_sel = ALLOW;
	const uint64_t ip = uint64_t(g[REG_RIP]);
	const uint64_t nr = uint64_t(uint32_t(si->si_syscall));
	if (from_trampoline(ip)) {
		g[REG_RIP] = greg_t(ip - 2);
		g[REG_RAX] = greg_t(nr);
		t_sud_armed = armed;
		errno = saved_errno;
		return;
	}
	pt_regs regs;
	to_regs(g, regs);
	regs.orig_ax = nr;
	const sys_snapshot *sn = g_sys_snapshot.load(std::memory_order_acquire);
	const auto slot = [](uint64_t n) { return n < SYS_NR_SLOTS ? n : SYS_NR_SLOTS; };
	bool skipped = false;
	uint64_t ret = 0;
	if (sn)
		for (const sys_handler *const *h = sn->enter[slot(nr)]; *h && !skipped; ++h)
			skipped = (*h)->enter(&regs, (*h)->user, &ret);
	if (!skipped && sud_filter(&regs)) {
		skipped = true;
		ret = regs.ax;
	}
	const uint64_t call = regs.orig_ax;
	if (!skipped && made_again(call)) {
		// Made again at the site, with the selector left at ALLOW.
		g[REG_RIP] = greg_t(ip - 2);
		g[REG_RAX] = greg_t(call);
		g[REG_RDI] = greg_t(regs.di);
		g[REG_RSI] = greg_t(regs.si);
		g[REG_RDX] = greg_t(regs.dx);
		g[REG_R10] = greg_t(regs.r10);
		g[REG_R8] = greg_t(regs.r8);
		g[REG_R9] = greg_t(regs.r9);
		t_sud_armed = armed;
		errno = saved_errno;
		return;
	}
	if (!skipped)
		ret = uint64_t(raw(long(call), long(regs.di), long(regs.si), long(regs.dx),
				   long(regs.r10), long(regs.r8), long(regs.r9)));
	g[REG_RAX] = greg_t(ret);
	g[REG_RCX] = greg_t(ip);
	g[REG_R11] = g[REG_EFL];
	regs.ax = ret;
	if (sn)
		for (const sys_handler *const *h = sn->exit[slot(call)]; *h; ++h)
			(*h)->exit(&regs, (*h)->user);
	t_sud_armed = armed;
	t_sud_sel = armed;
	errno = saved_errno;
}

// The signal that turns dispatch on in the other threads.
int enable_signal() noexcept
{
	return SIGRTMAX - 3;
}
constexpr uint64_t enable_magic = 0x5ad0'0000'0000'0000ULL;
std::atomic<uint32_t> g_enable_acks{ 0 };
kernel_sigaction g_old_enable = {};

void on_enable_signal(int sig, siginfo_t *si, void *ctx)
{
	if (si->si_code != SI_QUEUE || si->si_pid != getpid() ||
	    reinterpret_cast<uint64_t>(si->si_value.sival_ptr) != enable_magic) {
		const kernel_sigaction a = g_old_enable;
		if (a.handler == reinterpret_cast<void *>(SIG_DFL) || a.handler == reinterpret_cast<void *>(SIG_IGN))
			return;
		if (a.flags & SA_SIGINFO)
			reinterpret_cast<void (*)(int, siginfo_t *, void *)>(a.handler)(sig, si, ctx);
		else
			reinterpret_cast<void (*)(int)>(a.handler)(sig);
		return;
	}
	sud_enable_self();
	g_enable_acks.fetch_add(1, std::memory_order_acq_rel);
}

// Whether thread t blocks signal sig now (its SigBlk in /proc): it would
// not take the signal, and waiting for its answer only delays the attach.
bool blocks(pid_t t, int sig) noexcept
{
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/self/task/%d/status", t);
	FILE *f = fopen(path, "re");
	if (!f)
		return false;
	bool blocked = false;
	while (fgets(line, sizeof line, f))
		if (strncmp(line, "SigBlk:", 7) == 0) {
			blocked = strtoull(line + 7, nullptr, 16) & (1ULL << (sig - 1));
			break;
		}
	fclose(f);
	return blocked;
}

bool g_installed = false;

status install()
{
	if (g_installed)
		return {};
	kernel_sigaction sa{}, old{};
	sa.handler = reinterpret_cast<void *>(&on_sigsys);
	sa.flags = SA_SIGINFO | SA_RESTORER | SA_NODEFER;
	sa.restorer = reinterpret_cast<void *>(&bpftime_sud_restorer);
	if (long r = raw(SYS_rt_sigaction, SIGSYS, long(&sa), long(&old), 8); r < 0)
		return fail(int(-r), std::string("syscall user dispatch: rt_sigaction(SIGSYS): ") +
					     strerror(int(-r)));
	g_prog_sigsys = old;
	struct sigaction en = {};
	en.sa_sigaction = on_enable_signal;
	en.sa_flags = SA_SIGINFO | SA_RESTART;
	sigemptyset(&en.sa_mask);
	struct sigaction prev = {};
	if (sigaction(enable_signal(), &en, &prev) == 0) {
		g_old_enable.handler = reinterpret_cast<void *>(prev.sa_sigaction);
		g_old_enable.flags = prev.sa_flags;
	}
	g_installed = true;
	return {};
}

} // namespace

int32_t sud_sel_offset() noexcept
{
	return tp_offset(&t_sud_sel);
}

int32_t sud_armed_offset() noexcept
{
	return tp_offset(&t_sud_armed);
}

void sud_child(uint64_t nr, const pt_regs *regs) noexcept
{
	// A new process has an id of its own: fork's child, and clone's
	// without CLONE_VM (glibc's fork; its flags are in a register). Not
	// vfork's, which shares our memory and this variable. clone3's flags
	// are in memory that a thread's parent may already have reused, and
	// glibc makes only threads and posix_spawn's CLONE_VM children with
	// it: its children keep the parent's id (a clone3 without CLONE_VM
	// then reads its parent's memory in the filter; documented).
	if (nr == SYS_fork || (nr == SYS_clone && !(regs->di & CLONE_VM)))
		g_pid.store(raw(SYS_getpid), std::memory_order_relaxed);
	sud_enable_self();
}

void sud_enable_self() noexcept
{
	uint64_t cur = 0;
	if (raw(SYS_rt_sigprocmask, SIG_BLOCK, 0, long(&cur), 8) != 0 || (cur & SIGSYS_BIT))
		return;
	t_sud_sel = BLOCK;
	t_sud_armed = 1;
	const uint64_t lo = reinterpret_cast<uint64_t>(bpftime_sud_begin);
	const uint64_t len = reinterpret_cast<uint64_t>(bpftime_sud_end) - lo;
	if (raw(SYS_prctl, PR_SET_SYSCALL_USER_DISPATCH, PR_SYS_DISPATCH_ON, long(lo), long(len),
		long(&t_sud_sel)) != 0) {
		t_sud_armed = 0;
		t_sud_sel = ALLOW;
	}
}

status sud_enable(uint32_t *missed)
{
	*missed = 0;
	if (g_sud_on.load())
		return {};
	// Whether the kernel has it at all, before anything is installed.
	const uint64_t lo = reinterpret_cast<uint64_t>(bpftime_sud_begin);
	const uint64_t len = reinterpret_cast<uint64_t>(bpftime_sud_end) - lo;
	if (long r = raw(SYS_prctl, PR_SET_SYSCALL_USER_DISPATCH, PR_SYS_DISPATCH_OFF, 0, 0, 0);
	    r != 0)
		return fail(int(-r), std::string("syscall user dispatch: prctl: ") + strerror(int(-r)));
	(void)len;
	g_pid.store(raw(SYS_getpid));
	BPFTIME_TRY(install());
	g_sud_on.store(true);
	sud_enable_self();
	// The other threads, each on itself.
	std::vector<pid_t> sent;
	const pid_t pid = getpid(), self = pid_t(raw(SYS_gettid));
	g_enable_acks.store(0);
	if (DIR *d = opendir("/proc/self/task")) {
		while (dirent *e = readdir(d)) {
			if (e->d_name[0] < '0' || e->d_name[0] > '9')
				continue;
			const pid_t t = pid_t(atoi(e->d_name));
			if (t == self)
				continue;
			if (blocks(t, enable_signal())) {
				(*missed)++;
				continue;
			}
			siginfo_t si = {};
			si.si_signo = enable_signal();
			si.si_code = SI_QUEUE;
			si.si_pid = pid;
			si.si_uid = getuid();
			si.si_value.sival_ptr = reinterpret_cast<void *>(enable_magic);
			if (syscall(SYS_rt_tgsigqueueinfo, pid, t, enable_signal(), &si) == 0)
				sent.push_back(t);
		}
		closedir(d);
	}
	// A thread asleep in a call takes the signal at once; one that blocks
	// it never does.
	for (int i = 0; i < 2000 && g_enable_acks.load() < sent.size(); i++) {
		timespec nap = { 0, 100000 };
		nanosleep(&nap, nullptr);
	}
	const uint32_t acks = g_enable_acks.load();
	*missed += acks < sent.size() ? uint32_t(sent.size() - acks) : 0;
	return {};
}

bool in_sud_range(uint64_t address) noexcept
{
	return address >= reinterpret_cast<uint64_t>(bpftime_sud_begin) &&
	       address < reinterpret_cast<uint64_t>(bpftime_sud_end);
}

bool sud_filter(pt_regs *regs) noexcept
{
	switch (regs->orig_ax) {
	case SYS_rt_sigprocmask: {
		uint64_t set;
		if (regs->si && regs->di != SIG_UNBLOCK && regs->r10 == 8 &&
		    copy_in(&set, reinterpret_cast<const void *>(regs->si), sizeof set) &&
		    (set & SIGSYS_BIT)) {
			t_mask_copy = set & ~SIGSYS_BIT;
			regs->si = reinterpret_cast<uint64_t>(&t_mask_copy);
		}
		return false;
	}
	case SYS_rt_sigaction: {
		if (regs->r10 != 8)
			return false;
		kernel_sigaction act;
		const bool has_act =
			regs->si && copy_in(&act, reinterpret_cast<const void *>(regs->si), sizeof act);
		if (regs->si && !has_act)
			return false; // the kernel answers EFAULT
		if (regs->di == SIGSYS) {
			// Ours stays; the program's is what it sees and what a
			// SIGSYS that is not ours runs.
			const kernel_sigaction prev = g_prog_sigsys;
			if (regs->dx && !copy_out(reinterpret_cast<void *>(regs->dx), &prev, sizeof prev)) {
				regs->ax = uint64_t(-EFAULT);
				return true;
			}
			if (has_act)
				g_prog_sigsys = act;
			regs->ax = 0;
			return true;
		}
		if (has_act && (act.mask & SIGSYS_BIT)) {
			t_act_copy = act;
			t_act_copy.mask &= ~SIGSYS_BIT;
			regs->si = reinterpret_cast<uint64_t>(&t_act_copy);
		}
		return false;
	}
	default:
		return false;
	}
}

} // namespace bpftime::attach::detail
