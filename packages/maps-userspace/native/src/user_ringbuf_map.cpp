// user_ringbuf_map.cpp: BPF_MAP_TYPE_USER_RINGBUF (the kernel's
// kernel/bpf/ringbuf.c, user ring buffer half): user space produces records
// (user_producer, Node's UserRingBuf), programs drain them with
// bpf_user_ringbuf_drain, whose callback gets each sample as a local
// dynptr read with bpf_dynptr_read / bpf_dynptr_data. The ring is the core's
// (ringbuf/ringbuf.hpp) with the roles swapped.
#include "ringbuf/dynptr.hpp"
#include "ringbuf/ringbuf.hpp"
#include "map_common.hpp"

#include <bpftime/handlers/bpf_defs.hpp>
#include <bpftime/handlers/registry.hpp>
#include <bpftime/maps_userspace/maps_userspace.hpp>
#include <bpftime/maps_userspace/user_producer.hpp>
#include <bpftime/vm/helper_proto.hpp>
#include <bpftime/vm/vm.hpp>

#include <linux/futex.h>
#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <string>

namespace bpftime::maps_userspace {
namespace {

using namespace bpftime::handlers;
using u64 = uint64_t;
constexpr int ENOTSUPP = 524; // the kernel's, as bpf(2) returns it
// The kernel's BPF_MAX_USER_RINGBUF_SAMPLES: one drain hands at most this.
constexpr uint64_t MAX_SAMPLES = 128 * 1024;

constexpr u64 neg(int e)
{
	return u64(-int64_t(e));
}

using ringbuf::dynptr;
using ringbuf::DYNPTR_RDONLY_BIT;
using ringbuf::DYNPTR_SIZE_MASK;
using ringbuf::DYNPTR_TYPE_LOCAL;

int urb_create(const map_create_args *a, void **out, char *err,
	       size_t err_len)
{
	if (int r = ringbuf::check_attrs(a, "user ring buffer", err, err_len))
		return r;
	return ringbuf::create(a, ringbuf::USER_RINGBUF_MAGIC,
			       ringbuf::STATE_VERSION, out, err, err_len);
}

void *urb_lookup(void *, const void *)
{
	return nullptr;
}
int urb_lookup_copy(void *, const void *, void *)
{
	return -ENOTSUPP;
}
int urb_update(void *, const void *, const void *, uint64_t)
{
	return -ENOTSUPP;
}
int urb_delete(void *, const void *)
{
	return -ENOTSUPP;
}
int urb_get_next_key(void *, const void *, void *)
{
	return -ENOENT;
}

// The kernel's __bpf_user_ringbuf_peek: the next committed sample, skipping
// discarded ones. 0 with *sample/*size, -ENODATA when none, -E2BIG or
// -EINVAL for a record user space wrote wrong.
int peek(ringbuf::local *l, uint8_t **sample, uint32_t *size)
{
	for (;;) {
		uint64_t cons = l->consumer_pos->load(std::memory_order_acquire);
		uint64_t prod = l->producer_pos->load(std::memory_order_acquire);
		if (prod % 8)
			return -EINVAL;
		if (cons == prod)
			return -ENODATA;
		uint8_t *hdr = l->data + (cons & l->mask);
		uint32_t len = reinterpret_cast<std::atomic<uint32_t> *>(hdr)->load(
			std::memory_order_acquire);
		uint64_t total = ringbuf::record_len(len);
		if (total > l->mask + 1)
			return -E2BIG;
		if (prod - cons < total)
			return -EINVAL;
		if (len & ringbuf::BUSY_BIT) {
			// A writer killed between reserve and submit: skip
			// its record once it is gone.
			if (ringbuf::reap_dead(l))
				continue;
			return -ENODATA;
		}
		if (len & ringbuf::DISCARD_BIT) {
			l->consumer_pos->store(cons + total,
					       std::memory_order_release);
			continue;
		}
		*sample = hdr + ringbuf::HDR_SZ;
		*size = len & ~(ringbuf::BUSY_BIT | ringbuf::DISCARD_BIT);
		return 0;
	}
}

// bpf_user_ringbuf_drain(map, callback_fn, ctx, flags), the kernel's: at
// most MAX_SAMPLES samples, each handed to callback(dynptr, ctx) and then
// released; a callback returning 1 stops after its sample. Returns the
// samples drained, or -EINVAL (flags), -EBUSY (another drain of this map
// is running), -E2BIG/-EINVAL (a malformed record). Wakes a producer
// waiting for room as the kernel does (unless BPF_RB_NO_WAKEUP when
// something was drained; always with BPF_RB_FORCE_WAKEUP).
u64 h_drain(u64 map, u64 fn, u64 ctx, u64 flags, u64)
{
	if (flags & ~(ringbuf::RB_NO_WAKEUP | ringbuf::RB_FORCE_WAKEUP))
		return neg(EINVAL);
	auto *m = reinterpret_cast<const map_instance *>(map);
	if (m->map_type != BPF_MAP_TYPE_USER_RINGBUF) [[unlikely]]
		return neg(EINVAL);
	auto *l = static_cast<ringbuf::local *>(m->state);
	// The consumer side has one owner at a time (the kernel's rb->busy),
	// taken without waiting; from an owner that died inside a drain it is
	// taken over.
	uint32_t tid = ringbuf::current_tid();
	uint32_t expected = 0;
	if (!l->ctl->drain_owner.compare_exchange_strong(
		    expected, tid, std::memory_order_acquire)) {
		if (kill(pid_t(expected), 0) == 0 || errno != ESRCH ||
		    !l->ctl->drain_owner.compare_exchange_strong(
			    expected, tid, std::memory_order_acquire))
			return neg(EBUSY);
	}
	int64_t ret = 0;
	uint64_t samples = 0;
	for (; samples < MAX_SAMPLES;) {
		uint8_t *sample;
		uint32_t size;
		int err = peek(l, &sample, &size);
		if (err) {
			if (err != -ENODATA)
				ret = err;
			break;
		}
		dynptr d{ sample, size | DYNPTR_TYPE_LOCAL, 0 };
		u64 r = vm::invoke_callback(fn, reinterpret_cast<u64>(&d), ctx,
					    0, 0, 0);
		uint64_t cons = l->consumer_pos->load(std::memory_order_relaxed);
		l->consumer_pos->store(cons + ringbuf::record_len(size),
				       std::memory_order_release);
		samples++;
		if (r)
			break;
	}
	l->ctl->drain_owner.store(0, std::memory_order_release);
	if (ret == 0)
		ret = int64_t(samples);
	bool want = (flags & ringbuf::RB_FORCE_WAKEUP) ||
		    (!(flags & ringbuf::RB_NO_WAKEUP) && samples > 0);
	if (want && l->ctl->sleepers.load(std::memory_order_seq_cst))
		ringbuf::wake(l->ctl);
	return u64(ret);
}

// bpf_dynptr_read(dst, len, src, offset, flags): EINVAL for flags, E2BIG
// past the end of the dynptr.
u64 h_dynptr_read(u64 dst, u64 len, u64 src, u64 offset, u64 flags)
{
	auto *d = reinterpret_cast<const dynptr *>(src);
	if (flags || !d->data)
		return neg(EINVAL);
	uint64_t size = d->size & DYNPTR_SIZE_MASK;
	uint32_t off = uint32_t(offset), n = uint32_t(len);
	if (uint64_t(off) + n > size)
		return neg(E2BIG);
	memcpy(reinterpret_cast<void *>(dst), d->data + d->offset + off, n);
	return 0;
}

// bpf_dynptr_write(dst, offset, src, len, flags): EINVAL for flags or a
// null dynptr, EPERM for a read-only one, E2BIG past its end.
u64 h_dynptr_write(u64 dst, u64 offset, u64 src, u64 len, u64 flags)
{
	auto *d = reinterpret_cast<const dynptr *>(dst);
	if (flags || !d->data)
		return neg(EINVAL);
	if (d->size & DYNPTR_RDONLY_BIT)
		return neg(EPERM);
	uint64_t size = d->size & DYNPTR_SIZE_MASK;
	uint32_t off = uint32_t(offset), n = uint32_t(len);
	if (uint64_t(off) + n > size)
		return neg(E2BIG);
	memcpy(d->data + d->offset + off, reinterpret_cast<const void *>(src), n);
	return 0;
}

// bpf_dynptr_data(ptr, offset, len): the bytes in place, or NULL past the
// end.
u64 h_dynptr_data(u64 ptr, u64 offset, u64 len, u64, u64)
{
	auto *d = reinterpret_cast<const dynptr *>(ptr);
	uint64_t size = d->size & DYNPTR_SIZE_MASK;
	if (!d->data || uint64_t(uint32_t(offset)) + uint32_t(len) > size)
		return 0;
	return reinterpret_cast<u64>(d->data + d->offset + uint32_t(offset));
}

#define KERNEL_HELPER(n) .id = vm::BPF_FUNC_##n, .name = #n

// The kernel's protos. A dynptr argument is a pointer to a dynptr the
// program got (the drain callback's, bpf_ringbuf_reserve_dynptr's); this vm
// has no dynptr kind, so it is ARG_ANYTHING. These generic dynptr helpers
// live in this table; ringbuf_map.cpp's makes ring buffer dynptrs.
constexpr vm::helper_proto helpers[] = {
	{ KERNEL_HELPER(user_ringbuf_drain),
	  .ret = vm::RET_INTEGER,
	  .args = { vm::ARG_CONST_MAP_PTR, vm::ARG_PTR_TO_FUNC,
		    vm::ARG_PTR_TO_STACK_OR_NULL, vm::ARG_ANYTHING },
	  .fn = h_drain },
	{ KERNEL_HELPER(dynptr_read),
	  .ret = vm::RET_INTEGER,
	  .args = { vm::ARG_PTR_TO_UNINIT_MEM, vm::ARG_CONST_SIZE_OR_ZERO,
		    vm::ARG_ANYTHING, vm::ARG_ANYTHING, vm::ARG_ANYTHING },
	  .fn = h_dynptr_read },
	{ KERNEL_HELPER(dynptr_write),
	  .ret = vm::RET_INTEGER,
	  .args = { vm::ARG_ANYTHING | vm::MEM_WRITE, vm::ARG_ANYTHING,
		    vm::ARG_PTR_TO_MEM | vm::MEM_RDONLY,
		    vm::ARG_CONST_SIZE_OR_ZERO, vm::ARG_ANYTHING },
	  .fn = h_dynptr_write },
	{ KERNEL_HELPER(dynptr_data),
	  .ret = vm::RET_PTR_TO_MEM_OR_NULL,
	  .args = { vm::ARG_ANYTHING, vm::ARG_ANYTHING,
		    vm::ARG_CONST_ALLOC_SIZE_OR_ZERO },
	  .fn = h_dynptr_data },
};

#undef KERNEL_HELPER

const map_ops ops = {
	.size = sizeof(map_ops),
	.abi_version = MAP_OPS_ABI_VERSION,
	.layout_version = shm::LAYOUT_VERSION,
	.map_type = BPF_MAP_TYPE_USER_RINGBUF,
	.type_name = "BPF_MAP_TYPE_USER_RINGBUF",
	.provider = PROVIDER,
	.create = urb_create,
	.destroy = ringbuf::destroy,
	.lookup = urb_lookup,
	.lookup_copy = urb_lookup_copy,
	.update = urb_update,
	.delete_elem = urb_delete,
	.get_next_key = urb_get_next_key,
	.mmap_region = ringbuf::mmap_region,
	.state_magic = ringbuf::USER_RINGBUF_MAGIC,
	.state_version = ringbuf::STATE_VERSION,
	.open = ringbuf::open,
	.close = ringbuf::close,
	.helpers = helpers,
	.helper_count = sizeof(helpers) / sizeof(helpers[0]),
};

} // namespace

const handlers::map_ops *user_ringbuf_map_ops() noexcept
{
	return &ops;
}

// --- user_producer -------------------------------------------------------------

result<std::unique_ptr<user_producer>> user_producer::attach(void *region,
							     uint64_t len)
{
	using namespace ringbuf;
	if (!region || reinterpret_cast<uintptr_t>(region) % PAGE != 0 ||
	    len < 3 * PAGE)
		return fail(EINVAL, "user ring producer: the region is not a "
				    "ring buffer's mmap region");
	auto *c = reinterpret_cast<control *>(static_cast<uint8_t *>(region) -
					      PAGE);
	if (c->header.magic != USER_RINGBUF_MAGIC)
		return fail(EINVAL, "user ring producer: the region is not a "
				    "BPF_MAP_TYPE_USER_RINGBUF map's");
	if (c->header.version != STATE_VERSION)
		return fail(EPROTONOSUPPORT,
			    "user ring producer: state version " +
				    std::to_string(c->header.version) +
				    " of BPF_MAP_TYPE_USER_RINGBUF, this build "
				    "speaks " +
				    std::to_string(STATE_VERSION));
	if (len != 2 * PAGE + c->mask + 1)
		return fail(EINVAL, "user ring producer: the region's length "
				    "does not match the ring's");
	char err[256] = "";
	void *l = nullptr;
	if (int r = ringbuf::open(c, &l, err, sizeof err))
		return fail(-r, std::string("user ring producer: ") + err);
	std::unique_ptr<user_producer> p(new user_producer());
	p->local_ = l;
	return p;
}

user_producer::~user_producer()
{
	if (local_)
		ringbuf::close(local_);
}

// libbpf's user_ring_buffer__reserve, made safe for several producers by
// the core's producer lock: E2BIG when the record can never fit, ENOSPC
// while the ring is full.
void *user_producer::reserve(uint32_t size, int *err) noexcept
{
	auto *l = static_cast<ringbuf::local *>(local_);
	uint64_t total = (uint64_t(size) + ringbuf::HDR_SZ + 7) & ~uint64_t(7);
	if (size > ringbuf::MAX_RECORD_SZ || total > l->mask + 1) {
		*err = E2BIG;
		return nullptr;
	}
	void *p = ringbuf::reserve(l, size, ringbuf::current_tid());
	*err = p ? 0 : ENOSPC;
	return p;
}

void user_producer::submit(void *sample) noexcept
{
	// NO_WAKEUP: nothing sleeps on the program side; drain runs when the
	// program runs.
	ringbuf::commit(sample, ringbuf::RB_NO_WAKEUP, false);
}

void user_producer::discard(void *sample) noexcept
{
	ringbuf::commit(sample, ringbuf::RB_NO_WAKEUP, true);
}

int user_producer::write(const void *data, uint32_t size) noexcept
{
	int err;
	void *p = reserve(size, &err);
	if (!p)
		return -err;
	memcpy(p, data, size);
	submit(p);
	return 0;
}

bool user_producer::wait_for_room(uint32_t size, int64_t timeout_ns) noexcept
{
	auto *l = static_cast<ringbuf::local *>(local_);
	uint64_t total = (uint64_t(size) + ringbuf::HDR_SZ + 7) & ~uint64_t(7);
	if (total > l->mask + 1)
		return false;
	if (free_bytes() >= total)
		return true;
	// The drain's side: it stores consumer_pos, then reads sleepers
	// (h_drain); here sleepers, a fence that covers its process (it
	// registered for light commits when it opened the map), then the
	// room.
	l->ctl->sleepers.fetch_add(1, std::memory_order_seq_cst);
	uint32_t seq = l->ctl->wake_seq.load(std::memory_order_seq_cst);
	if (!ringbuf::heavy_fence() && (timeout_ns < 0 || timeout_ns > 1000000))
		timeout_ns = 1000000;
	if (free_bytes() < total && !closed_.load()) {
		timespec ts{}, *tp = nullptr;
		if (timeout_ns >= 0) {
			ts.tv_sec = time_t(timeout_ns / 1000000000);
			ts.tv_nsec = long(timeout_ns % 1000000000);
			tp = &ts;
		}
		syscall(SYS_futex, reinterpret_cast<uint32_t *>(&l->ctl->wake_seq),
			FUTEX_WAIT, seq, tp, nullptr, 0);
	}
	l->ctl->sleepers.fetch_sub(1, std::memory_order_seq_cst);
	return free_bytes() >= total;
}

void user_producer::close() noexcept
{
	closed_.store(true);
	ringbuf::wake(static_cast<ringbuf::local *>(local_)->ctl);
}

uint64_t user_producer::free_bytes() const noexcept
{
	auto *l = static_cast<ringbuf::local *>(local_);
	return l->mask + 1 -
	       (l->producer_pos->load(std::memory_order_acquire) -
		l->consumer_pos->load(std::memory_order_acquire));
}

} // namespace bpftime::maps_userspace
