// cpu_slot.hpp: a CPU slot owned by a program for the length of its run, so
// that per-CPU map values behave as the kernel's.
//
// The kernel runs a program with migration (and, for the tracing types,
// preemption) disabled: `v = lookup(percpu_map, &k); *v += 1` is never
// interleaved with another run on the same CPU's value. A thread in user
// space can be preempted between the load and the store; another thread then
// runs on that CPU and increments the same value, and the first one's store
// loses those increments (a native test of maps-userspace measured 22-77%
// lost with 8 threads on 2 CPUs).
//
// So a run of a program that uses a per-CPU map owns a CPU slot: one owner
// word per possible CPU, in the segment (every process of the registry sees
// the same ones), claimed when the run starts and released when it ends.
// A run claims the word of the CPU it runs on, in a restartable sequence
// (no locked instruction: prog/cpu_slot.cpp says how); the per-CPU map
// types index their values by the claimed slot (t_cpu_slot), as do the
// JIT's inline per-CPU lookup and bpf_get_smp_processor_id. As in the
// kernel, one run at a time uses a CPU's values, over all processes: a run
// whose CPU's word is held (by a run preempted in its middle) sleeps on the
// word's futex until it is released, and then claims the word of the CPU it
// then runs on. A word whose owner thread is gone (a process killed in the
// middle of a run) is taken over. A run whose owner is stopped (SIGSTOP, a
// debugger), or does not come back within CPU_SLOT_WAIT_NS, goes on without
// a slot, on its current CPU's values, as before slots, and is counted
// (cpu_slot_counters()); so is every run where glibc registered no rseq
// area.
//
// Who calls what: program_instance::run() and the agent's hooks claim and
// release (cpu_slot_guard) on the thread that runs the program; the map
// types read the slot on the same thread, from helpers.
#pragma once

#include <atomic>
#include <cstdint>

namespace bpftime::handlers {

// One owner word on a cache line of its own, so that claims on different
// CPUs do not bounce one line between them. owner: the tid of the thread
// whose run holds the slot, plus CPU_SLOT_WAITERS when a thread sleeps on
// the word; 0 when free.
struct alignas(64) cpu_slot {
	std::atomic<uint32_t> owner;
	uint8_t pad[60];
};
static_assert(sizeof(cpu_slot) == 64);
inline constexpr uint32_t CPU_SLOT_WAITERS = 1u << 31;
// How long a run waits for a slot before it goes on without one, and after
// how long, and then how often, it asks whether the owner is stopped
// (SIGSTOP, a debugger: then it goes on at once).
inline constexpr uint64_t CPU_SLOT_WAIT_NS = 1'000'000'000;
inline constexpr uint64_t CPU_SLOT_STOPPED_CHECK_NS = 10'000'000;
// The name of the slot array in the segment (a Boost.Interprocess named
// object of possible_cpus() cpu_slot). The name carries the layout's
// version: a build with another cpu_slot finds no array of its own name,
// makes its own, and never reads this one as its layout.
inline constexpr const char CPU_SLOTS_NAME[] = "bpftime.cpu_slots.1";

// This process's view of a segment's slots.
struct cpu_slot_table {
	cpu_slot *slots = nullptr;
	uint32_t count = 0;
};

// The slot the calling thread's run owns, or -1. initial-exec: one load from
// the thread pointer, which the JIT emits too (cpu_slot_tls_offset()).
extern constinit thread_local int32_t t_cpu_slot
	__attribute__((tls_model("initial-exec")));

// t_cpu_slot's offset from the thread pointer, the same for every thread of
// the process.
int64_t cpu_slot_tls_offset() noexcept;

// Claims a slot for the calling thread (t_cpu_slot set); -1 when it goes on
// without one (see above). Never fails otherwise, never allocates.
int32_t claim_cpu_slot(const cpu_slot_table &t) noexcept;
void release_cpu_slot(const cpu_slot_table &t, int32_t slot) noexcept;

// Runs in this process that went on without a slot, and that slept for one.
struct cpu_slot_stats {
	uint64_t unowned = 0;
	uint64_t waits = 0;
};
cpu_slot_stats cpu_slot_counters() noexcept;

// Holds a slot for its lifetime when t is set and the thread holds none yet
// (a nested run keeps its caller's).
class cpu_slot_guard {
    public:
	explicit cpu_slot_guard(const cpu_slot_table *t) noexcept
	{
		if (t && t_cpu_slot < 0) {
			table_ = t;
			slot_ = claim_cpu_slot(*t);
		}
	}
	~cpu_slot_guard()
	{
		if (slot_ >= 0)
			release_cpu_slot(*table_, slot_);
	}
	cpu_slot_guard(const cpu_slot_guard &) = delete;
	cpu_slot_guard &operator=(const cpu_slot_guard &) = delete;

    private:
	const cpu_slot_table *table_ = nullptr;
	int32_t slot_ = -1;
};

} // namespace bpftime::handlers
