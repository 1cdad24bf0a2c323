// kernel_map.cpp: creation, the registry's reference (a pin), per-process
// open/close and the bpf(2) paths of the kernel-backed maps.
#include "kernel_map.hpp"
#include "kernel_bpf.hpp"

#include <bpftime/handlers/registry.hpp>
#include <bpftime/maps_shared/maps_shared.hpp>
#include <bpftime/shm/segment.hpp>

#include <linux/bpf.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

namespace bpftime::maps_shared {
namespace {

[[gnu::format(printf, 4, 5)]] int set_error(char *err, size_t err_len, int e,
					    const char *fmt, ...)
{
	if (err && err_len) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, err_len, fmt, ap);
		va_end(ap);
	}
	return -e;
}

// What a refused bpf() most likely means, for the messages.
const char *hint(int neg_errno)
{
	switch (-neg_errno) {
	case EPERM:
		return " (bpf() refused: needs root or CAP_BPF, and "
		       "kernel.unprivileged_bpf_disabled allows no one else)";
	case ENOSYS:
		return " (this kernel has no bpf(): CONFIG_BPF_SYSCALL)";
	case ENOENT:
		return " (no such kernel map: it is gone)";
	default:
		return "";
	}
}

const char *kernel_type_name(uint32_t t)
{
	switch (t) {
	case 1:
		return "BPF_MAP_TYPE_HASH";
	case 2:
		return "BPF_MAP_TYPE_ARRAY";
	case 6:
		return "BPF_MAP_TYPE_PERCPU_ARRAY";
	default:
		return "a kernel map type";
	}
}

const char *pin_dir()
{
	const char *d = getenv("BPFTIME_KERNEL_MAP_PIN_DIR");
	return d && *d ? d : "/sys/fs/bpf";
}

void fill_desc(const kbpf::map_info &i, kernel_map_desc *out)
{
	out->id = i.id;
	out->kernel_type = i.type;
	out->key_size = i.key_size;
	out->value_size = i.value_size;
	out->max_entries = i.max_entries;
	out->map_flags = i.map_flags;
	memcpy(out->name, i.name, sizeof(out->name));
}

thread_local uint32_t thread_number = UINT32_MAX;
thread_local uint32_t thread_turn = 0;
std::atomic<uint32_t> threads_seen{ 0 };

} // namespace

int kernel_map_create(uint32_t kernel_type, uint32_t key_size,
		      uint32_t value_size, uint32_t max_entries,
		      uint32_t map_flags, const char *name,
		      kernel_map_desc *out, char *err, size_t err_len) noexcept
{
	int fd = kbpf::map_create(kernel_type, key_size, value_size,
				  max_entries, map_flags, name);
	if (fd < 0)
		return set_error(err, err_len, -fd,
				 "kernel BPF_MAP_CREATE of %s: %s%s",
				 kernel_type_name(kernel_type), strerror(-fd),
				 hint(fd));
	kbpf::map_info info;
	if (int r = kbpf::get_map_info(fd, &info); r < 0) {
		::close(fd);
		return set_error(err, err_len, -r,
				 "kernel BPF_OBJ_GET_INFO_BY_FD: %s",
				 strerror(-r));
	}
	fill_desc(info, out);
	out->fd = fd;
	return 0;
}

int kernel_map_describe(uint32_t id, const char *path, kernel_map_desc *out,
			char *err, size_t err_len) noexcept
{
	int fd = path ? kbpf::obj_get(path) : kbpf::map_fd_by_id(id);
	if (fd < 0) {
		if (path)
			return set_error(err, err_len, -fd,
					 "kernel map pinned at '%s': %s%s",
					 path, strerror(-fd), hint(fd));
		return set_error(err, err_len, -fd, "kernel map id %u: %s%s",
				 id, strerror(-fd), hint(fd));
	}
	kbpf::map_info info;
	int r = kbpf::get_map_info(fd, &info);
	::close(fd);
	if (r == -EINVAL)
		return set_error(err, err_len, EINVAL,
				 "'%s' is a bpffs object but not a map",
				 path ? path : "?");
	if (r < 0)
		return set_error(err, err_len, -r,
				 "kernel BPF_OBJ_GET_INFO_BY_FD: %s",
				 strerror(-r));
	fill_desc(info, out);
	out->fd = -1;
	return 0;
}

