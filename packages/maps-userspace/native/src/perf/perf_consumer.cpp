// perf/perf_consumer.cpp: perf_consumer (the public consumer API) on the
// perf event array's buffers (perf_buffer.hpp).
#include "perf/perf_buffer.hpp"

#include <bpftime/maps_userspace/perf_consumer.hpp>

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <string>

namespace bpftime::maps_userspace {

result<std::unique_ptr<perf_consumer>> perf_consumer::attach(void *region,
							     uint64_t len)
{
	auto *c = static_cast<perf::control *>(region);
	if (!c || len < sizeof(perf::control) || c->header.magic != perf::MAGIC)
		return fail(EINVAL, "perf consumer: the region is not a "
				    "BPF_MAP_TYPE_PERF_EVENT_ARRAY map's");
	if (c->header.version != perf::STATE_VERSION)
		return fail(EPROTONOSUPPORT,
			    "perf consumer: state version " +
				    std::to_string(c->header.version) +
				    " of BPF_MAP_TYPE_PERF_EVENT_ARRAY, this "
				    "build speaks " +
				    std::to_string(perf::STATE_VERSION));
	if (len != sizeof(perf::control) +
			   uint64_t(c->max_entries) * sizeof(perf::slot))
		return fail(EINVAL, "perf consumer: the region's length does "
				    "not match the map's slots");
	std::unique_ptr<perf_consumer> pc(new perf_consumer());
	pc->control_ = c;
	return pc;
}

namespace {

std::atomic<uint64_t> *head_of(perf_event_mmap_page *p)
{
	return reinterpret_cast<std::atomic<uint64_t> *>(&p->data_head);
}

std::atomic<uint64_t> *tail_of(perf_event_mmap_page *p)
{
	return reinterpret_cast<std::atomic<uint64_t> *>(&p->data_tail);
}

} // namespace

// libbpf's perf_event_read_simple per slot: records from data_tail to
// data_head, a wrapped one copied whole into scratch first; data_tail
// published after each slot.
uint64_t perf_consumer::drain(sample_fn on_sample, lost_fn on_lost, void *ctx)
{
	auto *c = static_cast<perf::control *>(control_);
	uint64_t n = 0;
	for (uint32_t i = 0; i < c->max_entries; i++) {
		perf_event_mmap_page *p = perf::page_of(c, c->slots() + i);
		if (!p)
			continue;
		uint64_t head = head_of(p)->load(std::memory_order_acquire);
		uint64_t tail = tail_of(p)->load(std::memory_order_relaxed);
		if (head == tail)
			continue;
		uint8_t *data = perf::data_of(p);
		uint64_t size = p->data_size;
		while (tail < head) {
			uint64_t off = tail & (size - 1);
			perf_event_header h;
			if (off + sizeof h <= size) {
				memcpy(&h, data + off, sizeof h);
			} else {
				uint64_t first = size - off;
				memcpy(&h, data + off, first);
				memcpy(reinterpret_cast<uint8_t *>(&h) + first,
				       data, sizeof h - first);
			}
			const uint8_t *rec = data + off;
			if (off + h.size > size) {
				scratch_.resize(h.size);
				uint64_t first = size - off;
				memcpy(scratch_.data(), data + off, first);
				memcpy(scratch_.data() + first, data,
				       h.size - first);
				rec = scratch_.data();
			}
			if (h.type == PERF_RECORD_SAMPLE) {
				uint32_t raw;
				memcpy(&raw, rec + sizeof h, 4);
				on_sample(ctx, i, rec + sizeof h + 4, raw);
			} else if (h.type == PERF_RECORD_LOST) {
				uint64_t lost;
				memcpy(&lost, rec + sizeof h + 8, 8);
				on_lost(ctx, i, lost);
			}
			n++;
			tail += h.size;
		}
		tail_of(p)->store(tail, std::memory_order_release);
	}
	return n;
}

bool perf_consumer::any_readable() const noexcept
{
	auto *c = static_cast<perf::control *>(control_);
	for (uint32_t i = 0; i < c->max_entries; i++) {
		perf_event_mmap_page *p = perf::page_of(c, c->slots() + i);
		if (p && head_of(p)->load(std::memory_order_seq_cst) !=
				 tail_of(p)->load(std::memory_order_relaxed))
			return true;
	}
	return false;
}

uint64_t perf_consumer::poll(int64_t timeout_ns, sample_fn on_sample,
			     lost_fn on_lost, void *ctx)
{
	if (closed())
		return 0;
	if (uint64_t n = drain(on_sample, on_lost, ctx))
		return n;
	wait_readable(timeout_ns);
	if (closed())
		return 0;
	return drain(on_sample, on_lost, ctx);
}

bool perf_consumer::wait_readable(int64_t timeout_ns)
{
	return wait_until(
		[](void *self) {
			return static_cast<perf_consumer *>(self)->any_readable();
		},
		this, timeout_ns);
}

bool perf_consumer::wait_until(bool (*ready)(void *ctx), void *ctx,
			       int64_t timeout_ns)
{
	auto *c = static_cast<perf::control *>(control_);
	if (ready(ctx))
		return true;
	if (closed())
		return false;
	c->sleepers.fetch_add(1, std::memory_order_seq_cst);
	uint32_t seq = c->wake_seq.load(std::memory_order_seq_cst);
	if (!ringbuf::heavy_fence() && (timeout_ns < 0 || timeout_ns > 1000000))
		timeout_ns = 1000000;
	if (!ready(ctx) && !closed()) {
		timespec ts{}, *tp = nullptr;
		if (timeout_ns >= 0) {
			ts.tv_sec = time_t(timeout_ns / 1000000000);
			ts.tv_nsec = long(timeout_ns % 1000000000);
			tp = &ts;
		}
		syscall(SYS_futex, reinterpret_cast<uint32_t *>(&c->wake_seq),
			FUTEX_WAIT, seq, tp, nullptr, 0);
		sleeps_.fetch_add(1, std::memory_order_relaxed);
	}
	c->sleepers.fetch_sub(1, std::memory_order_seq_cst);
	return ready(ctx);
}

int perf_consumer::set_next_pages(uint32_t pages) noexcept
{
	if (pages == 0 || (pages & (pages - 1)) || pages > (1u << 16))
		return EINVAL;
	static_cast<perf::control *>(control_)->data_pages = pages;
	return 0;
}

std::span<uint8_t> perf_consumer::slot_buffer(uint32_t index) const noexcept
{
	auto *c = static_cast<perf::control *>(control_);
	if (index >= c->max_entries)
		return {};
	perf_event_mmap_page *p = perf::page_of(c, c->slots() + index);
	if (!p)
		return {};
	return { reinterpret_cast<uint8_t *>(p),
		 size_t(p->data_offset + p->data_size) };
}

void perf_consumer::close() noexcept
{
	closed_.store(true);
	perf::wake(static_cast<perf::control *>(control_));
}

bool perf_consumer::closed() const noexcept
{
	return closed_.load();
}

uint64_t perf_consumer::sleeps() const noexcept
{
	return sleeps_.load();
}

uint64_t perf_consumer::lost() const noexcept
{
	auto *c = static_cast<perf::control *>(control_);
	uint64_t n = 0;
	for (uint32_t i = 0; i < c->max_entries; i++)
		n += c->slots()[i].lost_total.load(std::memory_order_relaxed);
	return n;
}

} // namespace bpftime::maps_userspace
