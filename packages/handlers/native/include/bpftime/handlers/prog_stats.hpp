// prog_stats.hpp: the kernel's program run statistics (BPF_ENABLE_STATS with
// BPF_STATS_RUN_TIME; bpf_prog_info's run_time_ns and run_cnt) across the
// processes of a registry. One table in the segment, "bpftime.prog_stats":
// a count of the stats descriptors open in any tool (the kernel's
// bpf_stats_enabled_key) and, per program registry id, the runs and the
// nanoseconds they took. Agents add to a program's slot after each run
// while the count is non-zero (a relaxed load and a branch otherwise); the
// syscall-server opens and closes the descriptors, zeroes a slot when it
// loads a program, and reads the slots for bpf_prog_info and fdinfo.
//
// Programs with ids at or past PROG_STATS_SLOTS are not counted (their
// counters read 0).
#pragma once

#include <atomic>
#include <cstdint>

namespace bpftime::handlers {

inline constexpr const char *PROG_STATS_NAME = "bpftime.prog_stats";
inline constexpr uint64_t PROG_STATS_MAGIC = 0x5354415453475250ull; // "PRGSTATS"
inline constexpr uint32_t PROG_STATS_VERSION = 1;
inline constexpr uint32_t PROG_STATS_SLOTS = 8192;

struct prog_stats_slot {
	std::atomic<uint64_t> run_cnt{ 0 };
	std::atomic<uint64_t> run_time_ns{ 0 };
};
static_assert(sizeof(prog_stats_slot) == 16);

struct prog_stats_table {
	uint64_t magic = PROG_STATS_MAGIC;
	uint32_t version = PROG_STATS_VERSION;
	// Stats descriptors open (BPF_ENABLE_STATS), over every process.
	std::atomic<uint32_t> enabled{ 0 };
	prog_stats_slot slots[PROG_STATS_SLOTS];

	// The slot of program id, or nullptr past the table.
	prog_stats_slot *slot(uint32_t id) noexcept
	{
		return id < PROG_STATS_SLOTS ? &slots[id] : nullptr;
	}
	bool valid() const noexcept
	{
		return magic == PROG_STATS_MAGIC && version == PROG_STATS_VERSION;
	}
};
static_assert(sizeof(prog_stats_table) == 16 + 16 * PROG_STATS_SLOTS);

} // namespace bpftime::handlers
