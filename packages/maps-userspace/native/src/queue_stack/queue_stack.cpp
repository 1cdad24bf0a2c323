// queue_stack/queue_stack.cpp: the queue and stack core (queue_stack.hpp)
// and the push/pop/peek helpers of queues, stacks and bloom filters.
#include "queue_stack/queue_stack.hpp"
#include "bloom/bloom.hpp"

#include <bpftime/handlers/registry.hpp>

#include <new>

namespace bpftime::maps_userspace::queue_stack {

using namespace bpftime::handlers;

namespace {

// The kernel's QUEUE_STACK_CREATE_FLAG_MASK.
constexpr uint32_t CREATE_FLAGS = BPF_F_NUMA_NODE | BPF_F_ACCESS_MASK;

// Holds a queue's or stack's lock for its scope.
class guard {
    public:
	explicit guard(owner_lock &l) : l_(l)
	{
		l_.lock();
	}
	~guard()
	{
		l_.unlock();
	}
	guard(const guard &) = delete;
	guard &operator=(const guard &) = delete;

    private:
	owner_lock &l_;
};

bool empty(const state *s)
{
	return s->head == s->tail;
}

bool full(const state *s)
{
	uint32_t h = s->head + 1;
	if (h >= s->size)
		h = 0;
	return h == s->tail;
}

int get(state *s, void *value, bool remove)
{
	guard g(s->lock);
	if (empty(s))
		return -ENOENT;
	if (s->is_stack) {
		uint32_t i = s->head == 0 ? s->size - 1 : s->head - 1;
		memcpy(value, s->slot(i), s->value_size);
		if (remove)
			s->head = i;
	} else {
		memcpy(value, s->slot(s->tail), s->value_size);
		if (remove)
			s->tail = s->tail + 1 >= s->size ? 0 : s->tail + 1;
	}
	return 0;
}

} // namespace

int create(const map_create_args *a, uint32_t magic, uint32_t version,
	   bool is_stack, void **out, char *err, size_t err_len)
{
	// queue_stack_map_alloc_check.
	if (a->max_entries == 0)
		return set_error(err, err_len, EINVAL, "max_entries is 0");
	if (a->key_size != 0)
		return set_error(err, err_len, EINVAL,
				 "key size %u: queues and stacks have no key "
				 "(key size 0)",
				 a->key_size);
	if (a->value_size == 0)
		return set_error(err, err_len, EINVAL, "value size is 0");
	if (a->map_flags & ~CREATE_FLAGS)
		return set_error(err, err_len, EINVAL,
				 "map_flags 0x%x has bits queues and stacks do "
				 "not take (allowed: 0x%x)",
				 a->map_flags, CREATE_FLAGS);
	if (a->value_size > KMALLOC_MAX_SIZE)
		return set_error(err, err_len, E2BIG, "value size %u is too large",
				 a->value_size);
	const uint64_t size = uint64_t(a->max_entries) + 1;
	const uint64_t stride = (uint64_t(a->value_size) + 7) & ~uint64_t(7);
	auto *mgr = static_cast<shm::segment_manager *>(a->segment_manager);
	void *mem = mgr->allocate(sizeof(state), std::nothrow);
	if (!mem)
		return set_error(err, err_len, ENOMEM, "the segment is full");
	// size * stride may exceed any segment: ENOMEM, as the kernel's
	// bpf_map_area_alloc fails.
	void *values = size * stride < (1ULL << 40) ?
			       mgr->allocate_aligned(size * stride, 64,
						     std::nothrow) :
			       nullptr;
	if (!values) {
		mgr->deallocate(mem);
		return set_error(err, err_len, ENOMEM,
				 "the segment has no room for %llu slots of "
				 "%llu bytes",
				 (unsigned long long)size,
				 (unsigned long long)stride);
	}
	memset(mem, 0, sizeof(state));
	auto *s = static_cast<state *>(mem);
	s->value_size = a->value_size;
	s->max_entries = a->max_entries;
	s->map_flags = a->map_flags;
	s->size = uint32_t(size);
	s->stride = uint32_t(stride);
	s->is_stack = is_stack;
	s->values_off = static_cast<char *>(values) - reinterpret_cast<char *>(s);
	s->header.version = version;
	s->header.magic = magic;
	*out = s;
	return 0;
}

void destroy(void *segment_manager, void *sp)
{
	auto *mgr = static_cast<shm::segment_manager *>(segment_manager);
	auto *s = static_cast<state *>(sp);
	mgr->deallocate(s->slot(0));
	s->header.magic = 0;
	mgr->deallocate(s);
}

int push(state *s, const void *value, uint64_t flags)
{
	if ((flags & BPF_NOEXIST) || flags > BPF_EXIST)
		return -EINVAL;
	guard g(s->lock);
	uint32_t tail = s->tail;
	if (full(s)) {
		if (!(flags & BPF_EXIST))
			return -E2BIG;
		tail = tail + 1 >= s->size ? 0 : tail + 1;
	}
	memcpy(s->slot(s->head), value, s->value_size);
	s->tail = tail;
	s->head = s->head + 1 >= s->size ? 0 : s->head + 1;
	return 0;
}

int pop(state *s, void *value)
{
	return get(s, value, true);
}

int peek(state *s, void *value)
{
	return get(s, value, false);
}

// A program's bpf_map_lookup_elem: the kernel's verifier refuses it; NULL.
void *lookup(void *, const void *)
{
	return nullptr;
}

int lookup_copy(void *s, const void *, void *value)
{
	return peek(static_cast<state *>(s), value);
}

int update(void *s, const void *, const void *value, uint64_t flags)
{
	return push(static_cast<state *>(s), value, flags);
}

int delete_elem(void *, const void *)
{
	return -EINVAL;
}

int get_next_key(void *, const void *, void *)
{
	return -EINVAL;
}

int lookup_and_delete(void *s, const void *, void *value)
{
	return pop(static_cast<state *>(s), value);
}

int for_each_entry(void *sp, int (*cb)(void *, const void *, const void *),
		   void *ctx)
{
	auto *s = static_cast<state *>(sp);
	guard g(s->lock);
	static const uint8_t no_key = 0;
	for (uint32_t i = s->tail; i != s->head; i = i + 1 >= s->size ? 0 : i + 1)
		if (int r = cb(ctx, &no_key, s->slot(i)))
			return r;
	return 0;
}

namespace {

uint64_t to_u64(int r)
{
	return uint64_t(int64_t(r));
}

uint64_t h_push(uint64_t map, uint64_t value, uint64_t flags, uint64_t,
		uint64_t)
{
	auto *m = reinterpret_cast<const map_instance *>(map);
	const void *v = reinterpret_cast<const void *>(value);
	if (m->map_flags & BPF_F_RDONLY_PROG)
		return to_u64(-EPERM);
	switch (m->map_type) {
	case BPF_MAP_TYPE_QUEUE:
	case BPF_MAP_TYPE_STACK:
		return to_u64(push(static_cast<state *>(m->state), v, flags));
	case BPF_MAP_TYPE_BLOOM_FILTER:
		return to_u64(bloom::push(static_cast<bloom::state *>(m->state),
					  v, flags));
	default:
		return to_u64(-EINVAL);
	}
}

uint64_t h_pop(uint64_t map, uint64_t value, uint64_t, uint64_t, uint64_t)
{
	auto *m = reinterpret_cast<const map_instance *>(map);
	void *v = reinterpret_cast<void *>(value);
	if (m->map_flags & BPF_F_RDONLY_PROG)
		return to_u64(-EPERM);
	switch (m->map_type) {
	case BPF_MAP_TYPE_QUEUE:
	case BPF_MAP_TYPE_STACK:
		return to_u64(pop(static_cast<state *>(m->state), v));
	case BPF_MAP_TYPE_BLOOM_FILTER:
		return to_u64(-EOPNOTSUPP);
	default:
		return to_u64(-EINVAL);
	}
}

uint64_t h_peek(uint64_t map, uint64_t value, uint64_t, uint64_t, uint64_t)
{
	auto *m = reinterpret_cast<const map_instance *>(map);
	void *v = reinterpret_cast<void *>(value);
	switch (m->map_type) {
	case BPF_MAP_TYPE_QUEUE:
	case BPF_MAP_TYPE_STACK:
		return to_u64(peek(static_cast<state *>(m->state), v));
	case BPF_MAP_TYPE_BLOOM_FILTER:
		return to_u64(bloom::peek(static_cast<bloom::state *>(m->state),
					  v));
	default:
		return to_u64(-EINVAL);
	}
}

} // namespace

// The kernel's bpf_map_push_elem_proto, bpf_map_pop_elem_proto and
// bpf_map_peek_elem_proto. A bloom filter's peek reads the value it tests.
const vm::helper_proto helpers[3] = {
	{ .id = vm::BPF_FUNC_map_push_elem,
	  .name = "map_push_elem",
	  .ret = vm::RET_INTEGER,
	  .args = { vm::ARG_CONST_MAP_PTR, vm::ARG_PTR_TO_MAP_VALUE,
		    vm::ARG_ANYTHING },
	  .fn = h_push },
	{ .id = vm::BPF_FUNC_map_pop_elem,
	  .name = "map_pop_elem",
	  .ret = vm::RET_INTEGER,
	  .args = { vm::ARG_CONST_MAP_PTR,
		    vm::ARG_PTR_TO_UNINIT_MAP_VALUE | vm::MEM_WRITE },
	  .fn = h_pop },
	{ .id = vm::BPF_FUNC_map_peek_elem,
	  .name = "map_peek_elem",
	  .ret = vm::RET_INTEGER,
	  .args = { vm::ARG_CONST_MAP_PTR,
		    vm::ARG_PTR_TO_UNINIT_MAP_VALUE | vm::MEM_WRITE },
	  .fn = h_peek },
};

} // namespace bpftime::maps_userspace::queue_stack
