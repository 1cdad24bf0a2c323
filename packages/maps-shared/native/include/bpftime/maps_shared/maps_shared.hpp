// maps_shared.hpp: map types of @bpftime/maps-shared, whose storage is a real
// kernel map reached through bpf(2), so that programs run by bpftime in user
// space and programs run by the kernel share data. Registered into the
// map-ops registry of @bpftime/handlers.
//
//   bpftime::maps_shared::register_all();   // once per process, C++
//   // Node: import '@bpftime/maps-shared' does the same.
//
// Types (numbers in bpftime's own range: KERNEL_MAP_OFFSET + the kernel's
// type, as bpftime names them):
//   1001 BPFTIME_MAP_TYPE_KERNEL_USER_HASH    a kernel BPF_MAP_TYPE_HASH
//   1002 BPFTIME_MAP_TYPE_KERNEL_USER_ARRAY   a kernel BPF_MAP_TYPE_ARRAY
//   1006 BPFTIME_MAP_TYPE_KERNEL_USER_PERCPU_ARRAY
//                                           a kernel BPF_MAP_TYPE_PERCPU_ARRAY
// Creating one with map_extra 0 creates the kernel map (BPF_MAP_CREATE);
// map_extra = a kernel map id opens that map instead (its attributes must
// match). Either way the registry's reference to the kernel map is a pin in
// bpffs (BPFTIME_KERNEL_MAP_PIN_DIR, default /sys/fs/bpf), removed when the
// registry's map goes; each process opens its own fd from the kernel id.
#pragma once

#include <bpftime/common/result.hpp>
#include <bpftime/handlers/map_ops.hpp>

#include <cstdint>
#include <span>

namespace bpftime::maps_shared {

inline constexpr uint32_t KERNEL_MAP_OFFSET = 1000;
inline constexpr uint32_t KERNEL_USER_HASH = KERNEL_MAP_OFFSET + 1;
inline constexpr uint32_t KERNEL_USER_ARRAY = KERNEL_MAP_OFFSET + 2;
inline constexpr uint32_t KERNEL_USER_PERCPU_ARRAY = KERNEL_MAP_OFFSET + 6;

// Static tables; valid for the life of the process.
const handlers::map_ops *kernel_hash_map_ops() noexcept;
const handlers::map_ops *kernel_array_map_ops() noexcept;
const handlers::map_ops *kernel_percpu_array_map_ops() noexcept;
std::span<const handlers::map_ops *const> all_map_ops() noexcept;

// Registers every type of this package with the registry of this process.
// Idempotent.
status register_all();

// The kernel map that a control plane creates or finds before it registers
// it (map_extra = id): 0 with *id set (and the attributes), or a negative
// errno with a message in err. `kernel_type` is the kernel's type
// (BPF_MAP_TYPE_HASH), not bpftime's.
struct kernel_map_desc {
	uint32_t id;
	uint32_t kernel_type;
	uint32_t key_size;
	uint32_t value_size;
	uint32_t max_entries;
	uint32_t map_flags;
	char name[16];
	int fd; // kernel_map_create: the caller's fd, held until the registry
		// has its own reference; -1 from kernel_map_describe
};
[[nodiscard]] int kernel_map_create(uint32_t kernel_type, uint32_t key_size,
				    uint32_t value_size, uint32_t max_entries,
				    uint32_t map_flags, const char *name,
				    kernel_map_desc *out, char *err,
				    size_t err_len) noexcept;
// By kernel id (path == nullptr) or by a pin path in bpffs.
[[nodiscard]] int kernel_map_describe(uint32_t id, const char *path,
				      kernel_map_desc *out, char *err,
				      size_t err_len) noexcept;

// The kernel id of the kernel-backed map `map_id` of the registry in
// segment `segment_name`, however it was made (the loader's maps have
// map_extra 0): opens the segment and the map in this process for the
// question. 0 and *id, or a negative errno with a message in err (EINVAL: not
// a kernel-backed map).
[[nodiscard]] int kernel_id_of(const char *segment_name, uint32_t map_id,
			       uint32_t *id, char *err,
			       size_t err_len) noexcept;

} // namespace bpftime::maps_shared
