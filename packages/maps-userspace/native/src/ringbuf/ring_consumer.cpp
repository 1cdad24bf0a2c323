// ringbuf/ring_consumer.cpp: ring_consumer (the public consumer API) on the
// ring buffer core.
#include "ringbuf/ringbuf.hpp"

#include <bpftime/maps_userspace/ring_consumer.hpp>

#include <string>

namespace bpftime::maps_userspace {

result<std::unique_ptr<ring_consumer>> ring_consumer::attach(void *region,
							     uint64_t len)
{
	using namespace ringbuf;
	// The region starts at the consumer page; the control page is the
	// page before it in the same block of the segment.
	if (!region || reinterpret_cast<uintptr_t>(region) % PAGE != 0 ||
	    len < 3 * PAGE)
		return fail(EINVAL, "ring consumer: the region is not a ring "
				    "buffer's mmap region");
	auto *c = reinterpret_cast<control *>(static_cast<uint8_t *>(region) -
					      PAGE);
	if (c->header.magic != RINGBUF_MAGIC)
		return fail(EINVAL, "ring consumer: the region is not a "
				    "BPF_MAP_TYPE_RINGBUF map's");
	if (c->header.version != STATE_VERSION)
		return fail(EPROTONOSUPPORT,
			    "ring consumer: state version " +
				    std::to_string(c->header.version) +
				    " of BPF_MAP_TYPE_RINGBUF, this build "
				    "speaks " +
				    std::to_string(STATE_VERSION));
	if (len != 2 * PAGE + c->mask + 1)
		return fail(EINVAL, "ring consumer: the region is " +
					    std::to_string(len) +
					    " bytes, the ring's is " +
					    std::to_string(2 * PAGE + c->mask + 1));
	char err[256] = "";
	void *l = nullptr;
	if (int r = ringbuf::open(c, &l, err, sizeof err))
		return fail(-r, std::string("ring consumer: ") + err);
	std::unique_ptr<ring_consumer> rc(new ring_consumer());
	rc->local_ = l;
	return rc;
}

ring_consumer::~ring_consumer()
{
	if (local_)
		ringbuf::close(local_);
}

uint32_t ring_consumer::read(uint32_t max_records, uint64_t max_bytes,
			     int64_t timeout_ns, std::vector<uint8_t> &data,
			     std::vector<uint32_t> &sizes)
{
	auto *l = static_cast<ringbuf::local *>(local_);
	uint64_t bytes = 0;
	auto take = [&](const uint8_t *p, uint64_t size) {
		data.insert(data.end(), p, p + size);
		sizes.push_back(uint32_t(size));
		bytes += size;
		return bytes >= max_bytes ? 1 : 0;
	};
	for (int attempt = 0; attempt < 2; attempt++) {
		if (closed())
			return 0;
		uint64_t n = ringbuf::drain(l, max_records, take);
		if (n || attempt == 1)
			return uint32_t(n);
		if (ringbuf::wait(l, timeout_ns, &closed_))
			sleeps_.fetch_add(1, std::memory_order_relaxed);
	}
	return 0;
}

uint64_t ring_consumer::poll(int64_t timeout_ns, uint64_t max_records,
			     record_fn fn, void *ctx)
{
	auto *l = static_cast<ringbuf::local *>(local_);
	auto take = [&](const uint8_t *p, uint64_t size) {
		return fn(ctx, p, size);
	};
	for (int attempt = 0; attempt < 2; attempt++) {
		if (closed())
			return 0;
		uint64_t n = ringbuf::drain(l, max_records, take);
		if (n || attempt == 1)
			return n;
		if (ringbuf::wait(l, timeout_ns, &closed_))
			sleeps_.fetch_add(1, std::memory_order_relaxed);
	}
	return 0;
}

bool ring_consumer::wait_readable(int64_t timeout_ns)
{
	auto *l = static_cast<ringbuf::local *>(local_);
	if (ringbuf::readable(l))
		return true;
	if (closed())
		return false;
	if (ringbuf::wait(l, timeout_ns, &closed_))
		sleeps_.fetch_add(1, std::memory_order_relaxed);
	return ringbuf::readable(l);
}

void ring_consumer::close() noexcept
{
	closed_.store(true);
	ringbuf::wake(static_cast<ringbuf::local *>(local_)->ctl);
}

bool ring_consumer::closed() const noexcept
{
	return closed_.load();
}

uint64_t ring_consumer::sleeps() const noexcept
{
	return sleeps_.load();
}

uint64_t ring_consumer::wakeups() const noexcept
{
	return static_cast<ringbuf::local *>(local_)->ctl->wakeups.load();
}

uint64_t ring_consumer::ring_size() const noexcept
{
	return static_cast<ringbuf::local *>(local_)->mask + 1;
}

} // namespace bpftime::maps_userspace
