// server.cpp: the descriptor table, object lifetime, and the dispatch of
// bpf() as the kernel's __sys_bpf() does it (kernel/bpf/syscall.c).
#include "server_impl.hpp"
#include "user_memory.hpp"

#include <bpftime/common/log.hpp>
#include <bpftime/maps_userspace/maps_userspace.hpp>
#include <bpftime/shm/segment.hpp>

#include <linux/bpf.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <new>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <vector>

namespace bpftime::syscall_server {

namespace {
const log_source server_log{ "syscall-server", true };

// The kernel's bpf_check_uarg_tail_zero(): a caller built against a newer
// header may pass a larger attr, as long as what we do not know is zero.
int check_tail_zero(uint64_t uattr, uint64_t expected, uint64_t actual)
{
	if (actual > 4096)
		return -E2BIG;
	if (actual <= expected)
		return 0;
	if (!user_readable(uattr + expected, actual - expected))
		return -EFAULT;
	const auto *p = reinterpret_cast<const unsigned char *>(uattr);
	for (uint64_t i = expected; i < actual; i++)
		if (p[i])
			return -E2BIG;
	return 0;
}

// CHECK_ATTR(): the bytes after a command's last field must be zero. Only
// [end, copied) can hold any: the rest of attr was zeroed. Whole words are
// OR-ed together (attr is 8-byte aligned, fields end on 4-byte bounds):
// this runs on every map lookup.
bool tail_clear(const union bpf_attr &a, size_t end, size_t copied)
{
	if (copied <= end)
		return true;
	const auto *p = reinterpret_cast<const unsigned char *>(&a);
	uint64_t any = 0;
	size_t i = end;
	for (; i < copied && i % 8; i++)
		any |= p[i];
	for (; i + 8 <= copied; i += 8) {
		uint64_t w;
		memcpy(&w, p + i, 8);
		any |= w;
	}
	for (; i < copied; i++)
		any |= p[i];
	return any == 0;
}

#define END_OF(field) (offsetof(union bpf_attr, field) + sizeof(((union bpf_attr *)0)->field))

// offsetofend(union bpf_attr, <CMD>_LAST_FIELD) of the kernel whose header we
// build against; 0 for a command we do not answer.
size_t last_field_end(int cmd)
{
	switch (cmd) {
	case BPF_MAP_CREATE:
		return END_OF(map_extra);
	case BPF_MAP_LOOKUP_ELEM:
	case BPF_MAP_UPDATE_ELEM:
	case BPF_MAP_LOOKUP_AND_DELETE_ELEM:
		return END_OF(flags);
	case BPF_MAP_DELETE_ELEM:
		return END_OF(key);
	case BPF_MAP_GET_NEXT_KEY:
		return END_OF(next_key);
	case BPF_MAP_FREEZE:
		return END_OF(map_fd);
	case BPF_MAP_LOOKUP_BATCH:
	case BPF_MAP_LOOKUP_AND_DELETE_BATCH:
	case BPF_MAP_UPDATE_BATCH:
	case BPF_MAP_DELETE_BATCH:
		return END_OF(batch);
	case BPF_PROG_LOAD:
		return END_OF(core_relo_rec_size);
	case BPF_OBJ_PIN:
	case BPF_OBJ_GET:
		return END_OF(file_flags);
	case BPF_PROG_TEST_RUN:
		return END_OF(test.batch_size);
	case BPF_PROG_GET_NEXT_ID:
	case BPF_MAP_GET_NEXT_ID:
	case BPF_BTF_GET_NEXT_ID:
	case BPF_LINK_GET_NEXT_ID:
		return END_OF(next_id);
	case BPF_PROG_GET_FD_BY_ID:
		return END_OF(prog_id);
	case BPF_MAP_GET_FD_BY_ID:
		return END_OF(open_flags);
	case BPF_BTF_GET_FD_BY_ID:
		return END_OF(btf_id);
	case BPF_LINK_GET_FD_BY_ID:
		return END_OF(link_id);
	case BPF_OBJ_GET_INFO_BY_FD:
		return END_OF(info);
	case BPF_ENABLE_STATS:
		return END_OF(enable_stats.type);
	case BPF_BTF_LOAD:
		return END_OF(btf_log_level);
	case BPF_LINK_CREATE:
		return END_OF(link_create) > LINK_CREATE_UPROBE_MULTI_END ?
			       END_OF(link_create) :
			       LINK_CREATE_UPROBE_MULTI_END;
	case BPF_LINK_DETACH:
		return END_OF(link_detach);
	case BPF_LINK_UPDATE:
		return END_OF(link_update.old_prog_fd);
	case BPF_RAW_TRACEPOINT_OPEN:
		return END_OF(raw_tracepoint.prog_fd);
	case BPF_PROG_BIND_MAP:
		return END_OF(prog_bind_map);
	default:
		return 0;
	}
}

} // namespace

int syscall_fd_errno(int fd)
{
	return syscall(SYS_fcntl, fd, F_GETFD) < 0 ? -EBADF : -EINVAL;
}

uint64_t now_ns()
{
	timespec ts;
	clock_gettime(CLOCK_BOOTTIME, &ts);
	return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}

object::~object()
{
	// A timer's thread runs until its event goes, whoever owns it.
	timer.reset();
	if (kind == obj_kind::stats) {
		if (owner && stats_on && creator == getpid())
			owner->stats_released();
		return;
	}
	// Objects opened by id or pin path belong to another process (which
	// this one holds them for, when `held`); after fork() the child's
	// copies belong to the parent (its exit or closes must not detach the
	// parent's links).
	if (!owner || !(owned || held) || creator != getpid())
		return;
	// keep_objects: nothing the tool made leaves the registry, whether it
	// closes it or exits (its skeleton's destroy closes everything).
	if (owner->keep.load(std::memory_order_relaxed))
		return;
	try {
		// A link's registry handler is its perf event's reg_link: the
		// detach releases it, and the link has nothing else.
		if (kind == obj_kind::link) {
			for (size_t i = 1; i < uses.size(); i++)
				if (uses[i]->kind == obj_kind::perf_event)
					owner->detach_perf(*uses[i]);
			return;
		}
		if (kind == obj_kind::perf_event)
			owner->detach_perf(*this);
		if (is_pinned(*owner, h))
			return;
		map.reset();
		// Another tool that opened it by id or pin still holds it, as a
		// kernel object's other files keep it.
		if (!last_holder(*owner, h))
			return;
		// EBUSY: something that outlives this process's references
		// still uses it (the BTF of a pinned map, the maps of a pinned
		// program), as a kernel object's other references keep it.
		auto r = owner->reg->release(h);
		if (r || r.error().code == EBADF)
			forget_owner(*owner, h);
		else if (r.error().code != EBUSY)
			log(server_log, log_level::warn, "release: %s",
			    r.error().message.c_str());
	} catch (...) {
	}
}

// --- the lock-free path's references -------------------------------------
//
// Asymmetric: a reader announces the object in its slot and re-reads the
// fast table with only a compiler barrier; the rare writer (close) removes
// the object, runs membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED), which puts a
// full barrier on every running thread of the process, and then reads the
// slots. Either the reader's re-read sees the removal, or the writer sees
// the announcement and waits. Without membarrier both sides fence.

namespace {
std::mutex g_slots_mu;
std::vector<hot_slot *> *g_slots = new std::vector<hot_slot *>(); // never freed
std::atomic<int> g_membarrier{ -1 }; // -1 unknown, 0 no, 1 registered

bool membarrier_ready() noexcept
{
	int m = g_membarrier.load(std::memory_order_acquire);
	if (m >= 0)
		return m == 1;
	// MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED (16), then _PRIVATE_EXPEDITED (8).
	bool ok = syscall(SYS_membarrier, 16, 0, 0) == 0;
	g_membarrier.store(ok ? 1 : 0, std::memory_order_release);
	return ok;
}

struct slot_owner {
	hot_slot *slot = nullptr;
	~slot_owner()
	{
		if (slot) {
			slot->busy.store(nullptr, std::memory_order_release);
			slot->used.store(false, std::memory_order_release);
		}
	}
};
thread_local slot_owner t_slot;
} // namespace

hot_slot &my_hot_slot()
{
	if (hot_slot *s = t_slot.slot)
		return *s;
	std::lock_guard g(g_slots_mu);
	for (hot_slot *s : *g_slots) {
		bool expected = false;
		if (s->used.compare_exchange_strong(expected, true)) {
			t_slot.slot = s;
			return *s;
		}
	}
	auto *s = new hot_slot();
	s->used.store(true);
	g_slots->push_back(s);
	t_slot.slot = s;
	return *s;
}

hot_ref::hot_ref(const server::impl &s, int fd) noexcept : slot_(my_hot_slot())
{
	const bool asym = g_membarrier.load(std::memory_order_relaxed) == 1;
	for (;;) {
		object *o = s.lookup(fd);
		if (!o)
			return;
		slot_.busy.store(o, std::memory_order_relaxed);
		if (asym)
			std::atomic_signal_fence(std::memory_order_seq_cst);
		else
			std::atomic_thread_fence(std::memory_order_seq_cst);
		if (s.lookup(fd) == o) {
			o_ = o;
			return;
		}
	}
}

hot_ref::~hot_ref()
{
	slot_.busy.store(nullptr, std::memory_order_release);
}

// fork(): the child has only the forking thread; the other threads' slots
// may hold announcements no one will clear, and their mutex may be held by
// a thread that does not exist there.
static void reset_slots_in_child() noexcept
{
	new (&g_slots_mu) std::mutex();
	for (hot_slot *s : *g_slots)
		if (s != t_slot.slot) {
			s->busy.store(nullptr, std::memory_order_relaxed);
			s->used.store(false, std::memory_order_relaxed);
		}
}

void publish_removals() noexcept
{
	if (!membarrier_ready() || syscall(SYS_membarrier, 8, 0, 0) != 0)
		std::atomic_thread_fence(std::memory_order_seq_cst);
}

void wait_for_readers(object *o) noexcept
{
	std::vector<hot_slot *> slots;
	{
		std::lock_guard g(g_slots_mu);
		slots = *g_slots;
	}
	// This thread's own slot is skipped: a signal handler that closes a
	// descriptor its thread was using must not wait for itself.
	for (hot_slot *s : slots)
		while (s != t_slot.slot && s->busy.load(std::memory_order_acquire) == o)
			sched_yield();
}

std::shared_ptr<object> server::impl::get(int fd)
{
	std::lock_guard g(mu);
	auto it = owners.find(fd);
	return it == owners.end() ? nullptr : it->second;
}

std::shared_ptr<object> server::impl::get_kind(int fd, obj_kind k, int &err)
{
	auto o = get(fd);
	if (!o) {
		err = syscall_fd_errno(fd);
		return nullptr;
	}
	if (o->kind != k) {
		err = -EINVAL;
		return nullptr;
	}
	return o;
}

std::shared_ptr<object> server::impl::make(obj_kind k, handlers::handle h,
					   bool own)
{
	auto o = std::make_shared<object>();
	o->kind = k;
	o->h = h;
	o->owner = this;
	o->owned = own;
	o->creator = pid;
	// A link object's handler is its perf event's registry link, which
	// sync_perf_link() records.
	if (own && k != obj_kind::link)
		record_owner(*this, h);
	return o;
}

std::shared_ptr<object> server::impl::adopt(obj_kind k, handlers::handle h)
{
	{
		std::lock_guard g(mu);
		for (auto &[fd, o] : owners)
			if (o->kind == k && o->h == h)
				return o;
	}
	auto o = make(k, h, false);
	// A tool's object (it has holders) is held by this process too until
	// its last descriptor here goes; links are their creator's alone.
	if (k != obj_kind::link && !keep.load(std::memory_order_relaxed) &&
	    has_holders(*this, h)) {
		record_owner(*this, h);
		o->held = true;
	}
	if (k == obj_kind::map) {
		auto m = reg->map(h.id);
		if (m)
			o->map = *m;
	}
	return o;
}

long server::impl::install(std::shared_ptr<object> o, bool cloexec)
{
	long fd = syscall(SYS_eventfd2, 0, cloexec ? EFD_CLOEXEC : 0);
	if (fd < 0)
		return -errno;
	std::lock_guard g(mu);
	owners[int(fd)] = o;
	if (fd < FAST_FDS)
		fast[fd].store(o.get(), std::memory_order_release);
	return fd;
}

void server::impl::drop(int fd)
{
	// Before the descriptor number can be reused: the watcher writes to
	// the eventfd behind it.
	unwatch(fd);
	std::shared_ptr<object> gone;
	{
		std::lock_guard g(mu);
		auto it = owners.find(fd);
		if (it == owners.end())
			return;
		if (fd < FAST_FDS)
			fast[fd].store(nullptr, std::memory_order_release);
		gone = std::move(it->second);
		owners.erase(it);
	}
	// No thread may still be using it on the lock-free path when it goes
	// (here, if this was the last reference, or later with a link that
	// holds it). The release runs outside mu: it takes the registry's lock.
	if (fd < FAST_FDS) {
		publish_removals();
		wait_for_readers(gone.get());
	}
}

obj_kind kind_of(handlers::handler_kind k, bool &ok)
{
	ok = true;
	switch (k) {
	case handlers::handler_kind::map:
		return obj_kind::map;
	case handlers::handler_kind::prog:
		return obj_kind::prog;
	case handlers::handler_kind::link:
		return obj_kind::link;
	case handlers::handler_kind::perf_event:
		return obj_kind::perf_event;
	case handlers::handler_kind::btf:
		return obj_kind::btf;
	default:
		ok = false;
		return obj_kind::map;
	}
}

// --- server -------------------------------------------------------------

namespace {
int read_sysfs_int(const char *path, const char *prefix)
{
	long fd = syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	char buf[64] = {};
	long n = syscall(SYS_read, fd, buf, sizeof(buf) - 1);
	syscall(SYS_close, fd);
	if (n <= 0)
		return -1;
	const char *s = buf;
	if (prefix) {
		size_t l = strlen(prefix);
		if (strncmp(s, prefix, l))
			return -1;
		s += l;
	}
	return atoi(s);
}
} // namespace

result<server_options> options_from_env()
{
	auto seg = shm::options_from_env();
	if (!seg)
		return std::move(seg).error();
	server_options o;
	o.segment = seg->name;
	o.segment_size = seg->size;
	const char *k = getenv("BPFTIME_KEEP_OBJECTS");
	o.keep_objects = k && *k && strcmp(k, "0") != 0;
	return o;
}

server::server(std::unique_ptr<impl> i) : impl_(std::move(i))
{
}

server::~server() = default;

result<std::unique_ptr<server>> server::open(const server_options &opts)
{
	try {
		auto i = std::make_unique<impl>();
		i->opts = opts;
		i->pid = getpid();
		i->keep = opts.keep_objects;
		shm::segment_options so;
		so.name = opts.segment;
		if (opts.segment_size)
			so.size = opts.segment_size;
		auto seg = shm::segment::open_or_create(so);
		if (!seg)
			return std::move(seg).error();
		auto reg = handlers::registry::open_or_create(std::move(*seg));
		if (!reg)
			return std::move(reg).error();
		BPFTIME_TRY(maps_userspace::register_all());
		i->reg = std::move(*reg);
		reap_dead_owners(*i);
		membarrier_ready();
		i->fast = std::make_unique<std::atomic<object *>[]>(impl::FAST_FDS);
		for (int f = 0; f < impl::FAST_FDS; f++)
			i->fast[f].store(nullptr, std::memory_order_relaxed);
		// The real kernel's numbers: libbpf reads the same files, so the
		// events it builds carry them.
		i->uprobe_type = read_sysfs_int(
			"/sys/bus/event_source/devices/uprobe/type", nullptr);
		int bit = read_sysfs_int(
			"/sys/bus/event_source/devices/uprobe/format/retprobe",
			"config:");
		i->retprobe_bit = bit < 0 ? 0 : bit;
		return std::unique_ptr<server>(new server(std::move(i)));
	} catch (const std::exception &e) {
		return fail(ENOMEM, std::string("syscall-server: open: ") + e.what());
	}
}

bool server::owns(int fd) const noexcept
{
	if (impl_->lookup(fd))
		return true;
	if (fd < impl::FAST_FDS)
		return false;
	std::lock_guard g(impl_->mu);
	return impl_->owners.count(fd) != 0;
}

const char *server::file_name(int fd) const noexcept
{
	if (!owns(fd))
		return nullptr;
	std::shared_ptr<object> h;
	try {
		h = impl_->get(fd);
	} catch (...) {
		return nullptr;
	}
	if (!h)
		return nullptr;
	object *o = h.get();
	// The names kernel/bpf/syscall.c, kernel/bpf/btf.c and
	// kernel/events/core.c give their anonymous inodes.
	switch (o->kind) {
	case obj_kind::map:
		return "anon_inode:bpf-map";
	case obj_kind::prog:
		return "anon_inode:bpf-prog";
	case obj_kind::link:
		return "anon_inode:bpf_link";
	case obj_kind::btf:
		return "anon_inode:btf";
	case obj_kind::perf_event:
		return "anon_inode:[perf_event]";
	case obj_kind::stats:
		return "anon_inode:bpf-stats";
	}
	return nullptr;
}

void server::forget(int fd) noexcept
{
	try {
		impl_->drop(fd);
	} catch (...) {
	}
}

void server::duplicated(int oldfd, int newfd) noexcept
{
	try {
		auto o = impl_->get(oldfd);
		if (!o)
			return;
		impl_->drop(newfd);
		std::lock_guard g(impl_->mu);
		impl_->owners[newfd] = o;
		if (newfd < impl::FAST_FDS)
			impl_->fast[newfd].store(o.get(), std::memory_order_release);
	} catch (...) {
	}
}

void server::memory_changed() noexcept
{
	user_memory_changed();
}

void server::shutdown() noexcept
{
	try {
		impl_->stop_watches();
		std::unordered_map<int, std::shared_ptr<object>> all;
		{
			std::lock_guard g(impl_->mu);
			for (auto &[fd, o] : impl_->owners)
				if (fd < impl::FAST_FDS)
					impl_->fast[fd].store(nullptr);
			all.swap(impl_->owners);
		}
		publish_removals();
		for (auto &[fd, o] : all)
			wait_for_readers(o.get());
		// Links first, as the kernel's exit closes them before the
		// programs they hold can go; the rest follows the references.
		for (auto it = all.begin(); it != all.end();)
			if (it->second->kind == obj_kind::link ||
			    it->second->kind == obj_kind::perf_event)
				it = all.erase(it);
			else
				++it;
		all.clear();
	} catch (...) {
	}
}

namespace {
constexpr uint32_t MAP_TYPE_RINGBUF = 27;      // BPF_MAP_TYPE_RINGBUF
constexpr uint32_t MAP_TYPE_USER_RINGBUF = 31; // BPF_MAP_TYPE_USER_RINGBUF
} // namespace

int server::impl::segment_fd()
{
	std::lock_guard g(shm_mu);
	if (shm_fd < 0) {
		std::string path = "/dev/shm/" + opts.segment;
		long f = syscall(SYS_openat, AT_FDCWD, path.c_str(),
				 O_RDWR | O_CLOEXEC);
		if (f < 0)
			return -errno;
		shm_fd = int(f);
	}
	return shm_fd;
}

long server::mmap(uint64_t addr, uint64_t len, int prot, int flags, int fd,
		  int64_t off) noexcept
{
	try {
		auto o = impl_->get(fd);
		if (!o)
			return -EBADF;
		if (o->kind == obj_kind::perf_event)
			return impl_->mmap_perf_event(*o, addr, len, prot, flags,
						      off);
		// A program, link or BTF descriptor has no mmap (ENODEV, as a
		// file without f_op->mmap).
		if (o->kind != obj_kind::map || !o->map)
			return -ENODEV;
		if (!(flags & MAP_SHARED))
			return -EINVAL;
		const uint32_t type = o->map->map_type;
		const bool ring = type == MAP_TYPE_RINGBUF ||
				  type == MAP_TYPE_USER_RINGBUF;
		const uint64_t page = uint64_t(sysconf(_SC_PAGESIZE));
		// The kernel's ringbuf_map_mmap_kern / _user: a ring buffer's
		// consumer page is the only writable one, a user ring buffer's
		// the only read-only one (the producer side is user space).
		if (ring && (prot & PROT_WRITE)) {
			if (type == MAP_TYPE_RINGBUF &&
			    (off != 0 || len > page))
				return -EPERM;
			if (type == MAP_TYPE_USER_RINGBUF && off == 0)
				return -EPERM;
		}
		auto r = o->map->mmap_region(!ring && (prot & PROT_WRITE));
		if (!r)
			return -r.error().code;
		uint64_t at = uint64_t(r->data() - static_cast<uint8_t *>(
							   impl_->reg->segment().base()));
		uint64_t total = (r->size() + page - 1) & ~(page - 1);
		// A ring's data pages follow themselves once more in the
		// kernel's mapping (so a record that wraps reads contiguously):
		// its view is two pages and the data twice.
		uint64_t data = ring ? total - 2 * page : 0;
		uint64_t view = total + data;
		if (at % page || off < 0 || uint64_t(off) % page ||
		    uint64_t(off) > view || len > view - uint64_t(off))
			return -EINVAL;
		int sfd = impl_->segment_fd();
		if (sfd < 0)
			return sfd;
		uint64_t first_end = uint64_t(off) + len;
		if (first_end <= total) {
			long a = syscall(SYS_mmap, addr, len, prot, flags, sfd,
					 at + uint64_t(off));
			if (a == -1)
				return -errno;
			user_memory_changed();
			return a;
		}
		// Two pieces: [off, total) of the block, then the data again.
		// Reserve the whole range first so the pieces are adjacent.
		const uint64_t rlen = (len + page - 1) & ~(page - 1);
		long base = syscall(SYS_mmap, addr, rlen, PROT_NONE,
				    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE |
					    (flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)),
				    -1, 0);
		if (base == -1)
			return -errno;
		const int fixed = (flags & ~(MAP_FIXED_NOREPLACE)) | MAP_FIXED;
		uint64_t head = uint64_t(off) < total ? total - uint64_t(off) : 0;
		if (head) {
			long a = syscall(SYS_mmap, base, head, prot, fixed, sfd,
					 at + uint64_t(off));
			if (a == -1) {
				int e = errno;
				syscall(SYS_munmap, base, rlen);
				return -e;
			}
		}
		uint64_t again = uint64_t(off) + head - total; // into the copy
		long a = syscall(SYS_mmap, uint64_t(base) + head, len - head, prot,
				 fixed, sfd, at + 2 * page + again);
		if (a == -1) {
			int e = errno;
			syscall(SYS_munmap, base, rlen);
			return -e;
		}
		user_memory_changed();
		return base;
	} catch (...) {
		return -ENOMEM;
	}
}

