// perf_event_array_map.cpp: BPF_MAP_TYPE_PERF_EVENT_ARRAY (the kernel's
// kernel/bpf/arraymap.c perf_event_array_map_ops and bpf_perf_event_output
// of kernel/trace/bpf_trace.c): slots holding registry perf event ids, each
// with its buffer in the kernel's perf ring layout (perf/perf_buffer.hpp),
// written by bpf_perf_event_output and read by perf_consumer.
#include "perf/perf_buffer.hpp"

#include <bpftime/handlers/bpf_defs.hpp>
#include <bpftime/handlers/registry.hpp>
#include <bpftime/maps_userspace/maps_userspace.hpp>
#include <bpftime/maps_userspace/perf_consumer.hpp>
#include <bpftime/shm/segment.hpp>
#include <bpftime/vm/helper_proto.hpp>

#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <new>

namespace bpftime::maps_userspace {
namespace perf {

void wake(control *c) noexcept
{
	c->wake_seq.fetch_add(1, std::memory_order_seq_cst);
	c->wakeups.fetch_add(1, std::memory_order_relaxed);
	syscall(SYS_futex, reinterpret_cast<uint32_t *>(&c->wake_seq),
		FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0);
}

} // namespace perf

namespace {

using namespace bpftime::handlers;
using u64 = uint64_t;
constexpr int ENOTSUPP = 524; // the kernel's, as bpf(2) returns it

// BPFTIME_PERF_BUFFER_PAGES: data pages per slot buffer, a power of two
// (libbpf's perf_buffer__new page_cnt); DEFAULT_PAGES when unset.
int pages_from_env(uint32_t *out, char *err, size_t err_len)
{
	const char *v = getenv("BPFTIME_PERF_BUFFER_PAGES");
	if (!v || !*v) {
		*out = perf::DEFAULT_PAGES;
		return 0;
	}
	char *end = nullptr;
	unsigned long n = strtoul(v, &end, 10);
	if (*end || n == 0 || (n & (n - 1)) || n > (1u << 16))
		return set_error(err, err_len, EINVAL,
				 "BPFTIME_PERF_BUFFER_PAGES='%s' is not a power "
				 "of two from 1 to 65536",
				 v);
	*out = uint32_t(n);
	return 0;
}

int pea_create(const map_create_args *a, void **out, char *err, size_t err_len)
{
	// The kernel's fd_array_map_alloc_check and array_map_alloc_check.
	if (a->key_size != 4)
		return set_error(err, err_len, EINVAL,
				 "key size %u: array keys are 4-byte indexes",
				 a->key_size);
	if (a->value_size != 4)
		return set_error(err, err_len, EINVAL,
				 "value size %u: perf event arrays hold 4-byte "
				 "perf event fds",
				 a->value_size);
	if (a->max_entries == 0)
		return set_error(err, err_len, EINVAL, "max_entries is 0");
	constexpr uint32_t allowed = BPF_F_NUMA_NODE | BPF_F_RDONLY |
				     BPF_F_WRONLY | BPF_F_PRESERVE_ELEMS;
	if (a->map_flags & ~allowed)
		return set_error(err, err_len, EINVAL,
				 "map_flags 0x%x has bits perf event arrays do "
				 "not take (allowed: 0x%x)",
				 a->map_flags, allowed);
	uint32_t pages;
	if (int r = pages_from_env(&pages, err, err_len))
		return r;
	auto *mgr = static_cast<shm::segment_manager *>(a->segment_manager);
	size_t len = sizeof(perf::control) +
		     size_t(a->max_entries) * sizeof(perf::slot);
	void *mem = mgr->allocate_aligned(len, 64, std::nothrow);
	if (!mem)
		return set_error(err, err_len, ENOMEM,
				 "the segment has no room for %u slots",
				 a->max_entries);
	memset(mem, 0, len);
	auto *c = static_cast<perf::control *>(mem);
	c->header.version = perf::STATE_VERSION;
	keep_create_args(c, a);
	c->data_pages = pages;
	c->manager_off = reinterpret_cast<uint8_t *>(mgr) -
			 reinterpret_cast<uint8_t *>(c);
	for (uint32_t i = 0; i < a->max_entries; i++)
		c->slots()[i].id.store(perf::NO_ID);
	c->header.magic = perf::MAGIC;
	*out = c;
	return 0;
}

void pea_destroy(void *segment_manager, void *state)
{
	auto *mgr = static_cast<shm::segment_manager *>(segment_manager);
	auto *c = static_cast<perf::control *>(state);
	for (uint32_t i = 0; i < c->max_entries; i++)
		if (int64_t off = c->slots()[i].buffer_off.load())
			mgr->deallocate(c->at(off));
	c->header.magic = 0;
	mgr->deallocate(c);
}

// Programs cannot look up a perf event array (the kernel's verifier refuses
// the call); here the helper finds nothing.
void *pea_lookup(void *, const void *)
{
	return nullptr;
}

// The slot's perf event id. The kernel answers ENOTSUPP to user space here;
// the registry needs the id to release it when the slot is overwritten.
int pea_lookup_copy(void *state, const void *key, void *value)
{
	auto *c = static_cast<perf::control *>(state);
	uint32_t index;
	memcpy(&index, key, 4);
	if (index >= c->max_entries)
		return -ENOENT;
	uint32_t id = c->slots()[index].id.load(std::memory_order_acquire);
	if (id == perf::NO_ID)
		return -ENOENT;
	memcpy(value, &id, 4);
	return 0;
}

// The kernel's bpf_fd_array_map_update_elem: BPF_ANY only, E2BIG past the
// end. The slot's buffer is made the first time (under the registry's
// mutex, which every fd-valued update holds).
int pea_update(void *state, const void *key, const void *value,
	       uint64_t flags)
{
	auto *c = static_cast<perf::control *>(state);
	if (flags != BPF_ANY)
		return -EINVAL;
	uint32_t index, id;
	memcpy(&index, key, 4);
	memcpy(&id, value, 4);
	if (index >= c->max_entries)
		return -E2BIG;
	perf::slot *s = c->slots() + index;
	if (!s->buffer_off.load(std::memory_order_acquire)) {
		auto *mgr = reinterpret_cast<shm::segment_manager *>(
			c->at(c->manager_off));
		uint64_t data = uint64_t(c->data_pages) * perf::PAGE;
		void *mem = mgr->allocate_aligned(perf::PAGE + data, perf::PAGE,
						  std::nothrow);
		if (!mem)
			return -ENOMEM;
		memset(mem, 0, perf::PAGE + data);
		auto *p = static_cast<perf_event_mmap_page *>(mem);
		p->data_offset = perf::PAGE;
		p->data_size = data;
		s->buffer_off.store(static_cast<uint8_t *>(mem) - c->at(0),
				    std::memory_order_release);
	}
	s->id.store(id, std::memory_order_release);
	return 0;
}

int pea_delete(void *state, const void *key)
{
	auto *c = static_cast<perf::control *>(state);
	uint32_t index;
	memcpy(&index, key, 4);
	if (index >= c->max_entries)
		return -E2BIG;
	uint32_t old = c->slots()[index].id.exchange(perf::NO_ID);
	return old == perf::NO_ID ? -ENOENT : 0;
}

// The kernel's array_map_get_next_key.
int pea_get_next_key(void *state, const void *key, void *next_key)
{
	auto *c = static_cast<perf::control *>(state);
	uint32_t index = 0;
	if (key)
		memcpy(&index, key, 4);
	uint32_t next;
	if (!key || index >= c->max_entries)
		next = 0;
	else if (index == c->max_entries - 1)
		return -ENOENT;
	else
		next = index + 1;
	memcpy(next_key, &next, 4);
	return 0;
}

int pea_get_ptr(void *, const map_fd_object *)
{
	return 0;
}

void pea_put_ptr(void *, uint32_t)
{
}

// The state and its slots, for perf_consumer (bpftime's own: the kernel
// maps each event's buffer through the event's fd instead).
void *pea_mmap_region(void *state, uint64_t *len)
{
	auto *c = static_cast<perf::control *>(state);
	*len = sizeof(perf::control) + uint64_t(c->max_entries) * sizeof(perf::slot);
	return c;
}

// map_ops::consume: every sample written so far, slot by slot (lost-sample
// records are not handed on; perf_consumer reports them).
int pea_consume(void *state, map_record_fn cb, void *ctx)
{
	uint64_t len;
	void *region = pea_mmap_region(state, &len);
	auto c = perf_consumer::attach(region, len);
	if (!c)
		return -c.error().code;
	struct pass {
		map_record_fn cb;
		void *ctx;
		static void sample(void *p, uint32_t, const void *d, uint32_t n)
		{
			auto *x = static_cast<pass *>(p);
			x->cb(x->ctx, d, n);
		}
		static void lost(void *, uint32_t, uint64_t) {}
	} p{ cb, ctx };
	uint64_t n = (*c)->drain(pass::sample, pass::lost, &p);
	return int(n > INT32_MAX ? INT32_MAX : n);
}

// bpf_perf_event_output(ctx, map, flags, data, size), the kernel's
// bpf_perf_event_output and __bpf_perf_event_output checks: EINVAL for
// flags outside BPF_F_INDEX_MASK, BPF_F_CURRENT_CPU for the CPU running the
// program, E2BIG past the end, ENOENT for an empty slot, ENOSPC when the
// buffer is full (the sample is counted as lost).
u64 h_perf_event_output(u64, u64 map, u64 flags, u64 data, u64 size)
{
	auto *m = reinterpret_cast<const map_instance *>(map);
	if (m->map_type != BPF_MAP_TYPE_PERF_EVENT_ARRAY) [[unlikely]]
		return u64(-int64_t(EINVAL));
	if (flags & ~perf::F_INDEX_MASK) [[unlikely]]
		return u64(-int64_t(EINVAL));
	uint64_t index = flags & perf::F_INDEX_MASK;
	if (index == perf::F_CURRENT_CPU) {
		int cpu = sched_getcpu();
		index = cpu < 0 ? 0 : uint64_t(cpu);
	}
	auto *c = static_cast<perf::control *>(m->state);
	// fd-valued maps have no per-process open: the first output of the
	// process registers it for light commits (ringbuf.hpp); where
	// membarrier is refused this stays the slow path, a getpid() per
	// output.
	if (!ringbuf::light_commit) [[unlikely]]
		ringbuf::register_light_commit();
	if (index >= c->max_entries) [[unlikely]]
		return u64(-int64_t(E2BIG));
	return u64(int64_t(perf::output(c, uint32_t(index),
					 reinterpret_cast<const void *>(data),
					 size, ringbuf::current_tid())));
}

constexpr vm::helper_proto helpers[] = {
	{ .id = vm::BPF_FUNC_perf_event_output,
	  .name = "perf_event_output",
	  .ret = vm::RET_INTEGER,
	  .args = { vm::ARG_PTR_TO_CTX, vm::ARG_CONST_MAP_PTR, vm::ARG_ANYTHING,
		    vm::ARG_PTR_TO_MEM | vm::MEM_RDONLY,
		    vm::ARG_CONST_SIZE_OR_ZERO },
	  .fn = h_perf_event_output },
};

const map_ops ops = {
	.size = sizeof(map_ops),
	.abi_version = MAP_OPS_ABI_VERSION,
	.layout_version = shm::LAYOUT_VERSION,
	.map_type = BPF_MAP_TYPE_PERF_EVENT_ARRAY,
	.type_name = "BPF_MAP_TYPE_PERF_EVENT_ARRAY",
	.provider = PROVIDER,
	.create = pea_create,
	.destroy = pea_destroy,
	.lookup = pea_lookup,
	.lookup_copy = pea_lookup_copy,
	.update = pea_update,
	.delete_elem = pea_delete,
	.get_next_key = pea_get_next_key,
	.mmap_region = pea_mmap_region,
	.state_magic = perf::MAGIC,
	.state_version = perf::STATE_VERSION,
	.fd_kind = MAP_FD_PERF_EVENT,
	.fd_get_ptr = pea_get_ptr,
	.fd_put_ptr = pea_put_ptr,
	.helpers = helpers,
	.helper_count = 1,
	.consume = pea_consume,
};

} // namespace

const handlers::map_ops *perf_event_array_map_ops() noexcept
{
	return &ops;
}

} // namespace bpftime::maps_userspace
