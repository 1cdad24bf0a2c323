// perf/perf_buffer.hpp: BPF_MAP_TYPE_PERF_EVENT_ARRAY's state and its
// per-slot buffers in the kernel's perf ring layout (kernel/events/ring_buffer.c
// as a BPF_OUTPUT event's mmap shows it, include/uapi/linux/perf_event.h):
// a struct perf_event_mmap_page (data_head, data_tail, data_offset,
// data_size), then data pages holding PERF_RECORD_SAMPLE records with
// PERF_SAMPLE_RAW (header, u32 size, the raw bytes padded to 8) and
// PERF_RECORD_LOST records (header, u64 id, u64 lost).
//
// The kernel's values are perf event fds, each event owning its buffer; here
// a slot holds the id of a registry perf event (fd_kind MAP_FD_PERF_EVENT)
// and the map owns the slot's buffer, allocated the first time user space
// stores an event into the slot (data_pages pages, from
// BPFTIME_PERF_BUFFER_PAGES at creation) and kept until the map goes, so
// that a program writing into it never races with a free.
//
// Writers: the kernel writes a CPU's buffer from that CPU only, with
// preemption off. Threads of user space migrate and are preempted, so two
// may write one slot: each slot has a spin lock (the ring buffer core's,
// tid-owned with dead-owner takeover), held while a record is copied in
// and data_head published. A record that does not fit is counted as lost;
// the next record that fits is preceded by a PERF_RECORD_LOST with the
// count, as the kernel's perf_output_begin does.
//
// Wake-ups: one futex word for the whole map (libbpf's perf_buffer__poll
// waits on every CPU's buffer at once); a writer wakes it after each record
// when a consumer sleeps (the kernel: wakeup_events = 1, as libbpf sets).
#pragma once

#include "map_common.hpp"
#include "ringbuf/ringbuf.hpp"

#include <linux/perf_event.h>

#include <atomic>
#include <cstdint>

namespace bpftime::maps_userspace::perf {

inline constexpr uint32_t MAGIC = 0x50455246; // "PERF"
// The layout of control, slot and the buffers. 1: the first.
inline constexpr uint32_t STATE_VERSION = 1;
inline constexpr uint64_t PAGE = 4096;
inline constexpr uint32_t NO_ID = 0xffffffffu;
inline constexpr uint64_t F_INDEX_MASK = 0xffffffffull; // BPF_F_INDEX_MASK
inline constexpr uint64_t F_CURRENT_CPU = F_INDEX_MASK; // BPF_F_CURRENT_CPU
inline constexpr uint32_t DEFAULT_PAGES = 16;

struct slot {
	std::atomic<uint32_t> id;   // the perf event's id, NO_ID when empty
	std::atomic<uint32_t> lock; // 0 or the writing thread's tid
	std::atomic<int64_t> buffer_off; // from the control; 0: none yet
	std::atomic<uint64_t> lost_pending; // not yet reported in the ring
	std::atomic<uint64_t> lost_total;
	uint8_t pad[32];
};
static_assert(sizeof(slot) == 64);

struct control {
	handlers::map_state_header header;
	uint32_t key_size;
	uint32_t value_size;
	uint32_t max_entries;
	uint32_t map_flags;
	uint32_t data_pages; // per buffer
	std::atomic<uint32_t> wake_seq;
	std::atomic<uint32_t> sleepers;
	uint32_t pad;
	int64_t manager_off; // the segment manager, from this struct
	std::atomic<uint64_t> wakeups;
	uint8_t pad2[8];

