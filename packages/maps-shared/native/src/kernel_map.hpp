// kernel_map.hpp: the core every kernel-backed map type of this package sits
// on (kernel_hash_map.cpp, kernel_array_map.cpp). Not public.
//
// In the segment (state): the kernel map's id and attributes and the path of
// the pin that is the registry's reference to it. In each process (local,
// made by open): that process's fd, the mmap of a BPF_F_MMAPABLE array, and
// the per-thread buffers that lookups from programs return.
#pragma once

#include <bpftime/handlers/map_ops.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace bpftime::maps_shared {

inline constexpr const char *PROVIDER = "@bpftime/maps-shared";

struct state {
	handlers::map_state_header header;
	uint32_t kernel_id;
	uint32_t kernel_type;
	uint32_t key_size;
	uint32_t value_size;
	uint32_t max_entries;
	uint32_t map_flags;
	char pin[104]; // NUL-terminated; empty: no pin to remove
};
static_assert(sizeof(state) == 136);

// Lookups from programs on a kernel map cannot return a pointer into the
// kernel's value (except through an mmap), so they return a copy in a
// buffer of the calling thread: BUFFER_SLOTS buffers per thread, used in
// turn, so the pointers of the last BUFFER_SLOTS lookups of one thread on
// one map stay valid. Threads are numbered in the order they first look up;
// thread n uses row n % rows (rows: up to MAX_ROWS, fewer for large values),
// so past `rows` threads two threads may share buffers.
inline constexpr uint32_t BUFFER_SLOTS = 4;
inline constexpr uint32_t MAX_ROWS = 64;

struct local {
	state *shared;
	int fd;
	uint32_t key_size;
	uint32_t value_size;
	uint32_t max_entries;
	uint32_t stride;   // round_up(value_size, 8): the kernel array's stride
	uint32_t user_size; // a value as bpf(2) reads it: stride x possible
			    // CPUs for a per-CPU map, else value_size
	char *mm;          // the mmap of a BPF_F_MMAPABLE array, or nullptr
	size_t mm_len;
	char *buffers;     // rows x BUFFER_SLOTS x round_up(user_size, 8)
	uint32_t rows;
};

struct type_params {
	uint32_t magic;
	uint32_t version;
	uint32_t kernel_type; // BPF_MAP_TYPE_HASH ...
};

int create(const handlers::map_create_args *a, const type_params &p,
	   void **out, char *err, size_t err_len);
void destroy(void *segment_manager, void *state);
int open(void *state, void **local, char *err, size_t err_len);
void close(void *local);

// A buffer of the calling thread for one value of l (see BUFFER_SLOTS).
void *thread_buffer(local *l) noexcept;

// The bpf(2) paths, on the process's fd.
void *syscall_lookup(void *l, const void *key);
int syscall_lookup_copy(void *l, const void *key, void *value);
int syscall_update(void *l, const void *key, const void *value,
		   uint64_t flags);
int syscall_delete(void *l, const void *key);
int syscall_next_key(void *l, const void *key, void *next);

} // namespace bpftime::maps_shared