int create(const handlers::map_create_args *a, const type_params &p,
	   void **out, char *err, size_t err_len)
{
	int fd;
	if (a->map_extra == 0) {
		fd = kbpf::map_create(p.kernel_type, a->key_size,
				      a->value_size, a->max_entries,
				      a->map_flags, a->name);
		if (fd < 0)
			return set_error(err, err_len, -fd,
					 "kernel BPF_MAP_CREATE of %s: %s%s",
					 kernel_type_name(p.kernel_type),
					 strerror(-fd), hint(fd));
	} else {
		if (a->map_extra > UINT32_MAX)
			return set_error(err, err_len, EINVAL,
					 "map_extra %llu is not a kernel map "
					 "id (u32)",
					 (unsigned long long)a->map_extra);
		fd = kbpf::map_fd_by_id(uint32_t(a->map_extra));
		if (fd < 0)
			return set_error(err, err_len, -fd,
					 "kernel map id %llu: %s%s",
					 (unsigned long long)a->map_extra,
					 strerror(-fd), hint(fd));
	}
	kbpf::map_info info;
	if (int r = kbpf::get_map_info(fd, &info); r < 0) {
		::close(fd);
		return set_error(err, err_len, -r,
				 "kernel BPF_OBJ_GET_INFO_BY_FD: %s",
				 strerror(-r));
	}
	// An existing map must be the one the registry describes: programs
	// are checked against these attributes, not the kernel's.
	if (info.type != p.kernel_type || info.key_size != a->key_size ||
	    info.value_size != a->value_size ||
	    info.max_entries != a->max_entries ||
	    info.map_flags != a->map_flags) {
		::close(fd);
		return set_error(
			err, err_len, EINVAL,
			"kernel map id %u is %s key %u value %u entries %u "
			"flags %#x, asked for %s key %u value %u entries %u "
			"flags %#x",
			info.id, kernel_type_name(info.type), info.key_size,
			info.value_size, info.max_entries, info.map_flags,
			kernel_type_name(p.kernel_type), a->key_size,
			a->value_size, a->max_entries, a->map_flags);
	}
	// The pin keeps the kernel map alive while the registry holds it,
	// whichever process made it and whoever exits; one pin per registry
	// map (pid and a counter), so two registry maps on one kernel map
	// each remove only their own.
	static std::atomic<uint32_t> pins{ 0 };
	char path[sizeof(state::pin)];
	int n = snprintf(path, sizeof(path), "%s/bpftime_kmap_%u_%d_%u",
			 pin_dir(), info.id, int(getpid()), pins++);
	if (n < 0 || size_t(n) >= sizeof(path)) {
		::close(fd);
		return set_error(err, err_len, ENAMETOOLONG,
				 "BPFTIME_KERNEL_MAP_PIN_DIR '%s' is too long "
				 "for a pin path",
				 pin_dir());
	}
	if (int r = kbpf::obj_pin(fd, path); r < 0) {
		::close(fd);
		return set_error(err, err_len, -r,
				 "kernel BPF_OBJ_PIN at '%s': %s (is bpffs "
				 "mounted there? set BPFTIME_KERNEL_MAP_PIN_DIR)",
				 path, strerror(-r));
	}
	::close(fd);
	auto *mgr = static_cast<shm::segment_manager *>(a->segment_manager);
	auto *s = static_cast<state *>(mgr->allocate(sizeof(state), std::nothrow));
	if (!s) {
		unlink(path);
		return set_error(err, err_len, ENOMEM, "the segment is full");
	}
	memset(s, 0, sizeof(*s));
	s->header.version = p.version;
	s->kernel_id = info.id;
	s->kernel_type = info.type;
	s->key_size = info.key_size;
	s->value_size = info.value_size;
	s->max_entries = info.max_entries;
	s->map_flags = info.map_flags;
	memcpy(s->pin, path, sizeof(path));
	s->header.magic = p.magic;
	*out = s;
	return 0;
}

void destroy(void *segment_manager, void *sp)
{
	auto *mgr = static_cast<shm::segment_manager *>(segment_manager);
	auto *s = static_cast<state *>(sp);
	// Drops the registry's reference; the kernel map goes when no fd,
	// program or other pin holds it.
	if (s->pin[0])
		unlink(s->pin);
	s->header.magic = 0;
	mgr->deallocate(s);
}

