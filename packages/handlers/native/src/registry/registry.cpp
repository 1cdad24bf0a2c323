// registry.cpp: the handler table in shared memory (handler.hpp) and the
// creation, release and description of handlers.
//
// Every mutation runs under registry_shared::mutex, a robust process-shared
// mutex. A creator builds the handler object (and, for a map, the map state)
// while the slot is still empty, recording what it built in the pending
// record, and publishes the slot last with one release store of its word. A
// process killed half-way leaves no half-made handler visible: the next
// holder of the mutex is told (lock_state::recovered) and frees what the
// pending record names (recover()).
#include "prog/helper_args.hpp"
#include "registry/records.hpp"
#include "registry/registry_impl.hpp"

#include <bpftime/handlers/map_ops.hpp>

#include <boost/interprocess/creation_tags.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <limits.h>
#include <fcntl.h>
#include <optional>
#include <unistd.h>

namespace bip = boost::interprocess;

namespace bpftime::handlers {

std::string errno_name(int e)
{
	if (e == 524)
		return "ENOTSUPP";
	if (const char *n = strerrorname_np(e))
		return n;
	return "E" + std::to_string(e);
}

std::string_view kind_name(handler_kind k) noexcept
{
	switch (k) {
	case handler_kind::empty:
		return "empty";
	case handler_kind::map:
		return "map";
	case handler_kind::prog:
		return "prog";
	case handler_kind::link:
		return "link";
	case handler_kind::perf_event:
		return "perf_event";
	case handler_kind::btf:
		return "btf";
	}
	return "unknown";
}

status check_obj_name(std::string_view what, std::string_view name)
{
	if (name.size() >= BPF_OBJ_NAME_LEN)
		return fail(EINVAL, std::string(what) + " name '" +
					    std::string(name) + "' is longer than " +
					    std::to_string(BPF_OBJ_NAME_LEN - 1) +
					    " bytes");
	for (char c : name) {
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9') || c == '_' || c == '.';
		if (!ok)
			return fail(EINVAL,
				    std::string(what) + " name '" +
					    std::string(name) +
					    "': only letters, digits, '_' and '.' "
					    "are allowed");
	}
	return {};
}

namespace {

template <class T> struct kind_of_type;
#define BPFTIME_KIND_OF_TYPE(kind, spec, handler, FIELDS)                      \
	template <> struct kind_of_type<handler> {                             \
		static constexpr handler_kind value = handler_kind::kind;      \
	};
BPFTIME_HANDLER_KINDS(BPFTIME_KIND_OF_TYPE)
#undef BPFTIME_KIND_OF_TYPE

template <class T> struct spec_of;
#define BPFTIME_SPEC_OF(kind, spec, handler, FIELDS)                           \
	template <> struct spec_of<handler> {                                  \
		using type = spec;                                             \
	};
BPFTIME_HANDLER_KINDS(BPFTIME_SPEC_OF)
#undef BPFTIME_SPEC_OF

std::string id_text(uint32_t id)
{
	return "id " + std::to_string(id);
}

std::string name_of(const char (&n)[16])
{
	return std::string(n, strnlen(n, sizeof(n)));
}

// Builds an empty handler_object of type T in the segment (its containers
// on the segment's allocator, everything else zero); nullptr when the
// segment is full.
template <class T>
handler_object *make_object(shm::segment_manager *mgr) noexcept
{
	try {
		auto make = mgr->construct<handler_object>(bip::anonymous_instance,
							   std::nothrow);
		if constexpr (std::is_constructible_v<T, const shm::allocator<char> &>)
			return make(handler_object{ handler_variant(
				std::in_place_type<T>, shm::allocator<char>(mgr)) });
		else
			return make(handler_object{
				handler_variant(std::in_place_type<T>, T{}) });
	} catch (const std::exception &) {
		return nullptr;
	}
}

void destroy_object(shm::segment_manager *mgr, handler_object *obj) noexcept
{
	try {
		mgr->destroy_ptr(obj);
	} catch (const std::exception &) {
		// The allocator's own lock failed: leak rather than crash.
	}
}

// The start time of process pid (field 22 of /proc/<pid>/stat, clock ticks
// since boot); 0 when it cannot be read (no such process, another pid
// namespace).
uint64_t process_start_time(int32_t pid) noexcept
{
	char path[40];
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	int fd = ::open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	char buf[1024];
	ssize_t n = ::read(fd, buf, sizeof(buf) - 1);
	::close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	// The command name may hold spaces and parentheses: fields count from
	// the last ')', which ends it (field 2); field 22 is 20 fields on.
	const char *p = strrchr(buf, ')');
	if (!p)
		return 0;
	for (int field = 2; field < 22; field++) {
		p = strchr(p + 1, ' ');
		if (!p)
			return 0;
	}
	return strtoull(p + 1, nullptr, 10);
}

// This process as an owner; the pid is read each time (a fork is another
// process).
handler_owner self_owner() noexcept
{
	static std::atomic<int32_t> cached_pid{ 0 };
	static std::atomic<uint64_t> cached_start{ 0 };
	int32_t pid = getpid();
	if (cached_pid.load() != pid) {
		cached_start.store(process_start_time(pid));
		cached_pid.store(pid);
	}
	return handler_owner{ pid, 0, cached_start.load() };
}

// Whether the owner still runs: its pid exists with the same start time.
// Unknown owners (pid 0, or a start time that could not be read when the
// handler was made) count as alive: nothing is released on a guess.
bool owner_alive(const handler_owner &o) noexcept
{
	if (o.pid <= 0)
		return true;
	if (kill(o.pid, 0) != 0 && errno == ESRCH)
		return false;
	if (o.start_time == 0)
		return true;
	uint64_t now = process_start_time(o.pid);
	return now == 0 || now == o.start_time;
}

// Numbers loads across every registry object of this process.
std::atomic<uint32_t> next_load_serial{ 0 };

// How much of a map state's first block a release journals (free_released):
// the types' states are smaller (a hash map's is 152 bytes).
constexpr size_t MAX_UNDO_STATE = 512;

constexpr uint8_t LDDW = vm::BPF_LD | vm::BPF_IMM | vm::BPF_DW;
constexpr uint8_t MAX_NAME = BPF_OBJ_NAME_LEN;

} // namespace

// --- locking and recovery ------------------------------------------------

registry::impl::lock_guard::~lock_guard()
{
	if (r_)
		(void)r_->shared->mutex.unlock_checked();
}

namespace {

// BPFTIME_LOCK_TIMEOUT_MS, 10 s by default: how long an opener waits for the
// registry mutex. A target must not hang before its main because another
// process holds it for ever or its lock word is damaged: it gives up and runs
// unprobed.
uint64_t lock_timeout_ns()
{
	static const uint64_t ns = [] {
		uint64_t ms = 10000;
		if (const char *v = getenv("BPFTIME_LOCK_TIMEOUT_MS"); v && *v) {
			std::string_view t(v);
			uint64_t n = 0;
			auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), n);
			if (ec == std::errc() && end == t.data() + t.size() && n > 0 &&
			    n <= 3600000)
				ms = n;
		}
		return ms * 1000000;
	}();
	return ns;
}

} // namespace

