// cmd_map.cpp: BPF_MAP_CREATE and the element commands, as the kernel's
// map_create(), map_lookup_elem() ... in kernel/bpf/syscall.c: the same
// checks in the same order, so the same bad call gets the same errno.
#include "server_impl.hpp"
#include "user_memory.hpp"

#include <linux/bpf.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace bpftime::syscall_server {

namespace {

// bpf_obj_name_cpy(): at most 15 characters of [A-Za-z0-9_.], NUL-padded.
int copy_name(std::string &out, const char (&name)[BPF_OBJ_NAME_LEN])
{
	size_t i = 0;
	for (; i < BPF_OBJ_NAME_LEN; i++) {
		char c = name[i];
		if (!c)
			break;
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9') || c == '_' || c == '.';
		if (!ok)
			return -EINVAL;
	}
	if (i == BPF_OBJ_NAME_LEN)
		return -EINVAL;
	out.assign(name, i);
	return 0;
}

bool is_hash_type(uint32_t t)
{
	return t == BPF_MAP_TYPE_HASH || t == BPF_MAP_TYPE_PERCPU_HASH ||
	       t == BPF_MAP_TYPE_LRU_HASH || t == BPF_MAP_TYPE_LRU_PERCPU_HASH;
}

constexpr long ENOTSUPP_ = 524; // the kernel's internal ENOTSUPP

// A buffer for a key or value on the stack when small (the hot path), on
// the heap otherwise.
struct scratch {
	unsigned char small[256];
	std::vector<unsigned char> big;
	unsigned char *get(size_t n)
	{
		if (n <= sizeof(small))
			return small;
		big.resize(n);
		return big.data();
	}
};

// map_instance::lookup() and ::next_key() with their checks, returning the
// errno alone: the map_instance forms build an error message on a miss, an
// allocation, and a tool's lookups and key walks miss as a matter of course
// (the end of every walk). The kernel's answer is only the errno anyway.
int lookup_errno(const handlers::map_instance &m, const void *key, void *value)
{
	if (auto live = m.check_live("lookup"); !live)
		return -live.error().code;
	if (m.map_flags & BPF_F_WRONLY)
		return -EPERM;
	int rc = m.ops->lookup_copy(m.state, key, value);
	return rc > 0 ? -rc : rc;
}

int next_key_errno(const handlers::map_instance &m, const void *key, void *next)
{
	if (auto live = m.check_live("next key"); !live)
		return -live.error().code;
	if (m.map_flags & BPF_F_WRONLY)
		return -EPERM;
	int rc = m.ops->get_next_key(m.state, key, next);
	return rc > 0 ? -rc : rc;
}

} // namespace

// Fd-valued maps (prog arrays, maps of maps: map_ops::fd_kind) store
// registry ids where the tool writes descriptors and reads ids (the
// kernel's map_fd_get_ptr / map_fd_sys_lookup_elem): the descriptor in a
// value becomes the id of its object here, and an id read back becomes the
// id bpftool prints (registry id + 1). -errno for a descriptor of the wrong
// kind, as bpf_prog_get() / bpf_map_get() answer.
static int fd_value_to_id(server::impl &s, uint32_t fd_kind, const void *value,
			  uint32_t &id)
{
	int32_t fd;
	memcpy(&fd, value, sizeof(fd));
	obj_kind want = fd_kind == handlers::MAP_FD_PROG ? obj_kind::prog :
			fd_kind == handlers::MAP_FD_MAP	 ? obj_kind::map :
							   obj_kind::perf_event;
	int err = 0;
	auto o = s.get_kind(fd, want, err);
	if (!o)
		return err ? err : -EBADF;
	id = o->h.id;
	return 0;
}

int copy_obj_name(std::string &out, const char (&name)[BPF_OBJ_NAME_LEN])
{
	return copy_name(out, name);
}

