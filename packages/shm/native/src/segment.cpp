// segment.cpp: create, open and remove the registry's shared-memory segment.
//
// The file is handled with plain POSIX calls (shm_open, fallocate, mmap) so
// that every failure has its own errno and nothing of a foreign file is
// interpreted before our header has been checked; only the part after the
// header is given to Boost.Interprocess.
#include <bpftime/shm/segment.hpp>

#include <boost/interprocess/exceptions.hpp>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <map>
#include <mutex>
#include <optional>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <csignal>
#include <unistd.h>

namespace bpftime::shm {

struct segment::mapping {
	void *base = MAP_FAILED;
	uint64_t size = 0;
	// The file mapped (segment::check_file).
	dev_t dev = 0;
	ino_t ino = 0;
	std::optional<managed_buffer> managed;

	~mapping();

	segment_header *header() const
	{
		return static_cast<segment_header *>(base);
	}
};

namespace {

// The mappings this process holds, by the file they map: opening a segment
// that is already mapped here shares that mapping, so a process maps each
// segment once however many registries, Segment objects and addons (they
// link one libbpftime_shm.so) open it. The key cannot be reused while the
// mapping lives, since the mapping keeps the file's inode. Leaked on purpose:
// mappings may outlive static destruction.
struct open_mappings {
	std::mutex mu;
	std::map<std::pair<dev_t, ino_t>, std::weak_ptr<segment::mapping>> by_file;
};

open_mappings &mappings()
{
	static auto *m = new open_mappings;
	return *m;
}

// Records m as the mapping of the file behind fd; expired entries go.
void remember_mapping(int fd, const std::shared_ptr<segment::mapping> &m)
{
	struct stat st;
	if (fstat(fd, &st) != 0)
		return;
	m->dev = st.st_dev;
	m->ino = st.st_ino;
	auto &all = mappings();
	std::lock_guard lock(all.mu);
	std::erase_if(all.by_file,
		      [](const auto &e) { return e.second.expired(); });
	all.by_file[{ st.st_dev, st.st_ino }] = m;
}

// --- the allocator journal ---------------------------------------------------
//
// Boost's rbtree_best_fit changes its free-block tree and block headers in
// many steps under its mutex; a process killed between two of them leaves a
// tree that crashes or loops the next allocation, in every process, for good.
// The journal makes each allocator operation all-or-nothing: when a process
// takes the allocator's mutex (robust_mutex's Boost-facing lock(), through
// boost_lock_hooks) it saves everything an operation can change — the
// allocator's header after its mutex, the size word pair of every block, the
// tree links of every free block — and marks the copy valid; before the
// unlock it marks it invalid. The next holder, told the owner died
// (EOWNERDEAD), finds a valid copy and writes it back: the tree is as it was
// before the interrupted operation. Whatever that operation wrote elsewhere
// lies in blocks that are free again (their contents do not matter) or in
// the block a dead process was freeing (lost, never freed twice).
//
// Cost: a walk of every block at each allocation or free, in the control
// plane (creates, releases, imports) and when a hash map without
// preallocation grows; lookups and updates never take this mutex. A segment
// with more blocks than the journal holds runs that operation without a copy
// (a death then counts in allocator_deaths and the segment is checked).
//
// The layout read here is Boost's (1.74: block_ctrl = SizeHolder + TreeHook,
// 16-byte units); every segment checks it at create and open, and a segment
// where the walk does not end exactly at the end block gets no journal.

namespace journal {

using algo = managed_buffer::memory_algorithm;
using manager_base = boost::interprocess::segment_manager_base<algo>;
constexpr uint64_t UNIT = algo::Alignment;
// The allocator object after its mutex: the tree's header, sizes, counts.
constexpr uint64_t MUTEX_BYTES = sizeof(robust_mutex);
constexpr uint64_t ALGO_BYTES = sizeof(algo);
static_assert(ALGO_BYTES > MUTEX_BYTES && ALGO_BYTES <= 256);
constexpr uint64_t SIZE_HOLDER = 16;
// What Boost may write after a block's size words: the tree node of a free
// block (parent|color, left, right: 24 bytes), cleared over 32 bytes when
// the block is allocated. Saved for every block, allocated or free: a free
// in an undone operation wrote a node into the freed block's contents.
constexpr uint64_t HOOK = 32;
constexpr uint64_t SIZE_MASK = (uint64_t(1) << 62) - 1;
constexpr uint64_t ALLOCATED_BIT = uint64_t(1) << 63;

// Bytes a transaction asked to have put back with its blocks
// (allocator_transaction::also_undo): where they lie, from the allocator,
// and where their copy is in record_bytes.
struct undo_record {
	int64_t off;
	uint32_t len;
	uint32_t at;
};
constexpr uint32_t MAX_RECORDS = 8;
constexpr uint32_t RECORD_BYTES = 1024;

struct shared_journal {
	std::atomic<uint32_t> valid;
	uint32_t blocks;
	// Records in use: written after the record's bytes, so a copy cut off
	// half-way is not in use.
	std::atomic<uint32_t> n_records;
	uint32_t bytes_used;
	// The block being freed (its user address, from the allocator), 0
	// when none: journaled_best_fit::deallocate.
	int64_t freeing;
	undo_record records[MAX_RECORDS];
	uint8_t record_bytes[RECORD_BYTES];
	uint8_t algo_header[256];
	// then: uint64_t size_holders[capacity][2]; uint8_t hooks[capacity][HOOK]
};

uint64_t first_block_offset()
{
	uint64_t extra = sizeof(segment_manager) - sizeof(manager_base);
	return (ALGO_BYTES + extra + UNIT - 1) / UNIT * UNIT;
}

struct registered {
	std::atomic<const void *> mutex{ nullptr };
	char *algo_base = nullptr;
	shared_journal *j = nullptr;
	uint64_t end = 0; // the end block, from algo_base
	uint32_t capacity = 0;
};
constexpr int MAX_REGISTERED = 64;
registered table[MAX_REGISTERED];
std::mutex table_mu;

uint64_t (*holders(registered &r))[2]
{
	return reinterpret_cast<uint64_t(*)[2]>(reinterpret_cast<char *>(r.j) +
						  sizeof(shared_journal));
}
uint8_t (*hooks(registered &r))[HOOK]
{
	return reinterpret_cast<uint8_t(*)[HOOK]>(
		reinterpret_cast<char *>(r.j) + sizeof(shared_journal) +
		r.capacity * 2 * sizeof(uint64_t));
}

// Walks the blocks; with save, copies them into the journal. False when the
// walk leaves the segment, does not end at the end block, or (save) the
// journal is too small.
bool walk(registered &r, bool save)
{
	uint64_t pos = first_block_offset();
	uint32_t n = 0;
	while (pos < r.end) {
		auto *sh = reinterpret_cast<uint64_t *>(r.algo_base + pos);
		uint64_t units = sh[1] & SIZE_MASK;
		if (units == 0 || units > (r.end - pos) / UNIT)
			return false;
		if (save) {
			if (n >= r.capacity)
				return false;
			holders(r)[n][0] = sh[0];
			holders(r)[n][1] = sh[1];
			if (units * UNIT >= SIZE_HOLDER + HOOK)
				memcpy(hooks(r)[n], r.algo_base + pos + SIZE_HOLDER,
				       HOOK);
		}
		n++;
		pos += units * UNIT;
	}
	if (pos != r.end)
		return false;
	if (save) {
		if (n >= r.capacity)
			return false;
		auto *sh = reinterpret_cast<uint64_t *>(r.algo_base + pos);
		holders(r)[n][0] = sh[0];
		holders(r)[n][1] = sh[1];
		r.j->blocks = n + 1;
	}
	return true;
}

// Writes the saved copy back; the walk follows the saved sizes.
void restore(registered &r)
{
	memcpy(r.algo_base + MUTEX_BYTES, r.j->algo_header + MUTEX_BYTES,
	       ALGO_BYTES - MUTEX_BYTES);
	uint64_t pos = first_block_offset();
	const int64_t freeing = r.j->freeing;
	for (uint32_t i = 0; i < r.j->blocks && i < r.capacity && pos <= r.end;
	     i++) {
		auto *sh = reinterpret_cast<uint64_t *>(r.algo_base + pos);
		// The contents of a block that stayed allocated, same size,
		// are its owner's (another process may have written them
		// since); those of a block that was free, or that the undone
		// operation allocated, freed or resized, are Boost's, and so
		// are those of the block being freed (linked into the tree,
		// not yet marked free).
		//
		// The block's contents go back before its size words: this
		// restore may itself be cut off, and the next one tells by
		// those words whether the contents are still to restore. A
		// block whose words were restored first would look untouched
		// and keep the tree node the undone free wrote over its
		// owner's first bytes.
		constexpr uint64_t SHAPE = SIZE_MASK | ALLOCATED_BIT;
		uint64_t saved = holders(r)[i][1];
		bool boosts = !(saved & ALLOCATED_BIT) ||
			      (sh[1] & SHAPE) != (saved & SHAPE) ||
			      pos + SIZE_HOLDER == uint64_t(freeing);
		uint64_t units = saved & SIZE_MASK;
		bool last = pos == r.end;
		bool fits = !last && units != 0 && units <= (r.end - pos) / UNIT;
		if (fits && boosts && units * UNIT >= SIZE_HOLDER + HOOK)
			memcpy(r.algo_base + pos + SIZE_HOLDER, hooks(r)[i], HOOK);
		std::atomic_signal_fence(std::memory_order_seq_cst);
		sh[0] = holders(r)[i][0];
		sh[1] = saved;
		if (!fits)
			break;
		pos += units * UNIT;
	}
	// The transaction's records last: they lie in blocks that are
	// allocated again now, and may overlap the first bytes just put back
	// (which are as old, or older).
	uint32_t n = std::min(r.j->n_records.load(), MAX_RECORDS);
	for (uint32_t i = 0; i < n; i++) {
		const undo_record &u = r.j->records[i];
		if (u.len != 0 && u.len <= RECORD_BYTES &&
		    u.at <= RECORD_BYTES - u.len && u.off > 0 &&
		    uint64_t(u.off) <= r.end && u.len <= r.end - uint64_t(u.off))
			memcpy(r.algo_base + u.off, r.j->record_bytes + u.at,
			       u.len);
	}
}

registered *find(const void *mutex)
{
	for (auto &r : table)
		if (r.mutex.load(std::memory_order_acquire) == mutex)
			return &r;
	return nullptr;
}

bool acquired(const void *mutex, bool recovered, bool outermost) noexcept
{
	registered *r = find(mutex);
	if (!r || !outermost)
		return false;
	bool undone = false;
	if (recovered && r->j->valid.load(std::memory_order_acquire)) {
		restore(*r);
		undone = true;
	}
	r->j->valid.store(0, std::memory_order_release);
	r->j->n_records.store(0);
	r->j->bytes_used = 0;
	r->j->freeing = 0;
	memcpy(r->j->algo_header, r->algo_base, ALGO_BYTES);
	std::atomic_signal_fence(std::memory_order_seq_cst);
	if (walk(*r, true))
		r->j->valid.store(1, std::memory_order_release);
	return undone;
}

void releasing(const void *mutex, bool last) noexcept
{
	if (!last)
		return;
	if (registered *r = find(mutex))
		r->j->valid.store(0, std::memory_order_release);
}

const boost_lock_hooks hooks_table = { acquired, releasing };

// With the allocator's mutex held: addr is the block now being freed (nullptr:
// none).
void note_freeing(const void *mutex, const void *addr) noexcept
{
	registered *r = find(mutex);
	if (!r)
		return;
	const char *p = static_cast<const char *>(addr);
	int64_t off = 0;
	if (p && p > r->algo_base && p < r->algo_base + r->end)
		off = p - r->algo_base;
	std::atomic_signal_fence(std::memory_order_seq_cst);
	std::atomic_ref<int64_t>(r->j->freeing).store(off);
	std::atomic_signal_fence(std::memory_order_seq_cst);
}

// Journal bytes for a segment of this managed size: a block per 4 KiB of it,
// at least 4096 (48 bytes each: about 1.2% of the segment).
uint64_t capacity_for(uint64_t managed)
{
	return std::max<uint64_t>(4096, managed / 4096);
}
uint64_t bytes_for(uint64_t capacity)
{
	return sizeof(shared_journal) + capacity * (2 * sizeof(uint64_t) + HOOK);
}

// Makes the journal known to this process's lock hooks. The allocator's
// mutex is the first thing in the managed buffer.
void enable(segment::mapping &m, segment_header *h, uint64_t managed)
{
	if (h->journal_offset == 0 || h->journal_blocks == 0)
		return;
	uint64_t file = m.size;
	uint64_t off = uint64_t(h->journal_offset);
	if (off < HEADER_SIZE || off > file ||
	    bytes_for(h->journal_blocks) > file - off)
		return;
	registered probe;
	probe.algo_base = static_cast<char *>(m.base) + HEADER_SIZE;
	probe.end = managed / UNIT * UNIT - UNIT;
	probe.capacity = h->journal_blocks;
	probe.j = reinterpret_cast<shared_journal *>(
		static_cast<char *>(m.base) + off);
	std::lock_guard lock(table_mu);
	set_boost_lock_hooks(&hooks_table);
	for (auto &r : table) {
		if (r.mutex.load() != nullptr)
			continue;
		r.algo_base = probe.algo_base;
		r.end = probe.end;
		r.capacity = probe.capacity;
		r.j = probe.j;
		r.mutex.store(probe.algo_base, std::memory_order_release);
		return;
	}
}

void disable(segment::mapping &m)
{
	std::lock_guard lock(table_mu);
	const void *mutex = static_cast<char *>(m.base) + HEADER_SIZE;
	for (auto &r : table)
		if (r.mutex.load() == mutex)
			r.mutex.store(nullptr);
}

// At create: the journal allocated in the segment, if Boost's layout is the
// one this file reads (the walk of the fresh segment ends at its end block).
void create(segment::mapping &m, segment_header *h, uint64_t managed)
{
	registered probe;
	probe.algo_base = static_cast<char *>(m.base) + HEADER_SIZE;
	probe.end = managed / UNIT * UNIT - UNIT;
	if (!walk(probe, false))
		return;
	uint64_t cap = capacity_for(managed);
	void *mem = m.managed->allocate(bytes_for(cap), std::nothrow);
	if (!mem)
		return;
	memset(mem, 0, sizeof(shared_journal));
	h->journal_blocks = uint32_t(cap);
	h->journal_offset = static_cast<char *>(mem) - static_cast<char *>(m.base);
}

} // namespace journal

} // namespace

void journaled_best_fit::deallocate(void *addr)
{
	if (!addr)
		return;
	// The allocator's mutex is the first thing in the allocator (journal);
	// recursive, so Boost's own lock below nests in this one.
	auto *m = reinterpret_cast<robust_recursive_mutex *>(this);
	m->lock();
	journal::note_freeing(m, addr);
	try {
		base::deallocate(addr);
	} catch (...) {
		journal::note_freeing(m, nullptr);
		m->unlock();
		throw;
	}
	journal::note_freeing(m, nullptr);
	m->unlock();
}

segment::mapping::~mapping()
{
	if (base != MAP_FAILED)
		journal::disable(*this);
	// The managed buffer object only refers into the mapping; it must go
	// before the memory does.
	managed.reset();
	if (base != MAP_FAILED)
		munmap(base, size);
}

namespace {

// The segment whose mapping holds the mutex Boost found abandoned counts the
// death in its header (segment_header::allocator_deaths).
void note_allocator_death(const void *mutex) noexcept
{
	auto &all = mappings();
	std::lock_guard lock(all.mu);
	auto at = reinterpret_cast<uintptr_t>(mutex);
	for (auto &[file, weak] : all.by_file) {
		auto m = weak.lock();
		if (!m)
			continue;
		auto start = reinterpret_cast<uintptr_t>(m->base);
		if (at >= start && at - start < m->size) {
			m->header()->allocator_deaths.fetch_add(1);
			return;
		}
	}
}

[[maybe_unused]] const bool hook_installed = [] {
	set_boost_owner_died_hook(note_allocator_death);
	return true;
}();

std::shared_ptr<segment::mapping> mapping_of(const struct stat &st)
{
	auto &all = mappings();
	std::lock_guard lock(all.mu);
	auto it = all.by_file.find({ st.st_dev, st.st_ino });
	return it == all.by_file.end() ? nullptr : it->second.lock();
}

std::string shm_path(std::string_view name)
{
	return "/" + std::string(name);
}

std::string describe(std::string_view name)
{
	return "segment '" + std::string(name) + "'";
}

class fd_guard {
    public:
	explicit fd_guard(int fd) : fd_(fd)
	{
	}
	~fd_guard()
	{
		if (fd_ >= 0)
			close(fd_);
	}
	int get() const
	{
		return fd_;
	}

