// syscall_server_main.cpp: libbpftime-syscall-server.so, the library a loader
// tool (a libbpf program, bpftool) is started with (LD_PRELOAD). It
// interposes the libc entries through which such tools reach the kernel's
// eBPF: syscall() (for __NR_bpf and __NR_perf_event_open, and close / dup /
// ioctl when a tool makes those through syscall() too), ioctl(), close(),
// dup(), dup2(), dup3(), fcntl(F_DUPFD*), close_range() and mmap() on the
// descriptors the server handed out; readlink() of /proc/self/fd/<n> for
// them (bpftool tells object kinds by the anonymous inode's name) and
// open()/fopen() of /proc/self/fdinfo/<n> (the kernel's lines for the
// object: bpftool reads a map's frozen state there); unlink() of a pin's
// path (pins live in the registry); epoll_ctl() and poll() of ring buffer
// and perf buffer descriptors, and epoll_wait() / poll() to keep their
// readiness current (events.cpp); open() of tracefs's uprobe_events for
// writing, of a legacy uprobe event's id file, and close() of the former
// (legacy_uprobe.cpp); munmap(), mprotect() and mremap() only
// to tell the pointer checks that the memory map changed. Everything else
// goes to libc unchanged (RTLD_NEXT).
//
// Contract with the tool:
//   - the registry is opened on the first bpf() or uprobe perf_event_open
//     (a tool that never calls them is untouched); when it cannot be opened
//     the call fails with that errno and a log line;
//   - no exception leaves an entry; bad pointers give EFAULT;
//   - at exit (an atexit handler registered at that first call, so it runs
//     before the static destructors of this library), every descriptor is
//     dropped: unpinned links detach, the tool's objects leave the
//     registry, unless BPFTIME_KEEP_OBJECTS=1;
//   - after fork() the child's descriptors refer to the parent's objects,
//     which it never releases.
//
// Environment (read once, at that first call): BPFTIME_GLOBAL_SHM_NAME,
// BPFTIME_SHM_MEMORY_MB, BPFTIME_KEEP_OBJECTS, SPDLOG_LEVEL,
// BPFTIME_LOG_OUTPUT.
#include <bpftime/common/log.hpp>
#include <bpftime/syscall_server/server.hpp>

#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <dlfcn.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <mutex>
#include <pthread.h>
#include <string>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

using bpftime::syscall_server::server;

namespace {

const bpftime::log_source preload_log{ "syscall-server", true };

std::atomic<server *> g_server{ nullptr };
std::atomic<int> g_open_error{ 0 };
std::mutex g_init_mu;

template <class F> F next(const char *name)
{
	return reinterpret_cast<F>(dlsym(RTLD_NEXT, name));
}

// The first of two names that libc has.
template <class F> F next(const char *name, const char *fallback)
{
	F f = next<F>(name);
	return f ? f : next<F>(fallback);
}

#define REAL(name)                                                             \
	static auto real_##name = next<decltype(&::name)>(#name)

void at_exit()
{
	if (server *s = g_server.load(std::memory_order_acquire))
		s->shutdown();
}

void at_fork_child()
{
	if (server *s = g_server.load(std::memory_order_acquire))
		s->forked_child();
}

// The server, opened on first use; nullptr with errno's value in err when
// the registry cannot be opened (retried on the next call).
server *get_server(int &err)
{
	if (server *s = g_server.load(std::memory_order_acquire))
		return s;
	std::lock_guard g(g_init_mu);
	if (server *s = g_server.load(std::memory_order_acquire))
		return s;
	bpftime::log_configure(bpftime::log_options_from_env(), preload_log);
	auto o = bpftime::syscall_server::options_from_env();
	if (!o) {
		bpftime::log(preload_log, bpftime::log_level::error, "%s",
			     o.error().message.c_str());
		err = o.error().code;
		return nullptr;
	}
	auto s = server::open(*o);
	if (!s) {
		// Said once: a tool makes many calls, each fails the same way
		// until the segment is fixed (each call tries again).
		if (g_open_error.exchange(s.error().code) == 0)
			bpftime::log(preload_log, bpftime::log_level::error,
				     "registry '%s': %s; every bpf() call fails with %s until it opens",
				     o->segment.c_str(), s.error().message.c_str(),
				     strerrorname_np(s.error().code) ? strerrorname_np(s.error().code) : "this errno");
		err = s.error().code;
		return nullptr;
	}
	// Never freed: descriptors may be used until the last instruction of
	// the process.
	server *p = s->release();
	g_server.store(p, std::memory_order_release);
	atexit(at_exit);
	pthread_atfork(nullptr, nullptr, at_fork_child);
	return p;
}

server *existing()
{
	return g_server.load(std::memory_order_acquire);
}

long ret(long r)
{
	if (r < 0 && r > -4096) {
		errno = int(-r);
		return -1;
	}
	return r;
}

long do_bpf(long cmd, long attr, long size)
{
	int err = 0;
	server *s = get_server(err);
	if (!s)
		return ret(-err);
	// cmd is an int and size an unsigned int in bpf(2).
	return ret(s->bpf(int(cmd), uint64_t(attr), uint64_t(uint32_t(size))));
}

} // namespace