result<registry::impl::lock_guard> registry::impl::lock()
{
	auto st = shared->mutex.lock_for(lock_timeout_ns());
	if (!st && st.error().code == ETIMEDOUT)
		return fail(ETIMEDOUT,
			    "registry: lock: not taken within " +
				    std::to_string(lock_timeout_ns() / 1000000) +
				    " ms (BPFTIME_LOCK_TIMEOUT_MS): another "
				    "process holds it, or its lock word is damaged");
	if (!st)
		return fail(st.error().code,
			    "registry: lock: " + st.error().message);
	lock_guard g(*this);
	// A process that died inside the allocator may have left its tree
	// broken: nothing is allocated or freed until a check says it is not.
	if (seg.header().allocator_deaths.load(std::memory_order_relaxed) != 0)
		if (status ok = seg.check_allocator(); !ok)
			return fail(ok.error().code,
				    "registry: " + ok.error().message);
	if (*st == shm::lock_state::recovered)
		recover();
	return g;
}

// The pending record is written so that a process killed at any instruction
// leaves one that recover() can act on: the fields before op (begin), op
// before the fields (end), each store single and in program order (a killed
// process's completed stores are all in the shared memory; only the
// compiler's order has to be pinned).
void registry::impl::begin_pending(pending_op op, uint32_t id,
				   uint32_t map_type) noexcept
{
	pending_record &p = shared->pending;
	std::atomic_ref<int64_t>(p.state).store(0);
	std::atomic_ref<int64_t>(p.object).store(0);
	std::atomic_ref<uint32_t>(p.stage).store(0);
	std::atomic_ref<uint32_t>(p.map_type).store(map_type);
	std::atomic_ref<uint32_t>(p.id).store(id);
	std::atomic_ref<uint32_t>(p.op).store(uint32_t(op));
}

void registry::impl::note_pending(int64_t object, int64_t state,
				  uint32_t stage) noexcept
{
	pending_record &p = shared->pending;
	std::atomic_ref<int64_t>(p.object).store(object);
	std::atomic_ref<int64_t>(p.state).store(state);
	std::atomic_ref<uint32_t>(p.stage).store(stage);
}

void registry::impl::end_pending() noexcept
{
	pending_record &p = shared->pending;
	std::atomic_ref<uint32_t>(p.op).store(uint32_t(pending_op::none));
	std::atomic_ref<int64_t>(p.state).store(0);
	std::atomic_ref<int64_t>(p.object).store(0);
	std::atomic_ref<uint32_t>(p.stage).store(0);
}

bool registry::impl::in_segment(int64_t off, uint64_t len) const noexcept
{
	return off > 0 && seg.contains(base() + off, len);
}

bool registry::impl::object_ok(int64_t off) const noexcept
{
	if (!in_segment(off, sizeof(handler_object)) ||
	    off % alignof(handler_object) != 0)
		return false;
	// A damaged variant index would send its destructor anywhere.
	auto *obj = at<handler_object>(off);
	return obj->value.index() < std::variant_size_v<handler_variant> ||
	       obj->value.valueless_by_exception();
}

// The frees of a release, all or nothing: one allocator transaction, whose
// last write clears the pending record. A releaser killed inside it has its
// frees and the record undone together by the allocator's journal (the blocks
// and their headers as they were, the record naming them), so recover()
// frees them again. The destructors write into what they free before freeing
// it (a variant forgets its alternative, a map state loses its magic): the
// handler object and the map state's block go into the journal too, so that
// the second run finds them as the first did. Blocks freed through them
// (containers, a map's buckets) are only read to find what to free.
// Without a journal, a death between the record's clearing and the commit
// loses the blocks, never frees them twice.
void registry::impl::free_released(const map_ops *ops, int64_t state_off,
				   int64_t obj_off) noexcept
{
	try {
		shm::segment::allocator_transaction txn(seg);
		(void)txn.also_undo(&shared->pending, sizeof(pending_record));
		if (obj_off)
			(void)txn.also_undo(at<handler_object>(obj_off),
					    sizeof(handler_object));
		if (ops && state_off)
			(void)txn.also_undo_block(at<void>(state_off),
						  MAX_UNDO_STATE);
		if (ops && state_off)
			ops->destroy(mgr, at<void>(state_off));
		if (obj_off)
			destroy_object(mgr, at<handler_object>(obj_off));
		end_pending();
	} catch (const std::exception &) {
		// The allocator's lock failed: leave the blocks, and the
		// record for the next holder.
	}
}

// Called with the mutex held after its previous holder died. Undoes a
// half-done create, finishes a half-done release.
//
// Crash-safe and idempotent: the frees are one allocator transaction
// (free_released), so a recoverer killed part-way leaves the record for the
// next one and nothing is freed twice. Every offset is checked against the
// segment before use: what fails the check is left allocated.
//
// Map state can only be freed when this process has the implementation of its
// type; otherwise it stays allocated, which is harmless.
void registry::impl::recover() noexcept
{
	// The allocator's lock first: a transaction the dead holder left
	// unfinished is undone now, its pending record with it, before the
	// record is read (it may name blocks that the undo frees).
	std::optional<shm::segment::allocator_transaction> txn;
	try {
		txn.emplace(seg);
	} catch (const std::exception &) {
		// Without the allocator's lock nothing can be freed: the record
		// stays for the next holder.
		return;
	}
	pending_record &p = shared->pending;
	auto op = pending_op(std::atomic_ref<uint32_t>(p.op).load());
	recount();
	if (op == pending_op::none)
		return;
	bool published = false;
	if (p.id < shared->capacity) {
		// A creator that died after publishing, before clearing the
		// record, made a complete handler: it stays. A releaser that
		// died before emptying the slot released nothing.
		uint64_t w = word_at(p.id);
		published = word_kind(w) != handler_kind::empty &&
			    slots[p.id].object.load() == p.object;
	}
	// A create_txn's allocations were undone by the transaction above.
	if (!published && (op == pending_op::create || op == pending_op::release)) {
		const map_ops *ops = nullptr;
		int64_t st = p.state;
		if (st != 0 && in_segment(st, sizeof(map_state_header))) {
			ops = find_map_ops(p.map_type);
			if (ops && !check_map_state(ops, at<void>(st), "recover"))
				ops = nullptr;
		}
		int64_t obj = p.object;
		if (obj != 0 && !object_ok(obj))
			obj = 0;
		free_released(ops, ops ? st : 0, obj);
	}
	end_pending();
	shared->change_counter.fetch_add(1);
	recount();
}

// The count of live handlers from the slots: a holder killed between its
// slot store and its count would leave it off by one for good.
void registry::impl::recount() noexcept
{
	uint32_t n = 0;
	for (uint32_t i = 0; i < shared->capacity; i++)
		n += word_kind(word_at(i)) != handler_kind::empty;
	shared->live.store(n);
}

// --- lookup ----------------------------------------------------------------

