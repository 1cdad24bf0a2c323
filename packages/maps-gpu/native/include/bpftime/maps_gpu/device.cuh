// device.cuh: the device side of @bpftime/maps-gpu, for CUDA kernels that
// record into GPU maps: lookup, update and ring buffer output, with the
// kernel's helper semantics (bpf_map_lookup_elem, bpf_map_update_elem,
// bpf_ringbuf_output) and return values (0 or a negative errno).
//
//   #include <bpftime/maps_gpu/device.cuh>
//   __global__ void count(bpftime_gpu_map hits, bpftime_gpu_map events) {
//       uint32_t k = 0;
//       auto *v = (unsigned long long *)bpftime_gpu_map_lookup(&hits, &k);
//       if (v) atomicAdd(v, 1ull);
//       uint64_t rec = bpftime_gpu_thread_index();
//       bpftime_gpu_ringbuf_output(&events, &rec, sizeof(rec), 0);
//   }
//
// The struct bpftime_gpu_map comes from the host (gpu_map.h,
// bpftime::maps_gpu::device_map()). Every function may be called by any
// thread of any kernel at any time, concurrently with other kernels (other
// processes included) and with host operations on the same map.
#pragma once

#ifndef __CUDACC__
#error "device.cuh is for nvcc (CUDA device code)"
#endif

#include <bpftime/maps_gpu/gpu_map.h>

#include <cooperative_groups.h>
#include <cooperative_groups/scan.h>
#include <stdint.h>

namespace bpftime_gpu_detail {
// The kernel's errno values (asm-generic/errno-base.h, errno.h).
constexpr long E2BIG_ = 7;
constexpr long EAGAIN_ = 11;
constexpr long EEXIST_ = 17;
constexpr long EINVAL_ = 22;
constexpr uint64_t BPF_NOEXIST_ = 1;
constexpr uint64_t BPF_EXIST_ = 2;
constexpr uint64_t BPF_RB_NO_WAKEUP_ = 1;
constexpr uint64_t BPF_RB_FORCE_WAKEUP_ = 2;
// The kernel's RINGBUF_MAX_RECORD_SZ.
constexpr uint64_t MAX_RECORD_SZ_ = 0xffffffffull / 4;

__device__ __forceinline__ void copy_bytes(uint8_t *dst, const uint8_t *src,
					   uint64_t n)
{
	for (uint64_t i = 0; i < n; i++)
		dst[i] = src[i];
}
} // namespace bpftime_gpu_detail

// The calling thread's index in its grid, x fastest: the slot it owns in a
// per-thread array.
__device__ __forceinline__ uint64_t bpftime_gpu_thread_index()
{
	uint64_t block = blockIdx.x +
			 uint64_t(gridDim.x) *
				 (blockIdx.y + uint64_t(gridDim.y) * blockIdx.z);
	uint64_t per_block = uint64_t(blockDim.x) * blockDim.y * blockDim.z;
	uint64_t in_block =
		threadIdx.x + uint64_t(blockDim.x) *
				      (threadIdx.y + uint64_t(blockDim.y) * threadIdx.z);
	return block * per_block + in_block;
}

// bpf_map_lookup_elem: the value of key in place (key: a u32 index), or
// nullptr past max_entries. For a per-thread array: the calling thread's
// slot, or nullptr when the thread's index is past the map's thread count.
// A ring buffer has no values: nullptr.
__device__ __forceinline__ void *bpftime_gpu_map_lookup(const bpftime_gpu_map *m,
							const void *key)
{
	if (m->map_type != BPFTIME_MAP_TYPE_GPU_ARRAY &&
	    m->map_type != BPFTIME_MAP_TYPE_PERGPUTD_ARRAY)
		return nullptr;
	uint32_t index = *static_cast<const uint32_t *>(key);
	if (index >= m->max_entries)
		return nullptr;
	uint8_t *base = reinterpret_cast<uint8_t *>(m->data);
	switch (m->map_type) {
	case BPFTIME_MAP_TYPE_GPU_ARRAY:
		return base + uint64_t(index) * m->stride;
	case BPFTIME_MAP_TYPE_PERGPUTD_ARRAY: {
		uint64_t t = bpftime_gpu_thread_index();
		if (t >= m->threads)
			return nullptr;
		return base + (uint64_t(index) * m->threads + t) * m->stride;
	}
	default:
		return nullptr;
	}
}

// bpf_map_update_elem, as the kernel's array_map_update_elem: flags above
// BPF_EXIST (BPF_F_LOCK included: these maps have no spin lock) EINVAL, an
// index past the end E2BIG, BPF_NOEXIST EEXIST (every element exists). A
// per-thread array writes the calling thread's slot (E2BIG for a thread past
// the map's thread count). The copy is not atomic against readers, as in the
// kernel.
__device__ __forceinline__ long bpftime_gpu_map_update(const bpftime_gpu_map *m,
						       const void *key,
						       const void *value,
						       uint64_t flags)
{
	using namespace bpftime_gpu_detail;
	if (m->map_type != BPFTIME_MAP_TYPE_GPU_ARRAY &&
	    m->map_type != BPFTIME_MAP_TYPE_PERGPUTD_ARRAY)
		return -EINVAL_;
	if (flags > BPF_EXIST_)
		return -EINVAL_;
	void *slot = bpftime_gpu_map_lookup(m, key);
	if (!slot)
		return -E2BIG_;
	if (flags == BPF_NOEXIST_)
		return -EEXIST_;
	copy_bytes(static_cast<uint8_t *>(slot),
		   static_cast<const uint8_t *>(value), m->value_size);
	return 0;
}

