// map_instance.cpp: the per-process map-ops registry, and maps as one process
// uses them (map_instance): the control-plane operations with the checks the
// kernel's bpf() syscall makes before it calls a map's ops.
#include "registry/registry_impl.hpp"

#include <bpftime/vm/helper_proto.hpp>

#include <bpftime/handlers/cpu_slot.hpp>
#include <bpftime/handlers/helpers.hpp>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <deque>
#include <mutex>
#include <unistd.h>

namespace bpftime::handlers {

// --- map-ops registry -------------------------------------------------------

namespace {

// Each registered table is copied into a zero-filled map_ops of this build's
// size, so fields an older provider lacks read as null. Copies are never
// freed: map instances keep pointers to them.
struct ops_table {
	std::mutex mu;
	std::deque<map_ops> copies;
	std::vector<std::pair<const map_ops *, const map_ops *>> by_source;
};

ops_table &table()
{
	static ops_table *t = new ops_table();
	return *t;
}

// Every field up to the state version is required of an ABI 2 table.
constexpr size_t REQUIRED_OPS_SIZE =
	offsetof(map_ops, state_version) + sizeof(uint32_t);

// Packages declared as providers of types not registered here.
struct declared_table {
	std::mutex mu;
	std::vector<std::pair<uint32_t, std::string>> providers;
};

std::string hex32(uint32_t v)
{
	char b[9];
	snprintf(b, sizeof(b), "%08x", v);
	return b;
}

declared_table &declared()
{
	static declared_table *t = new declared_table();
	return *t;
}

} // namespace

status register_map_ops(const map_ops *ops)
{
	if (!ops)
		return fail(EINVAL, "register map ops: null table");
	std::string what = "register map ops for " +
			   (ops->type_name ? std::string(ops->type_name) :
					     describe_map_type(ops->map_type)) +
			   " from " +
			   (ops->provider ? std::string(ops->provider) :
					    std::string("an unnamed provider"));
	// The ABI version first: a table of another version may be shorter
	// for reasons its size does not tell.
	if (ops->abi_version != MAP_OPS_ABI_VERSION)
		return fail(EPROTONOSUPPORT,
			    what + ": map_ops ABI version " +
				    std::to_string(ops->abi_version) +
				    ", this bpftime uses " +
				    std::to_string(MAP_OPS_ABI_VERSION));
	if (ops->size < REQUIRED_OPS_SIZE)
		return fail(EINVAL, what + ": table of " +
					    std::to_string(ops->size) +
					    " bytes is shorter than the " +
					    std::to_string(REQUIRED_OPS_SIZE) +
					    " bytes of the required fields");
	if (ops->layout_version != shm::LAYOUT_VERSION)
		return fail(EPROTONOSUPPORT,
			    what + ": built for segment layout " +
				    std::to_string(ops->layout_version) +
				    ", this bpftime uses " +
				    std::to_string(shm::LAYOUT_VERSION));
	if (!ops->create || !ops->destroy || !ops->lookup ||
	    !ops->lookup_copy || !ops->update || !ops->delete_elem ||
	    !ops->get_next_key)
		return fail(EINVAL, what + ": a required function is null");
	if (ops->map_type == BPF_MAP_TYPE_UNSPEC)
		return fail(EINVAL, what + ": map type 0 is BPF_MAP_TYPE_UNSPEC");
	if (ops->state_magic == 0)
		return fail(EINVAL, what + ": no state magic (every map state "
					   "starts with a map_state_header)");

	ops_table &t = table();
	std::lock_guard g(t.mu);
	for (auto &[src, copy] : t.by_source) {
		if (copy->map_type != ops->map_type)
			continue;
		if (src == ops) {
			if (copy->bind_runtime) {
				const map_runtime rt{ sizeof(map_runtime), 0,
						      cpu_slot_tls_offset() };
				copy->bind_runtime(&rt);
			}
			return {};
		}
		return fail(EEXIST, what + ": " + describe_map_type(ops->map_type) +
					    " is already provided by " +
					    (copy->provider ? copy->provider :
							      "another table"));
	}
	map_ops copy{};
	memcpy(&copy, ops, std::min<size_t>(ops->size, sizeof(map_ops)));
	copy.size = sizeof(map_ops);
	if (!copy.prog_update)
		copy.prog_update = copy.update;
	if (copy.fd_kind != MAP_FD_NONE && copy.fd_kind != MAP_FD_MAP &&
	    copy.fd_kind != MAP_FD_PROG && copy.fd_kind != MAP_FD_PERF_EVENT)
		return fail(EINVAL, what + ": fd_kind " +
					    std::to_string(copy.fd_kind) +
					    " names no kind of object");
	// The registry reads an fd-valued map's ids in any process, holding
	// its mutex (release_locked), with the state in the segment.
	if (copy.fd_kind != MAP_FD_NONE && copy.open)
		return fail(EINVAL, what + ": an fd-valued map keeps its ids in "
					   "the segment and has no per-process "
					   "open");
	// The helpers it ships: all of them or none.
	for (uint32_t i = 0; i < copy.helper_count; i++) {
		const vm::helper_proto &h = copy.helpers[i];
		if (!h.fn || h.name.empty() || h.ret == vm::RET_UNSPEC)
			return fail(EINVAL, what + ": helper " + std::to_string(i) +
						    " has no function, name or "
						    "return kind");
		if (find_helper(h.id))
			return fail(EEXIST, what + ": helper #" +
						    std::to_string(h.id) + " (" +
						    std::string(h.name) +
						    ") is already provided");
	}
	for (uint32_t i = 0; i < copy.helper_count; i++)
		BPFTIME_TRY(register_helper(copy.helpers[i]));
	if (copy.bind_runtime) {
		const map_runtime rt{ sizeof(map_runtime), 0,
				      cpu_slot_tls_offset() };
		copy.bind_runtime(&rt);
	}
	t.copies.push_back(copy);
	t.by_source.emplace_back(ops, &t.copies.back());
	return {};
}

void declare_map_type_provider(uint32_t map_type, std::string provider)
{
	declared_table &d = declared();
	std::lock_guard g(d.mu);
	for (auto &[type, p] : d.providers)
		if (type == map_type) {
			p = std::move(provider);
			return;
		}
	d.providers.emplace_back(map_type, std::move(provider));
}

uint32_t possible_cpus() noexcept
{
	static const uint32_t n = [] {
		// "0-63" or "0,2-5": the highest CPU number + 1, as the
		// kernel's num_possible_cpus() counts ids, not online ones.
		uint32_t last = 0;
		bool any = false;
		if (FILE *f = fopen("/sys/devices/system/cpu/possible", "re")) {
			char buf[256] = {};
			size_t len = fread(buf, 1, sizeof(buf) - 1, f);
			fclose(f);
			uint32_t cur = 0;
			bool digits = false;
			for (size_t i = 0; i <= len; i++) {
				char c = i < len ? buf[i] : '\0';
				if (c >= '0' && c <= '9') {
					cur = cur * 10 + uint32_t(c - '0');
					digits = true;
					continue;
				}
				if (digits) {
					last = std::max(last, cur);
					any = true;
				}
				cur = 0;
				digits = false;
			}
		}
		if (any)
			return last + 1;
		long c = sysconf(_SC_NPROCESSORS_CONF);
		return c > 0 ? uint32_t(c) : 1u;
	}();
	return n;
}

uint32_t percpu_value_size(uint32_t value_size) noexcept
{
	return ((value_size + 7) & ~7u) * possible_cpus();
}

map_create_args map_create_args_of(const map_spec &spec) noexcept
{
	map_create_args args{};
	args.size = sizeof(args);
	args.map_type = spec.type;
	args.key_size = spec.key_size;
	args.value_size = spec.value_size;
	args.max_entries = spec.max_entries;
	args.map_flags = spec.flags;
	args.map_extra = spec.map_extra;
	args.name = spec.name.c_str();
	return args;
}

uint32_t map_user_value_size(const map_spec &spec) noexcept
{
	const map_ops *ops = find_map_ops(spec.type);
	if (!ops || !ops->user_value_size)
		return spec.value_size;
	map_create_args args = map_create_args_of(spec);
	return ops->user_value_size(&args);
}

const map_ops *find_map_ops(uint32_t map_type) noexcept
{
	ops_table &t = table();
	std::lock_guard g(t.mu);
	for (auto &[src, copy] : t.by_source)
		if (copy->map_type == map_type)
			return copy;
	return nullptr;
}

std::string missing_ops_reason(uint32_t map_type)
{
	std::string type = describe_map_type(map_type);
	std::string provider;
	{
		declared_table &d = declared();
		std::lock_guard g(d.mu);
		for (auto &[t, p] : d.providers)
			if (t == map_type)
				provider = p;
	}
	if (provider.empty())
		return "no implementation of " + type +
		       " is registered in this process (no installed package "
		       "declares it)";
	bool loaded = false;
	for (const map_ops *o : registered_map_ops())
		loaded = loaded || (o->provider && provider == o->provider);
	if (loaded)
		return "no implementation of " + type +
		       " is registered in this process: " + provider +
		       " is loaded but this version does not provide it";
	return "no implementation of " + type +
	       " is registered in this process; it is provided by " +
	       provider + " (import '" + provider +
	       "' in Node, or call its register_all() in C++)";
}

std::vector<const map_ops *> registered_map_ops()
{
	ops_table &t = table();
	std::lock_guard g(t.mu);
	std::vector<const map_ops *> out;
	for (auto &[src, copy] : t.by_source)
		out.push_back(copy);
	return out;
}

// --- map instances ----------------------------------------------------------

result<std::shared_ptr<map_instance>>
registry::impl::map_instance_for(uint32_t id, registry *owner)
{
	std::lock_guard g(local);
	if (id < maps.size() && maps[id]) {
		uint64_t w = word_at(id);
		if (word_kind(w) == handler_kind::map &&
		    word_generation(w) == maps[id]->h.generation)
			return maps[id];
		maps[id].reset();
	}
	auto obj = object_at(id, handler_kind::map, "map");
	if (!obj)
		return std::move(obj).error();
	uint64_t w = word_at(id);
	map_handler &mh = std::get<map_handler>((*obj)->value);
	const map_attr &a = mh.attr;
	const map_ops *ops = find_map_ops(a.map_type);
	std::string name(a.name, strnlen(a.name, sizeof(a.name)));
	if (!ops)
		return fail(EINVAL, "map '" + name + "' (id " + std::to_string(id) +
					    "): " + missing_ops_reason(a.map_type));
	std::string what = "map '" + name + "' (id " + std::to_string(id) +
			   "): open";
	void *shared_state = at<void>(mh.state_offset);
	BPFTIME_TRY(check_map_state(ops, shared_state, what));
	auto m = std::make_shared<map_instance>();
	m->ops = ops;
	m->fd_kind = ops->fd_kind;
	m->state = shared_state;
	m->map_type = a.map_type;
	m->key_size = a.key_size;
	m->value_size = a.value_size;
	m->max_entries = a.max_entries;
	m->map_flags = a.map_flags;
	m->h = handle{ id, word_generation(w) };
	memcpy(m->name, a.name, sizeof(m->name));
	m->owner = owner;
	m->shared = &mh;
	map_spec spec;
	spec.type = a.map_type;
	spec.key_size = a.key_size;
	spec.value_size = a.value_size;
	spec.max_entries = a.max_entries;
	spec.flags = a.map_flags;
	spec.map_extra = a.map_extra;
	spec.name = name;
	m->user_value_size = map_user_value_size(spec);
	// Re-check: a release between reading the word and the attributes
	// would have changed the generation.
	if (word_at(id) != w)
		return fail(EBADF, "map (id " + std::to_string(id) +
					   ") was released while being opened");
	if (ops->open) {
		char err[256] = {};
		void *local_state = nullptr;
		int rc = ops->open(shared_state, &local_state, err, sizeof(err));
		if (rc != 0 || !local_state) {
			int e = rc < 0 ? -rc : EINVAL;
			return fail(e, what + ": " + errno_name(e) +
					       (err[0] ? std::string(": ") + err :
							 ""));
		}
		m->state = local_state;
		m->opened = true;
	}
	maps[id] = m;
	return m;
}

std::string fd_map_holding(registry::impl &r, handler_kind kind, uint32_t id)
{
	for (uint32_t i = 0; i < r.shared->capacity; i++) {
		if (word_kind(r.word_at(i)) != handler_kind::map)
			continue;
		auto *o = r.at<handler_object>(r.slots[i].object.load());
		const map_handler &mh = std::get<map_handler>(o->value);
		const map_ops *ops = find_map_ops(mh.attr.map_type);
		if (!ops || ops->fd_kind != uint32_t(kind))
			continue;
		void *state = r.at<void>(mh.state_offset);
		// Two keys: get_next_key may not read and write the same one.
		std::vector<uint8_t> keys(size_t(mh.attr.key_size) * 2);
		const void *cur = nullptr;
		for (int n = 0;; n ^= 1) {
			uint8_t *key = keys.data() + size_t(n) * mh.attr.key_size;
			if (ops->get_next_key(state, cur, key) != 0)
				break;
			uint32_t v = NO_ID;
			if (ops->lookup_copy(state, key, &v) == 0 && v == id)
				return "map '" +
				       std::string(mh.attr.name,
						   strnlen(mh.attr.name,
							   sizeof(mh.attr.name))) +
				       "' (id " + std::to_string(i) + ") holds it";
			cur = key;
		}
	}
	return {};
}

map_instance::~map_instance()
{
	if (opened && ops->close)
		ops->close(state);
}

status check_map_state(const map_ops *ops, const void *state,
		       const std::string &what)
{
	map_state_header hdr;
	memcpy(&hdr, state, sizeof(hdr));
	const char *type = ops->type_name ? ops->type_name : "this map type";
	if (hdr.magic != ops->state_magic)
		return fail(EPROTONOSUPPORT,
			    what + ": state magic 0x" + hex32(hdr.magic) + " is not " +
				    type + "'s (0x" + hex32(ops->state_magic) +
				    ")");
	if (hdr.version != ops->state_version)
		return fail(EPROTONOSUPPORT,
			    what + ": state version " +
				    std::to_string(hdr.version) + " of " + type +
				    ", this build speaks " +
				    std::to_string(ops->state_version));
	return {};
}

result<std::shared_ptr<map_instance>> registry::map(uint32_t id)
{
	return impl_->map_instance_for(id, this);
}

result<std::shared_ptr<map_instance>> registry::map(handle h)
{
	auto m = impl_->map_instance_for(h.id, this);
	if (!m)
		return m;
	if ((*m)->h.generation != h.generation)
		return fail(EBADF, (*m)->describe() +
					   ": stale handle (generation " +
					   std::to_string(h.generation) +
					   ", the id now holds generation " +
					   std::to_string((*m)->h.generation) +
					   ")");
	return m;
}

std::string map_instance::describe() const
{
	return "map '" + std::string(name, strnlen(name, sizeof(name))) +
	       "' (id " + std::to_string(h.id) + ")";
}

status map_instance::check_live(const char *op) const
{
	uint64_t w = owner->impl_->word_at(h.id);
	if (word_kind(w) != handler_kind::map ||
	    word_generation(w) != h.generation)
		return fail(EBADF, describe() + ": " + op +
					   ": the map was released");
	return {};
}

namespace {

failure op_error(const map_instance &m, const char *op, int rc,
		 const std::string &detail = {})
{
	int e = rc < 0 ? -rc : rc;
	return fail(e, m.describe() + ": " + op + ": " + errno_name(e) +
			       (detail.empty() ? "" : " (" + detail + ")"));
}

// A write from user space in progress (the kernel's
// bpf_map_write_active_inc/_dec around BPF_MAP_UPDATE_ELEM and the other
// syscall-side writes). The count is raised before the frozen flag is read
// and freeze() sets the flag before it reads the count, both sequentially
// consistent: either this writer sees the flag (EPERM) or freeze() sees the
// writer (EBUSY), so no write from user space lands after a freeze that
// succeeded.
class syscall_write {
    public:
	explicit syscall_write(const map_instance &m) : writers_(m.shared->writers)
	{
		writers_.fetch_add(1);
	}
	~syscall_write()
	{
		writers_.fetch_sub(1);
	}
	syscall_write(const syscall_write &) = delete;
	syscall_write &operator=(const syscall_write &) = delete;

