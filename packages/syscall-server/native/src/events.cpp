// events.cpp: ring buffer and perf buffer descriptors as a tool waits on
// them (libbpf's ring_buffer__poll and perf_buffer__poll, bcc's perf
// readers): epoll and poll readiness, and the mmap of a perf buffer's
// per-CPU event.
//
// Readiness. Our descriptors are real eventfds, so the kernel's own epoll
// and poll take them; the server makes an eventfd readable exactly while
// its ring has data, as the kernel's ringbuf_map_poll_kern() and
// perf_poll() report EPOLLIN:
//   - a watcher thread per watched descriptor sleeps on the ring's futex
//     (the wake-ups producers in targets already make for consumers) and,
//     when data arrives, writes 1 to the eventfd: the tool's epoll_wait
//     returns;
//   - before each epoll_wait / poll of the tool (before_wait(), on the
//     tool's thread), an eventfd whose ring the tool has drained since is
//     read back to 0 and its watcher goes back to sleeping on the ring.
// A descriptor is watched from the tool's first epoll_ctl(ADD/MOD) or poll()
// of it until it is closed. The watcher writes through its own duplicate of
// the eventfd, so a descriptor number the tool reuses after close() never
// receives a write.
//
// Perf buffers. perf_event_open(PERF_TYPE_SOFTWARE, PERF_COUNT_SW_BPF_OUTPUT)
// gives a bpf_output event; the tool maps it (one meta page, then 2^n data
// pages) before it stores it into the perf event array (libbpf's order), so
// the mapping starts as zeroed anonymous memory and becomes the slot's ring
// in the segment when the store happens. A slot's ring is made at the first
// store into it with the data pages of the stored event's mapping, as the
// kernel sizes an event's ring by its mmap. A slot that already has a ring
// (stored into before, by another tool) keeps it: a mapping with k times as
// many data pages shows the ring k times in a row, which reads the same at
// every position modulo its own size (what libbpf and bcc compute); one with
// fewer stays zeroed, with a log line.
#include "server_impl.hpp"
#include "user_memory.hpp"

#include <bpftime/common/log.hpp>
#include <bpftime/maps_userspace/ring_consumer.hpp>
#include <bpftime/shm/segment.hpp>

#include <linux/futex.h>
#include <linux/perf_event.h>

#include <cerrno>
#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <thread>
#include <unistd.h>

namespace bpftime::syscall_server {

namespace {
const log_source events_log{ "syscall-server", true };

constexpr uint32_t MAP_TYPE_RINGBUF = 27; // BPF_MAP_TYPE_RINGBUF
constexpr uint64_t PAGE = 4096;
// Where the watchers' duplicates go: out of the way of the numbers a tool
// gets from open().
constexpr int WATCH_FD_MIN = 512;

uint64_t load_u64(const uint8_t *p)
{
	return reinterpret_cast<const std::atomic<uint64_t> *>(p)->load(
		std::memory_order_acquire);
}
} // namespace

struct watch {
	int fd = -1;  // the tool's descriptor
	int wfd = -1; // our duplicate of it
	std::shared_ptr<object> obj;
	// A ring buffer map: its consumer page (consumer_pos, then the
	// producer page's producer_pos). A perf event: its slot's meta page.
	const uint8_t *region = nullptr;
	std::unique_ptr<maps_userspace::ring_consumer> ring;
	std::unique_ptr<maps_userspace::perf_consumer> perf;
	std::mutex mu;
	bool signaled = false; // the eventfd holds 1 (under mu)
	// Bumped when before_wait() clears the eventfd: the watcher sleeps on
	// it while signaled.
	std::atomic<uint32_t> gen{ 0 };
	std::atomic<bool> stop{ false };
	std::thread th;

	// Data after the consumer's position: ringbuf_avail_data_sz() != 0,
	// or a perf ring's data_head != data_tail.
	bool avail() const noexcept
	{
		if (!region)
			return false;
		if (ring)
			return load_u64(region + PAGE) != load_u64(region);
		auto *mp = reinterpret_cast<const perf_event_mmap_page *>(region);
		return load_u64(reinterpret_cast<const uint8_t *>(&mp->data_head)) !=
		       load_u64(reinterpret_cast<const uint8_t *>(&mp->data_tail));
	}

	void signal() noexcept
	{
		std::lock_guard g(mu);
		if (signaled || stop.load())
			return;
		uint64_t one = 1;
		if (syscall(SYS_write, wfd, &one, sizeof one) == sizeof one)
			signaled = true;
	}