long server::impl::map_cmd(int cmd, union bpf_attr &attr, uint64_t uattr)
{
	if (cmd == BPF_MAP_CREATE) {
		handlers::map_spec s;
		if (int e = copy_name(s.name, attr.map_name))
			return e;
		s.type = attr.map_type;
		s.key_size = attr.key_size;
		s.value_size = attr.value_size;
		s.max_entries = attr.max_entries;
		s.flags = attr.map_flags;
		s.numa_node = attr.numa_node;
		s.ifindex = attr.map_ifindex;
		s.map_extra = attr.map_extra;
		std::vector<std::shared_ptr<object>> uses;
		int err = 0;
		if (attr.inner_map_fd) {
			auto inner = get_kind(int(attr.inner_map_fd), obj_kind::map, err);
			if (!inner)
				return err;
			s.inner_map_id = inner->h.id;
		}
		// The kernel takes btf_fd only when a type id names something in it.
		if (attr.btf_key_type_id || attr.btf_value_type_id ||
		    attr.btf_vmlinux_value_type_id) {
			auto btf = get_kind(int(attr.btf_fd), obj_kind::btf, err);
			if (!btf)
				return err;
			s.btf_id = btf->h.id;
			s.btf_key_type_id = attr.btf_key_type_id;
			s.btf_value_type_id = attr.btf_value_type_id;
			s.btf_vmlinux_value_type_id = attr.btf_vmlinux_value_type_id;
			uses.push_back(btf);
		}
		auto h = reg->create_map(s);
		if (!h)
			return -h.error().code;
		auto o = make(obj_kind::map, *h, true);
		o->uses = std::move(uses);
		auto m = reg->map(h->id);
		if (!m) {
			// No implementation of this type here: ~object releases it.
			return -m.error().code;
		}
		o->map = *m;
		return install(std::move(o));
	}

	int fd = int(cmd >= BPF_MAP_LOOKUP_BATCH && cmd <= BPF_MAP_DELETE_BATCH ?
			     attr.batch.map_fd :
			     attr.map_fd);
	hot_ref ref(*this, fd);
	object *o = ref.get();
	std::shared_ptr<object> hold;
	if (!o) {
		int err = 0;
		hold = get_kind(fd, obj_kind::map, err);
		if (!hold)
			return err;
		o = hold.get();
	}
	if (o->kind != obj_kind::map)
		return -EINVAL;
	const handlers::map_instance *m = o->map.get();
	if (!m)
		return -EINVAL;
	const uint32_t ks = m->key_size, vs = m->user_value_size;
	scratch kbuf, vbuf;

	switch (cmd) {
	case BPF_MAP_LOOKUP_ELEM: {
		// BPF_F_LOCK is known but EINVAL here: no bpftime map value
		// holds a bpf_spin_lock (the kernel's btf_record_has_field()).
		if (attr.flags)
			return -EINVAL;
		if (!user_readable(attr.key, ks))
			return -EFAULT;
		const void *key = reinterpret_cast<const void *>(uint64_t(attr.key));
		if (m->fd_kind != handlers::MAP_FD_NONE) {
			// bpf_fd_array_map_lookup_elem(): the object's id, where
			// the type has one to give (not perf event arrays).
			if (m->fd_kind == handlers::MAP_FD_PERF_EVENT)
				return -ENOTSUPP_;
			uint32_t id = 0;
			if (int rc = lookup_errno(*m, key, &id))
				return rc;
			id = ext_id(id);
			return copy_to_user(attr.value, &id, sizeof(id));
		}
		if (user_writable(attr.value, vs))
			return lookup_errno(*m, key, reinterpret_cast<void *>(uint64_t(attr.value)));
		// The kernel looks up first, then faults on the copy out.
		int rc = lookup_errno(*m, key, vbuf.get(vs));
		return rc ? rc : -EFAULT;
	}
	case BPF_MAP_UPDATE_ELEM: {
		if (!user_readable(attr.key, ks) || !user_readable(attr.value, vs))
			return -EFAULT;
		const void *value = reinterpret_cast<const void *>(uint64_t(attr.value));
		uint32_t id = 0;
		if (m->fd_kind != handlers::MAP_FD_NONE) {
			if (vs != sizeof(uint32_t))
				return -EINVAL;
			if (int e = fd_value_to_id(*this, m->fd_kind, value, id))
				return e;
			if (m->fd_kind == handlers::MAP_FD_PERF_EVENT) {
				int32_t efd;
				memcpy(&efd, reinterpret_cast<const void *>(uint64_t(attr.value)),
				       sizeof efd);
				if (auto pe = get(efd))
					perf_event_storing(*o, *pe);
			}
			value = &id;
		}
		auto r = m->update(reinterpret_cast<const void *>(uint64_t(attr.key)),
				   value, attr.flags);
		if (!r)
			return -r.error().code;
		if (m->fd_kind == handlers::MAP_FD_PERF_EVENT) {
			// The event's mmap and epoll show this slot's ring now.
			int32_t efd;
			uint32_t slot;
			memcpy(&efd, reinterpret_cast<const void *>(uint64_t(attr.value)),
			       sizeof efd);
			memcpy(&slot, reinterpret_cast<const void *>(uint64_t(attr.key)),
			       sizeof slot);
			auto mo = get(fd);
			auto pe = get(efd);
			if (mo && pe)
				perf_event_stored(mo, slot, pe);
		}
		return 0;
	}
	case BPF_MAP_DELETE_ELEM: {
		if (!user_readable(attr.key, ks))
			return -EFAULT;
		auto r = m->remove(reinterpret_cast<const void *>(uint64_t(attr.key)));
		return r ? 0 : -r.error().code;
	}
	case BPF_MAP_GET_NEXT_KEY: {
		const void *key = nullptr;
		if (attr.key) {
			if (!user_readable(attr.key, ks))
				return -EFAULT;
			key = reinterpret_cast<const void *>(uint64_t(attr.key));
		}
		unsigned char *next = kbuf.get(ks);
		if (int rc = next_key_errno(*m, key, next))
			return rc;
		return copy_to_user(attr.next_key, next, ks);
	}
	case BPF_MAP_LOOKUP_AND_DELETE_ELEM: {
		if (!is_hash_type(m->map_type))
			return -ENOTSUPP_;
		if (attr.flags)
			return -EINVAL;
		unsigned char *key = kbuf.get(ks);
		if (copy_from_user(key, attr.key, ks))
			return -EFAULT;
		unsigned char *value = vbuf.get(vs);
		if (auto r = m->lookup(key, value); !r)
			return -r.error().code;
		if (auto r = m->remove(key); !r)
			return -r.error().code;
		return copy_to_user(attr.value, value, vs);
	}
	case BPF_MAP_FREEZE: {
		auto r = m->freeze();
		return r ? 0 : -r.error().code;
	}
	default:
		break;
	}

	// The batch commands (the kernel's generic_map_*_batch). The batch
	// token (in_batch / out_batch) is the last key returned.
	auto &b = attr.batch;
	if (b.flags)
		return -EINVAL;
	uint64_t count_at = uattr + offsetof(union bpf_attr, batch.count);
	uint32_t max = b.count;
	auto put_count = [&](uint32_t n) {
		return copy_to_user(count_at, &n, sizeof(n));
	};
	if (cmd == BPF_MAP_UPDATE_BATCH || cmd == BPF_MAP_DELETE_BATCH) {
		// generic_map_update_batch() / generic_map_delete_batch(): one
		// element at a time, stopping at the first failure, with the
		// count of those done written back either way. elem_flags may
		// only be BPF_F_LOCK there, which is EINVAL here (no value has a
		// spin lock), so the updates are BPF_ANY.
		if (b.elem_flags)
			return -EINVAL;
		if (!max)
			return 0;
		if (!user_readable(b.keys, uint64_t(max) * ks))
			return -EFAULT;
		if (cmd == BPF_MAP_UPDATE_BATCH && !user_readable(b.values, uint64_t(max) * vs))
			return -EFAULT;
		const auto *keys = reinterpret_cast<const unsigned char *>(uint64_t(b.keys));
		const auto *values = reinterpret_cast<const unsigned char *>(uint64_t(b.values));
		uint32_t done = 0;
		int err = 0;
		for (; done < max; done++) {
			const unsigned char *k = keys + size_t(done) * ks;
			const void *v = values + size_t(done) * vs;
			uint32_t id = 0;
			if (cmd == BPF_MAP_UPDATE_BATCH && m->fd_kind != handlers::MAP_FD_NONE) {
				if (int e = fd_value_to_id(*this, m->fd_kind, v, id)) {
					err = e;
					break;
				}
				v = &id;
			}
			auto r = cmd == BPF_MAP_UPDATE_BATCH ? m->update(k, v, BPF_ANY) :
							       m->remove(k);
			if (!r) {
				err = -r.error().code;
				break;
			}
		}
		if (put_count(done))
			return -EFAULT;
		return err;
	}
	// lookup and lookup-and-delete
	if (cmd == BPF_MAP_LOOKUP_AND_DELETE_BATCH && !is_hash_type(m->map_type))
		return -ENOTSUPP_;
	// The kernel has no batch lookup for fd-valued maps either.
	if (m->fd_kind != handlers::MAP_FD_NONE)
		return -ENOTSUPP_;
	if (b.elem_flags)
		return -EINVAL;
	if (!max)
		return 0;
	const void *after = nullptr;
	unsigned char *token = kbuf.get(ks);
	if (b.in_batch) {
		if (copy_from_user(token, b.in_batch, ks))
			return -EFAULT;
		after = token;
	}
	if (!user_writable(b.keys, uint64_t(max) * ks) ||
	    !user_writable(b.values, uint64_t(max) * vs))
		return -EFAULT;
	auto *keys = reinterpret_cast<unsigned char *>(uint64_t(b.keys));
	auto r = m->lookup_batch(after, max, keys,
				 reinterpret_cast<void *>(uint64_t(b.values)));
	if (!r)
		return -r.error().code;
	uint32_t n = *r;
	if (n && copy_to_user(b.out_batch, keys + size_t(n - 1) * ks, ks))
		return -EFAULT;
	if (cmd == BPF_MAP_LOOKUP_AND_DELETE_BATCH && n) {
		if (auto d = m->delete_batch(keys, n); !d)
			return -d.error().code;
	}
	if (put_count(n))
		return -EFAULT;
	return n < max ? -ENOENT : 0;
}

} // namespace bpftime::syscall_server
