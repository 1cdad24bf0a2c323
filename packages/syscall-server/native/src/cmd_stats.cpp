// cmd_stats.cpp: BPF_ENABLE_STATS (kernel/bpf/syscall.c bpf_enable_stats):
// a BPF_STATS_RUN_TIME descriptor turns on the counting of every program's
// runs and run time while it is open, in every process of the registry
// (handlers/prog_stats.hpp: agents count, this reads).
#include "server_impl.hpp"

#include <bpftime/handlers/prog_stats.hpp>
#include <bpftime/shm/segment.hpp>

#include <linux/bpf.h>

#include <cerrno>

namespace bpftime::syscall_server {

handlers::prog_stats_table *stats_table(server::impl &s, bool create)
{
	std::lock_guard g(s.stats_mu);
	if (!s.stats) {
		auto &seg = s.reg->segment();
		handlers::prog_stats_table *t = nullptr;
		if (create) {
			auto r = seg.find_or_construct<handlers::prog_stats_table>(
				handlers::PROG_STATS_NAME);
			if (r)
				t = *r;
		} else {
			t = seg.find<handlers::prog_stats_table>(
				handlers::PROG_STATS_NAME);
		}
		if (t && t->valid())
			s.stats = t;
	}
	return s.stats;
}

long server::impl::enable_stats(const union bpf_attr &attr)
{
	// bpf_enable_stats(): BPF_STATS_RUN_TIME is the only type.
	if (attr.enable_stats.type != BPF_STATS_RUN_TIME)
		return -EINVAL;
	auto *t = stats_table(*this, true);
	if (!t)
		return -ENOMEM;
	auto o = make(obj_kind::stats, { handlers::NO_ID, 0 }, false);
	t->enabled.fetch_add(1);
	o->stats_on = true;
	return install(std::move(o));
}

void server::impl::stats_released()
{
	if (auto *t = stats_table(*this, false))
		t->enabled.fetch_sub(1);
}

void server::impl::prog_stats(uint32_t id, uint64_t &run_cnt,
			      uint64_t &run_time_ns)
{
	run_cnt = run_time_ns = 0;
	auto *t = stats_table(*this, false);
	if (!t)
		return;
	if (auto *slot = t->slot(id)) {
		run_cnt = slot->run_cnt.load(std::memory_order_relaxed);
		run_time_ns = slot->run_time_ns.load(std::memory_order_relaxed);
	}
}

void server::impl::prog_stats_reset(uint32_t id)
{
	auto *t = stats_table(*this, false);
	if (!t)
		return;
	if (auto *slot = t->slot(id)) {
		slot->run_cnt.store(0, std::memory_order_relaxed);
		slot->run_time_ns.store(0, std::memory_order_relaxed);
	}
}

} // namespace bpftime::syscall_server