namespace {

// The variant alternative of each kind (handler_variant's order).
size_t variant_index_of(handler_kind k)
{
	switch (k) {
	case handler_kind::map:
		return 0;
	case handler_kind::prog:
		return 1;
	case handler_kind::link:
		return 2;
	case handler_kind::perf_event:
		return 3;
	default:
		return 4;
	}
}

} // namespace

// Everything of the handler object at off that a reader follows lies in the
// segment: the object, the alternative its slot's kind names, each
// container's elements, a map's state header. A damaged segment is refused
// here, before a pointer read from it is followed (issue 17, item 3).
bool registry::impl::object_whole(int64_t off, handler_kind k) const noexcept
{
	if (!object_ok(off))
		return false;
	const handler_object &o = *at<handler_object>(off);
	if (o.value.valueless_by_exception() ||
	    o.value.index() != variant_index_of(k))
		return false;
	auto fits = [&](const auto &c) {
		using E = typename std::decay_t<decltype(c)>::value_type;
		uint64_t n = c.size();
		if (n == 0)
			return true;
		if (n > seg.header().segment_size / sizeof(E))
			return false;
		return seg.contains(&*c.begin(), n * sizeof(E));
	};
	switch (k) {
	case handler_kind::map: {
		const auto &m = std::get<map_handler>(o.value);
		return in_segment(m.state_offset, sizeof(map_state_header)) &&
		       m.state_offset % alignof(map_state_header) == 0;
	}
	case handler_kind::prog: {
		const auto &p = std::get<prog_handler>(o.value);
		return fits(p.license) && fits(p.insns) && fits(p.fd_array) &&
		       fits(p.map_ids);
	}
	case handler_kind::perf_event: {
		const auto &e = std::get<perf_event_handler>(o.value);
		return fits(e.path) && fits(e.symbol) && fits(e.custom_name);
	}
	case handler_kind::btf:
		return fits(std::get<btf_handler>(o.value).data);
	default:
		return true;
	}
}

std::string registry::impl::damaged(uint32_t id) const
{
	return "segment '" + seg.name() + "': " + id_text(id) +
	       ": its handler object is damaged (offset " +
	       std::to_string(slots[id].object.load()) +
	       " names nothing whole in the segment)";
}

result<handler_object *> registry::impl::object_at(uint32_t id, handler_kind k,
						   const char *what) const
{
	if (id >= shared->capacity)
		return fail(EBADF, std::string(what) + ": " + id_text(id) +
					   " is outside the table (capacity " +
					   std::to_string(shared->capacity) + ")");
	uint64_t w = word_at(id);
	handler_kind have = word_kind(w);
	if (have == handler_kind::empty)
		return fail(EBADF, std::string(what) + ": " + id_text(id) +
					   " holds nothing");
	if (have != k)
		return fail(EINVAL, std::string(what) + ": " + id_text(id) +
					    " is a " + std::string(kind_name(have)) +
					    ", not a " + std::string(kind_name(k)));
	int64_t off = slots[id].object.load(std::memory_order_acquire);
	if (!object_whole(off, have))
		return fail(EBADMSG, std::string(what) + ": " + damaged(id));
	return at<handler_object>(off);
}

// --- creation ----------------------------------------------------------------

result<uint32_t> registry::impl::pick_id(uint32_t wanted, const char *what)
{
	uint32_t cap = shared->capacity;
	if (wanted != NO_ID) {
		if (wanted >= cap)
			return fail(EBADF, std::string(what) + ": " +
						   id_text(wanted) +
						   " is outside the table "
						   "(capacity " +
						   std::to_string(cap) +
						   ", BPFTIME_MAX_FD_COUNT)");
		if (word_kind(word_at(wanted)) != handler_kind::empty)
			return fail(EEXIST, std::string(what) + ": " +
						    id_text(wanted) +
						    " is in use");
		return wanted;
	}
	for (uint32_t i = 0; i < cap; i++)
		if (word_kind(word_at(i)) == handler_kind::empty)
			return i;
	return fail(EMFILE, std::string(what) + ": all " + std::to_string(cap) +
				    " ids are in use (BPFTIME_MAX_FD_COUNT)");
}

result<handle> registry::impl::publish(uint32_t id, handler_kind k,
				       handler_object *obj)
{
	uint64_t gen = word_generation(word_at(id)) + 1;
	slots[id].object.store(offset_of(obj), std::memory_order_relaxed);
	slots[id].word.store(slot_word(k, gen), std::memory_order_release);
	shared->live.fetch_add(1);
	shared->change_counter.fetch_add(1);
	end_pending();
	return handle{ id, gen };
}

// --- the create transaction ----------------------------------------------------
//
// Every kind is created the same way, under the registry mutex:
//
//   1. the kind's check: its validation and the lookups it needs (no
//      allocation in the segment, nothing recorded)
//   2. pick_id: the wanted id (EBADF outside the table, EEXIST in use) or
//      the lowest free one (EMFILE)
//   3. the pending record names the id (stage 0), then the handler object
//      built in the segment (stage 1): a creator killed from here on is undone
//      by recover()
//   4. copy_in of the spec's fields (records.hpp) and the kind's fill; a
//      segment container that cannot grow is ENOMEM, with the kind's message
//   5. the kind's build: for a map, its state through map_ops::create, the
//      state recorded (stage 2)
//   6. publish: the slot's object, then its word (release), the counters,
//      the pending record cleared
//
// A failure in 4 or 5 frees the handler object and clears the record, so a
// failed create leaves the slots, the counters and the segment's free memory
// as they were. The per-kind steps below hold all that differs.

