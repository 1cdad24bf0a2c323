// kernel_maps.hpp: the Linux kernel's maps through bpf(2), for the
// differential test (kernel_maps.cpp).
#pragma once

#include <cstdint>

namespace kernel_maps {

// An fd, or a negative errno (-EPERM where bpf() is refused).
int create(uint32_t type, uint32_t key_size, uint32_t value_size,
	   uint32_t max_entries, uint32_t flags, uint64_t map_extra = 0);
// 0 or a negative errno, as the syscall returns them.
int lookup(int fd, const void *key, void *value);
int update(int fd, const void *key, const void *value, uint64_t flags);
int remove(int fd, const void *key);
int next_key(int fd, const void *key, void *next);
int lookup_and_delete(int fd, const void *key, void *value);
void close_fd(int fd);
// A map-in-map (inner_fd: its template), as create.
int create_outer(uint32_t type, uint32_t key_size, uint32_t max_entries,
		 int inner_fd);
// A BPF_PROG_TYPE_SOCKET_FILTER program `r0 = 0; exit`: an fd or -errno.
int load_trivial_prog();
// The kernel id of the object behind fd (BPF_OBJ_GET_INFO_BY_FD), or -errno.
int prog_id(int fd);
int map_id(int fd);

} // namespace kernel_maps
