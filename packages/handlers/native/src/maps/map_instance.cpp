// map_instance.cpp: the per-process map-ops registry, and maps as one process
// uses them (map_instance): the control-plane operations with the checks the
// kernel's bpf() syscall makes before it calls a map's ops.
#include "registry/registry_impl.hpp"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <deque>
#include <mutex>

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

constexpr size_t REQUIRED_OPS_SIZE = offsetof(map_ops, push);

} // namespace

status register_map_ops(const map_ops *ops)
{
	if (!ops)
		return fail(EINVAL, "register map ops: null table");
	if (ops->size < REQUIRED_OPS_SIZE)
		return fail(EINVAL, "register map ops: table of " +
					    std::to_string(ops->size) +
					    " bytes is shorter than the " +
					    std::to_string(REQUIRED_OPS_SIZE) +
					    " bytes of the required fields");
	std::string what = "register map ops for " +
			   (ops->type_name ? std::string(ops->type_name) :
					     describe_map_type(ops->map_type)) +
			   " from " +
			   (ops->provider ? std::string(ops->provider) :
					    std::string("an unnamed provider"));
	if (ops->abi_version != MAP_OPS_ABI_VERSION)
		return fail(EPROTONOSUPPORT,
			    what + ": map_ops ABI version " +
				    std::to_string(ops->abi_version) +
				    ", this bpftime uses " +
				    std::to_string(MAP_OPS_ABI_VERSION));
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

	ops_table &t = table();
	std::lock_guard g(t.mu);
	for (auto &[src, copy] : t.by_source) {
		if (copy->map_type != ops->map_type)
			continue;
		if (src == ops)
			return {};
		return fail(EEXIST, what + ": " + describe_map_type(ops->map_type) +
					    " is already provided by " +
					    (copy->provider ? copy->provider :
							      "another table"));
	}
	map_ops copy{};
	memcpy(&copy, ops, std::min<size_t>(ops->size, sizeof(map_ops)));
	copy.size = sizeof(map_ops);
	t.copies.push_back(copy);
	t.by_source.emplace_back(ops, &t.copies.back());
	return {};
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
	std::string_view provider = map_type_provider(map_type);
	if (provider.empty())
		return "no implementation of " + type +
		       " is registered in this process (no @bpftime package "
		       "provides it)";
	bool loaded = false;
	for (const map_ops *o : registered_map_ops())
		loaded = loaded || (o->provider && provider == o->provider);
	if (loaded)
		return "no implementation of " + type +
		       " is registered in this process: " + std::string(provider) +
		       " is loaded but this version does not provide it";
	return "no implementation of " + type +
	       " is registered in this process; it is provided by " +
	       std::string(provider) + " (import '" + std::string(provider) +
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
	auto m = std::make_shared<map_instance>();
	m->ops = ops;
	m->state = at<void>(mh.state_offset);
	m->map_type = a.map_type;
	m->key_size = a.key_size;
	m->value_size = a.value_size;
	m->max_entries = a.max_entries;
	m->map_flags = a.map_flags;
	m->h = handle{ id, word_generation(w) };
	memcpy(m->name, a.name, sizeof(m->name));
	m->owner = owner;
	m->shared = &mh;
	// Re-check: a release between reading the word and the attributes
	// would have changed the generation.
	if (word_at(id) != w)
		return fail(EBADF, "map (id " + std::to_string(id) +
					   ") was released while being opened");
	maps[id] = m;
	return m;
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
	int rc = ops->delete_elem(state, key);
	if (rc != 0)
		return op_error(*this, "delete", rc);
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
		rc = ops->lookup_copy(state, kout, v + size_t(n) * value_size);
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
	for (uint32_t i = 0; i < count; i++) {
		int rc = ops->update(state, k + size_t(i) * key_size,
				     v + size_t(i) * value_size, flags);
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
	if (!(map_flags & BPF_F_MMAPABLE) || !ops->mmap_region)
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

} // namespace bpftime::handlers
