// gpu_map.hpp: the core every GPU map type of this package sits on
// (gpu_array_map.cpp, pergputd_array_map.cpp, gpu_ringbuf_map.cpp). Not
// public.
//
// In the segment (state): the attributes, the device, the size of the
// device allocation and its CUDA IPC handle, and the pid of the process that
// made it. In each process (local, made by open): the allocation's device
// address in this process (the creator's own pointer, or cuIpcOpenMemHandle
// of the handle in any other process), a stream of this process for the
// host operations, and the per-thread buffers that lookups from host
// programs return.
//
// Lifetime: CUDA IPC memory belongs to the process that allocated it
// (cuMemAlloc in create): it is freed when that process destroys the map,
// or when it exits. Other processes map it while the creator lives; after
// the creator is gone, opening the map is ENODEV naming it. A map destroyed
// by another process than its creator stays allocated until the creator
// exits (the creator cannot be told).
#pragma once

#include "cuda_driver.hpp"

#include <bpftime/handlers/map_ops.hpp>
#include <bpftime/maps_gpu/gpu_map.h>

#include <cstddef>
#include <cstdint>

namespace bpftime::maps_gpu {

inline constexpr const char *PROVIDER = "@bpftime/maps-gpu";

struct state {
	handlers::map_state_header header;
	uint32_t map_type;
	uint32_t key_size;
	uint32_t value_size;
	uint32_t max_entries;
	uint32_t map_flags;
	uint32_t stride;  // round_up(value_size, 8)
	uint32_t threads; // per-thread arrays: slots per key
	int32_t device;   // CUDA ordinal
	uint64_t bytes;   // the device allocation
	int32_t owner_pid;
	uint32_t reserved;
	uint8_t ipc[CU_IPC_HANDLE_SIZE]; // CUipcMemHandle
};
static_assert(sizeof(state) == 120);

// Lookups from host programs cannot return a pointer into device memory,
// so they return a copy in a buffer of the calling thread (as maps-shared's
// bpf(2) path does): BUFFER_SLOTS buffers per thread, used in turn; thread
// n uses row n % rows.
inline constexpr uint32_t BUFFER_SLOTS = 4;
inline constexpr uint32_t MAX_ROWS = 64;

struct local {
	state *shared;
	const cu::driver *cu;
	CUcontext ctx;
	CUstream stream; // non-blocking: never waits for this process's kernels
	CUdeviceptr dptr;
	uint32_t map_type;
	uint32_t key_size;
	uint32_t value_size;
	uint32_t max_entries;
	uint32_t stride;
	uint32_t threads;
	uint64_t bytes;
	char *buffers; // rows x BUFFER_SLOTS x stride
	uint32_t rows;
};

struct type_params {
	uint32_t magic;
	uint32_t version;
	const char *type_name;
};

// After the type's own attribute checks: allocates `bytes` of device memory
// (zeroed), exports its IPC handle and writes the state. ENODEV when no
// driver or device, ENOMEM when the device is full.
int create(const handlers::map_create_args *a, const type_params &p,
	   uint32_t threads, uint64_t bytes, void **out, char *err,
	   size_t err_len);
void destroy(void *segment_manager, void *state);
int open(void *state, void **local, char *err, size_t err_len);
void close(void *local);

// Host copies on the process's stream, waited for. 0 or a negative errno.
int copy_to_host(local *l, void *dst, uint64_t off, uint64_t len) noexcept;
int copy_to_device(local *l, uint64_t off, const void *src,
		   uint64_t len) noexcept;
int zero_device(local *l, uint64_t off, uint64_t len) noexcept;

// A buffer of the calling thread for one value of l (see BUFFER_SLOTS).
void *thread_buffer(local *l) noexcept;

[[gnu::format(printf, 4, 5)]] int set_error(char *err, size_t err_len, int e,
					    const char *fmt, ...);

// Whether `ops` is one of this package's tables (the registry keeps its own
// copy of each table: compare by type and provider, not by address).
bool is_ours(const handlers::map_ops *ops) noexcept;

} // namespace bpftime::maps_gpu

namespace bpftime::maps_gpu::array {

// The array family (gpu_array_map.cpp): a GPU array keeps a value per index
// (stride bytes apart); a per-thread array keeps `threads` values per index,
// one per GPU thread, index-major, and user space reads and writes them all
// at once (threads x stride bytes, as the kernel's per-CPU arrays give
// user space round_up(value_size, 8) x CPUs).
int check_attrs(const handlers::map_create_args *a, const char *type,
		char *err, size_t err_len);
int lookup_copy(void *local, const void *key, void *value);
int update(void *local, const void *key, const void *value, uint64_t flags);
int delete_elem(void *local, const void *key);
int get_next_key(void *local, const void *key, void *next);
int lookup_batch(void *local, const void *after, uint32_t max_count,
		 void *keys, void *values, uint32_t *count);

} // namespace bpftime::maps_gpu::array