int open(void *sp, void **out, char *err, size_t err_len)
{
	auto *s = static_cast<state *>(sp);
	int fd = kbpf::map_fd_by_id(s->kernel_id);
	// Where the id is refused but the pin is readable (a process allowed
	// into bpffs but without CAP_SYS_ADMIN for GET_FD_BY_ID), the pin is
	// the same map.
	if (fd < 0 && s->pin[0]) {
		int pfd = kbpf::obj_get(s->pin);
		if (pfd >= 0)
			fd = pfd;
	}
	if (fd < 0)
		return set_error(err, err_len, -fd,
				 "open kernel map id %u: %s%s", s->kernel_id,
				 strerror(-fd), hint(fd));
	auto *l = new (std::nothrow) local{};
	if (!l) {
		::close(fd);
		return set_error(err, err_len, ENOMEM, "out of memory");
	}
	l->shared = s;
	l->fd = fd;
	l->key_size = s->key_size;
	l->value_size = s->value_size;
	l->max_entries = s->max_entries;
	l->stride = (s->value_size + 7) & ~7u;
	l->user_size = s->kernel_type == BPF_MAP_TYPE_PERCPU_ARRAY ?
			       handlers::percpu_value_size(s->value_size) :
			       s->value_size;
	const uint32_t buf_size = (l->user_size + 7) & ~7u;
	// A BPF_F_RDONLY_PROG array is not mapped: a program's store through
	// a pointer into a read-only mapping would kill the target, where the
	// kernel's verifier would have refused the program; through the bpf(2)
	// path such a store lands in the thread's copy instead.
	if (s->kernel_type == BPF_MAP_TYPE_ARRAY &&
	    (s->map_flags & BPF_F_MMAPABLE) &&
	    !(s->map_flags & BPF_F_RDONLY_PROG)) {
		long page = sysconf(_SC_PAGESIZE);
		size_t len = size_t(l->stride) * l->max_entries;
		len = (len + size_t(page) - 1) & ~(size_t(page) - 1);
		int prot = PROT_READ | PROT_WRITE;
		void *m = mmap(nullptr, len, prot, MAP_SHARED, fd, 0);
		if (m == MAP_FAILED) {
			int e = errno;
			::close(fd);
			delete l;
			return set_error(err, err_len, e,
					 "mmap of kernel map id %u: %s",
					 s->kernel_id, strerror(e));
		}
		l->mm = static_cast<char *>(m);
		l->mm_len = len;
	} else {
		uint32_t rows = MAX_ROWS;
		while (rows > 1 &&
		       uint64_t(rows) * BUFFER_SLOTS * buf_size > (1u << 20))
			rows /= 2;
		l->buffers = static_cast<char *>(
			calloc(size_t(rows) * BUFFER_SLOTS, buf_size));
		if (!l->buffers) {
			::close(fd);
			delete l;
			return set_error(err, err_len, ENOMEM,
					 "no memory for lookup buffers");
		}
		l->rows = rows;
	}
	*out = l;
	return 0;
}

void close(void *lp)
{
	auto *l = static_cast<local *>(lp);
	if (l->mm)
		munmap(l->mm, l->mm_len);
	free(l->buffers);
	::close(l->fd);
	delete l;
}

void *thread_buffer(local *l) noexcept
{
	if (thread_number == UINT32_MAX)
		thread_number = threads_seen.fetch_add(1, std::memory_order_relaxed);
	uint32_t slot = thread_turn++ % BUFFER_SLOTS;
	size_t row = thread_number % l->rows;
	return l->buffers +
	       (row * BUFFER_SLOTS + slot) * ((l->user_size + 7) & ~7u);
}

void *syscall_lookup(void *lp, const void *key)
{
	auto *l = static_cast<local *>(lp);
	void *buf = thread_buffer(l);
	return kbpf::lookup(l->fd, key, buf) == 0 ? buf : nullptr;
}

int syscall_lookup_copy(void *lp, const void *key, void *value)
{
	return kbpf::lookup(static_cast<local *>(lp)->fd, key, value);
}

int syscall_update(void *lp, const void *key, const void *value,
		   uint64_t flags)
{
	return kbpf::update(static_cast<local *>(lp)->fd, key, value, flags);
}

int syscall_delete(void *lp, const void *key)
{
	return kbpf::remove(static_cast<local *>(lp)->fd, key);
}

int syscall_next_key(void *lp, const void *key, void *next)
{
	return kbpf::next_key(static_cast<local *>(lp)->fd, key, next);
}

} // namespace bpftime::maps_shared
