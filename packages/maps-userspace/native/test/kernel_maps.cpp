// kernel_maps.cpp: the kernel's own maps through bpf(2), for the
// differential test in native_test.cpp (kept apart: <linux/bpf.h> names
// collide with bpftime's constants). Every function returns the syscall's
// result as 0 / an fd, or a negative errno.
#include "kernel_maps.hpp"

#include <linux/bpf.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace kernel_maps {
namespace {

int sys_bpf(int cmd, bpf_attr *attr)
{
	long rc = syscall(__NR_bpf, cmd, attr, sizeof(*attr));
	return rc < 0 ? -errno : int(rc);
}

int elem(int cmd, int fd, const void *key, void *value, uint64_t flags)
{
	bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.map_fd = uint32_t(fd);
	a.key = uint64_t(uintptr_t(key));
	a.value = uint64_t(uintptr_t(value));
	a.flags = flags;
	return sys_bpf(cmd, &a);
}

} // namespace

int create(uint32_t type, uint32_t key_size, uint32_t value_size,
	   uint32_t max_entries, uint32_t flags, uint64_t map_extra)
{
	bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.map_type = type;
	a.key_size = key_size;
	a.value_size = value_size;
	a.max_entries = max_entries;
	a.map_flags = flags;
	a.map_extra = map_extra;
	return sys_bpf(BPF_MAP_CREATE, &a);
}

int lookup(int fd, const void *key, void *value)
{
	return elem(BPF_MAP_LOOKUP_ELEM, fd, key, value, 0);
}

int update(int fd, const void *key, const void *value, uint64_t flags)
{
	return elem(BPF_MAP_UPDATE_ELEM, fd, key, const_cast<void *>(value), flags);
}

int remove(int fd, const void *key)
{
	return elem(BPF_MAP_DELETE_ELEM, fd, key, nullptr, 0);
}

int next_key(int fd, const void *key, void *next)
{
	bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.map_fd = uint32_t(fd);
	a.key = uint64_t(uintptr_t(key));
	a.next_key = uint64_t(uintptr_t(next));
	return sys_bpf(BPF_MAP_GET_NEXT_KEY, &a);
}

int lookup_and_delete(int fd, const void *key, void *value)
{
	return elem(BPF_MAP_LOOKUP_AND_DELETE_ELEM, fd, key, value, 0);
}

void close_fd(int fd)
{
	close(fd);
}

int create_outer(uint32_t type, uint32_t key_size, uint32_t max_entries,
		 int inner_fd)
{
	bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.map_type = type;
	a.key_size = key_size;
	a.value_size = 4;
	a.max_entries = max_entries;
	a.inner_map_fd = uint32_t(inner_fd);
	return sys_bpf(BPF_MAP_CREATE, &a);
}

int load_trivial_prog()
{
	static const bpf_insn insns[] = {
		{ BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, 0 },
		{ BPF_JMP | BPF_EXIT, 0, 0, 0, 0 },
	};
	static const char license[] = "GPL";
	bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
	a.insns = uint64_t(uintptr_t(insns));
	a.insn_cnt = 2;
	a.license = uint64_t(uintptr_t(license));
	return sys_bpf(BPF_PROG_LOAD, &a);
}

namespace {
template <class Info> int info_id(int fd)
{
	Info info;
	memset(&info, 0, sizeof(info));
	bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.info.bpf_fd = uint32_t(fd);
	a.info.info_len = sizeof(info);
	a.info.info = uint64_t(uintptr_t(&info));
	int rc = sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &a);
	return rc < 0 ? rc : int(info.id);
}
} // namespace

int prog_id(int fd)
{
	return info_id<bpf_prog_info>(fd);
}

int map_id(int fd)
{
	return info_id<bpf_map_info>(fd);
}

} // namespace kernel_maps
