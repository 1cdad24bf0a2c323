// register.cpp: the map types of this package, for the map-ops registry of
// @bpftime/handlers (C++ users; Node registers through the addon).
#include <bpftime/handlers/registry.hpp>
#include <bpftime/maps_userspace/maps_userspace.hpp>

#include <array>

// Every type of this package, one line each: the function its file defines
// (hash_map.cpp defines hash_map_ops()). A new type adds its line here, and
// its kernel name to package.json's "bpftime.mapTypes".
#define BPFTIME_MAPS_USERSPACE_TYPES(X)                                       \
	X(array_map_ops)                                                       \
	X(hash_map_ops)                                                        \
	X(percpu_array_map_ops)                                                \
	X(percpu_hash_map_ops)                                                 \
	X(lru_hash_map_ops)                                                    \
	X(lru_percpu_hash_map_ops)                                             \
	X(queue_map_ops)                                                       \
	X(stack_map_ops)                                                       \
	X(bloom_filter_map_ops)                                                \
	X(lpm_trie_map_ops)                                                    \
	X(prog_array_map_ops)                                                  \
	X(cgroup_array_map_ops)                                                \
	X(array_of_maps_map_ops)                                               \
	X(hash_of_maps_map_ops)                                                \
	X(stack_trace_map_ops)                                                 \
	X(ringbuf_map_ops)                                                     \
	X(perf_event_array_map_ops)                                            \
	X(user_ringbuf_map_ops)

namespace bpftime::maps_userspace {

#define BPFTIME_DECLARE_OPS(f) const handlers::map_ops *f() noexcept;
BPFTIME_MAPS_USERSPACE_TYPES(BPFTIME_DECLARE_OPS)
#undef BPFTIME_DECLARE_OPS

std::span<const handlers::map_ops *const> all_map_ops() noexcept
{
#define BPFTIME_LIST_OPS(f) f(),
	static const std::array all = { BPFTIME_MAPS_USERSPACE_TYPES(
		BPFTIME_LIST_OPS) };
#undef BPFTIME_LIST_OPS
	return all;
}

status register_all()
{
	for (const handlers::map_ops *ops : all_map_ops())
		BPFTIME_TRY(handlers::register_map_ops(ops));
	return {};
}

} // namespace bpftime::maps_userspace
