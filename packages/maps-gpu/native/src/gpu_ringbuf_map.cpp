// gpu_ringbuf_map.cpp: BPFTIME_MAP_TYPE_GPU_RINGBUF, a ring buffer in device
// memory: CUDA kernels produce (device.cuh, bpftime_gpu_ringbuf_output), a
// host process consumes through map_ops::consume, in the kernel's record
// format (8-byte header: u32 length with the busy and discard bits, u32
// pg_off; records rounded up to 8 bytes; a record may wrap).
//
// Device layout (gpu_map.h): consumer page (consumer_pos), producer page
// (producer_pos, then bpftime's dropped counter), data. Producers reserve
// with a compare-and-swap on producer_pos, write the header busy, the
// sample, fence, and clear the busy bit.
//
// The consumer (one at a time, any process): reads both positions, copies
// the unread range, finds the committed records at its start (a header still
// zero was reserved but not yet written), copies those again (a DMA reads
// in no set order, so a header committed during the first copy may have
// been read after its sample), hands them out, zeroes the device bytes they
// took, and only then publishes consumer_pos: producers never write where
// the consumer still reads, and find zero wherever no header was written.
// The host never waits for device producers and holds no lock they need.
#include "gpu_map.hpp"
#include "ring_format.hpp"

#include <bpftime/handlers/bpf_defs.hpp>
#include <bpftime/maps_gpu/maps_gpu.hpp>
#include <bpftime/shm/segment.hpp>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace bpftime::maps_gpu {
namespace {

using namespace bpftime::handlers;

constexpr uint32_t MAGIC = 0x4752494e; // "GRIN"
constexpr uint32_t VERSION = 1;
constexpr const char *TYPE_NAME = "BPFTIME_MAP_TYPE_GPU_RINGBUF";
constexpr uint64_t PAGE = 4096;
// The kernel's ENOTSUPP (include/linux/errno.h), what bpf(2) answers for the
// operations a ring buffer lacks.
constexpr int ENOTSUPP = 524;

// The kernel's ringbuf_map_alloc checks.
int rb_create(const map_create_args *a, void **out, char *err, size_t err_len)
{
	if (a->key_size != 0 || a->value_size != 0)
		return set_error(err, err_len, EINVAL,
				 "key size %u, value size %u: a GPU ring "
				 "buffer takes neither (0)",
				 a->key_size, a->value_size);
	if (a->map_flags & ~BPF_F_NUMA_NODE)
		return set_error(err, err_len, EINVAL,
				 "map_flags 0x%x: a GPU ring buffer takes "
				 "only BPF_F_NUMA_NODE",
				 a->map_flags);
	uint32_t n = a->max_entries;
	if (n == 0 || (n & (n - 1)) != 0 || n % PAGE != 0)
		return set_error(err, err_len, EINVAL,
				 "max_entries %u: a ring buffer's size must be "
				 "a power of two and a multiple of the page "
				 "size (%llu)",
				 n, (unsigned long long)PAGE);
	if (a->map_extra != 0)
		return set_error(err, err_len, EINVAL,
				 "map_extra %llu: a GPU ring buffer takes none "
				 "(0)",
				 (unsigned long long)a->map_extra);
	return create(a, type_params{ MAGIC, VERSION, TYPE_NAME }, 0,
		      BPFTIME_GPU_RB_DATA_OFF + uint64_t(n), out, err, err_len);
}

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
// No keys, so that JSON export writes the map empty.
int rb_next_key(void *, const void *, void *)
{
	return -ENOENT;
}

// [pos, pos + len) of the ring's data into dst, unwrapped.
int read_ring(local *l, uint8_t *dst, uint64_t pos, uint64_t len)
{
	ring::spans s = ring::split(pos, len, l->max_entries);
	if (int r = copy_to_host(l, dst, BPFTIME_GPU_RB_DATA_OFF + s.first_off,
				 s.first_len))
		return r;
	if (s.second_len)
		return copy_to_host(l, dst + s.first_len,
				    BPFTIME_GPU_RB_DATA_OFF, s.second_len);
	return 0;
}

int zero_ring(local *l, uint64_t pos, uint64_t len)
{
	ring::spans s = ring::split(pos, len, l->max_entries);
	if (int r = zero_device(l, BPFTIME_GPU_RB_DATA_OFF + s.first_off,
				s.first_len))
		return r;
	if (s.second_len)
		return zero_device(l, BPFTIME_GPU_RB_DATA_OFF, s.second_len);
	return 0;
}

int rb_consume(void *lp, map_record_fn cb, void *ctx)
{
	auto *l = static_cast<local *>(lp);
	uint64_t cons = 0, prod = 0;
	if (int r = copy_to_host(l, &cons, BPFTIME_GPU_RB_CONSUMER_OFF, 8))
		return r;
	if (int r = copy_to_host(l, &prod, BPFTIME_GPU_RB_PRODUCER_OFF, 8))
		return r;
	if (prod <= cons)
		return 0;
	uint64_t avail = prod - cons;
	if (avail > l->max_entries) // producers never run this far ahead
		return -EIO;
	auto *buf = static_cast<uint8_t *>(malloc(avail));
	if (!buf)
		return -ENOMEM;
	int rc = read_ring(l, buf, cons, avail);
	uint64_t ready = rc == 0 ? ring::committed_prefix(buf, avail) : 0;
	if (rc == 0 && ready)
		rc = read_ring(l, buf, cons, ready);
	int handed = 0;
	uint64_t q = 0;
	while (rc == 0 && q < ready) {
		uint32_t len;
		memcpy(&len, buf + q, 4);
		const uint8_t *sample = buf + q + BPFTIME_GPU_RB_HDR_SZ;
		q += ring::record_len(len);
		if (len & BPFTIME_GPU_RB_DISCARD_BIT)
			continue;
		handed++;
		if (cb(ctx, sample, len))
			break;
	}
	if (rc == 0 && q) {
		rc = zero_ring(l, cons, q);
		uint64_t next = cons + q;
		if (rc == 0)
			rc = copy_to_device(l, BPFTIME_GPU_RB_CONSUMER_OFF,
					    &next, 8);
	}
	free(buf);
	return rc ? rc : handed;
}

const map_ops ops = {
	.size = sizeof(map_ops),
	.abi_version = MAP_OPS_ABI_VERSION,
	.layout_version = shm::LAYOUT_VERSION,
	.map_type = GPU_RINGBUF,
	.type_name = TYPE_NAME,
	.provider = PROVIDER,
	.create = rb_create,
	.destroy = destroy,
	.lookup = rb_lookup,
	.lookup_copy = rb_lookup_copy,
	.update = rb_update,
	.delete_elem = rb_delete,
	.get_next_key = rb_next_key,
	.state_magic = MAGIC,
	.state_version = VERSION,
	.open = open,
	.close = close,
	.consume = rb_consume,
};

} // namespace

const handlers::map_ops *gpu_ringbuf_map_ops() noexcept
{
	return &ops;
}

} // namespace bpftime::maps_gpu