    private:
	int fd_;
};

uint64_t realtime_ns()
{
	timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return uint64_t(ts.tv_sec) * 1000000000ULL + uint64_t(ts.tv_nsec);
}

status validate_size(uint64_t size)
{
	if (size < MIN_SEGMENT_SIZE || size > MAX_SEGMENT_SIZE)
		return fail(EINVAL,
			    "segment size " + std::to_string(size) +
				    " is outside [" +
				    std::to_string(MIN_SEGMENT_SIZE) + ", " +
				    std::to_string(MAX_SEGMENT_SIZE) + "] bytes");
	return {};
}

// Checks our header before anything else of the file is trusted.
status check_header(std::string_view name, const segment_header &h,
		    uint64_t file_size)
{
	const auto *raw = reinterpret_cast<const unsigned char *>(&h);
	if (h.magic == 0) {
		bool all_zero = true;
		for (size_t i = 0; i < 64 && all_zero; i++)
			all_zero = raw[i] == 0;
		if (all_zero)
			return fail(EAGAIN, describe(name) +
						    " is being created; try again");
	}
	if (h.magic != SEGMENT_MAGIC) {
		char buf[32];
		snprintf(buf, sizeof(buf), "0x%016llx",
			 (unsigned long long)h.magic);
		return fail(EBADMSG, describe(name) +
					     " is not a bpftime segment (magic " +
					     buf + ")");
	}
	if (h.layout_version != LAYOUT_VERSION)
		return fail(EPROTONOSUPPORT,
			    describe(name) + " has layout version " +
				    std::to_string(h.layout_version) +
				    ", this bpftime uses " +
				    std::to_string(LAYOUT_VERSION) +
				    "; remove it or use a matching bpftime");
	if (h.header_size != HEADER_SIZE || h.segment_size != file_size ||
	    file_size <= HEADER_SIZE)
		return fail(EBADMSG,
			    describe(name) + " is corrupt: header says " +
				    std::to_string(h.segment_size) +
				    " bytes, file has " +
				    std::to_string(file_size));
	if (h.state.load(std::memory_order_acquire) !=
	    uint32_t(segment_state::ready))
		return fail(EAGAIN, describe(name) +
					    " is being created; try again");
	return {};
}

} // namespace

status validate_name(std::string_view name)
{
	if (name.empty())
		return fail(EINVAL, "segment name is empty");
	if (name.size() > 255)
		return fail(EINVAL, "segment name is longer than 255 bytes");
	for (char c : name) {
		if (c == '/' || c == '\0')
			return fail(EINVAL, "segment name '" +
						    std::string(name) +
						    "' contains '/' or NUL");
	}
	if (name == "." || name == "..")
		return fail(EINVAL, "segment name '" + std::string(name) +
					    "' is not a file name");
	return {};
}

result<segment_options> options_from_env()
{
	segment_options opts;
	if (const char *name = getenv("BPFTIME_GLOBAL_SHM_NAME");
	    name && *name) {
		BPFTIME_TRY(validate_name(name));
		opts.name = name;
	}
	if (const char *mb = getenv("BPFTIME_SHM_MEMORY_MB"); mb && *mb) {
		uint64_t v = 0;
		std::string_view s(mb);
		auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
		if (ec != std::errc() || end != s.data() + s.size() || v == 0 ||
		    v > (MAX_SEGMENT_SIZE >> 20))
			return fail(EINVAL,
				    "BPFTIME_SHM_MEMORY_MB='" + std::string(s) +
					    "' is not a size in MiB between 1 and " +
					    std::to_string(MAX_SEGMENT_SIZE >> 20));
		opts.size = v << 20;
	}
	return opts;
}

segment::segment(std::shared_ptr<mapping> m) noexcept : map_(std::move(m))
{
}
segment::segment(segment &&) noexcept = default;
segment &segment::operator=(segment &&) noexcept = default;
segment::~segment() = default;

result<segment> segment::create(const segment_options &opts)
{
	BPFTIME_TRY(validate_name(opts.name));
	BPFTIME_TRY(validate_size(opts.size));
	if (opts.mode & ~0777u)
		return fail(EINVAL, describe(opts.name) + ": mode " +
					    std::to_string(opts.mode) +
					    " has bits outside 0777");

	struct statvfs vfs;
	if (statvfs("/dev/shm", &vfs) == 0) {
		uint64_t avail = uint64_t(vfs.f_bavail) * vfs.f_frsize;
		if (avail < opts.size)
			return fail(ENOSPC,
				    describe(opts.name) + ": " +
					    std::to_string(opts.size) +
					    " bytes requested, /dev/shm has " +
					    std::to_string(avail) + " free");
	}

	std::string path = shm_path(opts.name);
	fd_guard fd(shm_open(path.c_str(), O_CREAT | O_EXCL | O_RDWR,
			     opts.mode));
	if (fd.get() < 0) {
		int e = errno;
		return fail(e, describe(opts.name) + ": create: " + strerror(e));
	}
	auto undo = [&](int e, const std::string &what) -> result<segment> {
		shm_unlink(path.c_str());
		return fail(e, describe(opts.name) + ": " + what + ": " +
				       strerror(e));
	};
	// shm_open applies the umask; the caller's mode is what they asked for.
	if (fchmod(fd.get(), opts.mode) != 0)
		return undo(errno, "chmod");
	if (ftruncate(fd.get(), off_t(opts.size)) != 0)
		return undo(errno, "resize");
	// Reserve every page now: a tmpfs that fills up later would deliver
	// SIGBUS to whichever process touches the page, possibly a target.
	if (int e = posix_fallocate(fd.get(), 0, off_t(opts.size)); e != 0)
		return undo(e, "reserve " + std::to_string(opts.size) + " bytes");

	auto m = std::make_shared<mapping>();
	m->size = opts.size;
	m->base = mmap(nullptr, opts.size, PROT_READ | PROT_WRITE, MAP_SHARED,
		       fd.get(), 0);
	if (m->base == MAP_FAILED)
		return undo(errno, "map");

	segment_header *h = m->header();
	h->magic = SEGMENT_MAGIC;
	h->layout_version = LAYOUT_VERSION;
	h->header_size = uint32_t(HEADER_SIZE);
	h->segment_size = opts.size;
	h->creator_pid = int32_t(getpid());
	h->created_at_ns = realtime_ns();
	h->state.store(uint32_t(segment_state::initialising),
		       std::memory_order_relaxed);
	try {
		m->managed.emplace(boost::interprocess::create_only,
				   static_cast<char *>(m->base) + HEADER_SIZE,
				   opts.size - HEADER_SIZE);
	} catch (const std::exception &e) {
		shm_unlink(path.c_str());
		return fail(ENOMEM, describe(opts.name) +
					    ": initialise allocator: " + e.what());
	}
	journal::create(*m, h, opts.size - HEADER_SIZE);
	journal::enable(*m, h, opts.size - HEADER_SIZE);
	h->state.store(uint32_t(segment_state::ready), std::memory_order_release);
	remember_mapping(fd.get(), m);

	segment s(std::move(m));
	s.name_ = opts.name;
	return s;
}

result<segment> segment::open(std::string_view name)
{
	BPFTIME_TRY(validate_name(name));
	std::string path = shm_path(name);
	fd_guard fd(shm_open(path.c_str(), O_RDWR, 0));
	if (fd.get() < 0) {
		int e = errno;
		if (e == ENOENT)
			return fail(ENOENT, describe(name) +
						    " does not exist (no bpftime "
						    "registry has been created)");
		return fail(e, describe(name) + ": open: " + strerror(e));
	}
	struct stat st;
	if (fstat(fd.get(), &st) != 0) {
		int e = errno;
		return fail(e, describe(name) + ": stat: " + strerror(e));
	}
	uint64_t file_size = uint64_t(st.st_size);
	if (auto shared = mapping_of(st); shared && shared->size == file_size) {
		segment s(std::move(shared));
		s.name_ = std::string(name);
		return s;
	}
	if (file_size < HEADER_SIZE) {
		if (file_size == 0)
			return fail(EAGAIN, describe(name) +
						    " is empty: being created, "
						    "or not a bpftime segment");
		return fail(EBADMSG, describe(name) +
					     " is not a bpftime segment (" +
					     std::to_string(file_size) +
					     " bytes, shorter than its header)");
	}

	auto m = std::make_shared<mapping>();
	m->size = file_size;
	m->base = mmap(nullptr, file_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		       fd.get(), 0);
	if (m->base == MAP_FAILED) {
		int e = errno;
		return fail(e, describe(name) + ": map: " + strerror(e));
	}
	BPFTIME_TRY(check_header(name, *m->header(), file_size));
	try {
		m->managed.emplace(boost::interprocess::open_only,
				   static_cast<char *>(m->base) + HEADER_SIZE,
				   file_size - HEADER_SIZE);
	} catch (const std::exception &e) {
		return fail(EBADMSG, describe(name) +
					     ": open allocator: " + e.what());
	}
	journal::enable(*m, m->header(), file_size - HEADER_SIZE);
	remember_mapping(fd.get(), m);
	segment s(std::move(m));
	s.name_ = std::string(name);
	if (s.header().allocator_deaths.load() != 0)
		BPFTIME_TRY(s.check_allocator());
	return s;
}

result<segment> segment::open_or_create(const segment_options &opts)
{
	// A creator that loses the O_EXCL race opens instead; an opener that
	// finds the file half-built waits for its creator to finish.
	for (int attempt = 0; attempt < 200; attempt++) {
		auto opened = open(opts.name);
		if (opened || (opened.error().code != ENOENT &&
			       opened.error().code != EAGAIN))
			return opened;
		if (opened.error().code == ENOENT) {
			auto created = create(opts);
			if (created || created.error().code != EEXIST)
				return created;
		} else {
			usleep(5000);
		}
	}
	return fail(EAGAIN, describe(opts.name) +
				    " stayed in creation for a second: its "
				    "creator may have died; remove it");
}

status segment::remove(std::string_view name)
{
	BPFTIME_TRY(validate_name(name));
	std::string path = shm_path(name);
	if (shm_unlink(path.c_str()) != 0) {
		int e = errno;
		return fail(e, describe(name) + ": remove: " + strerror(e));
	}
	return {};
}

bool segment::exists(std::string_view name)
{
	if (!validate_name(name))
		return false;
	struct stat st;
	return stat(("/dev/shm" + shm_path(name)).c_str(), &st) == 0;
}

const std::string &segment::name() const noexcept
{
	return name_;
}

const segment_header &segment::header() const noexcept
{
	return *map_->header();
}

segment_info segment::info() const noexcept
{
	const segment_header &h = header();
	return segment_info{ name_, h.layout_version, h.segment_size,
			     h.creator_pid, h.created_at_ns };
}

segment_stats segment::stats() const noexcept
{
	// Under the allocator's lock: an allocation that a dead process left
	// for the journal to undo is undone first.
	std::optional<allocator_transaction> txn;
	try {
		txn.emplace(*this);
	} catch (const std::exception &) {
	}
	managed_buffer &mb = *map_->managed;
	uint64_t size = mb.get_size();
	uint64_t free = mb.get_free_memory();
	return segment_stats{ size, free, size - free,
			      uint64_t(mb.get_num_named_objects()) };
}

namespace {

// In the child of check_allocator(), on its private copy: exit 0 when the
// allocator holds together. Only the segment is touched (no malloc: another
// thread of the parent may have held its lock at the fork).
[[noreturn]] void check_allocator_child(managed_buffer &mb)
{
	if (!mb.check_sanity())
		_exit(3);
	segment_manager *mgr = mb.get_segment_manager();
	const uint64_t free_before = mb.get_free_memory();
	// Every size class, smallest first, until the segment is full: walks
	// and rebalances the whole free-block tree and splits and merges the
	// blocks next to every free one.
	constexpr int MAX_BLOCKS = 4096;
	static void *blocks[MAX_BLOCKS];
	int n = 0;
	for (uint64_t size = 16; n < MAX_BLOCKS; size = size < (1u << 20) ? size * 2 : 16) {
		void *p = mgr->allocate(size, std::nothrow);
		if (!p) {
			if (size == 16)
				break;
			continue;
		}
		blocks[n++] = p;
	}
	for (int i = 0; i < n; i += 2)
		mgr->deallocate(blocks[i]);
	for (int i = 1; i < n; i += 2)
		mgr->deallocate(blocks[i]);
	if (mb.get_free_memory() != free_before || !mb.check_sanity())
		_exit(4);
	_exit(0);
}

} // namespace

status segment::check_allocator() const noexcept
{
	segment_header *h = map_->header();
	uint32_t deaths = h->allocator_deaths.load();
	if (deaths == 0)
		return {};
	std::string path = shm_path(name_);
	int fd = shm_open(path.c_str(), O_RDONLY, 0);
	if (fd < 0) {
		int e = errno;
		return fail(e, describe(name_) + ": check allocator: open: " +
				       strerror(e));
	}
	// A raw fork: no atfork handlers of whatever process this is (a
	// target under the agent has its own).
	pid_t pid = pid_t(syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0));
	if (pid == 0) {
		// Its lock may have been held by another thread at the fork.
		set_boost_owner_died_hook(nullptr);
		// Over the shared mapping, the same file copy-on-write: what
		// the check allocates never reaches the segment.
		void *p = mmap(map_->base, map_->size, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_FIXED, fd, 0);
		if (p != map_->base)
			_exit(2);
		alarm(2);
		check_allocator_child(*map_->managed);
	}
	close(fd);
	if (pid < 0) {
		int e = errno;
		return fail(e, describe(name_) + ": check allocator: fork: " +
				       strerror(e));
	}
	int status = 0;
	bool done = false;
	for (int waited_ms = 0; waited_ms < 3000; waited_ms++) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid) {
			done = true;
			break;
		}
		if (r < 0 && errno != EINTR)
			break;
		usleep(1000);
	}
	if (!done) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
	}
	if (done && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		// Deaths counted meanwhile stay for the next check.
		h->allocator_deaths.compare_exchange_strong(deaths, 0);
		return {};
	}
	std::string why = !done ? "its check did not finish within 3 s" :
			  WIFSIGNALED(status) ?
				  std::string("its check crashed (") +
					  strsignal(WTERMSIG(status)) + ")" :
			  WEXITSTATUS(status) == 3 ? "its free-block tree is inconsistent" :
			  WEXITSTATUS(status) == 4 ? "its free space does not add up" :
						     "its check could not run (status " +
						     std::to_string(WEXITSTATUS(status)) + ")";
	return fail(EBADMSG, describe(name_) + ": " + std::to_string(deaths) +
				     " process(es) died inside its allocator and "
				     "left it damaged: " +
				     why + "; remove the segment");
}