	slot *slots() noexcept { return reinterpret_cast<slot *>(this + 1); }
	uint8_t *at(int64_t off) noexcept
	{
		return reinterpret_cast<uint8_t *>(this) + off;
	}
};
static_assert(sizeof(control) == 64);

// A slot's buffer: the mmap page, then data_size bytes.
inline perf_event_mmap_page *page_of(control *c, slot *s) noexcept
{
	int64_t off = s->buffer_off.load(std::memory_order_acquire);
	return off ? reinterpret_cast<perf_event_mmap_page *>(c->at(off)) :
		     nullptr;
}

inline uint8_t *data_of(perf_event_mmap_page *p) noexcept
{
	return reinterpret_cast<uint8_t *>(p) + p->data_offset;
}

// Copies n bytes into the ring at position pos (wrapping).
inline void ring_copy(uint8_t *data, uint64_t size, uint64_t pos,
		      const void *src, uint64_t n) noexcept
{
	uint64_t off = pos & (size - 1);
	uint64_t first = n < size - off ? n : size - off;
	memcpy(data + off, src, first);
	if (first < n)
		memcpy(data, static_cast<const uint8_t *>(src) + first,
		       n - first);
}

void wake(control *c) noexcept;

// The kernel's bpf_perf_event_output after the index is chosen: one
// PERF_RECORD_SAMPLE of `size` raw bytes into slot index. 0, -E2BIG (raw
// data too large for a record), -ENOENT (no event in the slot), -ENOSPC
// (lost: the buffer is full; counted).
inline int output(control *c, uint32_t index, const void *raw, uint64_t size,
		  uint32_t tid) noexcept
{
	slot *s = c->slots() + index;
	if (s->id.load(std::memory_order_acquire) == NO_ID) [[unlikely]]
		return -ENOENT;
	perf_event_mmap_page *p = page_of(c, s);
	if (!p) [[unlikely]]
		return -ENOENT;
	// header, u32 size, raw, padded to 8 (the kernel's perf_prepare_sample
	// for PERF_SAMPLE_RAW).
	uint64_t rec = (sizeof(perf_event_header) + 4 + size + 7) & ~uint64_t(7);
	if (rec > 0xffff) [[unlikely]]
		return -E2BIG;
	uint8_t *data = data_of(p);
	uint64_t dsize = p->data_size;
	ringbuf::lock(s->lock, tid);
	auto *head_p = reinterpret_cast<std::atomic<uint64_t> *>(&p->data_head);
	auto *tail_p = reinterpret_cast<std::atomic<uint64_t> *>(&p->data_tail);
	uint64_t head = head_p->load(std::memory_order_relaxed);
	uint64_t tail = tail_p->load(std::memory_order_acquire);
	uint64_t lost = s->lost_pending.load(std::memory_order_relaxed);
	uint64_t need = rec + (lost ? sizeof(perf_event_header) + 16 : 0);
	if (head - tail + need > dsize) [[unlikely]] {
		s->lost_pending.store(lost + 1, std::memory_order_relaxed);
		s->lost_total.fetch_add(1, std::memory_order_relaxed);
		ringbuf::unlock(s->lock);
		return -ENOSPC;
	}
	if (lost) [[unlikely]] {
		struct {
			perf_event_header h;
			uint64_t id, lost;
		} l{ { PERF_RECORD_LOST, 0, uint16_t(sizeof(l)) }, 0, lost };
		ring_copy(data, dsize, head, &l, sizeof l);
		head += sizeof l;
		s->lost_pending.store(0, std::memory_order_relaxed);
	}
	struct {
		perf_event_header h;
		uint32_t size;
	} hdr{ { PERF_RECORD_SAMPLE, 0, uint16_t(rec) },
	       uint32_t(rec - sizeof(perf_event_header) - 4) };
	uint64_t off = head & (dsize - 1);
	if (off + rec <= dsize) [[likely]] {
		// The record does not wrap: the last 8 bytes zeroed first (the
		// kernel's zero padding), then header and data over them.
		uint8_t *at = data + off;
		memset(at + rec - 8, 0, 8);
		memcpy(at, &hdr, sizeof hdr);
		memcpy(at + sizeof hdr, raw, size);
	} else {
		ring_copy(data, dsize, head, &hdr, sizeof hdr);
		ring_copy(data, dsize, head + sizeof hdr, raw, size);
		static constexpr uint8_t zeros[8] = {};
		if (rec > sizeof hdr + size)
			ring_copy(data, dsize, head + sizeof hdr + size, zeros,
				  rec - sizeof hdr - size);
	}
	// Pairs with a sleeping consumer's sleepers increment (ringbuf.hpp's
	// light_commit).
	if (ringbuf::light_commit) [[likely]]
		head_p->store(head + rec, std::memory_order_release);
	else
		head_p->store(head + rec, std::memory_order_seq_cst);
	ringbuf::unlock(s->lock);
	if (c->sleepers.load(std::memory_order_relaxed) != 0) [[unlikely]]
		wake(c);
	return 0;
}

} // namespace bpftime::maps_userspace::perf
