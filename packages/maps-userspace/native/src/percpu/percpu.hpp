// percpu/percpu.hpp: what the per-CPU types (PERCPU_ARRAY, PERCPU_HASH,
// LRU_PERCPU_HASH) share. A per-CPU element stores one value per possible
// CPU, each in round_up(value_size, 8) bytes, back to back: exactly the
// buffer user space reads and writes (the kernel's bpf_map_value_size), so
// the control plane copies a whole slot and a program addresses
// slot + cpu * round_up(value_size, 8).
//
// The CPU is sched_getcpu(): glibc 2.35+ reads it from the thread's rseq
// area, a load rather than a system call. A thread can be preempted or
// migrated between its lookup and its `*v += 1`, which the kernel's
// programs cannot be; the package README says what that costs.
#pragma once

#include <bpftime/handlers/registry.hpp>

#include <cstdint>
#include <sched.h>

namespace bpftime::maps_userspace::percpu {

// The bytes of one CPU's value in a slot.
inline uint32_t value_stride(uint32_t value_size)
{
	return (value_size + 7) & ~7u;
}

// The offset of the calling thread's CPU in a slot of slot_size bytes (0
// when sched_getcpu fails or names a CPU past the possible ones).
inline uint32_t this_cpu_offset(uint32_t value_size, uint32_t slot_size)
{
	int cpu = sched_getcpu();
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