// The allocator's mutex is the first thing in the managed buffer (journal).
segment::allocator_transaction::allocator_transaction(const segment &s)
	: m_(reinterpret_cast<robust_recursive_mutex *>(
		  static_cast<char *>(s.base()) + HEADER_SIZE))
{
	m_->lock();
}

segment::allocator_transaction::~allocator_transaction()
{
	m_->unlock();
}

segment::allocator_transaction::allocator_transaction(segment_manager *mgr)
	: m_(reinterpret_cast<robust_recursive_mutex *>(mgr))
{
	m_->lock();
}

bool segment::allocator_transaction::also_undo(const void *record,
					       size_t len) noexcept
{
	journal::registered *r = journal::find(m_);
	if (!r || !r->j->valid.load(std::memory_order_acquire))
		return false;
	journal::shared_journal &j = *r->j;
	uint32_t n = j.n_records.load();
	if (n >= journal::MAX_RECORDS || len == 0 ||
	    len > journal::RECORD_BYTES - j.bytes_used)
		return false;
	const char *p = static_cast<const char *>(record);
	if (p <= r->algo_base || p > r->algo_base + r->end ||
	    len > uint64_t(r->algo_base + r->end - p))
		return false;
	journal::undo_record &u = j.records[n];
	u.off = p - r->algo_base;
	u.len = uint32_t(len);
	u.at = j.bytes_used;
	memcpy(j.record_bytes + u.at, p, len);
	j.bytes_used += uint32_t(len);
	std::atomic_signal_fence(std::memory_order_seq_cst);
	j.n_records.store(n + 1);
	return true;
}

