// maps_userspace.hpp: the eBPF map types of @bpftime/maps-userspace, kept in
// the shared-memory segment and registered into the map-ops registry of
// @bpftime/handlers.
//
//   bpftime::maps_userspace::register_all();   // once per process, C++
//   // Node: import '@bpftime/maps-userspace' does the same.
//
// Types: BPF_MAP_TYPE_ARRAY (array_map.cpp, on the array core in array/),
// BPF_MAP_TYPE_HASH (hash_map.cpp, on the hash core in htab/), and those of
// the other files named after their kernel types; the list is register.cpp's.
// All are safe to use from any number of threads of any
// number of processes at once; a process killed in the middle of an update
// leaves the map usable (see the files for the exact guarantees).
#pragma once

#include <bpftime/common/result.hpp>
#include <bpftime/handlers/map_ops.hpp>

#include <span>

namespace bpftime::maps_userspace {

// Static tables; valid for the life of the process.
const handlers::map_ops *array_map_ops() noexcept;
const handlers::map_ops *hash_map_ops() noexcept;
const handlers::map_ops *percpu_array_map_ops() noexcept;
const handlers::map_ops *percpu_hash_map_ops() noexcept;
const handlers::map_ops *lru_hash_map_ops() noexcept;
const handlers::map_ops *lru_percpu_hash_map_ops() noexcept;
const handlers::map_ops *queue_map_ops() noexcept;
const handlers::map_ops *stack_map_ops() noexcept;
const handlers::map_ops *bloom_filter_map_ops() noexcept;
const handlers::map_ops *lpm_trie_map_ops() noexcept;
const handlers::map_ops *prog_array_map_ops() noexcept;
const handlers::map_ops *cgroup_array_map_ops() noexcept;
const handlers::map_ops *array_of_maps_map_ops() noexcept;
const handlers::map_ops *hash_of_maps_map_ops() noexcept;
const handlers::map_ops *stack_trace_map_ops() noexcept;
const handlers::map_ops *ringbuf_map_ops() noexcept;
const handlers::map_ops *perf_event_array_map_ops() noexcept;
const handlers::map_ops *user_ringbuf_map_ops() noexcept;
std::span<const handlers::map_ops *const> all_map_ops() noexcept;

// Registers every type of this package with the registry of this process
// (the copy of bpftime::handlers linked into the caller). Idempotent.
status register_all();

} // namespace bpftime::maps_userspace
