// register.cpp: the map types of this package, for the map-ops registry of
// @bpftime/handlers.
#include <bpftime/handlers/registry.hpp>
#include <bpftime/maps_shared/maps_shared.hpp>

#include "kernel_map.hpp"

#include <array>
#include <cstdio>
#include <cstring>

namespace bpftime::maps_shared {

std::span<const handlers::map_ops *const> all_map_ops() noexcept
{
	static const std::array all = { kernel_hash_map_ops(),
					kernel_array_map_ops(),
					kernel_percpu_array_map_ops() };
	return all;
}

status register_all()
{
	for (const handlers::map_ops *ops : all_map_ops())
		BPFTIME_TRY(handlers::register_map_ops(ops));
	return {};
}

int kernel_id_of(const char *segment_name, uint32_t map_id, uint32_t *id,
		 char *err, size_t err_len) noexcept
{
	auto fail = [&](int e, const std::string &msg) {
		snprintf(err, err_len, "%s", msg.c_str());
		return -e;
	};
	try {
		if (auto r = register_all(); !r)
			return fail(r.error().code, r.error().message);
		auto seg = shm::segment::open(segment_name);
		if (!seg)
			return fail(seg.error().code, seg.error().message);
		auto reg = handlers::registry::open(std::move(*seg));
		if (!reg)
			return fail(reg.error().code, reg.error().message);
		auto m = (*reg)->map(map_id);
		if (!m)
			return fail(m.error().code, m.error().message);
		// The registry keeps its own copy of each table: compare by type
		// and provider, not by address.
		const handlers::map_ops *ops = (*m)->ops;
		bool ours = false;
		for (const handlers::map_ops *o : all_map_ops())
			ours = ours || (o->map_type == ops->map_type && ops->provider &&
					strcmp(ops->provider, PROVIDER) == 0);
		if (!ours)
			return fail(EINVAL, "map id " + std::to_string(map_id) +
						    " is not a kernel-backed map");
		*id = static_cast<local *>((*m)->state)->shared->kernel_id;
		return 0;
	} catch (const std::exception &e) {
		return fail(ENOMEM, e.what());
	}
}

} // namespace bpftime::maps_shared
