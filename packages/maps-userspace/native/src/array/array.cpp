// array/array.cpp: the cold parts of the array core (array.hpp): creation,
// iteration, batch reads and direct access.
#include "array/array.hpp"
#include "map_common.hpp"

#include <bpftime/handlers/bpf_defs.hpp>

#include <algorithm>

namespace bpftime::maps_userspace::array {

using namespace bpftime::handlers;

int create(const map_create_args *a, const params &p, void **out, char *err,
	   size_t err_len)
{
	if (a->key_size != 4)
		return set_error(err, err_len, EINVAL,
				 "key size %u: array keys are 4-byte indexes",
				 a->key_size);
	if (int r = check_create_args(a, p, "arrays", err, err_len))
		return r;
	// No KMALLOC_MAX_SIZE limit on value_size: the kernel dropped it for
	// arrays (a 6.18 kernel creates 4 MiB + 1 values); its
	// array_map_alloc_check refuses only a value_size above INT_MAX, so
	// that rounding it up to 8 cannot wrap, and bounds the total below.
	if (a->value_size > uint32_t(INT32_MAX))
		return set_error(err, err_len, E2BIG, "value size %u is too large",
				 a->value_size);
	const uint32_t slot_size = p.slot_for(a);
	// 64-bit: a slot of a per-CPU type is the value times the CPUs.
	const uint64_t stride = (uint64_t(slot_size) + 7) & ~uint64_t(7);
	uint64_t len = stride * a->max_entries;
	// The kernel refuses arrays of 4 GiB and more with ENOMEM.
	if (len >= (1ULL << 32) - 4096)
		return set_error(err, err_len, ENOMEM,
				 "%u entries of %llu bytes do not fit in 4 GiB",
				 a->max_entries, (unsigned long long)stride);
	auto *mgr = static_cast<shm::segment_manager *>(a->segment_manager);
	auto *s = static_cast<state *>(
		mgr->allocate(sizeof(state), std::nothrow));
	if (!s)
		return set_error(err, err_len, ENOMEM, "the segment is full");
	size_t align = (a->map_flags & BPF_F_MMAPABLE) ? 4096 : 64;
	uint64_t alloc_len = (a->map_flags & BPF_F_MMAPABLE) ?
				     (len + 4095) & ~uint64_t(4095) :
				     len;
	void *values = mgr->allocate_aligned(alloc_len, align, std::nothrow);
	if (!values) {
		mgr->deallocate(s);
		return set_error(err, err_len, ENOMEM,
				 "the segment has no room for %llu bytes of "
				 "values",
				 (unsigned long long)alloc_len);
	}
	memset(values, p.fill, alloc_len);
	s->header.version = p.version;
	keep_create_args(s, a);
	s->slot_size = slot_size;
	s->stride = uint32_t(stride); // below 4 GiB: checked above
	s->values_len = alloc_len;
	s->values_off = static_cast<char *>(values) - reinterpret_cast<char *>(s);
	s->header.magic = p.magic;
	*out = s;
	return 0;
}

// The values lie in the segment and hold max_entries slots of the state's
// stride (issue 17, item 3: a damaged segment is refused at open).
int check_state(const void *sp, char *err, size_t err_len)
{
	auto *s = const_cast<state *>(static_cast<const state *>(sp));
	bool ok = s->key_size == 4 && s->stride == ((s->slot_size + 7) & ~7u) &&
		  s->stride != 0 &&
		  uint64_t(s->stride) * s->max_entries <= s->values_len &&
		  s->values_off != 0 &&
		  shm::same_mapping(s, s->values(), s->values_len);
	if (!ok)
		return set_error(err, err_len, EBADMSG,
				 "the map's state in the segment is damaged "
				 "(its sizes or offsets do not hold together)");
	return 0;
}

void destroy(void *segment_manager, void *sp)
{
	auto *mgr = static_cast<shm::segment_manager *>(segment_manager);
	auto *s = static_cast<state *>(sp);
	mgr->deallocate(s->values());
	s->header.magic = 0;
	mgr->deallocate(s);
}

int get_next_key(void *sp, const void *key, void *next_key)
{
	auto *s = static_cast<state *>(sp);
	uint32_t index = 0;
	if (key)
		memcpy(&index, key, sizeof(index));
	uint32_t next;
	if (!key || index >= s->max_entries) {
		next = 0;
	} else {
		if (index == s->max_entries - 1)
			return -ENOENT;
		next = index + 1;
	}
	memcpy(next_key, &next, sizeof(next));
	return 0;
}

void *mmap_region(void *sp, uint64_t *len)
{
	auto *s = static_cast<state *>(sp);
	if (!(s->map_flags & BPF_F_MMAPABLE))
		return nullptr;
	*len = s->values_len;
	return s->values();
}

int direct_value_addr(void *sp, uint64_t *addr)
{
	auto *s = static_cast<state *>(sp);
	if (s->max_entries != 1)
		return -EOPNOTSUPP;
	*addr = reinterpret_cast<uint64_t>(s->values());
	return 0;
}

int lookup_batch(void *sp, const void *after, uint32_t max_count, void *keys,
		 void *values, uint32_t *count)
{
	auto *s = static_cast<state *>(sp);
	uint32_t first = 0;
	if (after) {
		uint32_t index;
		memcpy(&index, after, sizeof(index));
		first = index < s->max_entries ? index + 1 : 0;
	}
	uint32_t n = first < s->max_entries ?
			     std::min(max_count, s->max_entries - first) :
			     0;
	auto *ko = static_cast<uint8_t *>(keys);
	auto *vo = static_cast<uint8_t *>(values);
	for (uint32_t i = 0; i < n; i++) {
		uint32_t index = first + i;
		memcpy(ko + size_t(i) * 4, &index, 4);
		memcpy(vo + size_t(i) * s->slot_size, s->slot(index),
		       s->slot_size);
	}
	*count = n;
	return 0;
}

int64_t for_each(void *sp, map_elem_fn cb, void *ctx)
{
	auto *s = static_cast<state *>(sp);
	int64_t n = 0;
	for (uint32_t i = 0; i < s->max_entries; i++) {
		uint32_t key = i;
		n++;
		if (cb(ctx, &key, s->slot(i)))
			break;
	}
	return n;
}

int gen_lookup(void *sp, map_inline_lookup *out)
{
	auto *s = static_cast<state *>(sp);
	if (out->size < sizeof(map_inline_lookup))
		return -EINVAL;
	out->kind = MAP_INLINE_ARRAY;
	out->base = reinterpret_cast<uint64_t>(s->values());
	out->stride = s->stride;
	out->max_entries = s->max_entries;
	out->cpu_stride = 0;
	return 0;
}

} // namespace bpftime::maps_userspace::array