bool segment::allocator_transaction::also_undo_block(const void *block,
						     size_t max_len) noexcept
{
	journal::registered *r = journal::find(m_);
	if (!r)
		return false;
	// The allocated block's size words stand right before it.
	const char *p = static_cast<const char *>(block);
	if (p < r->algo_base + journal::first_block_offset() +
			journal::SIZE_HOLDER ||
	    p >= r->algo_base + r->end)
		return false;
	const auto *sh = reinterpret_cast<const uint64_t *>(
		p - journal::SIZE_HOLDER);
	uint64_t units = sh[1] & journal::SIZE_MASK;
	if (!(sh[1] & journal::ALLOCATED_BIT) || units == 0 ||
	    units > uint64_t(r->algo_base + r->end - p) / journal::UNIT + 1)
		return false;
	uint64_t len = units * journal::UNIT - journal::SIZE_HOLDER;
	return also_undo(block, std::min<uint64_t>(len, max_len));
}

bool same_mapping(const void *anchor, const void *p, uint64_t len) noexcept
{
	auto &all = mappings();
	std::lock_guard lock(all.mu);
	auto a = reinterpret_cast<uintptr_t>(anchor);
	auto at = reinterpret_cast<uintptr_t>(p);
	for (auto &[file, weak] : all.by_file) {
		auto m = weak.lock();
		if (!m)
			continue;
		auto start = reinterpret_cast<uintptr_t>(m->base);
		if (a < start || a - start >= m->size)
			continue;
		return at >= start && len <= m->size && at - start <= m->size - len;
	}
	return false;
}

