// ring_consumer.hpp: a consumer of a BPF_MAP_TYPE_RINGBUF map in this
// process, from the memory the map exposes (map_instance::mmap_region(), the
// kernel's mmap layout: consumer page, producer page, data). Node's
// RingBuf.records() and the cross-process tools read through it.
//
//   auto region = map->mmap_region();             // BPF_MAP_TYPE_RINGBUF
//   auto c = ring_consumer::attach(region->data(), region->size());
//   std::vector<uint8_t> data; std::vector<uint32_t> sizes;
//   while ((*c)->read(4096, 1 << 20, -1, data, sizes) > 0) ...
//
// One consumer per ring at a time (the kernel's rule for a ring's consumer
// position too). read() is called from one thread at a time; close() from
// any thread, to end a read that sleeps.
#pragma once

#include <bpftime/common/result.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

namespace bpftime::maps_userspace {

class ring_consumer {
    public:
	// EINVAL naming what is wrong when region is not the mmap region of
	// a ring buffer map of this build (magic, version or length).
	static result<std::unique_ptr<ring_consumer>> attach(void *region,
							     uint64_t len);
	~ring_consumer();
	ring_consumer(const ring_consumer &) = delete;
	ring_consumer &operator=(const ring_consumer &) = delete;

	// Appends the committed records (up to max_records, and past
	// max_bytes of data only for the first) to data, packed, and their
	// sizes to sizes; returns how many. With none readable it sleeps on
	// the ring's futex until a producer wakes it, close() is called or
	// timeout_ns pass (< 0: no timeout), then returns what it finds (0
	// after a timeout or close()).
	uint32_t read(uint32_t max_records, uint64_t max_bytes,
		      int64_t timeout_ns, std::vector<uint8_t> &data,
		      std::vector<uint32_t> &sizes);
	// The same without copies: hands each record to fn in place (valid
	// during the call; fn returns non-zero to stop after it), sleeping
	// first when none is readable. Returns how many it handed.
	using record_fn = int (*)(void *ctx, const void *data, uint64_t size);
	uint64_t poll(int64_t timeout_ns, uint64_t max_records, record_fn fn,
		      void *ctx);
	// Sleeps until a record is readable (without consuming it), close()
	// or timeout_ns; returns whether one is readable. For a consumer that
	// reads the mmap region itself (libbpf's ring_buffer__poll behind the
	// syscall-server's epoll_wait).
	bool wait_readable(int64_t timeout_ns);
	// Ends a read that sleeps, and every later one, with 0.
	void close() noexcept;
	bool closed() const noexcept;
	// Times read() slept on the futex, and wake-ups producers made.
	uint64_t sleeps() const noexcept;
	uint64_t wakeups() const noexcept;
	uint64_t ring_size() const noexcept;

    private:
	ring_consumer() = default;
	void *local_ = nullptr;
	std::atomic<bool> closed_{ false };
	std::atomic<uint64_t> sleeps_{ 0 };
};

} // namespace bpftime::maps_userspace
