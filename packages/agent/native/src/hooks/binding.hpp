// hooks/binding.hpp: what every hook family's callbacks share: the binding
// of a link's program (its instance, runner and cookie) that a hook gets as
// its `user` pointer, and the per-thread guard that keeps programs from
// nesting.
//
// The callbacks that use these run on the target's threads, inside whatever
// function or system call was hooked: they neither allocate nor lock nor
// log, and runners never throw. Everything here is inline or plain data, so
// a family's callback compiles to the same code as if it were written there.
#pragma once

#include "hooks/hooks.hpp"

#include <bpftime/handlers/prog_stats.hpp>
#include <bpftime/handlers/program.hpp>
#include <bpftime/vm/vm.hpp>

#include <atomic>
#include <cstdint>
#include <ctime>
#include <memory>

namespace bpftime::agent::hooks {

// What a hook's callback gets as `user`: immutable once the hook is
// installed, read by the target's threads without a lock.
struct binding {
	std::shared_ptr<handlers::program_instance> owner;
	const handlers::program_instance *prog = nullptr;
	// prog's runner, fetched once. The function is the one field a hit
	// may see change: the fault handler (fault_guard.cpp) swaps in one
	// that runs nothing when it disables the link; relaxed, so a hit
	// reads it with a plain load.
	mutable std::atomic<vm::runner::fn_type> run_fn{ nullptr };
	const void *run_self = nullptr;
	uint64_t cookie = 0;
	uint32_t link_id = 0;
	uint64_t func_ip = 0; // the probed address, for uretprobes
	// The program provably never writes its context (vm::may_write_context),
	// so it runs on the hook's context itself rather than on a copy.
	bool in_place = false;
	// Hits that did not run the program (see t_running).
	mutable std::atomic<uint64_t> missed{ 0 };
	// Runs that a SIGSEGV or SIGBUS ended (fault_guard.cpp).
	mutable std::atomic<uint64_t> faults{ 0 };

	// prog->cpu_slots(): the run owns a CPU slot (the program uses a
	// per-CPU map; handlers/cpu_slot.hpp), else null.
	const handlers::cpu_slot_table *cpu_slots = nullptr;
	// BPF_ENABLE_STATS (prog_stats.hpp): the registry's count of stats
	// descriptors and this program's counters; null when the segment has
	// no room for the table.
	const std::atomic<uint32_t> *stats_on = nullptr;
	handlers::prog_stats_slot *stats = nullptr;

	uint64_t run(void *ctx, uint64_t ctx_len, int *err) const noexcept
	{
		handlers::cpu_slot_guard slot(cpu_slots);
		if (stats_on && stats_on->load(std::memory_order_relaxed))
			[[unlikely]]
			return run_timed(ctx, ctx_len, err);
		return run_fn.load(std::memory_order_relaxed)(run_self, ctx,
							       ctx_len, err);
	}

	// The kernel's __bpf_prog_run with bpf_stats_enabled_key on: the run's
	// time (vDSO clock, no system call) and count into the program's slot.
	[[gnu::noinline]] uint64_t run_timed(void *ctx, uint64_t ctx_len,
					     int *err) const noexcept
	{
		timespec a, b;
		clock_gettime(CLOCK_MONOTONIC, &a);
		uint64_t r = run_fn.load(std::memory_order_relaxed)(
			run_self, ctx, ctx_len, err);
		clock_gettime(CLOCK_MONOTONIC, &b);
		stats->run_cnt.fetch_add(1, std::memory_order_relaxed);
		stats->run_time_ns.fetch_add(
			uint64_t(b.tv_sec - a.tv_sec) * 1000000000ull +
				uint64_t(b.tv_nsec) - uint64_t(a.tv_nsec),
			std::memory_order_relaxed);
		return r;
	}
};

// Whether this thread is running a program now, as the kernel's
// bpf_prog_active (kernel/trace/bpf_trace.c, trace_call_bpf()): a hit while
// the thread already runs a program (a hooked function that a helper calls,
// a signal handler that interrupted the program and calls a hooked function)
// does not run its program and counts as missed. Programs thus never recurse
// without end, and never wait for a map lock that their own thread holds.
// One flag for every family: the binding whose program runs, or null. The
// fault handler (fault_guard.cpp) reads it to know that a fault on this
// thread may be the program's, and whose. initial-exec: the agent is loaded
// at startup (LD_PRELOAD), so the variable sits in the static TLS block and
// reading it is one instruction, with no __tls_get_addr call (which may
// allocate) inside a hook; constinit: no TLS wrapper call from other files.
extern constinit thread_local const binding *t_running
	__attribute__((tls_model("initial-exec")));

// Enter/leave the program section of a hook. The signal fences keep the
// compiler from moving the flag's stores across the run, so a signal
// handler on this thread sees the flag set for the whole of it.
inline bool enter(const binding *b)
{
	if (t_running) {
		b->missed.fetch_add(1, std::memory_order_relaxed);
		return false;
	}
	t_running = b;
	std::atomic_signal_fence(std::memory_order_seq_cst);
	return true;
}

inline void leave()
{
	std::atomic_signal_fence(std::memory_order_seq_cst);
	t_running = nullptr;
}

// Whether the fault handler disabled b (fault_guard.cpp).
bool link_disabled(const binding &b) noexcept;

// Instantiates r's program on s.backend and binds it with the link's
// cookie; on failure marks st failed ("<where>: <why>") and gives null.
std::unique_ptr<binding> bind_program(const services &s,
				      const link_request &r, link_status &st);

} // namespace bpftime::agent::hooks
