// register.cpp: the map types of this package, for the map-ops registry of
// @bpftime/handlers, and what a host program asks of them (availability,
// the device view of a map).
#include <bpftime/handlers/registry.hpp>
#include <bpftime/maps_gpu/maps_gpu.hpp>

#include "cuda_driver.hpp"
#include "gpu_map.hpp"

#include <array>
#include <cerrno>

namespace bpftime::maps_gpu {

std::span<const handlers::map_ops *const> all_map_ops() noexcept
{
	static const std::array all = { gpu_array_map_ops(),
					pergputd_array_map_ops(),
					gpu_ringbuf_map_ops() };
	return all;
}

status register_all()
{
	for (const handlers::map_ops *ops : all_map_ops())
		BPFTIME_TRY(handlers::register_map_ops(ops));
	return {};
}

availability probe() noexcept
{
	try {
		int code = 0;
		std::string why;
		const cu::driver *d = cu::get(&code, &why);
		if (!d)
			return { code, why };
		int count = 0;
		if (CUresult r = d->device_get_count(&count); r != CUDA_SUCCESS)
			return { ENODEV,
				 "cuDeviceGetCount: " + cu::error_name(*d, r) };
		if (count == 0)
			return { ENODEV, "the CUDA driver sees no device" };
		int ordinal = cu::default_device();
		if (ordinal < 0 || ordinal >= count)
			return { ENODEV, "BPFTIME_CUDA_DEVICE names no device (" +
						 std::to_string(count) +
						 " visible)" };
		CUdevice dev;
		char name[256] = "";
		if (d->device_get(&dev, ordinal) != CUDA_SUCCESS ||
		    d->device_get_name(name, sizeof(name), dev) != CUDA_SUCCESS)
			return { ENODEV, "CUDA device " +
						 std::to_string(ordinal) +
						 " cannot be queried" };
		int version = 0;
		d->driver_get_version(&version);
		return { 0, "device " + std::to_string(ordinal) + ": " + name +
				    ", driver CUDA " +
				    std::to_string(version / 1000) + "." +
				    std::to_string(version % 1000 / 10) };
	} catch (...) {
		return { ENOMEM, "out of memory" };
	}
}

int device_map(const handlers::map_instance &m, bpftime_gpu_map *out) noexcept
{
	if (!is_ours(m.ops) || !m.opened)
		return -EINVAL;
	auto *l = static_cast<const local *>(m.state);
	out->data = l->dptr;
	out->map_type = l->map_type;
	out->key_size = l->key_size;
	out->value_size = l->value_size;
	out->max_entries = l->max_entries;
	out->stride = l->stride;
	out->threads = l->threads;
	return 0;
}

int ringbuf_dropped(const handlers::map_instance &m, uint64_t *out) noexcept
{
	if (!is_ours(m.ops) || !m.opened || m.map_type != GPU_RINGBUF)
		return -EINVAL;
	return copy_to_host(static_cast<local *>(m.state), out,
			    BPFTIME_GPU_RB_DROPPED_OFF, 8);
}

} // namespace bpftime::maps_gpu
