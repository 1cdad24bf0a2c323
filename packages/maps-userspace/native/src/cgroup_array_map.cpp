// cgroup_array_map.cpp: BPF_MAP_TYPE_CGROUP_ARRAY (the kernel's
// cgroup_array_map_ops in kernel/bpf/arraymap.c) and the helper that reads
// it, bpf_current_task_under_cgroup.
//
// User space stores cgroup fds (4-byte values, BPF_ANY only, as every fd
// array); each is kept as the cgroup's id, the inode number of its cgroup2
// directory (what the kernel's cgroup_id() is), in an 8-byte slot of the
// array core: an fd means nothing in another process, the id does. 0 is an
// empty slot. Lookups from user space are ENOTSUPP (524), as the kernel's
// bpf_fd_array_map_lookup_elem answers for a type without
// map_fd_sys_lookup_elem; JSON export therefore leaves the cgroups out.
// Only cgroup v2 directories are taken (EBADF otherwise), since the kernel's
// task_under_cgroup_hierarchy asks the default (v2) hierarchy.
//
// bpf_current_task_under_cgroup(map, index) answers from the calling
// thread's cgroup2 path in /proc/thread-self/cgroup: 1 when the stored cgroup
// is that cgroup or one of its ancestors (each directory from the thread's
// up to the cgroup2 mount is stat'ed and its inode compared), 0 when not,
// -E2BIG past the end, -EAGAIN for an empty slot (the kernel's errnos). It
// makes system calls (open, read, stat): a few microseconds per call.
//
// Locking: none. A slot is one 8-byte store; a program reads the old cgroup
// or the new one.
#include "array/array.hpp"
#include "map_common.hpp"

#include <bpftime/handlers/bpf_defs.hpp>
#include <bpftime/handlers/registry.hpp>
#include <bpftime/maps_userspace/maps_userspace.hpp>
#include <bpftime/vm/helper_proto.hpp>

#include <atomic>
#include <climits>
#include <fcntl.h>
#include <mutex>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