void server::forked_child() noexcept
{
	impl_->pid = getpid();
	// The watcher threads stayed in the parent; their state is left
	// alone (never destroyed: a std::thread of another process cannot be
	// joined).
	new (&impl_->watch_mu) std::mutex();
	new std::unordered_map<int, std::shared_ptr<syscall_server::watch>>(
		std::move(impl_->watches));
	impl_->watches.clear();
	impl_->n_watches.store(0);
	reset_slots_in_child();
	// The table's mutex may have been held by a parent thread at fork().
	new (&impl_->mu) std::mutex();
	// Timer threads stayed in the parent too: their runners are never
	// destroyed here (a thread of another process cannot be joined).
	for (auto &[fd, o] : impl_->owners)
		if (o->timer)
			new std::shared_ptr<timer_runner>(std::move(o->timer));
}

long server::bpf(long cmd, uint64_t uattr, uint64_t size) noexcept
{
	try {
		union bpf_attr attr;
		if (int e = check_tail_zero(uattr, sizeof(attr), size))
			return e;
		const size_t copied = size < sizeof(attr) ? size : sizeof(attr);
		if (copy_from_user(&attr, uattr, copied))
			return -EFAULT;
		memset(reinterpret_cast<unsigned char *>(&attr) + copied, 0,
		       sizeof(attr) - copied);
		size_t end = cmd >= 0 && cmd <= INT32_MAX ? last_field_end(int(cmd)) : 0;
		if (!end)
			return -EINVAL;
		if (!tail_clear(attr, end, copied))
			return -EINVAL;
		switch (cmd) {
		case BPF_MAP_CREATE:
		case BPF_MAP_LOOKUP_ELEM:
		case BPF_MAP_UPDATE_ELEM:
		case BPF_MAP_DELETE_ELEM:
		case BPF_MAP_GET_NEXT_KEY:
		case BPF_MAP_LOOKUP_AND_DELETE_ELEM:
		case BPF_MAP_FREEZE:
		case BPF_MAP_LOOKUP_BATCH:
		case BPF_MAP_LOOKUP_AND_DELETE_BATCH:
		case BPF_MAP_UPDATE_BATCH:
		case BPF_MAP_DELETE_BATCH:
			return impl_->map_cmd(int(cmd), attr, uattr);
		case BPF_PROG_LOAD:
		case BPF_PROG_TEST_RUN:
		case BPF_PROG_BIND_MAP:
			return impl_->prog_cmd(int(cmd), attr, uattr);
		case BPF_LINK_CREATE:
		case BPF_LINK_DETACH:
		case BPF_LINK_UPDATE:
		case BPF_RAW_TRACEPOINT_OPEN:
			return impl_->link_cmd(int(cmd), attr, uattr);
		default:
			return impl_->obj_cmd(int(cmd), attr, uattr);
		}
	} catch (const std::bad_alloc &) {
		return -ENOMEM;
	} catch (const std::exception &e) {
		log(server_log, log_level::error, "bpf(%ld): %s", cmd, e.what());
		return -EINVAL;
	} catch (...) {
		return -EINVAL;
	}
}

} // namespace bpftime::syscall_server
