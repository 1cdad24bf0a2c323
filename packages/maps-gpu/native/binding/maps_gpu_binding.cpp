// maps_gpu_binding.cpp: node-addon-api glue for @bpftime/maps-gpu: the
// addresses of the static map-ops tables (Externals tagged MAP_OPS_TYPE_TAG,
// for registerMapOps() of @bpftime/handlers), the availability probe, and
// GpuMapHandle, this process's open GPU map (a registry object of its own on
// the segment and the map's instance) for the ring consumer and the device
// view. Runs on the JS thread.
#include <bpftime/common/napi.hpp>
#include <bpftime/handlers/registry.hpp>
#include <bpftime/maps_gpu/maps_gpu.hpp>
#include <bpftime/shm/segment.hpp>

#include <memory>
#include <vector>

namespace {

using bpftime::handlers::map_ops;
namespace mg = bpftime::maps_gpu;
namespace hd = bpftime::handlers;

constexpr napi_type_tag map_ops_tag = {
	bpftime::handlers::MAP_OPS_TYPE_TAG_LOWER,
	bpftime::handlers::MAP_OPS_TYPE_TAG_UPPER
};
constexpr napi_type_tag handle_tag = { 0x6270667469d5e1a7ULL,
				       0x4750554d41503031ULL };

// mapOps() → [{ type, typeName, ops: External }]
Napi::Value MapOps(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	auto all = mg::all_map_ops();
	Napi::Array out = Napi::Array::New(env, all.size());
	for (size_t i = 0; i < all.size(); i++) {
		auto ext = Napi::External<map_ops>::New(
			env, const_cast<map_ops *>(all[i]));
		if (napi_type_tag_object(env, ext, &map_ops_tag) != napi_ok)
			bpftime::napi::throw_error(env, EINVAL,
						   "cannot tag a map-ops table");
		Napi::Object o = Napi::Object::New(env);
		o.Set("type", all[i]->map_type);
		o.Set("typeName", all[i]->type_name);
		o.Set("ops", ext);
		out.Set(uint32_t(i), o);
	}
	return out;
}

// probe() → { code, detail }
Napi::Value Probe(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	mg::availability a = mg::probe();
	Napi::Object o = Napi::Object::New(env);
	o.Set("code", a.code);
	o.Set("detail", a.detail);
	return o;
}

class GpuMapHandle : public Napi::ObjectWrap<GpuMapHandle> {
    public:
	explicit GpuMapHandle(const Napi::CallbackInfo &info)
		: Napi::ObjectWrap<GpuMapHandle>(info)
	{
	}

	std::unique_ptr<hd::registry> reg;
	std::shared_ptr<hd::map_instance> map;

	const hd::map_instance &live(Napi::Env env)
	{
		if (!map)
			bpftime::napi::throw_error(env, EBADF,
						   "GPU map handle is closed");
		return *map;
	}

	// consume(maxRecords, maxBytes) → { count, sizes, data }: the
	// committed records, copied out (their ring space given back).
	Napi::Value Consume(const Napi::CallbackInfo &info)
	{
		using namespace bpftime::napi;
		Napi::Env env = info.Env();
		const hd::map_instance &m = live(env);
		struct acc {
			uint32_t max_records;
			uint64_t max_bytes;
			std::vector<uint32_t> sizes;
			std::vector<uint8_t> data;
		} a{ u32_arg(info, 0, "maxRecords"),
		     u64_arg(info, 1, "maxBytes"),
		     {},
		     {} };
		auto cb = [](void *ctx, const void *data, uint64_t size) -> int {
			auto *a = static_cast<acc *>(ctx);
			auto *p = static_cast<const uint8_t *>(data);
			a->sizes.push_back(uint32_t(size));
			a->data.insert(a->data.end(), p, p + size);
			return a->sizes.size() >= a->max_records ||
			       a->data.size() >= a->max_bytes;
		};
		auto r = m.consume(cb, &a);
		if (!r)
			throw_error(env, r.error());
		Napi::Object o = Napi::Object::New(env);
		o.Set("count", uint32_t(a.sizes.size()));
		o.Set("sizes", Napi::Buffer<uint8_t>::Copy(
				       env,
				       reinterpret_cast<uint8_t *>(a.sizes.data()),
				       a.sizes.size() * 4));
		o.Set("data", Napi::Buffer<uint8_t>::Copy(env, a.data.data(),
							  a.data.size()));
		return o;
	}

	// dropped() → bigint: records device producers could not write.
	Napi::Value Dropped(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		const hd::map_instance &m = live(env);
		uint64_t n = 0;
		if (int r = mg::ringbuf_dropped(m, &n); r < 0)
			bpftime::napi::throw_error(env, -r,
						   m.describe() + ": dropped: " +
							   strerror(-r));
		return Napi::BigInt::New(env, n);
	}

	// deviceMap() → the struct bpftime_gpu_map of gpu_map.h, as bytes.
	Napi::Value DeviceMap(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		const hd::map_instance &m = live(env);
		bpftime_gpu_map d{};
		if (int r = mg::device_map(m, &d); r < 0)
			bpftime::napi::throw_error(env, -r,
						   m.describe() +
							   ": not a GPU map");
		return Napi::Buffer<uint8_t>::Copy(
			env, reinterpret_cast<uint8_t *>(&d), sizeof(d));
	}

	// close(): this process's instance goes (cuIpcCloseMemHandle when no
	// other holder in this process remains).
	Napi::Value Close(const Napi::CallbackInfo &info)
	{
		map.reset();
		reg.reset();
		return info.Env().Undefined();
	}
};

Napi::FunctionReference *handle_ctor;

// openMap(segmentName, mapId) → GpuMapHandle
Napi::Value OpenMap(const Napi::CallbackInfo &info)
{
	using namespace bpftime::napi;
	Napi::Env env = info.Env();
	std::string name = string_arg(info, 0, "segmentName");
	uint32_t id = u32_arg(info, 1, "mapId");
	unwrap(env, mg::register_all());
	auto seg = bpftime::shm::segment::open(name);
	if (!seg)
		throw_error(env, seg.error());
	auto reg = hd::registry::open(std::move(*seg));
	if (!reg)
		throw_error(env, reg.error());
	auto m = (*reg)->map(id);
	if (!m)
		throw_error(env, m.error());
	auto [obj, h] = new_tagged<GpuMapHandle>(handle_ctor, handle_tag);
	h->reg = std::move(*reg);
	h->map = std::move(*m);
	return obj;
}

Napi::Object Init(Napi::Env env, Napi::Object exports)
{
	bpftime::napi::export_common(env, exports);
	exports.Set("mapOps", Napi::Function::New(env, MapOps));
	exports.Set("probe", Napi::Function::New(env, Probe));
	exports.Set("openMap", Napi::Function::New(env, OpenMap));
	handle_ctor = bpftime::napi::export_class<GpuMapHandle>(
		env, exports, "GpuMapHandle",
		{ GpuMapHandle::InstanceMethod("consume", &GpuMapHandle::Consume),
		  GpuMapHandle::InstanceMethod("dropped", &GpuMapHandle::Dropped),
		  GpuMapHandle::InstanceMethod("deviceMap",
					       &GpuMapHandle::DeviceMap),
		  GpuMapHandle::InstanceMethod("close", &GpuMapHandle::Close) });
	return exports;
}

} // namespace

NODE_API_MODULE(bpftime_maps_gpu, Init)
