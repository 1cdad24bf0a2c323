// perf_consumer.hpp: a consumer of a BPF_MAP_TYPE_PERF_EVENT_ARRAY map's
// buffers in this process (libbpf's perf_buffer__poll): every slot's
// PERF_RECORD_SAMPLE records, in order per slot, and PERF_RECORD_LOST
// counts. Built on the map's mmap region (map_instance::mmap_region()).
//
//   auto c = perf_consumer::attach(region->data(), region->size());
//   (*c)->poll(-1, UINT64_MAX, on_sample, on_lost, ctx);
//
// One consumer per map at a time; poll() from one thread, close() from any.
#pragma once

#include <bpftime/common/result.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

namespace bpftime::maps_userspace {

class perf_consumer {
    public:
	// EINVAL when region is not a perf event array's mmap region of this
	// build; EPROTONOSUPPORT for another state version.
	static result<std::unique_ptr<perf_consumer>> attach(void *region,
							     uint64_t len);
	perf_consumer(const perf_consumer &) = delete;
	perf_consumer &operator=(const perf_consumer &) = delete;

	// The raw bytes of a sample (with the kernel's padding to 8 bytes
	// after the u32 size), and the slot (CPU) it was written to.
	using sample_fn = void (*)(void *ctx, uint32_t cpu, const void *data,
				   uint32_t size);
	using lost_fn = void (*)(void *ctx, uint32_t cpu, uint64_t lost);
	// Hands every record written so far to the callbacks, slot by slot,
	// giving the space back; with none it first sleeps on the map's futex
	// until a writer wakes it, close() or timeout_ns (< 0: none). Returns
	// the records handed (samples and lost records).
	uint64_t poll(int64_t timeout_ns, sample_fn on_sample, lost_fn on_lost,
		      void *ctx);
	// Sleeps until a record is in some slot's buffer (without consuming
	// it), close() or timeout_ns; returns whether one is there.
	bool wait_readable(int64_t timeout_ns);
	// Sleeps until ready(ctx) holds (tested after registering as a
	// sleeper, so a record written in between is never missed), close()
	// or timeout_ns; returns ready(ctx). For a waiter on one slot (the
	// syscall-server's epoll readiness of one perf event descriptor).
	bool wait_until(bool (*ready)(void *ctx), void *ctx,
			int64_t timeout_ns);
	// Slot `index`'s buffer as the kernel maps a perf event's ring (a
	// struct perf_event_mmap_page in the first page, then the data
	// pages), page-aligned in the segment; empty while no event was ever
	// stored in the slot or past max_entries.
	std::span<uint8_t> slot_buffer(uint32_t index) const noexcept;
	// The data pages of the buffers made from now on (a slot gets its
	// buffer at the first store of an event into it), as a perf event's
	// mmap sizes its ring in the kernel: for the syscall-server, which
	// sees a tool's mmap of each event before the tool stores it. A power
	// of two up to 65536, else EINVAL (nothing changes).
	int set_next_pages(uint32_t pages) noexcept;
	// The same without waiting: 0 when every buffer is empty.
	uint64_t drain(sample_fn on_sample, lost_fn on_lost, void *ctx);
	void close() noexcept;
	bool closed() const noexcept;
	uint64_t sleeps() const noexcept;
	// Samples the writers could not store, over all slots (the sum of
	// what PERF_RECORD_LOST reports and what is still pending).
	uint64_t lost() const noexcept;

    private:
	perf_consumer() = default;
	bool any_readable() const noexcept;
	void *control_ = nullptr;
	std::vector<uint8_t> scratch_;
	std::atomic<bool> closed_{ false };
	std::atomic<uint64_t> sleeps_{ 0 };
};

} // namespace bpftime::maps_userspace