namespace {

// What a kind's check found, for its fill and build steps.
struct no_prep {};

// The steps most kinds share: no pending map type, nothing found by check,
// nothing to fill or build beyond the copied fields, and a full segment
// reported as such. A kind's steps derive from it and hide what differs.
struct default_steps {
	using prep = no_prep;
	template <class Spec> static uint32_t pending_map_type(const Spec &)
	{
		return 0;
	}
	template <class Handler, class Spec, class Prep>
	static void fill(Handler &, const Spec &, const Prep &)
	{
	}
	template <class Spec>
	static std::string no_room(const Spec &, const std::string &what)
	{
		return what + ": the segment is full";
	}
	template <class Handler, class Spec, class Prep>
	static status build(registry::impl &, Handler &, const Spec &,
			    const Prep &, const std::string &)
	{
		return {};
	}
};

struct map_steps : default_steps {
	struct prep {
		const map_ops *ops = nullptr;
		uint32_t inner_type = 0;
		map_attr inner{};
	};
	static std::string what(const map_spec &s)
	{
		return "map '" + s.name + "': create";
	}
	static uint32_t pending_map_type(const map_spec &s)
	{
		return s.type;
	}
	static result<prep> check(registry::impl &r, const map_spec &s,
				  const std::string &what)
	{
		BPFTIME_TRY(check_obj_name("map", s.name));
		if ((s.flags & BPF_F_RDONLY) && (s.flags & BPF_F_WRONLY))
			return fail(EINVAL, what + ": BPF_F_RDONLY and "
						   "BPF_F_WRONLY exclude each "
						   "other");
		if ((s.flags & BPF_F_RDONLY_PROG) &&
		    (s.flags & BPF_F_WRONLY_PROG))
			return fail(EINVAL, what + ": BPF_F_RDONLY_PROG and "
						   "BPF_F_WRONLY_PROG exclude "
						   "each other");
		prep p;
		if (s.btf_id != NO_ID) {
			auto btf = r.object_at(s.btf_id, handler_kind::btf,
					       (what + ": BTF").c_str());
			if (!btf)
				return std::move(btf).error();
		} else if (s.btf_key_type_id || s.btf_value_type_id ||
			   s.btf_vmlinux_value_type_id) {
			return fail(EINVAL, what + ": BTF type ids given without "
						   "a BTF object");
		}
		p.ops = find_map_ops(s.type);
		if (!p.ops)
			return fail(EINVAL, what + ": " + missing_ops_reason(s.type));
		// Values that are ids of other objects are 4 bytes (the kernel's
		// fd_array_map_alloc_check and htab_of_map_alloc).
		if (p.ops->fd_kind != MAP_FD_NONE && s.value_size != 4)
			return fail(EINVAL, what + ": " +
						    describe_map_type(s.type) +
						    " holds 4-byte ids, not " +
						    std::to_string(s.value_size) +
						    "-byte values");
		if (s.inner_map_id != NO_ID) {
			if (p.ops->fd_kind != MAP_FD_MAP)
				return fail(EINVAL,
					    what + ": inner map given for " +
						    describe_map_type(s.type) +
						    ", which holds no maps");
			auto inner = r.object_at(s.inner_map_id,
						 handler_kind::map,
						 (what + ": inner map").c_str());
			if (!inner)
				return std::move(inner).error();
			p.inner = std::get<map_handler>((*inner)->value).attr;
			p.inner_type = p.inner.map_type;
		}
		return p;
	}
	// The map's state, through its type's map_ops::create. On failure the
	// transaction frees the handler; the state is the implementation's to
	// free when its create fails.
	static status build(registry::impl &r, map_handler &mh,
			    const map_spec &s, const prep &p,
			    const std::string &what)
	{
		map_create_args args = map_create_args_of(s);
		args.inner_map_type = p.inner_type;
		if (p.inner_type) {
			args.inner_key_size = p.inner.key_size;
			args.inner_value_size = p.inner.value_size;
			args.inner_max_entries = p.inner.max_entries;
			args.inner_map_flags = p.inner.map_flags;
		}
		args.name = mh.attr.name;
		args.segment_manager = r.mgr;
		void *state = nullptr;
		char err[256] = {};
		int rc = p.ops->create(&args, &state, err, sizeof(err));
		if (rc != 0 || !state) {
			int e = rc < 0 ? -rc : EINVAL;
			return fail(e, what + ": " + errno_name(e) +
					       (err[0] ? std::string(": ") + err
						       : ""));
		}
		mh.state_offset = r.offset_of(state);
		r.note_pending(r.shared->pending.object, r.offset_of(state), 2);
		return {};
	}
};

struct prog_steps : default_steps {
	// Every map the instructions use, sorted: the handler's map_ids.
	using prep = std::vector<uint32_t>;
	static std::string what(const prog_spec &s)
	{
		return "prog '" + s.name + "': load";
	}
	static result<prep> check(registry::impl &r, const prog_spec &s,
				  const std::string &what)
	{
		BPFTIME_TRY(check_obj_name("prog", s.name));
		if (prog_type_name(s.type).empty())
			return fail(EINVAL, what + ": unknown program type " +
						    std::to_string(s.type));
		if (s.insns.empty())
			return fail(EINVAL, what + ": no instructions");
		if (s.insns.size() > vm::BPF_MAX_INSNS)
			return fail(E2BIG,
				    what + ": " + std::to_string(s.insns.size()) +
					    " instructions, more than " +
					    std::to_string(vm::BPF_MAX_INSNS));
		if (s.license.size() > 127)
			return fail(EINVAL, what + ": license is longer than "
						   "127 bytes");
		auto used = used_maps(r, s, what);
		if (!used)
			return used;
		// A map helper given something else as its map or key would
		// fault in whichever process runs the program.
		BPFTIME_TRY(check_helper_args(
			s.insns, what,
			[&r](uint32_t map_id)
				-> std::optional<std::pair<uint32_t, uint32_t>> {
				auto m = r.object_at(map_id, handler_kind::map,
						     "map");
				if (!m)
					return std::nullopt;
				const map_attr &a =
					std::get<map_handler>((*m)->value).attr;
				return std::make_pair(a.key_size, a.value_size);
			}));
		// The type discipline, with what the registry knows of each map
		// (the kernel verifies at BPF_PROG_LOAD too).
		BPFTIME_TRY(check_program_types(
			s.insns, what, s.type,
			[&r, &s](uint8_t kind, int32_t imm) -> std::optional<vm::map_desc> {
				uint32_t map_id = uint32_t(imm);
				if (kind == vm::BPF_PSEUDO_MAP_IDX ||
				    kind == vm::BPF_PSEUDO_MAP_IDX_VALUE) {
					if (imm < 0 || size_t(imm) >= s.fd_array.size())
						return std::nullopt;
					map_id = s.fd_array[size_t(imm)];
				}
				auto attr = [&r](uint32_t id) -> const map_attr * {
					auto m = r.object_at(id, handler_kind::map, "map");
					if (!m)
						return nullptr;
					return &std::get<map_handler>((*m)->value).attr;
				};
				const map_attr *a = attr(map_id);
				if (!a)
					return std::nullopt;
				vm::map_desc d;
				d.type = a->map_type;
				d.key_size = a->key_size;
				d.value_size = a->value_size;
				d.max_entries = a->max_entries;
				d.flags = a->map_flags;
				if (a->inner_map_id != NO_ID) {
					if (const map_attr *in = attr(a->inner_map_id)) {
						d.inner_type = in->map_type;
						d.inner_key_size = in->key_size;
						d.inner_value_size = in->value_size;
						d.inner_max_entries = in->max_entries;
					}
				}
				return d;
			}));
		return used;
	}
	// The maps the instructions name must exist now (the kernel's
	// resolve_pseudo_ldimm64); programs keep them from being released.
	static result<prep> used_maps(registry::impl &r, const prog_spec &s,
				      const std::string &what)
	{
		std::vector<uint32_t> used;
		for (size_t pc = 0; pc < s.insns.size(); pc++) {
			const vm::insn &i = s.insns[pc];
			if (i.code != LDDW)
				continue;
			if (pc + 1 >= s.insns.size())
				return fail(EINVAL, what + ": insn " +
							    std::to_string(pc) +
							    ": lddw without its "
							    "second half");
			uint32_t map_id = NO_ID;
			std::string where = what + ": insn " + std::to_string(pc);
			switch (i.src_reg) {
			case vm::BPF_PSEUDO_MAP_FD:
			case vm::BPF_PSEUDO_MAP_VALUE:
				map_id = uint32_t(i.imm);
				break;
			case vm::BPF_PSEUDO_MAP_IDX:
			case vm::BPF_PSEUDO_MAP_IDX_VALUE:
				if (i.imm < 0 || size_t(i.imm) >= s.fd_array.size())
					return fail(
						EINVAL,
						where + ": map index " +
							std::to_string(i.imm) +
							" is outside fd_array (" +
							std::to_string(s.fd_array.size()) +
							" entries)");
				map_id = s.fd_array[size_t(i.imm)];
				break;
			default:
				break;
			}
			pc++;
			if (map_id == NO_ID)
				continue;
			auto m = r.object_at(map_id, handler_kind::map,
					     where.c_str());
			if (!m)
				return std::move(m).error();
			used.push_back(map_id);
		}
		std::sort(used.begin(), used.end());
		used.erase(std::unique(used.begin(), used.end()), used.end());
		return used;
	}
	static void fill(prog_handler &p, const prog_spec &, const prep &used)
	{
		p.map_ids.assign(used.begin(), used.end());
	}
	static std::string no_room(const prog_spec &s, const std::string &what)
	{
		return what + ": the segment has no room for " +
		       std::to_string(s.insns.size()) + " instructions";
	}
};

struct link_steps : default_steps {
	static std::string what(const link_spec &)
	{
		return "link: create";
	}
	static result<prep> check(registry::impl &r, const link_spec &s,
				  const std::string &what)
	{
		auto p = r.object_at(s.prog_id, handler_kind::prog,
				     (what + ": prog").c_str());
		if (!p)
			return std::move(p).error();
		if (s.target_id != NO_ID) {
			auto t = r.object_at(s.target_id, handler_kind::perf_event,
					     (what + ": target").c_str());
			if (!t)
				return std::move(t).error();
		}
		return prep{};
	}
};

struct perf_event_steps : default_steps {
	static std::string what(const perf_event_spec &)
	{
		return "perf_event: create";
	}
	static result<prep> check(registry::impl &, const perf_event_spec &s,
				  const std::string &what)
	{
		switch (s.type) {
		case perf_event_type::uprobe:
		case perf_event_type::uretprobe:
			if (s.path.empty())
				return fail(EINVAL, what + ": uprobe without a "
							   "binary path");
			if (s.path.size() >= PATH_MAX)
				return fail(ENAMETOOLONG,
					    what + ": binary path is longer "
						   "than " +
						    std::to_string(PATH_MAX - 1) +
						    " bytes");
			break;
		case perf_event_type::syscall_tracepoint:
			if (s.syscall_id < -1 || s.syscall_id > 1023)
				return fail(EINVAL,
					    what + ": syscall id " +
						    std::to_string(s.syscall_id) +
						    " is outside [-1, 1023]");
			break;
		case perf_event_type::custom:
			if (s.custom_name.empty())
				return fail(EINVAL, what + ": custom event "
							   "without a name");
			break;
		default:
			return fail(EINVAL, what + ": unknown event type " +
						    std::to_string(uint32_t(s.type)));
		}
		// The process filter of probes and tracepoints (a custom event
		// has none).
		if (s.type != perf_event_type::custom && s.pid < -1)
			return fail(EINVAL, what + ": pid " + std::to_string(s.pid) +
						    " (expected -1 or a pid)");
		if (s.symbol.size() >= 4096 || s.custom_name.size() >= 4096)
			return fail(ENAMETOOLONG, what + ": name is longer than "
							 "4095 bytes");
		return prep{};
	}
};

struct btf_steps : default_steps {
	static std::string what(const btf_data &)
	{
		return "btf: load";
	}
	// The kernel's btf_parse_hdr: the header is at least 24 bytes and
	// starts with the magic 0xeB9F; BTF_MAX_SIZE is 16 MiB.
	static result<prep> check(registry::impl &, const btf_data &s,
				  const std::string &what)
	{
		if (s.data.size() < 24)
			return fail(EINVAL, what + ": " +
						    std::to_string(s.data.size()) +
						    " bytes, shorter than a BTF "
						    "header");
		if (s.data.size() > (16u << 20))
			return fail(E2BIG, what + ": " +
						   std::to_string(s.data.size()) +
						   " bytes, more than 16 MiB");
		uint16_t magic = uint16_t(s.data[0] | s.data[1] << 8);
		if (magic != 0xeb9f)
			return fail(EINVAL, what + ": bad magic (not BTF)");
		return prep{};
	}
	static std::string no_room(const btf_data &s, const std::string &what)
	{
		return what + ": the segment has no room for " +
		       std::to_string(s.data.size()) + " bytes of BTF";
	}
};

template <class T> struct steps_of;
template <> struct steps_of<map_handler> {
	using type = map_steps;
};
template <> struct steps_of<prog_handler> {
	using type = prog_steps;
};
template <> struct steps_of<link_handler> {
	using type = link_steps;
};
template <> struct steps_of<perf_event_handler> {
	using type = perf_event_steps;
};
template <> struct steps_of<btf_handler> {
	using type = btf_steps;
};

} // namespace