status segment::check_file() const noexcept
{
	// shm_open's names live in /dev/shm (glibc).
	std::string path = "/dev/shm/" + name_;
	struct stat st;
	if (stat(path.c_str(), &st) != 0) {
		if (errno == ENOENT)
			return fail(EIDRM, describe(name_) + ": its file was removed");
		return fail(errno, describe(name_) + ": stat: " + strerror(errno));
	}
	if (map_->ino != 0 &&
	    (st.st_dev != map_->dev || st.st_ino != map_->ino))
		return fail(ESTALE, describe(name_) +
					    ": its file was replaced by another");
	if (uint64_t(st.st_size) < map_->size)
		return fail(EBADMSG, describe(name_) + ": its file was truncated to " +
					     std::to_string(st.st_size) + " bytes (" +
					     std::to_string(map_->size) + " mapped)");
	return {};
}

segment_manager *segment::manager() const noexcept
{
	return map_->managed->get_segment_manager();
}

bool segment::contains(const void *p, uint64_t len) const noexcept
{
	auto start = reinterpret_cast<uintptr_t>(map_->base);
	auto addr = reinterpret_cast<uintptr_t>(p);
	return addr >= start && len <= map_->size &&
	       addr - start <= map_->size - len;
}

void *segment::base() const noexcept
{
	return map_->base;
}

std::shared_ptr<void> segment::keep_alive() const noexcept
{
	return map_;
}

} // namespace bpftime::shm
