// register.cpp: the map types of this package, for the map-ops registry of
// @bpftime/handlers (C++ users; Node registers through the addon).
#include <bpftime/handlers/registry.hpp>
#include <bpftime/maps_userspace/maps_userspace.hpp>

#include <array>

namespace bpftime::maps_userspace {

std::span<const handlers::map_ops *const> all_map_ops() noexcept
{
	static const std::array<const handlers::map_ops *, 2> all = {
		array_map_ops(), hash_map_ops()
	};
	return all;
}

status register_all()
{
	for (const handlers::map_ops *ops : all_map_ops())
		BPFTIME_TRY(handlers::register_map_ops(ops));
	return {};
}

} // namespace bpftime::maps_userspace
