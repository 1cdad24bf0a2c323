// server.hpp: the syscall-server's core, the answers to one process's bpf()
// and perf_event_open() calls from the shared-memory registry.
//
//   auto s = bpftime::syscall_server::server::open({ .segment = "demo" });
//   int fd = (*s)->bpf(BPF_MAP_CREATE, &attr, sizeof(attr)); // >= 0, or -errno
//
// libbpftime-syscall-server.so (preload/) holds one server per process and
// routes the tool's syscall(), ioctl(), close(), dup*(), fcntl() and mmap()
// calls to it; a test or a benchmark may link this core directly.
//
// File descriptors: every object the server hands out is a real, inert
// descriptor of this process (an eventfd), so a descriptor the tool opens
// later never takes its number. The table from descriptor to object is this
// process's only: two tools served from one registry each see their own
// descriptors and share the registry's ids (an object's id, as bpftool
// prints it, is its registry id + 1, since the kernel never gives id 0).
//
// Lifetime, as the kernel's: an object lives while a descriptor, a link, or
// a program that uses it (maps) keeps it, or while it is pinned (OBJ_PIN).
// When the last of them goes, the server releases it from the registry; at
// exit (shutdown()) every descriptor is dropped, so a tool's unpinned links
// are detached in every target and its objects released, unless
// keep_objects is set. Objects this process opened by id or by pin path
// (bpftool) belong to another process and are never released here.
//
// Threads: every entry may be called from any thread. The descriptor table
// is read without a lock (an array of atomic pointers); changes to it take
// the server's mutex; a reader announces the object it uses in a per-thread
// slot, and a descriptor's last close waits for those announcements to go
// (the kernel's fdget() reference for the length of a call). Errors are negative errno values, exactly what the kernel's
// __sys_bpf() would return; no exception leaves an entry.
#pragma once

#include <bpftime/common/result.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

struct perf_event_attr;

namespace bpftime::syscall_server {

struct server_options {
	// The registry's segment; created (size segment_size) when missing.
	std::string segment;
	uint64_t segment_size = 0; // 0: the shm default
	// Leave every object in the registry at shutdown (bpftime load --keep).
	bool keep_objects = false;
};

// BPFTIME_GLOBAL_SHM_NAME, BPFTIME_SHM_MEMORY_MB, BPFTIME_KEEP_OBJECTS=1.
result<server_options> options_from_env();

class server {
    public:
	static result<std::unique_ptr<server>> open(const server_options &opts);
	~server();
	server(const server &) = delete;
	server &operator=(const server &) = delete;

	// bpf(cmd, attr, size): a descriptor or 0, else -errno.
	long bpf(long cmd, uint64_t attr, uint64_t size) noexcept;
	// perf_event_open(2) for the uprobe PMU (type from
	// /sys/bus/event_source/devices/uprobe/type): a descriptor, else
	// -errno. Any other event type gives -ENOSYS: the caller passes it
	// on to the kernel.
	long perf_event_open(uint64_t attr, long pid, long cpu, long group_fd,
			     unsigned long flags) noexcept;
	// Whether fd is one of this server's descriptors (lock-free).
	bool owns(int fd) const noexcept;
	// ioctl(2) on one of our descriptors (PERF_EVENT_IOC_SET_BPF,
	// _ENABLE, _DISABLE, _QUERY_BPF on perf events; ENOTTY otherwise).
	long ioctl(int fd, unsigned long request, uint64_t arg) noexcept;
	// mmap(2) of a BPF_F_MMAPABLE map's descriptor: maps the value area's
	// pages of the segment file there. -errno, or the address.
	long mmap(uint64_t addr, uint64_t len, int prot, int flags, int fd,
		  int64_t off) noexcept;
	// What readlink("/proc/self/fd/<fd>") shows for the kernel's object
	// ("anon_inode:bpf-map" ...), or nullptr when fd is not ours: bpftool
	// tells maps from programs that way.
	const char *file_name(int fd) const noexcept;
	// What /proc/self/fdinfo/<fd> holds for the kernel's object (the
	// lines of bpf_map_show_fdinfo() and its siblings after the generic
	// pos/flags/mnt_id/ino ones), or "" when fd is not ours. bpftool reads
	// a map's frozen state there.
	std::string fdinfo(int fd) const;
	// unlink(2) of a path: removes the pin at path, as unlinking it on
	// bpffs does (0), or -ENOENT when no pin has that path (the caller
	// then unlinks the file). An object that loses its last pin stays in
	// the registry while a descriptor of this process holds it, and is
	// released with the last one if this process created it; one created
	// elsewhere stays until its creator releases it.
	long unpin(const char *path) noexcept;
	// Called after the real close() of fd succeeded (or before, for
	// dup2's implicit close): drops fd from the table.
	void forget(int fd) noexcept;
	// newfd is a duplicate of oldfd (dup, dup2, dup3, F_DUPFD): it refers
	// to the same object.
	void duplicated(int oldfd, int newfd) noexcept;
	// epoll_ctl(ADD/MOD) or poll() of fd: when it is a ring buffer map
	// or a perf buffer's event, its eventfd becomes readable whenever its
	// ring has data (events.cpp), until fd is closed.
	void watch(int fd) noexcept;
	// Whether fd is a descriptor watch() takes (lock-free).
	bool waitable(int fd) const noexcept;
	// On the tool's thread before epoll_wait() / poll(): clears the
	// readiness of watched descriptors whose rings were drained since.
	void before_wait() noexcept;
	// The legacy tracefs uprobe path (legacy_uprobe.cpp): open(2) of
	// <tracefs>/uprobe_events for writing gives a memfd whose lines are
	// read at its close (uprobe_events_closed); -ENOENT when path is not
	// that file. legacy_event_id(): the text of
	// <tracefs>/events/<group>/<name>/id of an event made that way, or "".
	int open_uprobe_events(const char *path, int flags) noexcept;
	void uprobe_events_closed(int fd) noexcept;
	std::string legacy_event_id(const char *path) const;
	// The user memory map changed (munmap, mprotect, mremap): pointer
	// checks look again.
	static void memory_changed() noexcept;
	// Drops every descriptor (at exit), releasing what this process owns
	// unless keep_objects.
	void shutdown() noexcept;
	// After fork(), in the child: the objects belong to the parent.
	void forked_child() noexcept;

	struct impl;

    private:
	explicit server(std::unique_ptr<impl> i);
	std::unique_ptr<impl> impl_;
};

} // namespace bpftime::syscall_server