extern "C" {

__attribute__((visibility("default"))) long syscall(long number, ...)
{
	va_list ap;
	va_start(ap, number);
	long a1 = va_arg(ap, long), a2 = va_arg(ap, long), a3 = va_arg(ap, long),
	     a4 = va_arg(ap, long), a5 = va_arg(ap, long), a6 = va_arg(ap, long);
	va_end(ap);
	REAL(syscall);
	try {
		switch (number) {
		case SYS_bpf:
			return do_bpf(a1, a2, a3);
		case SYS_perf_event_open: {
			int err = 0;
			server *s = get_server(err);
			if (s) {
				// pid, cpu and group_fd are ints: the upper
				// halves of their registers are not defined.
				long r = s->perf_event_open(uint64_t(a1), int(a2),
							    int(a3), int(a4),
							    uint64_t(a5));
				if (r != -ENOSYS)
					return ret(r);
			}
			break;
		}
		case SYS_close:
			if (server *s = existing(); s && s->owns(int(a1)))
				s->forget(int(a1));
			else if (s)
				s->uprobe_events_closed(int(a1));
			break;
		case SYS_ioctl:
			if (server *s = existing(); s && s->owns(int(a1)))
				return ret(s->ioctl(int(a1), uint64_t(a2), uint64_t(a3)));
			break;
		case SYS_dup:
		case SYS_dup2:
		case SYS_dup3: {
			long r = real_syscall(number, a1, a2, a3, a4, a5, a6);
			server *s = existing();
			if (r < 0 || !s || (number != SYS_dup && a1 == a2))
				return r;
			if (s->owns(int(a1)))
				s->duplicated(int(a1), int(r));
			else if (number != SYS_dup && s->owns(int(a2)))
				// dup2 onto one of ours closed it.
				s->forget(int(a2));
			return r;
		}
		default:
			break;
		}
	} catch (...) {
		errno = EINVAL;
		return -1;
	}
	return real_syscall(number, a1, a2, a3, a4, a5, a6);
}

__attribute__((visibility("default"))) int ioctl(int fd, unsigned long request, ...)
{
	va_list ap;
	va_start(ap, request);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	if (server *s = existing(); s && s->owns(fd))
		return int(ret(s->ioctl(fd, request, uint64_t(arg))));
	REAL(ioctl);
	return real_ioctl(fd, request, arg);
}

__attribute__((visibility("default"))) int close(int fd)
{
	if (server *s = existing()) {
		if (s->owns(fd))
			s->forget(fd);
		else
			s->uprobe_events_closed(fd);
	}
	REAL(close);
	return real_close(fd);
}

__attribute__((visibility("default"))) int dup(int fd)
{
	REAL(dup);
	int r = real_dup(fd);
	if (r >= 0)
		if (server *s = existing(); s && s->owns(fd))
			s->duplicated(fd, r);
	return r;
}

namespace {
int after_dup_to(int oldfd, int newfd, int r)
{
	if (r < 0 || oldfd == newfd)
		return r;
	if (server *s = existing()) {
		if (s->owns(oldfd))
			s->duplicated(oldfd, newfd);
		else if (s->owns(newfd))
			s->forget(newfd);
	}
	return r;
}

int fcntl_common(int (*real)(int, int, ...), int fd, int cmd, va_list ap)
{
	// Every fcntl argument is an int or a pointer; passing a long holds
	// both.
	long arg = va_arg(ap, long);
	int r = real(fd, cmd, arg);
	if (r >= 0 && (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC))
		if (server *s = existing(); s && s->owns(fd))
			s->duplicated(fd, r);
	return r;
}
} // namespace

__attribute__((visibility("default"))) int dup2(int oldfd, int newfd)
{
	REAL(dup2);
	return after_dup_to(oldfd, newfd, real_dup2(oldfd, newfd));
}

__attribute__((visibility("default"))) int dup3(int oldfd, int newfd, int flags)
{
	REAL(dup3);
	return after_dup_to(oldfd, newfd, real_dup3(oldfd, newfd, flags));
}

__attribute__((visibility("default"))) int fcntl(int fd, int cmd, ...)
{
	static auto real = next<int (*)(int, int, ...)>("fcntl");
	va_list ap;
	va_start(ap, cmd);
	int r = fcntl_common(real, fd, cmd, ap);
	va_end(ap);
	return r;
}

__attribute__((visibility("default"))) int fcntl64(int fd, int cmd, ...)
{
	static auto real = next<int (*)(int, int, ...)>("fcntl64", "fcntl");
	va_list ap;
	va_start(ap, cmd);
	int r = fcntl_common(real, fd, cmd, ap);
	va_end(ap);
	return r;
}

__attribute__((visibility("default"))) int close_range(unsigned first, unsigned last,
						       int flags)
{
	// close_range() is in glibc from 2.34; before, the system call.
	static auto real = next<int (*)(unsigned, unsigned, int)>("close_range");
	if (server *s = existing(); s && !(flags & CLOSE_RANGE_CLOEXEC)) {
		unsigned top = last < (1u << 20) ? last : (1u << 20);
		for (unsigned fd = first; fd <= top && fd >= first; fd++)
			if (s->owns(int(fd)))
				s->forget(int(fd));
	}
	if (real)
		return real(first, last, flags);
	return int(ret(::syscall(SYS_close_range, first, last, flags)));
}

namespace {
// The descriptor that path names when it is /proc/self/fd/<n> (or
// /proc/<our pid>/fd/<n>), else -1.
int proc_fd_of(const char *path)
{
	if (!path)
		return -1;
	const char *p = nullptr;
	if (!strncmp(path, "/proc/self/fd/", 14))
		p = path + 14;
	else if (!strncmp(path, "/proc/", 6)) {
		char own[32];
		int n = snprintf(own, sizeof(own), "/proc/%d/fd/", int(getpid()));
		if (n > 0 && !strncmp(path, own, size_t(n)))
			p = path + n;
	}
	if (!p || !*p)
		return -1;
	long fd = 0;
	for (; *p; p++) {
		if (*p < '0' || *p > '9' || fd > (1 << 24))
			return -1;
		fd = fd * 10 + (*p - '0');
	}
	return int(fd);
}

ssize_t fake_link(const char *name, char *buf, size_t size)
{
	size_t n = strlen(name);
	if (n > size)
		n = size;
	memcpy(buf, name, n);
	return ssize_t(n);
}
} // namespace

namespace {
// The descriptor that path names when it is /proc/self/fdinfo/<n> (or
// /proc/<our pid>/fdinfo/<n>), else -1.
int proc_fdinfo_of(const char *path)
{
	if (!path)
		return -1;
	char own[48];
	const char *p = nullptr;
	if (!strncmp(path, "/proc/self/fdinfo/", 18))
		p = path + 18;
	else {
		int n = snprintf(own, sizeof(own), "/proc/%d/fdinfo/", int(getpid()));
		if (n > 0 && !strncmp(path, own, size_t(n)))
			p = path + n;
	}
	if (!p || !*p)
		return -1;
	long fd = 0;
	for (; *p; p++) {
		if (*p < '0' || *p > '9' || fd > (1 << 24))
			return -1;
		fd = fd * 10 + (*p - '0');
	}
	return int(fd);
}

// A read-only descriptor holding text (a memfd), or -1 with errno set.
int text_fd(const std::string &text, int flags)
{
	long fd = ::syscall(SYS_memfd_create, "bpftime-fdinfo",
			    (flags & O_CLOEXEC) ? MFD_CLOEXEC : 0);
	if (fd < 0)
		return -1;
	size_t done = 0;
	while (done < text.size()) {
		long n = ::syscall(SYS_write, fd, text.data() + done, text.size() - done);
		if (n <= 0)
			break;
		done += size_t(n);
	}
	::syscall(SYS_lseek, fd, 0, SEEK_SET);
	return int(fd);
}

// fdinfo of one of our descriptors, or "" (then the real file is opened).
std::string our_fdinfo(const char *path)
{
	server *s = existing();
	if (!s)
		return {};
	int fd = proc_fdinfo_of(path);
	if (fd < 0 || !s->owns(fd))
		return {};
	try {
		return s->fdinfo(fd);
	} catch (...) {
		return {};
	}
}

// The id file of a legacy uprobe event the tool made, or "".
std::string legacy_id(const char *path)
{
	server *s = existing();
	if (!s || !path || strncmp(path, "/sys/kernel/", 12) != 0)
		return {};
	try {
		return s->legacy_event_id(path);
	} catch (...) {
		return {};
	}
}

int open_common(int dirfd, const char *path, int flags, mode_t mode,
		int (*real)(int, const char *, int, ...))
{
	if (!(flags & (O_WRONLY | O_RDWR | O_CREAT))) {
		if (std::string t = our_fdinfo(path); !t.empty())
			return text_fd(t, flags);
		if (std::string t = legacy_id(path); !t.empty())
			return text_fd(t, flags);
	} else if (server *s = existing(); s && path && !strncmp(path, "/sys/kernel/", 12)) {
		int fd = s->open_uprobe_events(path, flags);
		if (fd != -ENOENT)
			return int(ret(fd));
	}
	return real(dirfd, path, flags, mode);
}

FILE *fopen_common(const char *path, const char *mode, FILE *(*real)(const char *, const char *))
{
	if (mode && mode[0] == 'r' && !strchr(mode, '+'))
		if (std::string t = our_fdinfo(path); !t.empty() || !(t = legacy_id(path)).empty()) {
			int fd = text_fd(t, strchr(mode, 'e') ? O_CLOEXEC : 0);
			if (fd < 0)
				return nullptr;
			FILE *f = fdopen(fd, "r");
			if (!f)
				::syscall(SYS_close, fd);
			return f;
		}
	return real(path, mode);
}

mode_t mode_arg(int flags, va_list ap)
{
	return (flags & (O_CREAT | O_TMPFILE)) ? mode_t(va_arg(ap, int)) : 0;
}
} // namespace

__attribute__((visibility("default"))) int open(const char *path, int flags, ...)
{
	static auto real = next<int (*)(int, const char *, int, ...)>("openat");
	va_list ap;
	va_start(ap, flags);
	mode_t mode = mode_arg(flags, ap);
	va_end(ap);
	return open_common(AT_FDCWD, path, flags, mode, real);
}

__attribute__((visibility("default"))) int open64(const char *path, int flags, ...)
{
	// The 64-bit names are aliases on x86-64; a libc without them has the
	// plain ones.
	static auto real = next<int (*)(int, const char *, int, ...)>("openat64", "openat");
	va_list ap;
	va_start(ap, flags);
	mode_t mode = mode_arg(flags, ap);
	va_end(ap);
	return open_common(AT_FDCWD, path, flags, mode, real);
}

__attribute__((visibility("default"))) int openat(int dirfd, const char *path, int flags, ...)
{
	static auto real = next<int (*)(int, const char *, int, ...)>("openat");
	va_list ap;
	va_start(ap, flags);
	mode_t mode = mode_arg(flags, ap);
	va_end(ap);
	return open_common(dirfd, path, flags, mode, real);
}

__attribute__((visibility("default"))) int openat64(int dirfd, const char *path, int flags, ...)
{
	static auto real = next<int (*)(int, const char *, int, ...)>("openat64", "openat");
	va_list ap;
	va_start(ap, flags);
	mode_t mode = mode_arg(flags, ap);
	va_end(ap);
	return open_common(dirfd, path, flags, mode, real);
}

__attribute__((visibility("default"))) FILE *fopen(const char *path, const char *mode)
{
	static auto real = next<FILE *(*)(const char *, const char *)>("fopen");
	return fopen_common(path, mode, real);
}

__attribute__((visibility("default"))) FILE *fopen64(const char *path, const char *mode)
{
	static auto real = next<FILE *(*)(const char *, const char *)>("fopen64", "fopen");
	return fopen_common(path, mode, real);
}

// Pins live in the registry, not on bpffs: unlinking a pin's path removes
// the pin (libbpf's bpf_map__unpin, `rm /sys/fs/bpf/x` under the server).
// Other paths are the file system's.
__attribute__((visibility("default"))) int unlink(const char *path)
{
	if (server *s = existing(); s && s->unpin(path) == 0)
		return 0;
	REAL(unlink);
	return real_unlink(path);
}

__attribute__((visibility("default"))) int unlinkat(int dirfd, const char *path, int flags)
{
	if (path[0] == '/' && !(flags & AT_REMOVEDIR))
		if (server *s = existing(); s && s->unpin(path) == 0)
			return 0;
	REAL(unlinkat);
	return real_unlinkat(dirfd, path, flags);
}

__attribute__((visibility("default"))) ssize_t readlink(const char *path, char *buf,
						       size_t size)
{
	if (server *s = existing())
		if (int fd = proc_fd_of(path); fd >= 0)
			if (const char *name = s->file_name(fd))
				return fake_link(name, buf, size);
	REAL(readlink);
	return real_readlink(path, buf, size);
}

__attribute__((visibility("default"))) ssize_t readlinkat(int dirfd, const char *path,
							 char *buf, size_t size)
{
	if (server *s = existing())
		if (int fd = proc_fd_of(path); fd >= 0)
			if (const char *name = s->file_name(fd))
				return fake_link(name, buf, size);
	REAL(readlinkat);
	return real_readlinkat(dirfd, path, buf, size);
}

__attribute__((visibility("default"))) void *mmap(void *addr, size_t len, int prot,
						  int flags, int fd, off_t off)
{
	if (fd >= 0)
		if (server *s = existing(); s && s->owns(fd)) {
			long r = s->mmap(uint64_t(addr), len, prot, flags, fd, off);
			if (r < 0 && r > -4096) {
				errno = int(-r);
				return MAP_FAILED;
			}
			return reinterpret_cast<void *>(r);
		}
	REAL(mmap);
	void *r = real_mmap(addr, len, prot, flags, fd, off);
	if (flags & MAP_FIXED)
		server::memory_changed();
	return r;
}

__attribute__((visibility("default"))) void *mmap64(void *addr, size_t len, int prot,
						    int flags, int fd, off_t off)
{
	return mmap(addr, len, prot, flags, fd, off);
}

__attribute__((visibility("default"))) int munmap(void *addr, size_t len)
{
	REAL(munmap);
	int r = real_munmap(addr, len);
	server::memory_changed();
	return r;
}

__attribute__((visibility("default"))) int mprotect(void *addr, size_t len, int prot)
{
	REAL(mprotect);
	int r = real_mprotect(addr, len, prot);
	server::memory_changed();
	return r;
}

__attribute__((visibility("default"))) void *mremap(void *old, size_t old_len,
						    size_t new_len, int flags, ...)
{
	static auto real = next<void *(*)(void *, size_t, size_t, int, ...)>("mremap");
	va_list ap;
	va_start(ap, flags);
	void *new_addr = va_arg(ap, void *);
	va_end(ap);
	void *r = real(old, old_len, new_len, flags, new_addr);
	server::memory_changed();
	return r;
}

__attribute__((visibility("default"))) int epoll_ctl(int epfd, int op, int fd,
						     struct epoll_event *ev)
{
	REAL(epoll_ctl);
	int r = real_epoll_ctl(epfd, op, fd, ev);
	if (r == 0 && (op == EPOLL_CTL_ADD || op == EPOLL_CTL_MOD))
		if (server *s = existing(); s && s->waitable(fd))
			s->watch(fd);
	return r;
}

__attribute__((visibility("default"))) int epoll_wait(int epfd, struct epoll_event *ev,
						      int max, int timeout)
{
	if (server *s = existing())
		s->before_wait();
	REAL(epoll_wait);
	return real_epoll_wait(epfd, ev, max, timeout);
}

__attribute__((visibility("default"))) int epoll_pwait(int epfd, struct epoll_event *ev,
						       int max, int timeout,
						       const sigset_t *mask)
{
	if (server *s = existing())
		s->before_wait();
	REAL(epoll_pwait);
	return real_epoll_pwait(epfd, ev, max, timeout, mask);
}

__attribute__((visibility("default"))) int epoll_pwait2(int epfd, struct epoll_event *ev,
							int max,
							const struct timespec *timeout,
							const sigset_t *mask)
{
	if (server *s = existing())
		s->before_wait();
	static auto real = next<int (*)(int, struct epoll_event *, int,
					 const struct timespec *, const sigset_t *)>(
		"epoll_pwait2");
	if (!real)
		return int(ret(::syscall(SYS_epoll_pwait2, epfd, ev, max, timeout,
					 mask, _NSIG / 8)));
	return real(epfd, ev, max, timeout, mask);
}

namespace {
void watch_polled(struct pollfd *fds, nfds_t n)
{
	server *s = existing();
	if (!s)
		return;
	for (nfds_t i = 0; i < n; i++)
		if (fds[i].fd >= 0 && s->waitable(fds[i].fd))
			s->watch(fds[i].fd);
	s->before_wait();
}
} // namespace

__attribute__((visibility("default"))) int poll(struct pollfd *fds, nfds_t n, int timeout)
{
	watch_polled(fds, n);
	REAL(poll);
	return real_poll(fds, n, timeout);
}

__attribute__((visibility("default"))) int ppoll(struct pollfd *fds, nfds_t n,
						 const struct timespec *timeout,
						 const sigset_t *mask)
{
	watch_polled(fds, n);
	REAL(ppoll);
	return real_ppoll(fds, n, timeout, mask);
}

} // extern "C"