    private:
	std::atomic_ref<uint32_t> writers_;
};

failure frozen_error(const map_instance &m, const char *op)
{
	return op_error(m, op, EPERM, "the map is frozen");
}

// fd-valued maps (map_ops::fd_kind), the kernel's map_fd_get_ptr /
// map_fd_put_ptr around bpf_fd_array_map_update_elem and friends. Called with
// the registry mutex held, so that the object an id names cannot be released
// between the check and the store (release_locked refuses to release what
// such a map holds).
failure fd_error(const map_instance &m, const char *op, int e,
		 const std::string &detail)
{
	return fail(e, m.describe() + ": " + op + ": " + errno_name(e) + " (" +
			       detail + ")");
}

status store_fd(const map_instance &m, registry::impl &r, const char *op,
		const void *key, const void *value, uint64_t flags)
{
	if (m.ops->check_fd_update) {
		int rc = m.ops->check_fd_update(m.state, key, flags);
		if (rc != 0)
			return op_error(m, op, rc);
	}
	uint32_t id;
	memcpy(&id, value, sizeof(id));
	auto kind = handler_kind(m.ops->fd_kind);
	std::string kname(kind_name(kind));
	if (id >= r.shared->capacity ||
	    word_kind(r.word_at(id)) == handler_kind::empty)
		return fd_error(m, op, EBADF,
				"id " + std::to_string(id) + " holds no " + kname);
	auto obj = r.object_at(id, kind, "value");
	if (!obj)
		return fd_error(m, op, EINVAL,
				"id " + std::to_string(id) + " is not a " + kname);
	map_fd_object o{};
	o.size = sizeof(o);
	o.id = id;
	o.generation = word_generation(r.word_at(id));
	std::visit(
		[&](const auto &v) {
			using T = std::decay_t<decltype(v)>;
			if constexpr (std::is_same_v<T, map_handler>) {
				o.type = v.attr.map_type;
				o.key_size = v.attr.key_size;
				o.value_size = v.attr.value_size;
				o.max_entries = v.attr.max_entries;
				o.map_flags = v.attr.map_flags;
			} else if constexpr (std::is_same_v<T, prog_handler>) {
				o.type = v.prog_type;
			} else if constexpr (std::is_same_v<T,
							    perf_event_handler>) {
				o.type = v.type;
			}
		},
		(*obj)->value);
	if (m.ops->fd_get_ptr) {
		int rc = m.ops->fd_get_ptr(m.state, &o);
		if (rc != 0)
			return fd_error(m, op, rc < 0 ? -rc : EINVAL,
					"the map does not take " + kname + " id " +
						std::to_string(id));
	}
	uint32_t old = NO_ID;
	bool had = m.ops->lookup_copy(m.state, key, &old) == 0 && old != NO_ID;
	int rc = m.ops->update(m.state, key, value, flags);
	if (rc != 0) {
		if (m.ops->fd_put_ptr)
			m.ops->fd_put_ptr(m.state, id);
		return op_error(m, op, rc);
	}
	if (had && m.ops->fd_put_ptr)
		m.ops->fd_put_ptr(m.state, old);
	return {};
}

status erase_fd(const map_instance &m, const char *op, const void *key)
{
	uint32_t old = NO_ID;
	bool had = m.ops->lookup_copy(m.state, key, &old) == 0 && old != NO_ID;
	int rc = m.ops->delete_elem(m.state, key);
	if (rc != 0)
		return op_error(m, op, rc);
	if (had && m.ops->fd_put_ptr)
		m.ops->fd_put_ptr(m.state, old);
	return {};
}

} // namespace

bool map_instance::frozen() const noexcept
{
	return std::atomic_ref<uint32_t>(shared->frozen).load() != 0;
}

status map_instance::freeze() const
{
	BPFTIME_TRY(check_live("freeze"));
	// The kernel's map_get_sys_perms() comes first: user space has no
	// write permission on a BPF_F_RDONLY map, nor on a frozen one, so a
	// second freeze is EPERM, as the kernel answers it.
	if (map_flags & BPF_F_RDONLY)
		return op_error(*this, "freeze", EPERM, "BPF_F_RDONLY map");
	if (frozen())
		return op_error(*this, "freeze", EPERM, "already frozen");
	// The registry mutex serializes freezers (the kernel's freeze_mutex)
	// and keeps the map from being released meanwhile.
	auto guard = owner->impl_->lock();
	if (!guard)
		return std::move(guard).error();
	BPFTIME_TRY(check_live("freeze"));
	std::atomic_ref<uint32_t> flag(shared->frozen);
	// Frozen by a caller that took the mutex first: the kernel's EBUSY.
	if (flag.load() != 0)
		return op_error(*this, "freeze", EBUSY,
				"frozen meanwhile by another caller");
	flag.store(1);
	if (std::atomic_ref<uint32_t>(shared->writers).load() != 0) {
		flag.store(0);
		return op_error(*this, "freeze", EBUSY,
				"a write from user space is in progress");
	}
	return {};
}

status map_instance::lookup(const void *key, void *value) const
{
	BPFTIME_TRY(check_live("lookup"));
	if (map_flags & BPF_F_WRONLY)
		return op_error(*this, "lookup", EPERM, "BPF_F_WRONLY map");
	int rc = ops->lookup_copy(state, key, value);
	if (rc != 0)
		return op_error(*this, "lookup", rc);
	return {};
}

status map_instance::update(const void *key, const void *value,
			    uint64_t flags) const
{
	BPFTIME_TRY(check_live("update"));
	if (map_flags & BPF_F_RDONLY)
		return op_error(*this, "update", EPERM, "BPF_F_RDONLY map");
	syscall_write w(*this);
	if (frozen())
		return frozen_error(*this, "update");
	// The kernel's map_update_elem (syscall.c) refuses BPF_F_LOCK before
	// the map sees it when the value holds no bpf_spin_lock, which no
	// bpftime map value does.
	if (flags & BPF_F_LOCK)
		return op_error(*this, "update", EINVAL,
				"BPF_F_LOCK: the value has no bpf_spin_lock");
	if (ops->fd_kind != MAP_FD_NONE) {
		auto guard = owner->impl_->lock();
		if (!guard)
			return std::move(guard).error();
		BPFTIME_TRY(check_live("update"));
		return store_fd(*this, *owner->impl_, "update", key, value,
				flags);
	}
	int rc = ops->update(state, key, value, flags);
	if (rc != 0)
		return op_error(*this, "update", rc);
	return {};
}

status map_instance::remove(const void *key) const
{
	BPFTIME_TRY(check_live("delete"));
	if (map_flags & BPF_F_RDONLY)
		return op_error(*this, "delete", EPERM, "BPF_F_RDONLY map");
	syscall_write w(*this);
	if (frozen())
		return frozen_error(*this, "delete");
	if (ops->fd_kind != MAP_FD_NONE) {
		auto guard = owner->impl_->lock();
		if (!guard)
			return std::move(guard).error();
		BPFTIME_TRY(check_live("delete"));
		return erase_fd(*this, "delete", key);
	}
	int rc = ops->delete_elem(state, key);
	if (rc != 0)
		return op_error(*this, "delete", rc);
	return {};
}

// The kernel's map_lookup_and_delete_elem (kernel/bpf/syscall.c): it reads
// and writes, so it needs both access modes, and a frozen map refuses it.
status map_instance::lookup_and_delete(const void *key, void *value) const
{
	BPFTIME_TRY(check_live("lookup and delete"));
	if (map_flags & (BPF_F_RDONLY | BPF_F_WRONLY))
		return op_error(*this, "lookup and delete", EPERM,
				(map_flags & BPF_F_RDONLY) ? "BPF_F_RDONLY map" :
							     "BPF_F_WRONLY map");
	if (!ops->lookup_and_delete)
		return op_error(*this, "lookup and delete", 524 /* ENOTSUPP */);
	syscall_write w(*this);
	if (frozen())
		return frozen_error(*this, "lookup and delete");
	int rc = ops->lookup_and_delete(state, key, value);
	if (rc != 0)
		return op_error(*this, "lookup and delete", rc);
	return {};
}

status map_instance::next_key(const void *key, void *next) const
{
	BPFTIME_TRY(check_live("next key"));
	if (map_flags & BPF_F_WRONLY)
		return op_error(*this, "next key", EPERM, "BPF_F_WRONLY map");
	int rc = ops->get_next_key(state, key, next);
	if (rc != 0)
		return op_error(*this, "next key", rc);
	return {};
}

result<uint32_t> map_instance::lookup_batch(const void *after,
					    uint32_t max_count, void *keys,
					    void *values) const
{
	BPFTIME_TRY(check_live("lookup batch"));
	if (map_flags & BPF_F_WRONLY)
		return op_error(*this, "lookup batch", EPERM, "BPF_F_WRONLY map");
	if (ops->lookup_batch) {
		uint32_t n = 0;
		int rc = ops->lookup_batch(state, after, max_count, keys, values,
					   &n);
		if (rc != 0)
			return op_error(*this, "lookup batch", rc);
		return n;
	}
	auto *k = static_cast<uint8_t *>(keys);
	auto *v = static_cast<uint8_t *>(values);
	// Holds the key of an entry deleted between get_next_key and the
	// copy of its value, to continue after it.
	std::vector<uint8_t> skipped(key_size);
	const void *cur = after;
	uint32_t n = 0;
	while (n < max_count) {
		uint8_t *kout = k + size_t(n) * key_size;
		int rc = ops->get_next_key(state, cur, kout);
		if (rc == -ENOENT)
			break;
		if (rc != 0)
			return op_error(*this, "lookup batch", rc);
		rc = ops->lookup_copy(state, kout,
				      v + size_t(n) * user_value_size);
		if (rc == -ENOENT) {
			memcpy(skipped.data(), kout, key_size);
			cur = skipped.data();
			continue;
		}
		if (rc != 0)
			return op_error(*this, "lookup batch", rc);
		cur = kout;
		n++;
	}
	return n;
}

result<uint32_t> map_instance::update_batch(const void *keys,
					    const void *values, uint32_t count,
					    uint64_t flags) const
{
	BPFTIME_TRY(check_live("update batch"));
	if (map_flags & BPF_F_RDONLY)
		return op_error(*this, "update batch", EPERM, "BPF_F_RDONLY map");
	syscall_write w(*this);
	if (frozen())
		return frozen_error(*this, "update batch");
	if (flags & BPF_F_LOCK)
		return op_error(*this, "update batch", EINVAL,
				"BPF_F_LOCK: the value has no bpf_spin_lock");
	auto *k = static_cast<const uint8_t *>(keys);
	auto *v = static_cast<const uint8_t *>(values);
	if (ops->fd_kind != MAP_FD_NONE) {
		auto guard = owner->impl_->lock();
		if (!guard)
			return std::move(guard).error();
		BPFTIME_TRY(check_live("update batch"));
		for (uint32_t i = 0; i < count; i++) {
			auto st = store_fd(*this, *owner->impl_, "update batch",
					   k + size_t(i) * key_size,
					   v + size_t(i) * user_value_size, flags);
			if (!st)
				return fail(st.error().code,
					    st.error().message + "; entry " +
						    std::to_string(i) + " of " +
						    std::to_string(count) + ", " +
						    std::to_string(i) + " applied");
		}
		return count;
	}
	for (uint32_t i = 0; i < count; i++) {
		int rc = ops->update(state, k + size_t(i) * key_size,
				     v + size_t(i) * user_value_size, flags);
		if (rc != 0)
			return op_error(*this, "update batch", rc,
					"entry " + std::to_string(i) + " of " +
						std::to_string(count) + "; " +
						std::to_string(i) + " applied");
	}
	return count;
}

result<uint32_t> map_instance::delete_batch(const void *keys,
					    uint32_t count) const
{
	BPFTIME_TRY(check_live("delete batch"));
	if (map_flags & BPF_F_RDONLY)
		return op_error(*this, "delete batch", EPERM, "BPF_F_RDONLY map");
	syscall_write w(*this);
	if (frozen())
		return frozen_error(*this, "delete batch");
	auto *k = static_cast<const uint8_t *>(keys);
	if (ops->fd_kind != MAP_FD_NONE) {
		auto guard = owner->impl_->lock();
		if (!guard)
			return std::move(guard).error();
		BPFTIME_TRY(check_live("delete batch"));
		for (uint32_t i = 0; i < count; i++) {
			auto st = erase_fd(*this, "delete batch",
					   k + size_t(i) * key_size);
			if (!st)
				return fail(st.error().code,
					    st.error().message + "; entry " +
						    std::to_string(i) + " of " +
						    std::to_string(count) + ", " +
						    std::to_string(i) + " deleted");
		}
		return count;
	}
	for (uint32_t i = 0; i < count; i++) {
		int rc = ops->delete_elem(state, k + size_t(i) * key_size);
		if (rc != 0)
			return op_error(*this, "delete batch", rc,
					"entry " + std::to_string(i) + " of " +
						std::to_string(count) + "; " +
						std::to_string(i) + " deleted");
	}
	return count;
}

result<std::span<uint8_t>> map_instance::mmap_region(bool writable) const
{
	BPFTIME_TRY(check_live("mmap"));
	// The type decides, as the kernel's map_mmap does: arrays want
	// BPF_F_MMAPABLE, ring buffers are always mapped; a perf event array
	// shows its slots and buffers to bpftime's consumers.
	const bool always = map_type == BPF_MAP_TYPE_RINGBUF ||
			    map_type == BPF_MAP_TYPE_USER_RINGBUF ||
			    map_type == BPF_MAP_TYPE_PERF_EVENT_ARRAY;
	if (!(always || (map_flags & BPF_F_MMAPABLE)) || !ops->mmap_region)
		return fail(EINVAL, describe() + ": mmap: the map was not "
						 "created with BPF_F_MMAPABLE");
	if (writable && frozen())
		return op_error(*this, "mmap", EPERM,
				"the map is frozen; only a read-only view is "
				"allowed");
	uint64_t len = 0;
	void *p = ops->mmap_region(state, &len);
	if (!p)
		return fail(EINVAL, describe() + ": mmap: the map exposes no "
						 "memory");
	return std::span<uint8_t>(static_cast<uint8_t *>(p), len);
}

result<uint32_t> map_instance::consume(map_record_fn cb, void *ctx) const
{
	BPFTIME_TRY(check_live("consume"));
	if (!ops->consume)
		return fail(EINVAL, describe() + ": consume: " +
					    describe_map_type(map_type) +
					    " has no records to consume");
	int rc = ops->consume(state, cb, ctx);
	if (rc < 0)
		return op_error(*this, "consume", rc);
	return uint32_t(rc);
}

} // namespace bpftime::handlers
