// fault_guard.cpp: see fault_guard.hpp.
//
// Everything the handler touches is async-signal-safe: thread-locals, the
// atomics below, sigaction through libc's own function, process_vm_readv
// to read a word that may not be mapped, and the log line, which
// @bpftime/common formats on the stack with snprintf and writes with one
// write(2).
#include <bpftime/agent/fault_guard.hpp>

#include "hooks/binding.hpp"
#include "hooks/uprobe.hpp"

#include <bpftime/agent/log.hpp>
#include <bpftime/vm/vm.hpp>

#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <cstring>
#include <dlfcn.h>
#include <link.h>
#include <sys/uio.h>
#include <ucontext.h>
#include <unistd.h>

namespace bpftime::agent {
namespace {

using sigaction_fn = int (*)(int, const struct sigaction *, struct sigaction *);

// libc's sigaction: the agent's own calls must not come back through the
// interposed one (preload/signals.cpp).
sigaction_fn g_real = nullptr;

std::atomic<uint32_t> g_max_faults{ DEFAULT_MAX_FAULTS };

// The target's action for each owned signal, double-buffered: writers
// (fault_guard_sigaction, recheck) fill the buffer not in use and publish
// it; the handler copies the published one.
struct target_action {
	struct sigaction act[2];
	std::atomic<int> cur{ 0 };
	std::atomic<bool> owned{ false };
};
target_action g_target[2]; // SIGSEGV, SIGBUS
std::atomic_flag g_writer = ATOMIC_FLAG_INIT;

// Executable segments of the object the agent is linked into.
struct text_range {
	uint64_t lo, hi;
};
constexpr int max_text = 8;
text_range g_text[max_text];
int g_ntext = 0;

int slot_of(int sig) noexcept
{
	return sig == SIGSEGV ? 0 : sig == SIGBUS ? 1 : -1;
}

const char *signal_name(int sig) noexcept
{
	return sig == SIGSEGV ? "SIGSEGV" : "SIGBUS";
}

void on_fault(int sig, siginfo_t *si, void *ctx);

// The agent's handler with what the kernel should apply from the target's
// action: its mask, and where and how it wants the signal delivered.
struct sigaction mirrored(const struct sigaction &t) noexcept
{
	struct sigaction a;
	memset(&a, 0, sizeof a);
	a.sa_sigaction = on_fault;
	a.sa_mask = t.sa_mask;
	a.sa_flags = SA_SIGINFO |
		     (t.sa_flags & (SA_ONSTACK | SA_NODEFER | SA_RESTART));
	return a;
}

struct writer_lock {
	writer_lock() noexcept
	{
		while (g_writer.test_and_set(std::memory_order_acquire)) {
		}
	}
	~writer_lock()
	{
		g_writer.clear(std::memory_order_release);
	}
};

// Under writer_lock.
void publish(int slot, int sig, const struct sigaction &t) noexcept
{
	target_action &ta = g_target[slot];
	const int next = 1 - ta.cur.load(std::memory_order_relaxed);
	ta.act[next] = t;
	ta.cur.store(next, std::memory_order_release);
	struct sigaction a = mirrored(t);
	g_real(sig, &a, nullptr);
}

struct sigaction current_target(int slot) noexcept
{
	const target_action &ta = g_target[slot];
	return ta.act[ta.cur.load(std::memory_order_acquire)];
}

bool in_agent_text(uint64_t pc) noexcept
{
	for (int i = 0; i < g_ntext; i++)
		if (pc >= g_text[i].lo && pc < g_text[i].hi)
			return true;
	return false;
}

// The word at addr, or false when it cannot be read (a fault on the
// stack pointer itself): no second fault inside the handler.
bool read_word(uint64_t addr, uint64_t &out) noexcept
{
	iovec local{ &out, sizeof out };
	iovec remote{ reinterpret_cast<void *>(addr), sizeof out };
	return process_vm_readv(getpid(), &local, 1, &remote, 1, 0) ==
	       ssize_t(sizeof out);
}

// Whether the faulting code is the run's: generated code, the agent's
// object (interpreter, helpers, maps), or a leaf routine (memcpy, strlen)
// that the agent's code called, whose return address is on top of the
// stack. A routine deeper than one call outside the agent is not
// recognised, and its fault goes to the target.
// Where the fault is, for the log line; null when it is not the run's.
const char *fault_in_run(const ucontext_t *uc) noexcept
{
	const uint64_t pc = uint64_t(uc->uc_mcontext.gregs[REG_RIP]);
	if (vm::in_generated_code(pc))
		return "in generated code";
	if (in_agent_text(pc))
		return "in the agent (interpreter, helper)";
	uint64_t ret;
	if (read_word(uint64_t(uc->uc_mcontext.gregs[REG_RSP]), ret) &&
	    in_agent_text(ret))
		return "in a routine a helper called";
	return nullptr;
}

uint64_t disabled_runner(const void *, void *, uint64_t, int *err) noexcept
{
	*err = 0;
	return 0;
}

void count_fault(const hooks::binding &b, int sig, uint64_t addr,
		 uint64_t pc, const char *where) noexcept
{
	const uint64_t n = b.faults.fetch_add(1, std::memory_order_relaxed) + 1;
	const uint32_t max = g_max_faults.load(std::memory_order_relaxed);
	if (max == 0 || n != max)
		return;
	b.run_fn.store(&disabled_runner, std::memory_order_relaxed);
	log(agent_log, log_level::warn,
	    "link %u: disabled in this process after %" PRIu64
	    " faults (BPFTIME_AGENT_MAX_FAULTS=%u); the last: %s at 0x%" PRIx64
	    ", pc 0x%" PRIx64 " %s",
	    b.link_id, n, max, signal_name(sig), addr, pc, where);
}

// What the kernel would have done with the target's action.
void deliver_to_target(int sig, siginfo_t *si, void *ctx) noexcept
{
	const int slot = slot_of(sig);
	const struct sigaction t = current_target(slot);
	if (!(t.sa_flags & SA_SIGINFO) &&
	    (t.sa_handler == SIG_DFL || t.sa_handler == SIG_IGN)) {
		// A signal sent by a process (kill, raise, sigqueue) that the
		// target ignores stays ignored.
		if (t.sa_handler == SIG_IGN && si->si_code <= 0)
			return;
		// The default action, as the kernel would take it (it does
		// not let a fault it raised be ignored either): SIG_DFL, then
		// the access faults again when the handler returns; a sent
		// signal is sent again, delivered once the handler returns.
		struct sigaction dfl;
		memset(&dfl, 0, sizeof dfl);
		dfl.sa_handler = SIG_DFL;
		g_real(sig, &dfl, nullptr);
		if (si->si_code <= 0)
			raise(sig);
		return;
	}
	if (t.sa_flags & SA_RESETHAND) {
		struct sigaction dfl;
		memset(&dfl, 0, sizeof dfl);
		dfl.sa_handler = SIG_DFL;
		writer_lock g;
		publish(slot, sig, dfl);
	}
	if (t.sa_flags & SA_SIGINFO)
		t.sa_sigaction(sig, si, ctx);
	else
		t.sa_handler(sig);
}

void on_fault(int sig, siginfo_t *si, void *ctx)
{
	const int saved_errno = errno;
	auto *uc = static_cast<ucontext_t *>(ctx);
	const hooks::binding *b = hooks::t_running;
	const char *where = b && si->si_code > 0 ? fault_in_run(uc) : nullptr;
	if (where) {
		const uint64_t pc = uint64_t(uc->uc_mcontext.gregs[REG_RIP]);
		if (vm::end_run_after_fault(uc)) {
			hooks::t_override.requested = false;
			count_fault(*b, sig, reinterpret_cast<uint64_t>(si->si_addr),
				    pc, where);
			errno = saved_errno;
			return;
		}
	}
	errno = saved_errno;
	deliver_to_target(sig, si, ctx);
}

int find_text(dl_phdr_info *info, size_t, void *data) noexcept
{
	const uint64_t self = reinterpret_cast<uint64_t>(data);
	bool mine = false;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) &ph = info->dlpi_phdr[i];
		const uint64_t lo = info->dlpi_addr + ph.p_vaddr;
		if (ph.p_type == PT_LOAD && self >= lo && self < lo + ph.p_memsz)
			mine = true;
	}
	if (!mine)
		return 0;
	for (int i = 0; i < info->dlpi_phnum && g_ntext < max_text; i++) {
		const ElfW(Phdr) &ph = info->dlpi_phdr[i];
		if (ph.p_type == PT_LOAD && (ph.p_flags & PF_X)) {
			const uint64_t lo = info->dlpi_addr + ph.p_vaddr;
			g_text[g_ntext++] = { lo, lo + ph.p_memsz };
		}
	}
	return 1;
}

} // namespace

