// register.cpp: the map types of this package, for the map-ops registry of
// @bpftime/handlers.
#include <bpftime/handlers/registry.hpp>
#include <bpftime/maps_shared/maps_shared.hpp>

#include <array>

namespace bpftime::maps_shared {

std::span<const handlers::map_ops *const> all_map_ops() noexcept
{
	static const std::array all = { kernel_hash_map_ops(),
					kernel_array_map_ops() };
	return all;
}

status register_all()
{
	for (const handlers::map_ops *ops : all_map_ops())
		BPFTIME_TRY(handlers::register_map_ops(ops));
	return {};
}

} // namespace bpftime::maps_shared
