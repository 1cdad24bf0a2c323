// maps_gpu.hpp: map types of @bpftime/maps-gpu, whose storage is CUDA device
// memory shared between processes through CUDA IPC handles, so that CUDA
// kernels (device.cuh) and host programs and tools (the registry's map
// operations) see the same data. Registered into the map-ops registry of
// @bpftime/handlers.
//
//   bpftime::maps_gpu::register_all();   // once per process, C++
//   // Node: import '@bpftime/maps-gpu' does the same.
//
// Types (gpu_map.h; bpftime's own numbers):
//   1503 BPFTIME_MAP_TYPE_GPU_ARRAY       an array in device memory, one copy
//   1502 BPFTIME_MAP_TYPE_PERGPUTD_ARRAY  an array with a value slot per GPU
//                                         thread (map_extra: the thread count);
//                                         user space reads and writes every
//                                         thread's value at once, as with
//                                         per-CPU arrays
//   1527 BPFTIME_MAP_TYPE_GPU_RINGBUF     a ring buffer in device memory:
//                                         kernels produce, the host consumes,
//                                         in the kernel's record format
//
// The CUDA driver (libcuda.so.1) is opened at run time: without it, or
// without a device, the package still loads, its types register, and
// creating a map fails with ENODEV saying which.
#pragma once

#include <bpftime/common/result.hpp>
#include <bpftime/handlers/map_ops.hpp>
#include <bpftime/maps_gpu/gpu_map.h>

#include <cstdint>
#include <span>
#include <string>

namespace bpftime::handlers {
struct map_instance;
}

namespace bpftime::maps_gpu {

inline constexpr uint32_t GPU_ARRAY = BPFTIME_MAP_TYPE_GPU_ARRAY;
inline constexpr uint32_t PERGPUTD_ARRAY = BPFTIME_MAP_TYPE_PERGPUTD_ARRAY;
inline constexpr uint32_t GPU_RINGBUF = BPFTIME_MAP_TYPE_GPU_RINGBUF;

// Static tables; valid for the life of the process.
const handlers::map_ops *gpu_array_map_ops() noexcept;
const handlers::map_ops *pergputd_array_map_ops() noexcept;
const handlers::map_ops *gpu_ringbuf_map_ops() noexcept;
std::span<const handlers::map_ops *const> all_map_ops() noexcept;

// Registers every type of this package with the registry of this process.
// Idempotent.
status register_all();

// Whether GPU maps can be made and opened in this process: 0 with the
// device's name in `detail`, or ENODEV with the reason (no driver library,
// cuInit failed, no device, BPFTIME_CUDA_DEVICE past the devices). Loads and
// initialises the driver on first use; any thread.
struct availability {
	int code; // 0 or a positive errno
	std::string detail;
};
availability probe() noexcept;

// What a kernel needs to reach the GPU map `m` in this process (its device
// address here). 0, or EINVAL when m is not a map of this package.
[[nodiscard]] int device_map(const handlers::map_instance &m,
			     bpftime_gpu_map *out) noexcept;

// Records refused by device producers for lack of room in a GPU ring
// (bpftime's own counter, kept in the ring). 0, or a negative errno.
[[nodiscard]] int ringbuf_dropped(const handlers::map_instance &m,
				  uint64_t *out) noexcept;

} // namespace bpftime::maps_gpu
