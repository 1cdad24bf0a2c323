// percpu/percpu.hpp: what the per-CPU types (PERCPU_ARRAY, PERCPU_HASH,
// LRU_PERCPU_HASH) share. A per-CPU element stores one value per possible
// CPU, each in round_up(value_size, 8) bytes, back to back: exactly the
// buffer user space reads and writes (the kernel's bpf_map_value_size), so
// the control plane copies a whole slot and a program addresses
// slot + cpu * round_up(value_size, 8).
//
// The CPU is read from the thread's rseq area, which glibc (2.35+)
// registers for every thread and the kernel keeps current: one load, where
// glibc 2.36's sched_getcpu() goes through the vDSO (8 ns against 1.6 ns
// here). Without a registered area (GLIBC_TUNABLES=glibc.pthread.rseq=0)
// it falls back to sched_getcpu(). A thread can be preempted or
// migrated between its lookup and its `*v += 1`, which the kernel's
// programs cannot be; the package README says what that costs.
#pragma once

#include <bpftime/handlers/registry.hpp>

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

// The CPU the calling thread runs on, or -1.
inline int current_cpu() noexcept
{
	int cpu = rseq_cpu();
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