template <class T, class Input>
result<handle> registry::impl::create_object(const Input &s, uint32_t id)
{
	using steps = typename steps_of<T>::type;
	std::string what = steps::what(s);
	auto prep = steps::check(*this, s, what);
	if (!prep)
		return std::move(prep).error();

	auto picked = pick_id(id, what.c_str());
	if (!picked)
		return std::move(picked).error();
	id = *picked;

	begin_pending(pending_op::create_txn, id, steps::pending_map_type(s));
	handler_object *obj = nullptr;
	try {
		// Every block of the new handler and its map state, or none.
		shm::segment::allocator_transaction txn(seg);
		bool exact = txn.also_undo(&shared->pending, sizeof(pending_record));
		obj = make_object<T>(mgr);
		if (!obj) {
			end_pending();
			return fail(ENOMEM, what + ": the segment is full");
		}
		note_pending(offset_of(obj), 0, 1);
		obj->owner = self_owner();
		{
			std::lock_guard g(local);
			obj->owner.load = load_depth ? load_serial : 0;
		}

		// The record forgets the object before it is freed (recover()).
		auto undo = [&] {
			end_pending();
			destroy_object(mgr, obj);
		};
		T &h = std::get<T>(obj->value);
		try {
			records::copy_in(h, s);
			steps::fill(h, s, *prep);
		} catch (const std::exception &) {
			undo();
			return fail(ENOMEM, steps::no_room(s, what));
		}
		if (status built = steps::build(*this, h, s, *prep, what);
		    !built) {
			undo();
			return std::move(built).error();
		}
		// With the record undone along with the allocations, it can
		// say "committed" inside the transaction: no moment when the
		// blocks are kept but the record says they were undone.
		if (exact)
			std::atomic_ref<uint32_t>(shared->pending.op)
				.store(uint32_t(pending_op::create));
	} catch (const std::exception &e) {
		// The allocator's lock could not be taken: nothing was built.
		end_pending();
		return fail(EIO, what + ": the segment's allocator: " + e.what());
	}
	// Committed: from here a dead creator's blocks are the record's to free.
	std::atomic_ref<uint32_t>(shared->pending.op).store(
		uint32_t(pending_op::create));
	return publish(id, kind_of_type<T>::value, obj);
}

