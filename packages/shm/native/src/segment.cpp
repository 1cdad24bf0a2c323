// segment.cpp: create, open and remove the registry's shared-memory segment.
//
// The file is handled with plain POSIX calls (shm_open, fallocate, mmap) so
// that every failure has its own errno and nothing of a foreign file is
// interpreted before our header has been checked; only the part after the
// header is given to Boost.Interprocess.
#include <bpftime/shm/segment.hpp>

#include <boost/interprocess/exceptions.hpp>

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
#include <unistd.h>

namespace bpftime::shm {

struct segment::mapping {
	void *base = MAP_FAILED;
	uint64_t size = 0;
	std::optional<managed_buffer> managed;

	~mapping()
	{
		// The managed buffer object only refers into the mapping; it
		// must go before the memory does.
		managed.reset();
		if (base != MAP_FAILED)
			munmap(base, size);
	}
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
	auto &all = mappings();
	std::lock_guard lock(all.mu);
	std::erase_if(all.by_file,
		      [](const auto &e) { return e.second.expired(); });
	all.by_file[{ st.st_dev, st.st_ino }] = m;
}

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
	remember_mapping(fd.get(), m);
	segment s(std::move(m));
	s.name_ = std::string(name);
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
	managed_buffer &mb = *map_->managed;
	uint64_t size = mb.get_size();
	uint64_t free = mb.get_free_memory();
	return segment_stats{ size, free, size - free,
			      uint64_t(mb.get_num_named_objects()) };
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
