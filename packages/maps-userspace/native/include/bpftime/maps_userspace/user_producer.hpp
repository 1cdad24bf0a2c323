// user_producer.hpp: the user-space producer of a BPF_MAP_TYPE_USER_RINGBUF
// map (libbpf's user_ring_buffer__reserve/submit/discard), on the map's
// mmap region (map_instance::mmap_region()). Programs drain the records
// with bpf_user_ringbuf_drain.
//
//   auto p = user_producer::attach(region->data(), region->size());
//   if (int e = (*p)->write(&req, sizeof req)) ...   // -ENOSPC: full
//
// Safe for several producers at once (threads or processes: reservations
// take the ring's producer lock), unlike libbpf's, which leaves that to its
// caller.
#pragma once

#include <bpftime/common/result.hpp>

#include <atomic>
#include <cstdint>
#include <memory>

namespace bpftime::maps_userspace {

class user_producer {
    public:
	// EINVAL when region is not a user ring buffer's mmap region of this
	// build; EPROTONOSUPPORT for another state version.
	static result<std::unique_ptr<user_producer>> attach(void *region,
							     uint64_t len);
	~user_producer();
	user_producer(const user_producer &) = delete;
	user_producer &operator=(const user_producer &) = delete;

	// A sample of size bytes to fill, then submit or discard; nullptr
	// with *err = E2BIG (never fits) or ENOSPC (full now).
	void *reserve(uint32_t size, int *err) noexcept;
	void submit(void *sample) noexcept;
	void discard(void *sample) noexcept;
	// reserve + copy + submit: 0, -E2BIG or -ENOSPC.
	int write(const void *data, uint32_t size) noexcept;
	// Bytes not yet drained by programs subtracted from the ring's size.
	uint64_t free_bytes() const noexcept;
	// libbpf's user_ring_buffer__reserve_blocking, as a wait: sleeps on
	// the ring's futex until a record of size bytes fits, a drain wakes
	// it, close() is called or timeout_ns pass (< 0: no timeout). True
	// when the record fits now.
	bool wait_for_room(uint32_t size, int64_t timeout_ns) noexcept;
	// Ends a wait_for_room that sleeps, and every later one.
	void close() noexcept;


    private:
	user_producer() = default;
	void *local_ = nullptr;
	std::atomic<bool> closed_{ false };
};

} // namespace bpftime::maps_userspace