template result<handle>
registry::impl::create_object<map_handler>(const map_spec &, uint32_t);
template result<handle>
registry::impl::create_object<prog_handler>(const prog_spec &, uint32_t);
template result<handle>
registry::impl::create_object<link_handler>(const link_spec &, uint32_t);
template result<handle>
registry::impl::create_object<perf_event_handler>(const perf_event_spec &,
						  uint32_t);
template result<handle>
registry::impl::create_object<btf_handler>(const btf_data &, uint32_t);

// --- release ---------------------------------------------------------------

status registry::impl::add_link_faults_locked(handle h, uint64_t n)
{
	std::string what = "link " + id_text(h.id) + ": add faults";
	if (h.id >= shared->capacity)
		return fail(EBADF, what + ": outside the table");
	const uint64_t w = word_at(h.id);
	if (word_kind(w) == handler_kind::empty ||
	    word_generation(w) != h.generation)
		return fail(EBADF, what + ": released");
	if (word_kind(w) != handler_kind::link)
		return fail(EINVAL, what + ": not a link");
	auto *o = at<handler_object>(slots[h.id].object.load());
	std::get<link_handler>(o->value).faults += n;
	return {};
}

status registry::impl::release_locked(uint32_t id, uint64_t generation,
				      bool check_generation)
{
	std::string what = "release " + id_text(id);
	if (id >= shared->capacity)
		return fail(EBADF, what + ": outside the table (capacity " +
					   std::to_string(shared->capacity) + ")");
	uint64_t w = word_at(id);
	handler_kind k = word_kind(w);
	if (k == handler_kind::empty)
		return fail(EBADF, what + ": holds nothing");
	if (check_generation && word_generation(w) != generation)
		return fail(EBADF, what + ": stale handle (generation " +
					   std::to_string(generation) +
					   ", the id now holds generation " +
					   std::to_string(word_generation(w)) + ")");

	// Who refers to it: the kernel keeps such objects alive by reference
	// counts; here the registry refuses, so nothing in use disappears.
	for (uint32_t i = 0; i < shared->capacity; i++) {
		handler_kind ik = word_kind(word_at(i));
		if (ik == handler_kind::empty || i == id)
			continue;
		if (!object_whole(slots[i].object.load(), ik))
			continue;
		auto *o = at<handler_object>(slots[i].object.load());
		std::string user;
		if (k == handler_kind::map && ik == handler_kind::prog) {
			auto &p = std::get<prog_handler>(o->value);
			if (std::binary_search(p.map_ids.begin(), p.map_ids.end(),
					       id))
				user = "prog '" + name_of(p.name) + "' (" +
				       id_text(i) + ") uses it";
		} else if (k == handler_kind::map && ik == handler_kind::map) {
			auto &m = std::get<map_handler>(o->value);
			if (m.attr.inner_map_id == id)
				user = "map '" + name_of(m.attr.name) + "' (" +
				       id_text(i) + ") has it as inner map";
		} else if (k == handler_kind::btf && ik == handler_kind::map) {
			auto &m = std::get<map_handler>(o->value);
			if (m.attr.btf_id == id)
				user = "map '" + name_of(m.attr.name) + "' (" +
				       id_text(i) + ") uses it";
		} else if (ik == handler_kind::link &&
			   (k == handler_kind::prog ||
			    k == handler_kind::perf_event)) {
			auto &l = std::get<link_handler>(o->value);
			if ((k == handler_kind::prog && l.prog_id == id) ||
			    (k == handler_kind::perf_event && l.target_id == id))
				user = "link " + id_text(i) + " uses it";
		}
		if (!user.empty())
			return fail(EBUSY, what + " (" +
						   std::string(kind_name(k)) +
						   "): " + user);
	}

	// Held as a value by an fd-valued map (prog array, map-in-map, perf
	// event array): the kernel's reference from map_fd_get_ptr.
	if (k == handler_kind::map || k == handler_kind::prog ||
	    k == handler_kind::perf_event) {
		std::string holder = fd_map_holding(*this, k, id);
		if (!holder.empty())
			return fail(EBUSY, what + " (" +
						   std::string(kind_name(k)) +
						   "): " + holder);
	}

	int64_t obj_off = slots[id].object.load();
	if (!object_whole(obj_off, k))
		return fail(EBADMSG, what + ": " + damaged(id));
	auto *obj = at<handler_object>(obj_off);
	int64_t state_off = 0;
	uint32_t map_type = 0;
	if (k == handler_kind::map) {
		auto &m = std::get<map_handler>(obj->value);
		state_off = m.state_offset;
		map_type = m.attr.map_type;
	}
	const map_ops *ops = map_type ? find_map_ops(map_type) : nullptr;
	if (k == handler_kind::map && !ops)
		return fail(EINVAL, what + ": cannot free the map's contents: " +
					    missing_ops_reason(map_type));
	// A state this build does not speak is not destroyed as if it did.
	if (ops)
		BPFTIME_TRY(check_map_state(
			ops, at<void>(state_off),
			"map '" +
				name_of(std::get<map_handler>(obj->value).attr.name) +
				"' (" + id_text(id) + "): release"));

	begin_pending(pending_op::release, id, map_type);
	note_pending(obj_off, ops ? state_off : 0, 1);
	slots[id].word.store(slot_word(handler_kind::empty, word_generation(w)),
			     std::memory_order_release);
	slots[id].object.store(0, std::memory_order_relaxed);
	shared->live.fetch_sub(1);
	free_released(ops, state_off, obj_off);
	shared->change_counter.fetch_add(1);
	forget_local(id);
	return {};
}

void registry::impl::forget_local(uint32_t id)
{
	std::lock_guard g(local);
	if (map_fast && id < shared->capacity &&
	    map_fast[id].exchange(nullptr) && id < maps.size() && maps[id])
		retired.push_back(std::move(maps[id]));
	if (id < maps.size())
		maps[id].reset();
	if (prog_fast)
		prog_fast[id].store(nullptr);
	for (auto it = progs.begin(); it != progs.end();) {
		if (std::get<0>(it->first) == id)
			it = progs.erase(it);
		else
			++it;
	}
}

// --- description ---------------------------------------------------------

result<handler_info> registry::impl::describe_locked(uint32_t id) const
{
	if (id >= shared->capacity)
		return fail(EBADF, id_text(id) + " is outside the table "
						 "(capacity " +
					   std::to_string(shared->capacity) + ")");
	uint64_t w = word_at(id);
	handler_kind k = word_kind(w);
	if (k == handler_kind::empty)
		return fail(EBADF, id_text(id) + " holds nothing");
	int64_t off = slots[id].object.load();
	if (!object_whole(off, k))
		return fail(EBADMSG, damaged(id));
	const auto *obj = at<handler_object>(off);
	handler_info info;
	info.h = handle{ id, word_generation(w) };
	info.kind = k;
	std::visit(
		[&](const auto &h) {
			using T = std::decay_t<decltype(h)>;
			typename spec_of<T>::type s;
			records::copy_out(h, s);
			info.spec = std::move(s);
		},
		obj->value);
	return info;
}