namespace bpftime::maps_userspace {
namespace {

using namespace bpftime::handlers;

constexpr uint32_t CGROUP_ARRAY_MAGIC = 0x43475250; // "CGRP"
// The layout of array::state with 8-byte cgroup ids. 1: the first.
constexpr uint32_t CGROUP_ARRAY_STATE_VERSION = 1;
constexpr uint32_t CREATE_FLAGS = BPF_F_NUMA_NODE | BPF_F_ACCESS_MASK;
// include/uapi/linux/magic.h
constexpr long CGROUP2_SUPER_MAGIC = 0x63677270;
// The kernel's ENOTSUPP (include/linux/errno.h), which bpf() passes out.
constexpr int ENOTSUPP = 524;

array::state *arr(void *s)
{
	return static_cast<array::state *>(s);
}

int cgroup_array_create(const map_create_args *a, void **out, char *err,
			size_t err_len)
{
	// The kernel's fd_array_map_alloc_check.
	if (a->value_size != 4)
		return set_error(err, err_len, EINVAL,
				 "value size %u: a cgroup array holds 4-byte "
				 "cgroup fds",
				 a->value_size);
	if (a->map_flags & (BPF_F_RDONLY_PROG | BPF_F_WRONLY_PROG))
		return set_error(err, err_len, EINVAL,
				 "map_flags 0x%x: BPF_F_RDONLY_PROG and "
				 "BPF_F_WRONLY_PROG are not for maps of fds",
				 a->map_flags);
	return array::create(a,
			     array::params{ CGROUP_ARRAY_MAGIC,
					    CGROUP_ARRAY_STATE_VERSION, 8,
					    CREATE_FLAGS, 0 },
			     out, err, err_len);
}

std::atomic<uint64_t> *slot_of(void *s, uint32_t index)
{
	return reinterpret_cast<std::atomic<uint64_t> *>(arr(s)->slot(index));
}

// Programs cannot look into a cgroup array (the kernel's verifier refuses
// bpf_map_lookup_elem on it); bpf_current_task_under_cgroup reads it.
void *cgroup_array_lookup(void *, const void *)
{
	return nullptr;
}

int cgroup_array_lookup_copy(void *, const void *, void *)
{
	return -ENOTSUPP;
}

// The kernel's bpf_fd_array_map_update_elem with cgroup_fd_array_get_ptr.
// Called in the process that owns the fd (the control plane, the
// syscall-server in the loader tool).
int cgroup_array_update(void *s, const void *key, const void *value,
			uint64_t flags)
{
	if (flags != BPF_ANY)
		return -EINVAL;
	uint32_t index;
	memcpy(&index, key, sizeof(index));
	if (index >= arr(s)->max_entries)
		return -E2BIG;
	int fd;
	memcpy(&fd, value, sizeof(fd));
	struct statfs sfs;
	struct stat st;
	if (fd < 0 || fstatfs(fd, &sfs) != 0 || fstat(fd, &st) != 0)
		return -EBADF;
	if (sfs.f_type != CGROUP2_SUPER_MAGIC || !S_ISDIR(st.st_mode))
		return -EBADF;
	slot_of(s, index)->store(uint64_t(st.st_ino), std::memory_order_release);
	return 0;
}

int cgroup_array_delete(void *s, const void *key)
{
	uint32_t index;
	memcpy(&index, key, sizeof(index));
	if (index >= arr(s)->max_entries)
		return -E2BIG;
	if (slot_of(s, index)->exchange(0, std::memory_order_acq_rel) == 0)
		return -ENOENT;
	return 0;
}

// --- bpf_current_task_under_cgroup ----------------------------------------

// Where cgroup2 is mounted, from /proc/self/mountinfo, found once per
// process; empty when it is not mounted.
char cgroup2_root[PATH_MAX];
std::once_flag cgroup2_once;

// Reads a whole small /proc file into buf (NUL-terminated); its length or -1.
ssize_t read_small(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t n = 0;
	while (n + 1 < len) {
		ssize_t r = read(fd, buf + n, len - 1 - n);
		if (r <= 0)
			break;
		n += size_t(r);
	}
	close(fd);
	buf[n] = 0;
	return ssize_t(n);
}

void find_cgroup2_root()
{
	static char info[65536];
	if (read_small("/proc/self/mountinfo", info, sizeof(info)) < 0)
		return;
	// "36 35 0:32 / /sys/fs/cgroup rw,... - cgroup2 cgroup2 rw"
	for (char *line = info; *line;) {
		char *end = strchr(line, '\n');
		if (end)
			*end = 0;
		const char *dash = strstr(line, " - cgroup2 ");
		if (dash) {
			// The fifth field is the mount point.
			char *p = line;
			for (int field = 0; field < 4 && p; field++) {
				p = strchr(p, ' ');
				if (p)
					p++;
			}
			if (p) {
				size_t n = strcspn(p, " ");
				if (n < sizeof(cgroup2_root)) {
					memcpy(cgroup2_root, p, n);
					cgroup2_root[n] = 0;
					return;
				}
			}
		}
		if (!end)
			break;
		line = end + 1;
	}
}

// 1 when the calling thread's cgroup2 cgroup is `id` or below it, else 0.
int64_t thread_under_cgroup(uint64_t id)
{
	std::call_once(cgroup2_once, find_cgroup2_root);
	if (!cgroup2_root[0])
		return 0;
	char buf[4096];
	if (read_small("/proc/thread-self/cgroup", buf, sizeof(buf)) < 0)
		return 0;
	const char *rel = nullptr;
	for (char *line = buf; line && *line;) {
		char *end = strchr(line, '\n');
		if (end)
			*end = 0;
		if (strncmp(line, "0::", 3) == 0) {
			rel = line + 3;
			break;
		}
		line = end ? end + 1 : nullptr;
	}
	if (!rel)
		return 0;
	char path[PATH_MAX];
	const size_t root_len = strlen(cgroup2_root);
	if (root_len + strlen(rel) + 1 > sizeof(path))
		return 0;
	memcpy(path, cgroup2_root, root_len);
	strcpy(path + root_len, strcmp(rel, "/") == 0 ? "" : rel);
	for (;;) {
		struct stat st;
		if (stat(path, &st) == 0 && uint64_t(st.st_ino) == id)
			return 1;
		size_t len = strlen(path);
		if (len <= root_len)
			return 0;
		char *slash = strrchr(path + root_len, '/');
		if (!slash)
			return 0;
		*slash = 0;
	}
}

uint64_t h_current_task_under_cgroup(uint64_t map, uint64_t index, uint64_t,
				     uint64_t, uint64_t)
{
	// System calls on the target's thread leave its errno as it was.
	const int saved_errno = errno;
	struct restore {
		int e;
		~restore()
		{
			errno = e;
		}
	} keep{ saved_errno };
	auto *m = reinterpret_cast<const map_instance *>(map);
	if (!m || m->map_type != BPF_MAP_TYPE_CGROUP_ARRAY)
		return uint64_t(-int64_t(EINVAL));
	uint32_t idx = uint32_t(index);
	if (idx >= arr(m->state)->max_entries)
		return uint64_t(-int64_t(E2BIG));
	uint64_t id = slot_of(m->state, idx)->load(std::memory_order_acquire);
	if (id == 0)
		return uint64_t(-int64_t(EAGAIN));
	return uint64_t(thread_under_cgroup(id));
}

const vm::helper_proto helpers[] = { {
	.id = vm::BPF_FUNC_current_task_under_cgroup,
	.name = "current_task_under_cgroup",
	.ret = vm::RET_INTEGER,
	.args = { vm::ARG_CONST_MAP_PTR, vm::ARG_ANYTHING },
	.fn = h_current_task_under_cgroup,
} };

const map_ops ops = {
	.size = sizeof(map_ops),
	.abi_version = MAP_OPS_ABI_VERSION,
	.layout_version = shm::LAYOUT_VERSION,
	.map_type = BPF_MAP_TYPE_CGROUP_ARRAY,
	.type_name = "BPF_MAP_TYPE_CGROUP_ARRAY",
	.provider = PROVIDER,
	.create = cgroup_array_create,
	.destroy = array::destroy,
	.lookup = cgroup_array_lookup,
	.lookup_copy = cgroup_array_lookup_copy,
	.update = cgroup_array_update,
	.delete_elem = cgroup_array_delete,
	.get_next_key = array::get_next_key,
	.state_magic = CGROUP_ARRAY_MAGIC,
	.state_version = CGROUP_ARRAY_STATE_VERSION,
	.helpers = helpers,
	.helper_count = 1,
};

} // namespace

const handlers::map_ops *cgroup_array_map_ops() noexcept
{
	return &ops;
}

} // namespace bpftime::maps_userspace