	// The tool's thread, before it waits.
	void clear_if_drained() noexcept
	{
		std::lock_guard g(mu);
		if (!signaled || avail())
			return;
		pollfd p{ wfd, POLLIN, 0 };
		uint64_t v;
		if (syscall(SYS_poll, &p, 1, 0) == 1)
			(void)syscall(SYS_read, wfd, &v, sizeof v);
		signaled = false;
		gen.fetch_add(1);
		syscall(SYS_futex, &gen, FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
	}

	void run() noexcept
	{
		while (!stop.load()) {
			{
				std::unique_lock l(mu);
				if (signaled) {
					uint32_t g = gen.load();
					l.unlock();
					syscall(SYS_futex, &gen, FUTEX_WAIT_PRIVATE, g,
						nullptr, nullptr, 0);
					continue;
				}
			}
			bool r = avail();
			if (!r && ring)
				r = ring->wait_readable(-1) || avail();
			else if (!r && perf)
				r = perf->wait_until(
					[](void *w) {
						return static_cast<watch *>(w)->avail();
					},
					this, -1);
			if (r)
				signal();
		}
	}

	void start()
	{
		th = std::thread([this] { run(); });
	}

	void halt() noexcept
	{
		stop.store(true);
		if (ring)
			ring->close();
		if (perf)
			perf->close();
		gen.fetch_add(1);
		syscall(SYS_futex, &gen, FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
		if (th.joinable())
			th.join();
		if (wfd >= 0)
			syscall(SYS_close, wfd);
		wfd = -1;
	}
};

namespace {

// The perf event array's view of its slots, made once per map object.
maps_userspace::perf_consumer *perf_view(server::impl &s, object &map)
{
	std::lock_guard g(map.mu);
	if (!map.perf_view) {
		auto r = map.map->mmap_region(false);
		if (!r)
			return nullptr;
		auto c = maps_userspace::perf_consumer::attach(r->data(), r->size());
		if (!c) {
			log(events_log, log_level::warn, "%s",
			    c.error().message.c_str());
			return nullptr;
		}
		map.perf_view = std::move(*c);
	}
	(void)s;
	return map.perf_view.get();
}

// Prepares w's readiness test for its object; false when there is none yet
// (a bpf_output event not stored in a map).
bool arm(server::impl &s, watch &w)
{
	object &o = *w.obj;
	if (o.kind == obj_kind::map) {
		auto r = o.map->mmap_region(false);
		if (!r)
			return false;
		auto c = maps_userspace::ring_consumer::attach(r->data(), r->size());
		if (!c) {
			log(events_log, log_level::warn, "%s",
			    c.error().message.c_str());
			return false;
		}
		w.ring = std::move(*c);
		w.region = r->data();
		return true;
	}
	std::shared_ptr<object> map;
	uint32_t slot;
	{
		std::lock_guard g(o.mu);
		map = o.out_map.lock();
		slot = o.out_slot;
	}
	if (!map)
		return false;
	auto *view = perf_view(s, *map);
	if (!view)
		return false;
	auto buf = view->slot_buffer(slot);
	if (buf.empty())
		return false;
	auto r = map->map->mmap_region(false);
	if (!r)
		return false;
	auto c = maps_userspace::perf_consumer::attach(r->data(), r->size());
	if (!c)
		return false;
	w.perf = std::move(*c);
	w.region = buf.data();
	return true;
}

bool watchable(const object &o)
{
	if (o.kind == obj_kind::map)
		return o.map && o.map->map_type == MAP_TYPE_RINGBUF;
	return o.kind == obj_kind::perf_event &&
	       o.ev == object::event_class::bpf_output;
}

} // namespace

void server::watch(int fd) noexcept
{
	try {
		impl &s = *impl_;
		auto o = s.get(fd);
		if (!o || !watchable(*o))
			return;
		std::lock_guard g(s.watch_mu);
		if (s.watches.count(fd))
			return;
		long wfd = syscall(SYS_fcntl, fd, F_DUPFD_CLOEXEC, WATCH_FD_MIN);
		if (wfd < 0)
			return;
		auto w = std::make_shared<syscall_server::watch>();
		w->fd = fd;
		w->wfd = int(wfd);
		w->obj = o;
		if (arm(s, *w))
			w->start();
		s.watches[fd] = std::move(w);
		s.n_watches.store(int(s.watches.size()));
	} catch (...) {
	}
}

void server::before_wait() noexcept
{
	impl &s = *impl_;
	if (s.n_watches.load(std::memory_order_relaxed) == 0)
		return;
	std::lock_guard g(s.watch_mu);
	for (auto &[fd, w] : s.watches)
		w->clear_if_drained();
}

bool server::waitable(int fd) const noexcept
{
	object *o = impl_->lookup(fd);
	return o && watchable(*o);
}

void server::impl::unwatch(int fd)
{
	if (n_watches.load() == 0)
		return;
	std::shared_ptr<syscall_server::watch> w;
	{
		std::lock_guard g(watch_mu);
		auto it = watches.find(fd);
		if (it == watches.end())
			return;
		w = std::move(it->second);
		watches.erase(it);
		n_watches.store(int(watches.size()));
	}
	w->halt();
}

void server::impl::stop_watches()
{
	std::unordered_map<int, std::shared_ptr<syscall_server::watch>> all;
	{
		std::lock_guard g(watch_mu);
		all.swap(watches);
		n_watches.store(0);
	}
	for (auto &[fd, w] : all)
		w->halt();
}

namespace {

// Maps the slot's ring over [addr, addr + len): the meta page and the data
// pages, then the data again until len is filled. -errno.
long map_ring(server::impl &s, uint64_t addr, uint64_t len, int prot,
	      int flags, std::span<uint8_t> buf)
{
	int sfd = s.segment_fd();
	if (sfd < 0)
		return sfd;
	uint64_t at = uint64_t(buf.data() -
			       static_cast<uint8_t *>(s.reg->segment().base()));
	uint64_t data = buf.size() - PAGE;
	uint64_t want = len - PAGE;
	if (want < data || want % data) {
		log(events_log, log_level::warn,
		    "perf buffer: the tool maps %llu data pages, the slot's ring has %llu (BPFTIME_PERF_BUFFER_PAGES); it must be a multiple",
		    (unsigned long long)(want / PAGE),
		    (unsigned long long)(data / PAGE));
		return -EINVAL;
	}
	int fixed = (flags & ~MAP_FIXED_NOREPLACE) | MAP_FIXED;
	if (syscall(SYS_mmap, addr, PAGE + data, prot, fixed, sfd, at) == -1)
		return -errno;
	for (uint64_t k = PAGE + data; k < len; k += data)
		if (syscall(SYS_mmap, addr + k, data, prot, fixed, sfd,
			    at + PAGE) == -1)
			return -errno;
	user_memory_changed();
	return 0;
}

} // namespace

long server::impl::mmap_perf_event(object &pe, uint64_t addr, uint64_t len,
				   int prot, int flags, int64_t off)
{
	if (pe.ev != object::event_class::bpf_output)
		return -ENODEV;
	// perf_mmap(): the ring at offset 0, shared, 1 + 2^n pages.
	if (!(flags & MAP_SHARED) || off != 0 || len % PAGE || len < 2 * PAGE)
		return -EINVAL;
	uint64_t pages = len / PAGE - 1;
	if (pages & (pages - 1))
		return -EINVAL;
	std::shared_ptr<object> map;
	{
		std::lock_guard g(pe.mu);
		map = pe.out_map.lock();
	}
	// Reserve the range first (zeroed, as the kernel's ring is before
	// the first record): the ring replaces it now or at the store.
	long base = syscall(SYS_mmap, addr, len, prot,
			    MAP_SHARED | MAP_ANONYMOUS |
				    (flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)),
			    -1, 0);
	if (base == -1)
		return -errno;
	if (map) {
		auto *view = perf_view(*this, *map);
		auto buf = view ? view->slot_buffer(pe.out_slot) :
				  std::span<uint8_t>();
		if (!buf.empty()) {
			if (long e = map_ring(*this, uint64_t(base), len, prot,
					      flags, buf)) {
				syscall(SYS_munmap, base, len);
				return e;
			}
		}
	}
	std::lock_guard g(pe.mu);
	pe.mmap_addr = uint64_t(base);
	pe.mmap_len = len;
	pe.mmap_prot = prot;
	pe.mmap_flags = flags;
	user_memory_changed();
	return base;
}

void server::impl::perf_event_storing(object &map, object &pe)
{
	if (pe.ev != object::event_class::bpf_output)
		return;
	uint64_t len;
	{
		std::lock_guard g(pe.mu);
		len = pe.mmap_len;
	}
	if (len < 2 * PAGE)
		return;
	if (auto *view = perf_view(*this, map))
		(void)view->set_next_pages(uint32_t(len / PAGE - 1));
}

void server::impl::perf_event_stored(const std::shared_ptr<object> &map,
				     uint32_t slot,
				     const std::shared_ptr<object> &pe)
{
	if (pe->ev != object::event_class::bpf_output)
		return;
	uint64_t addr, len;
	int prot, flags;
	{
		std::lock_guard g(pe->mu);
		pe->out_map = map;
		pe->out_slot = slot;
		addr = pe->mmap_addr;
		len = pe->mmap_len;
		prot = pe->mmap_prot;
		flags = pe->mmap_flags;
	}
	if (addr) {
		auto *view = perf_view(*this, *map);
		auto buf = view ? view->slot_buffer(slot) : std::span<uint8_t>();
		if (!buf.empty())
			(void)map_ring(*this, addr, len, prot, flags, buf);
	}
	// A descriptor the tool watched before the store starts now.
	std::lock_guard g(watch_mu);
	for (auto &[fd, w] : watches)
		if (w->obj == pe && !w->th.joinable() && arm(*this, *w))
			w->start();
}

} // namespace bpftime::syscall_server
