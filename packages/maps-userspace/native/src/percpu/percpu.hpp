// percpu/percpu.hpp: what the per-CPU types (PERCPU_ARRAY, PERCPU_HASH,
// LRU_PERCPU_HASH) share. A per-CPU element stores one value per possible
// CPU, each in round_up(value_size, 8) bytes, back to back: exactly the
// buffer user space reads and writes (the kernel's bpf_map_value_size), so
// the control plane copies a whole slot and a program addresses
// slot + cpu * round_up(value_size, 8).
//
// A program's CPU is the CPU slot its run owns (handlers' cpu_slot.hpp: a
// run of a program using a per-CPU map owns one slot, so no other run
// touches its values until it ends, as the kernel's runs with migration
// disabled), read from the registry's thread-local. Outside such a run
// (user space, a runtime without slots) it is the CPU the thread runs on,
// from the thread's rseq area, which glibc (2.35+) registers for every
// thread and the kernel keeps current: one load, where glibc 2.36's
// sched_getcpu() goes through the vDSO (8 ns against 1.6 ns here). Without
// a registered area (GLIBC_TUNABLES=glibc.pthread.rseq=0) it falls back to
// sched_getcpu().
#pragma once

#include <bpftime/handlers/cpu_slot.hpp>
#include <bpftime/handlers/map_ops.hpp>
#include <bpftime/handlers/registry.hpp>

#include <atomic>
#include <cstdint>
#include <sched.h>
#include <sys/rseq.h>

namespace bpftime::maps_userspace::percpu {

// sched_getcpu(), out of line so that the fast path below saves no
// registers for it (percpu_array_map.cpp).
[[gnu::cold]] int current_cpu_slow() noexcept;

// The calling thread's CPU from its rseq area, or a negative number when
// the area is not registered: glibc keeps the area in every thread's
// control block at __rseq_offset from the thread pointer. A load; the hot
// paths call current_cpu_slow() themselves, in a tail call, when it fails.
inline int rseq_cpu() noexcept
{
	auto *rs = reinterpret_cast<volatile struct rseq *>(
		static_cast<char *>(__builtin_thread_pointer()) + __rseq_offset);
	return int(rs->cpu_id);
}

// Where the slot of the calling thread's run is: the offset from the thread
// pointer of the registry's t_cpu_slot. This shared object's own copy until
// the registry that runs the programs tells its own (bind_runtime): under
// Node the registry is another addon, with its thread-locals.
extern std::atomic<int64_t> cpu_slot_tls_offset;

// map_ops::bind_runtime of every per-CPU type.
void bind_runtime(const handlers::map_runtime *rt);

// The CPU slot the calling thread's run owns, or -1.
inline int run_slot() noexcept
{
	const int64_t off = cpu_slot_tls_offset.load(std::memory_order_relaxed);
	return *reinterpret_cast<const int32_t *>(
		static_cast<char *>(__builtin_thread_pointer()) + off);
}

// A program's CPU: its run's slot, else rseq's (negative when there is no
// rseq area either; the hot paths then call current_cpu_slow()).
inline int program_cpu() noexcept
{
	int slot = run_slot();
	return slot >= 0 ? slot : rseq_cpu();
}

// The calling program's CPU, or -1.
inline int current_cpu() noexcept
{
	int cpu = program_cpu();
	return cpu >= 0 ? cpu : current_cpu_slow();
}

// The offset of `cpu` (>= 0) in a slot of slot_size bytes; 0 past the
// possible CPUs.
inline uint32_t cpu_offset(int cpu, uint32_t value_size, uint32_t slot_size)
{
	uint32_t off = uint32_t(cpu) * ((value_size + 7) & ~7u);
	return off < slot_size ? off : 0;
}

// The bytes of one CPU's value in a slot.
inline uint32_t value_stride(uint32_t value_size)
{
	return (value_size + 7) & ~7u;
}

// The offset of the calling thread's CPU in a slot of slot_size bytes (0
// when the CPU is unknown or past the possible ones).
inline uint32_t this_cpu_offset(uint32_t value_size, uint32_t slot_size)
{
	int cpu = current_cpu();
	uint32_t off = uint32_t(cpu) * value_stride(value_size);
	return cpu >= 0 && off < slot_size ? off : 0;
}

// The value of `cpu` in a slot, or nullptr past the possible CPUs (the
// kernel's bpf_map_lookup_percpu_elem answers NULL there).
inline void *cpu_value(void *slot, uint32_t value_size, uint32_t slot_size,
		       uint64_t cpu)
{
	if (!slot || cpu >= slot_size / value_stride(value_size))
		return nullptr;
	return static_cast<uint8_t *>(slot) + cpu * value_stride(value_size);
}

// map_ops::user_value_size of every per-CPU type.
inline uint32_t user_value_size(const handlers::map_create_args *a)
{
	return handlers::percpu_value_size(a->value_size);
}

// The helper bpf_map_lookup_percpu_elem (shipped by the per-CPU array's
// table, for every per-CPU type of this package).
extern const vm::helper_proto lookup_percpu_elem_proto;

// The slot of key (all CPUs) of a per-CPU map of this package, or nullptr:
// each type's file defines its own, lookup_percpu_elem dispatches.
void *percpu_array_slot(void *state, const void *key);
void *percpu_hash_slot(void *state, const void *key);
void *lru_percpu_hash_slot(void *state, const void *key);

} // namespace bpftime::maps_userspace::percpu
