// ring_format.hpp: the host side's reading of the GPU ring's records (the
// kernel's record format, gpu_map.h), apart from the device copies so that
// the native test checks it on byte buffers. Not public.
#pragma once

#include <bpftime/maps_gpu/gpu_map.h>

#include <cstdint>
#include <cstring>

namespace bpftime::maps_gpu::ring {

// One record's bytes in the ring, header included, from its header's length
// word (the kernel's: rounded up to 8).
inline uint64_t record_len(uint32_t hdr_len) noexcept
{
	return ((hdr_len & ~(BPFTIME_GPU_RB_BUSY_BIT |
			     BPFTIME_GPU_RB_DISCARD_BIT)) +
		BPFTIME_GPU_RB_HDR_SZ + 7) &
	       ~uint64_t(7);
}

// The bytes at the start of buf (a copy of the ring from consumer_pos,
// `avail` long) that hold whole committed records: it stops at a busy
// header, at an all-zero one (reserved, not yet written: the consumer zeroes
// what it consumed), and at a record that would run past avail.
inline uint64_t committed_prefix(const uint8_t *buf, uint64_t avail) noexcept
{
	uint64_t p = 0;
	while (p + BPFTIME_GPU_RB_HDR_SZ <= avail) {
		uint32_t len, who;
		memcpy(&len, buf + p, 4);
		memcpy(&who, buf + p + 4, 4);
		if ((len == 0 && who == 0) || (len & BPFTIME_GPU_RB_BUSY_BIT))
			break;
		uint64_t rl = record_len(len);
		if (p + rl > avail)
			break;
		p += rl;
	}
	return p;
}

// [pos, pos + len) of a ring of cap bytes (a power of two, len <= cap) as at
// most two ranges of its data: [first_off, first_off + first_len) then
// [0, len - first_len).
struct spans {
	uint64_t first_off;
	uint64_t first_len;
	uint64_t second_len;
};
inline spans split(uint64_t pos, uint64_t len, uint64_t cap) noexcept
{
	uint64_t off = pos & (cap - 1);
	uint64_t first = len < cap - off ? len : cap - off;
	return { off, first, len - first };
}

} // namespace bpftime::maps_gpu::ring
