// kernel_bpf.hpp: the few bpf(2) commands the kernel-backed maps need, one
// thin function per command (as libbpf's bpf.c). Every function returns what
// the system call returns, with a failure as a negative errno. Safe from any
// thread; none allocates.
#pragma once

#include <cstdint>

namespace bpftime::maps_shared::kbpf {

// What BPF_OBJ_GET_INFO_BY_FD tells of a map.
struct map_info {
	uint32_t type;
	uint32_t id;
	uint32_t key_size;
	uint32_t value_size;
	uint32_t max_entries;
	uint32_t map_flags;
	char name[16];
};

// A new fd, or a negative errno.
int map_create(uint32_t type, uint32_t key_size, uint32_t value_size,
	       uint32_t max_entries, uint32_t map_flags, const char *name);
int map_fd_by_id(uint32_t id);
int obj_get(const char *path);
int obj_pin(int fd, const char *path);
int get_map_info(int fd, map_info *info);

int lookup(int fd, const void *key, void *value);
int update(int fd, const void *key, const void *value, uint64_t flags);
int remove(int fd, const void *key);
int next_key(int fd, const void *key, void *next);

} // namespace bpftime::maps_shared::kbpf