// --- registry ----------------------------------------------------------------

registry::registry(std::unique_ptr<impl> i) : impl_(std::move(i))
{
}

registry::~registry()
{
	// Program instances refer to map instances and the mapping: drop them
	// before the segment goes.
	if (impl_) {
		impl_->progs.clear();
		impl_->maps.clear();
	}
}

namespace {

result<std::unique_ptr<registry::impl>> attach(shm::segment seg,
					       registry_shared *shared)
{
	auto r = std::make_unique<registry::impl>(std::move(seg));
	r->mgr = r->seg.manager();
	r->shared = shared;
	if (shared->magic != REGISTRY_MAGIC || shared->capacity == 0 ||
	    shared->capacity > MAX_FD_COUNT_LIMIT || shared->slots_offset == 0)
		return fail(EBADMSG, "segment '" + r->seg.name() +
					     "': object '" + REGISTRY_OBJECT_NAME +
					     "' is not a bpftime registry");
	if (shared->layout_version != REGISTRY_LAYOUT_VERSION)
		return fail(EPROTONOSUPPORT,
			    "segment '" + r->seg.name() + "': registry layout "
			    "version " + std::to_string(shared->layout_version) +
				    ", this bpftime reads version " +
				    std::to_string(REGISTRY_LAYOUT_VERSION));
	r->slots = r->at<slot>(shared->slots_offset);
	if (!r->seg.contains(r->slots, uint64_t(shared->capacity) * sizeof(slot)))
		return fail(EBADMSG, "segment '" + r->seg.name() +
					     "': registry slots lie outside the "
					     "segment");
	r->maps.resize(shared->capacity);
	r->prog_fast = std::make_unique<std::atomic<const program_instance *>[]>(
		shared->capacity);
	r->map_fast = std::make_unique<std::atomic<const map_instance *>[]>(
		shared->capacity);
	return r;
}

} // namespace

result<std::unique_ptr<registry>> registry::create(shm::segment seg,
						   registry_options opts)
{
	if (opts.capacity == 0 || opts.capacity > MAX_FD_COUNT_LIMIT)
		return fail(EINVAL, "registry: capacity " +
					    std::to_string(opts.capacity) +
					    " is outside [1, " +
					    std::to_string(MAX_FD_COUNT_LIMIT) +
					    "]");
	shm::segment_manager *mgr = seg.manager();
	if (seg.find<registry_shared>(REGISTRY_OBJECT_NAME))
		return fail(EEXIST, "segment '" + seg.name() +
					    "' already holds a registry");
	size_t bytes = size_t(opts.capacity) * sizeof(slot);
	void *mem = mgr->allocate_aligned(bytes, 64, std::nothrow);
	if (!mem)
		return fail(ENOMEM, "segment '" + seg.name() + "': no room for " +
					    std::to_string(opts.capacity) +
					    " registry slots");
	auto *slots = static_cast<slot *>(mem);
	for (uint32_t i = 0; i < opts.capacity; i++) {
		new (&slots[i].word) std::atomic<uint64_t>(0);
		new (&slots[i].object) std::atomic<int64_t>(0);
	}
	int64_t slots_off = static_cast<char *>(mem) -
			    reinterpret_cast<char *>(mgr);
	auto made = seg.construct<registry_shared>(REGISTRY_OBJECT_NAME);
	if (!made) {
		mgr->deallocate(mem);
		return std::move(made).error();
	}
	registry_shared *s = *made;
	s->capacity = opts.capacity;
	s->layout_version = REGISTRY_LAYOUT_VERSION;
	s->slots_offset = slots_off;
	s->change_counter.store(0);
	s->live.store(0);
	s->pending = pending_record{};
	// Written last: open() refuses a registry whose magic is not set yet.
	std::atomic_thread_fence(std::memory_order_release);
	s->magic = REGISTRY_MAGIC;
	auto r = attach(std::move(seg), s);
	if (!r)
		return std::move(r).error();
	return std::unique_ptr<registry>(new registry(std::move(*r)));
}

result<std::unique_ptr<registry>> registry::open(shm::segment seg,
						 bool roll_back)
{
	auto *s = seg.find<registry_shared>(REGISTRY_OBJECT_NAME);
	if (!s)
		return fail(ENOENT, "segment '" + seg.name() +
					    "' holds no registry (create one "
					    "first)");
	auto r = attach(std::move(seg), s);
	if (!r)
		return std::move(r).error();
	std::unique_ptr<registry> reg(new registry(std::move(*r)));
	// A failure here (the lock) is the next caller's to report.
	if (roll_back)
		(void)reg->roll_back_dead_loads();
	return reg;
}

// --- load transactions -------------------------------------------------------

void registry::begin_load()
{
	std::lock_guard g(impl_->local);
	if (impl_->load_depth++ == 0)
		impl_->load_serial = next_load_serial.fetch_add(1) + 1;
}

status registry::end_load()
{
	uint32_t serial;
	{
		std::lock_guard g(impl_->local);
		if (impl_->load_depth == 0)
			return fail(EINVAL, "registry: end_load without begin_load");
		if (--impl_->load_depth != 0)
			return {};
		serial = impl_->load_serial;
		impl_->load_serial = 0;
	}
	auto guard = impl_->lock();
	if (!guard)
		return fail(EIO, "registry: commit of a load: " +
					 guard.error().message);
	const handler_owner me = self_owner();
	for (uint32_t i = 0; i < impl_->shared->capacity; i++) {
		if (word_kind(impl_->word_at(i)) == handler_kind::empty)
			continue;
		int64_t off = impl_->slots[i].object.load();
		if (!impl_->object_ok(off))
			continue;
		handler_owner &o = impl_->at<handler_object>(off)->owner;
		if (o.pid == me.pid && o.start_time == me.start_time &&
		    o.load == serial)
			std::atomic_ref<uint32_t>(o.load).store(0);
	}
	return {};
}

namespace {

std::string handler_name(const handler_object &o)
{
	if (auto *m = std::get_if<map_handler>(&o.value))
		return name_of(m->attr.name);
	if (auto *p = std::get_if<prog_handler>(&o.value))
		return name_of(p->name);
	return "";
}

// Release order: users before what they use.
int release_rank(handler_kind k)
{
	switch (k) {
	case handler_kind::link:
		return 0;
	case handler_kind::prog:
	case handler_kind::perf_event:
		return 1;
	default:
		return 2;
	}
}

} // namespace

