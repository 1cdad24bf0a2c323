// prog/cpu_slot_table.hpp: where a registry finds its segment's CPU slots
// (bpftime/handlers/cpu_slot.hpp). Not a public header.
#pragma once

#include <bpftime/handlers/cpu_slot.hpp>
#include <bpftime/shm/segment.hpp>

namespace bpftime::handlers {

// The segment's slot array, made by the first process that asks
// (possible_cpus() slots, free). Control plane (program instantiation): it
// takes the segment manager's lock. An empty table when the segment has no
// room for it: runs then go on without a slot, as before slots existed.
cpu_slot_table open_cpu_slots(shm::segment_manager *mgr) noexcept;

} // namespace bpftime::handlers
