// kernel_bpf.cpp: raw bpf(2), no libbpf: the agent links this core into
// target processes that have no libbpf.
#include "kernel_bpf.hpp"

#include <linux/bpf.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace bpftime::maps_shared::kbpf {
namespace {

int sys_bpf(int cmd, bpf_attr *attr, unsigned size)
{
	long r = syscall(__NR_bpf, cmd, attr, size);
	return r < 0 ? -errno : int(r);
}

uint64_t ptr(const void *p)
{
	return uint64_t(reinterpret_cast<uintptr_t>(p));
}

} // namespace

int map_create(uint32_t type, uint32_t key_size, uint32_t value_size,
	       uint32_t max_entries, uint32_t map_flags, const char *name)
{
	bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.map_type = type;
	a.key_size = key_size;
	a.value_size = value_size;
	a.max_entries = max_entries;
	a.map_flags = map_flags;
	if (name)
		strncpy(a.map_name, name, sizeof(a.map_name) - 1);
	return sys_bpf(BPF_MAP_CREATE, &a, sizeof(a));
}

int map_fd_by_id(uint32_t id)
{
	bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.map_id = id;
	return sys_bpf(BPF_MAP_GET_FD_BY_ID, &a, sizeof(a));
}

int obj_get(const char *path)
{
	bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.pathname = ptr(path);
	return sys_bpf(BPF_OBJ_GET, &a, sizeof(a));
}

int obj_pin(int fd, const char *path)
{
	bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.pathname = ptr(path);
	a.bpf_fd = uint32_t(fd);
	return sys_bpf(BPF_OBJ_PIN, &a, sizeof(a));
}

int get_map_info(int fd, map_info *out)
{
	bpf_map_info info;
	memset(&info, 0, sizeof(info));
	bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.info.bpf_fd = uint32_t(fd);
	a.info.info_len = sizeof(info);
	a.info.info = ptr(&info);
	if (int r = sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &a, sizeof(a)); r < 0)
		return r;
	out->type = info.type;
	out->id = info.id;
	out->key_size = info.key_size;
	out->value_size = info.value_size;
	out->max_entries = info.max_entries;
	out->map_flags = info.map_flags;
	memcpy(out->name, info.name, sizeof(out->name));
	out->name[sizeof(out->name) - 1] = 0;
	return 0;
}

int lookup(int fd, const void *key, void *value)
{
	bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.map_fd = uint32_t(fd);
	a.key = ptr(key);
	a.value = ptr(value);
	return sys_bpf(BPF_MAP_LOOKUP_ELEM, &a, sizeof(a));
}

int update(int fd, const void *key, const void *value, uint64_t flags)
{
	bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.map_fd = uint32_t(fd);
	a.key = ptr(key);
	a.value = ptr(value);
	a.flags = flags;
	return sys_bpf(BPF_MAP_UPDATE_ELEM, &a, sizeof(a));
}

int remove(int fd, const void *key)
{
	bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.map_fd = uint32_t(fd);
	a.key = ptr(key);
	return sys_bpf(BPF_MAP_DELETE_ELEM, &a, sizeof(a));
}

int next_key(int fd, const void *key, void *next)
{
	bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.map_fd = uint32_t(fd);
	a.key = ptr(key);
	a.next_key = ptr(next);
	return sys_bpf(BPF_MAP_GET_NEXT_KEY, &a, sizeof(a));
}

} // namespace bpftime::maps_shared::kbpf