result<std::vector<owner_info>> registry::owners() const
{
	auto guard = impl_->lock();
	if (!guard)
		return std::move(guard).error();
	std::vector<owner_info> out;
	for (uint32_t i = 0; i < impl_->shared->capacity; i++) {
		uint64_t w = impl_->word_at(i);
		if (word_kind(w) == handler_kind::empty)
			continue;
		int64_t off = impl_->slots[i].object.load();
		if (!impl_->object_whole(off, word_kind(w)))
			continue;
		const handler_object &o = *impl_->at<handler_object>(off);
		owner_info oi;
		oi.h = handle{ i, word_generation(w) };
		oi.kind = word_kind(w);
		oi.name = handler_name(o);
		oi.pid = o.owner.pid;
		oi.start_time = o.owner.start_time;
		oi.in_load = o.owner.load != 0;
		oi.alive = owner_alive(o.owner);
		out.push_back(std::move(oi));
	}
	return out;
}

result<std::vector<owner_info>> registry::roll_back_dead_loads()
{
	auto all = owners();
	if (!all)
		return std::move(all).error();
	std::vector<owner_info> dead;
	for (auto &o : *all)
		if (o.in_load && !o.alive)
			dead.push_back(std::move(o));
	if (dead.empty())
		return dead;
	std::stable_sort(dead.begin(), dead.end(),
			 [](const owner_info &a, const owner_info &b) {
				 return release_rank(a.kind) < release_rank(b.kind);
			 });
	std::vector<owner_info> released;
	// Maps may hold maps (inner maps, map-in-map values): a few passes.
	for (int pass = 0; pass < 4 && !dead.empty(); pass++) {
		std::vector<owner_info> left;
		for (auto &o : dead) {
			if (release(o.h))
				released.push_back(std::move(o));
			else
				left.push_back(std::move(o));
		}
		dead = std::move(left);
	}
	return released;
}

result<std::unique_ptr<registry>> registry::open_or_create(shm::segment seg,
							   registry_options opts)
{
	if (seg.find<registry_shared>(REGISTRY_OBJECT_NAME))
		return open(std::move(seg));
	return create(std::move(seg), opts);
}

result<registry_options> registry::options_from_env()
{
	registry_options o;
	if (const char *v = getenv("BPFTIME_MAX_FD_COUNT"); v && *v) {
		std::string_view s(v);
		uint32_t n = 0;
		auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
		if (ec != std::errc() || end != s.data() + s.size() || n == 0 ||
		    n > MAX_FD_COUNT_LIMIT)
			return fail(EINVAL, "BPFTIME_MAX_FD_COUNT='" +
						    std::string(s) +
						    "' is not a count between 1 "
						    "and " +
						    std::to_string(MAX_FD_COUNT_LIMIT));
		o.capacity = n;
	}
	return o;
}

shm::segment &registry::segment() noexcept
{
	return impl_->seg;
}
uint32_t registry::capacity() const noexcept
{
	return impl_->shared->capacity;
}
uint64_t registry::change_counter() const noexcept
{
	return impl_->shared->change_counter.load(std::memory_order_acquire);
}
uint32_t registry::size() const noexcept
{
	return impl_->shared->live.load(std::memory_order_relaxed);
}

#define WITH_LOCK(expr)                                                        \
	do {                                                                   \
		auto guard_ = impl_->lock();                                   \
		if (!guard_)                                                   \
			return std::move(guard_).error();                      \
		return expr;                                                   \
	} while (0)

result<handle> registry::create_map(const map_spec &spec, uint32_t id)
{
	WITH_LOCK(impl_->create_object<map_handler>(spec, id));
}
result<handle> registry::create_prog(const prog_spec &spec, uint32_t id)
{
	WITH_LOCK(impl_->create_object<prog_handler>(spec, id));
}
result<handle> registry::create_link(const link_spec &spec, uint32_t id)
{
	WITH_LOCK(impl_->create_object<link_handler>(spec, id));
}
result<handle> registry::create_perf_event(const perf_event_spec &spec,
					   uint32_t id)
{
	WITH_LOCK(impl_->create_object<perf_event_handler>(spec, id));
}
result<handle> registry::create_btf(std::span<const uint8_t> data, uint32_t id)
{
	WITH_LOCK(impl_->create_object<btf_handler>(btf_data{ data }, id));
}
status registry::release(uint32_t id)
{
	WITH_LOCK(impl_->release_locked(id, 0, false));
}
status registry::release(handle h)
{
	WITH_LOCK(impl_->release_locked(h.id, h.generation, true));
}
status registry::add_link_faults(handle h, uint64_t n)
{
	WITH_LOCK(impl_->add_link_faults_locked(h, n));
}

result<handler_info> registry::get(uint32_t id) const
{
	auto guard = impl_->lock();
	if (!guard)
		return std::move(guard).error();
	return impl_->describe_locked(id);
}

std::vector<handler_info> registry::list() const
{
	std::vector<handler_info> out;
	auto guard = impl_->lock();
	if (!guard)
		return out;
	for (uint32_t i = 0; i < impl_->shared->capacity; i++) {
		if (word_kind(impl_->word_at(i)) == handler_kind::empty)
			continue;
		if (auto d = impl_->describe_locked(i))
			out.push_back(std::move(*d));
	}
	return out;
}

handler_kind registry::kind_of(uint32_t id) const noexcept
{
	if (id >= impl_->shared->capacity)
		return handler_kind::empty;
	return word_kind(impl_->word_at(id));
}

result<handle> registry::handle_of(uint32_t id) const
{
	if (id >= impl_->shared->capacity)
		return fail(EBADF, id_text(id) + " is outside the table");
	uint64_t w = impl_->word_at(id);
	if (word_kind(w) == handler_kind::empty)
		return fail(EBADF, id_text(id) + " holds nothing");
	return handle{ id, word_generation(w) };
}

const program_instance *registry::cached_program(uint32_t id) const noexcept
{
	if (id >= impl_->shared->capacity)
		return nullptr;
	const program_instance *p =
		impl_->prog_fast[id].load(std::memory_order_acquire);
	// The instance of an earlier program at this id (released and the id
	// reused, by any process) is not the program the id holds now.
	if (p && p->prog().generation != word_generation(impl_->word_at(id)))
		return nullptr;
	return p;
}

const map_instance *registry::cached_map(uint32_t id) noexcept
{
	if (id >= impl_->shared->capacity)
		return nullptr;
	const map_instance *m = impl_->map_fast[id].load(std::memory_order_acquire);
	const uint64_t w = impl_->word_at(id);
	if (m && m->h.generation == word_generation(w)) [[likely]]
		return m;
	// The miss path: this process has no instance yet (another process
	// made the map), or the id was reused. Makes it on the calling thread,
	// as resolve_tail_call does for programs.
	if (word_kind(w) != handler_kind::map)
		return nullptr;
	try {
		auto r = map(id);
		if (!r)
			return nullptr;
		std::lock_guard g(impl_->local);
		if (id < impl_->maps.size() && impl_->maps[id] == *r)
			impl_->map_fast[id].store(r->get(),
						  std::memory_order_release);
		else // forgotten meanwhile: keep it for the caller
			impl_->retired.push_back(*r);
		return r->get();
	} catch (const std::exception &) {
		return nullptr;
	}
}

} // namespace bpftime::handlers
