// ringbuf_map.cpp: BPF_MAP_TYPE_RINGBUF (the kernel's kernel/bpf/ringbuf.c):
// programs produce with bpf_ringbuf_reserve/submit/discard/output and read
// positions with bpf_ringbuf_query; user space consumes (map_ops::consume,
// the Node consumer, an mmap of the kernel's layout). The core is
// ringbuf/ringbuf.hpp; this file is the type's attribute checks, its
// map_ops and its helpers.
#include "ringbuf/dynptr.hpp"
#include "ringbuf/ringbuf.hpp"
#include "map_common.hpp"

#include <bpftime/handlers/bpf_defs.hpp>
#include <bpftime/handlers/registry.hpp>
#include <bpftime/maps_userspace/maps_userspace.hpp>
#include <bpftime/vm/helper_proto.hpp>

namespace bpftime::maps_userspace {
namespace {

using namespace bpftime::handlers;
using u64 = uint64_t;

using ringbuf::RINGBUF_MAGIC;
constexpr uint32_t RINGBUF_STATE_VERSION = ringbuf::STATE_VERSION;

// The kernel's ENOTSUPP (include/linux/errno.h), which bpf(2) passes to
// user space for operations a map type lacks.
constexpr int ENOTSUPP = 524;

constexpr u64 neg(int e)
{
	return u64(-int64_t(e));
}

int rb_create(const map_create_args *a, void **out, char *err, size_t err_len)
{
	if (int r = ringbuf::check_attrs(a, "ring buffer", err, err_len))
		return r;
	return ringbuf::create(a, RINGBUF_MAGIC, RINGBUF_STATE_VERSION, out, err,
			       err_len);
}

// User space neither looks up, updates nor deletes records (the kernel
// answers ENOTSUPP); get_next_key finds no key, so that JSON export writes
// the map with no entries (its unread records are not exported).
void *rb_lookup(void *, const void *)
{
	return nullptr;
}
int rb_lookup_copy(void *, const void *, void *)
{
	return -ENOTSUPP;
}
int rb_update(void *, const void *, const void *, uint64_t)
{
	return -ENOTSUPP;
}
int rb_delete(void *, const void *)
{
	return -ENOTSUPP;
}
int rb_get_next_key(void *, const void *, void *)
{
	return -ENOENT;
}

int rb_consume(void *state, map_record_fn cb, void *ctx)
{
	auto *l = static_cast<ringbuf::local *>(state);
	ringbuf::reap_dead(l);
	uint64_t n = ringbuf::drain(l, UINT32_MAX,
				    [&](const uint8_t *data, uint64_t size) {
					    return cb(ctx, data, size);
				    });
	return int(n > INT32_MAX ? INT32_MAX : n);
}

// The ring of a program's map argument, or nullptr when the map is not a
// ring buffer (the kernel's verifier refuses such a program; here the
// helper fails instead of reading another type's state).
ringbuf::local *ring(u64 map)
{
	auto *m = reinterpret_cast<const map_instance *>(map);
	if (m->map_type != BPF_MAP_TYPE_RINGBUF) [[unlikely]]
		return nullptr;
	return static_cast<ringbuf::local *>(m->state);
}

// bpf_ringbuf_reserve(map, size, flags): flags must be 0.
u64 h_reserve(u64 map, u64 size, u64 flags, u64, u64)
{
	ringbuf::local *l = ring(map);
	if (!l || flags) [[unlikely]]
		return 0;
	return reinterpret_cast<u64>(
		ringbuf::reserve(l, size, ringbuf::current_tid()));
}

u64 h_submit(u64 sample, u64 flags, u64, u64, u64)
{
	ringbuf::commit(reinterpret_cast<void *>(sample), flags, false);
	return 0;
}

u64 h_discard(u64 sample, u64 flags, u64, u64, u64)
{
	ringbuf::commit(reinterpret_cast<void *>(sample), flags, true);
	return 0;
}

// bpf_ringbuf_output(map, data, size, flags): reserve, copy, submit;
// -EAGAIN when the ring has no room, -EINVAL for unknown flags.
u64 h_output(u64 map, u64 data, u64 size, u64 flags, u64)
{
	if (flags & ~(ringbuf::RB_NO_WAKEUP | ringbuf::RB_FORCE_WAKEUP))
		[[unlikely]]
		return neg(EINVAL);
	ringbuf::local *l = ring(map);
	if (!l) [[unlikely]]
		return neg(EINVAL);
	void *rec = ringbuf::reserve(l, size, ringbuf::current_tid());
	if (!rec) [[unlikely]]
		return neg(EAGAIN);
	memcpy(rec, reinterpret_cast<const void *>(data), size_t(size));
	ringbuf::commit(rec, flags, false);
	return 0;
}

// bpf_ringbuf_query(map, flags): BPF_RB_AVAIL_DATA, _RING_SIZE, _CONS_POS,
// _PROD_POS; 0 for anything else, as the kernel.
u64 h_query(u64 map, u64 flags, u64, u64, u64)
{
	ringbuf::local *l = ring(map);
	if (!l) [[unlikely]]
		return 0;
	uint64_t cons = l->consumer_pos->load(std::memory_order_acquire);
	uint64_t prod = l->producer_pos->load(std::memory_order_acquire);
	switch (flags) {
	case ringbuf::RB_AVAIL_DATA:
		return prod - cons;
	case ringbuf::RB_RING_SIZE:
		return l->mask + 1;
	case ringbuf::RB_CONS_POS:
		return cons;
	case ringbuf::RB_PROD_POS:
		return prod;
	default:
		return 0;
	}
}

// bpf_ringbuf_reserve_dynptr(map, size, flags, ptr), the kernel's: a
// record of size bytes behind *ptr, or *ptr null and -EINVAL (flags),
// -E2BIG (larger than a dynptr holds), -EAGAIN (no room).
u64 h_reserve_dynptr(u64 map, u64 size, u64 flags, u64 ptr, u64)
{
	auto *d = reinterpret_cast<ringbuf::dynptr *>(ptr);
	ringbuf::local *l = ring(map);
	if (!l || flags) [[unlikely]] {
		ringbuf::dynptr_set_null(d);
		return neg(EINVAL);
	}
	if (uint32_t(size) > ringbuf::DYNPTR_SIZE_MASK) [[unlikely]] {
		ringbuf::dynptr_set_null(d);
		return neg(E2BIG);
	}
	void *rec = ringbuf::reserve(l, uint32_t(size), ringbuf::current_tid());
	if (!rec) [[unlikely]] {
		ringbuf::dynptr_set_null(d);
		return neg(EAGAIN);
	}
	d->data = static_cast<uint8_t *>(rec);
	d->size = uint32_t(size) | ringbuf::DYNPTR_TYPE_RINGBUF;
	d->offset = 0;
	return 0;
}

// bpf_ringbuf_submit_dynptr / _discard_dynptr: commit the record (nothing
// for a null dynptr) and null the dynptr.
u64 h_submit_dynptr(u64 ptr, u64 flags, u64, u64, u64)
{
	auto *d = reinterpret_cast<ringbuf::dynptr *>(ptr);
	if (d->data)
		ringbuf::commit(d->data, flags, false);
	ringbuf::dynptr_set_null(d);
	return 0;
}

u64 h_discard_dynptr(u64 ptr, u64 flags, u64, u64, u64)
{
	auto *d = reinterpret_cast<ringbuf::dynptr *>(ptr);
	if (d->data)
		ringbuf::commit(d->data, flags, true);
	ringbuf::dynptr_set_null(d);
	return 0;
}

#define KERNEL_HELPER(n) .id = vm::BPF_FUNC_##n, .name = #n

// The kernel's bpf_ringbuf_*_proto (kernel/bpf/ringbuf.c).
constexpr vm::helper_proto helpers[] = {
	{ KERNEL_HELPER(ringbuf_output),
	  .ret = vm::RET_INTEGER,
	  .args = { vm::ARG_CONST_MAP_PTR, vm::ARG_PTR_TO_MEM | vm::MEM_RDONLY,
		    vm::ARG_CONST_SIZE_OR_ZERO, vm::ARG_ANYTHING },
	  .fn = h_output },
	{ KERNEL_HELPER(ringbuf_reserve),
	  .ret = vm::RET_PTR_TO_RINGBUF_MEM_OR_NULL,
	  .args = { vm::ARG_CONST_MAP_PTR, vm::ARG_CONST_ALLOC_SIZE_OR_ZERO,
		    vm::ARG_ANYTHING },
	  .fn = h_reserve },
	{ KERNEL_HELPER(ringbuf_submit),
	  .ret = vm::RET_VOID,
	  .args = { vm::ARG_PTR_TO_RINGBUF_MEM, vm::ARG_ANYTHING },
	  .fn = h_submit },
	{ KERNEL_HELPER(ringbuf_discard),
	  .ret = vm::RET_VOID,
	  .args = { vm::ARG_PTR_TO_RINGBUF_MEM, vm::ARG_ANYTHING },
	  .fn = h_discard },
	{ KERNEL_HELPER(ringbuf_query),
	  .ret = vm::RET_INTEGER,
	  .args = { vm::ARG_CONST_MAP_PTR, vm::ARG_ANYTHING },
	  .fn = h_query },
	// The dynptr is 16 bytes of the program's stack that the helper
	// fills (the kernel's ARG_PTR_TO_DYNPTR | MEM_UNINIT); this vm has no
	// dynptr kind, so it is ARG_ANYTHING written through.
	{ KERNEL_HELPER(ringbuf_reserve_dynptr),
	  .ret = vm::RET_INTEGER,
	  .args = { vm::ARG_CONST_MAP_PTR, vm::ARG_ANYTHING, vm::ARG_ANYTHING,
		    vm::ARG_ANYTHING | vm::MEM_WRITE },
	  .fn = h_reserve_dynptr },
	{ KERNEL_HELPER(ringbuf_submit_dynptr),
	  .ret = vm::RET_VOID,
	  .args = { vm::ARG_ANYTHING | vm::MEM_WRITE, vm::ARG_ANYTHING },
	  .fn = h_submit_dynptr },
	{ KERNEL_HELPER(ringbuf_discard_dynptr),
	  .ret = vm::RET_VOID,
	  .args = { vm::ARG_ANYTHING | vm::MEM_WRITE, vm::ARG_ANYTHING },
	  .fn = h_discard_dynptr },
};

#undef KERNEL_HELPER

const map_ops ops = {
	.size = sizeof(map_ops),
	.abi_version = MAP_OPS_ABI_VERSION,
	.layout_version = shm::LAYOUT_VERSION,
	.map_type = BPF_MAP_TYPE_RINGBUF,
	.type_name = "BPF_MAP_TYPE_RINGBUF",
	.provider = PROVIDER,
	.create = rb_create,
	.destroy = ringbuf::destroy,
	.lookup = rb_lookup,
	.lookup_copy = rb_lookup_copy,
	.update = rb_update,
	.delete_elem = rb_delete,
	.get_next_key = rb_get_next_key,
	.mmap_region = ringbuf::mmap_region,
	.state_magic = RINGBUF_MAGIC,
	.state_version = RINGBUF_STATE_VERSION,
	.open = ringbuf::open,
	.close = ringbuf::close,
	.helpers = helpers,
	.helper_count = sizeof(helpers) / sizeof(helpers[0]),
	.consume = rb_consume,
};

} // namespace

const handlers::map_ops *ringbuf_map_ops() noexcept
{
	return &ops;
}

} // namespace bpftime::maps_userspace