// bpf_ringbuf_output: one record of `size` bytes copied from data, in the
// kernel's record format; 0, or -EAGAIN when the ring has no room (as the
// kernel answers; the map counts these at BPFTIME_GPU_RB_DROPPED_OFF),
// -EINVAL for unknown flags or a map that is not a ring. The wake-up flags
// are accepted and mean nothing here: the host consumer polls.
//
// Reservation is lock-free, a compare-and-swap on producer_pos (threads of
// one warp spinning on a lock held by a sibling can stall), and made once per
// warp: the threads of a warp that output to the same ring at the same time
// reserve their records together, in lane order, so that thousands of
// threads do not retry on one address. When the ring lacks room for all of
// them, each gets -EAGAIN. Each thread then writes its header busy in one
// 8-byte store, its sample, fences at system scope and clears the busy bit:
// a host copy that sees the record committed sees its bytes.
__device__ __forceinline__ long bpftime_gpu_ringbuf_output(const bpftime_gpu_map *m,
							   const void *data,
							   uint64_t size,
							   uint64_t flags)
{
	using namespace bpftime_gpu_detail;
	namespace cg = cooperative_groups;
	if (m->map_type != BPFTIME_MAP_TYPE_GPU_RINGBUF)
		return -EINVAL_;
	if (flags & ~(BPF_RB_NO_WAKEUP_ | BPF_RB_FORCE_WAKEUP_))
		return -EINVAL_;
	uint8_t *base = reinterpret_cast<uint8_t *>(m->data);
	auto *cons = reinterpret_cast<volatile unsigned long long *>(
		base + BPFTIME_GPU_RB_CONSUMER_OFF);
	auto *prod = reinterpret_cast<unsigned long long *>(
		base + BPFTIME_GPU_RB_PRODUCER_OFF);
	auto *dropped = reinterpret_cast<unsigned long long *>(
		base + BPFTIME_GPU_RB_DROPPED_OFF);
	uint8_t *ring = base + BPFTIME_GPU_RB_DATA_OFF;
	uint64_t cap = m->max_entries;
	uint64_t mask = cap - 1;
	uint64_t len = (size + BPFTIME_GPU_RB_HDR_SZ + 7) & ~uint64_t(7);
	if (size > MAX_RECORD_SZ_ || len > cap) {
		atomicAdd(dropped, 1ull);
		return -EAGAIN_;
	}
	cg::coalesced_group g = cg::labeled_partition(
		cg::coalesced_threads(), static_cast<unsigned long long>(m->data));
	unsigned long long upto = cg::inclusive_scan(
		g, static_cast<unsigned long long>(len));
	unsigned long long total = g.shfl(upto, g.size() - 1);
	unsigned long long start = 0;
	int reserved = 0;
	if (g.thread_rank() == 0) {
		unsigned long long pos =
			*reinterpret_cast<volatile unsigned long long *>(prod);
		for (;;) {
			// The kernel's check: records after the consumer are
			// unread.
			if (pos + total - *cons > cap)
				break;
			unsigned long long seen = atomicCAS(prod, pos, pos + total);
			if (seen == pos) {
				start = pos;
				reserved = 1;
				break;
			}
			pos = seen;
		}
		if (!reserved)
			atomicAdd(dropped, static_cast<unsigned long long>(g.size()));
	}
	reserved = g.shfl(reserved, 0);
	start = g.shfl(start, 0);
	if (!reserved)
		return -EAGAIN_;
	// Records are 8-byte aligned and the ring a multiple of 8: the header
	// never wraps; the sample may.
	uint64_t off = (start + upto - len) & mask;
	uint32_t who = uint32_t(bpftime_gpu_thread_index() & 0x7fffffffu) |
		       BPFTIME_GPU_RB_WRITTEN_BIT;
	auto *hdr = reinterpret_cast<volatile unsigned long long *>(ring + off);
	*hdr = (uint64_t(who) << 32) | uint32_t(size) | BPFTIME_GPU_RB_BUSY_BIT;
	const uint8_t *src = static_cast<const uint8_t *>(data);
	uint64_t first_byte = (off + BPFTIME_GPU_RB_HDR_SZ) & mask;
	uint64_t first = size < cap - first_byte ? size : cap - first_byte;
	copy_bytes(ring + first_byte, src, first);
	copy_bytes(ring, src + first, size - first);
	__threadfence_system();
	atomicExch(reinterpret_cast<unsigned int *>(ring + off), uint32_t(size));
	return 0;
}