status install_fault_guard(const fault_options &o)
{
	g_max_faults.store(o.max_faults, std::memory_order_relaxed);
	if (g_real)
		return {};
	auto real = reinterpret_cast<sigaction_fn>(dlsym(RTLD_NEXT, "sigaction"));
	if (!real)
		real = &::sigaction;
	g_ntext = 0;
	dl_iterate_phdr(find_text, reinterpret_cast<void *>(&on_fault));
	if (g_ntext == 0)
		return fail(ENOENT, "fault guard: cannot find the agent's own code "
				    "in the process's objects");
	g_real = real;
	writer_lock g;
	for (int sig : { SIGSEGV, SIGBUS }) {
		struct sigaction old;
		if (g_real(sig, nullptr, &old) != 0)
			return fail(errno, std::string("fault guard: sigaction(") +
						   signal_name(sig) +
						   "): " + strerror(errno));
		const int slot = slot_of(sig);
		publish(slot, sig, old);
		g_target[slot].owned.store(true, std::memory_order_release);
	}
	return {};
}

bool fault_guard_owns(int sig) noexcept
{
	const int slot = slot_of(sig);
	return slot >= 0 && g_target[slot].owned.load(std::memory_order_acquire);
}

int fault_guard_sigaction(int sig, const struct sigaction *act,
			  struct sigaction *oact) noexcept
{
	const int slot = slot_of(sig);
	if (slot < 0 || !g_real) {
		errno = EINVAL;
		return -1;
	}
	writer_lock g;
	const struct sigaction old = current_target(slot);
	if (act)
		publish(slot, sig, *act);
	if (oact)
		*oact = old;
	return 0;
}

void recheck_fault_guard() noexcept
{
	if (!g_real)
		return;
	for (int sig : { SIGSEGV, SIGBUS }) {
		writer_lock g;
		struct sigaction cur;
		if (g_real(sig, nullptr, &cur) != 0)
			continue;
		if ((cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == on_fault)
			continue;
		publish(slot_of(sig), sig, cur);
		log(agent_log, log_level::info,
		    "%s: the process replaced the agent's handler without "
		    "sigaction(); the agent's is in front again and calls it",
		    signal_name(sig));
	}
}

namespace hooks {

bool link_disabled(const binding &b) noexcept
{
	return b.run_fn.load(std::memory_order_relaxed) == &disabled_runner;
}

} // namespace hooks

} // namespace bpftime::agent
