// maps_shared_binding.cpp: node-addon-api glue for @bpftime/maps-shared: the
// addresses of the static map-ops tables (Externals tagged MAP_OPS_TYPE_TAG,
// for registerMapOps() of @bpftime/handlers) and the kernel-side create and
// describe of the core. Runs on the JS thread.
#include <bpftime/common/napi.hpp>
#include <bpftime/maps_shared/maps_shared.hpp>

#include <unistd.h>

namespace {

using bpftime::handlers::map_ops;
namespace ms = bpftime::maps_shared;

constexpr napi_type_tag map_ops_tag = {
	bpftime::handlers::MAP_OPS_TYPE_TAG_LOWER,
	bpftime::handlers::MAP_OPS_TYPE_TAG_UPPER
};

// mapOps() → [{ type, typeName, ops: External }]
Napi::Value MapOps(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	auto all = ms::all_map_ops();
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

Napi::Object desc_object(Napi::Env env, const ms::kernel_map_desc &d)
{
	Napi::Object o = Napi::Object::New(env);
	o.Set("id", d.id);
	o.Set("kernelType", d.kernel_type);
	o.Set("keySize", d.key_size);
	o.Set("valueSize", d.value_size);
	o.Set("maxEntries", d.max_entries);
	o.Set("mapFlags", d.map_flags);
	o.Set("name", std::string(d.name));
	o.Set("fd", d.fd);
	return o;
}

// kernelCreate(kernelType, keySize, valueSize, maxEntries, mapFlags, name)
Napi::Value KernelCreate(const Napi::CallbackInfo &info)
{
	using namespace bpftime::napi;
	Napi::Env env = info.Env();
	uint32_t t = u32_arg(info, 0, "kernelType");
	uint32_t k = u32_arg(info, 1, "keySize");
	uint32_t v = u32_arg(info, 2, "valueSize");
	uint32_t m = u32_arg(info, 3, "maxEntries");
	uint32_t f = u32_arg(info, 4, "mapFlags");
	std::string name = string_arg(info, 5, "name");
	ms::kernel_map_desc d{};
	char err[256] = "";
	if (int r = ms::kernel_map_create(t, k, v, m, f, name.c_str(), &d, err,
					  sizeof(err));
	    r < 0)
		throw_error(env, -r, err);
	return desc_object(env, d);
}

// kernelDescribe(idOrPath): a number is a kernel map id, a string a bpffs path.
Napi::Value KernelDescribe(const Napi::CallbackInfo &info)
{
	using namespace bpftime::napi;
	Napi::Env env = info.Env();
	ms::kernel_map_desc d{};
	char err[256] = "";
	int r;
	if (arg(info, 0).IsString()) {
		std::string path = string_arg(info, 0, "path");
		r = ms::kernel_map_describe(0, path.c_str(), &d, err,
					    sizeof(err));
	} else {
		r = ms::kernel_map_describe(u32_arg(info, 0, "id"), nullptr,
					    &d, err, sizeof(err));
	}
	if (r < 0)
		throw_error(env, -r, err);
	return desc_object(env, d);
}

// kernelIdOf(segmentName, mapId) → the kernel id of a kernel-backed map.
Napi::Value KernelIdOf(const Napi::CallbackInfo &info)
{
	using namespace bpftime::napi;
	Napi::Env env = info.Env();
	std::string seg = string_arg(info, 0, "segmentName");
	uint32_t map = u32_arg(info, 1, "mapId");
	uint32_t id = 0;
	char err[256] = "";
	if (int r = ms::kernel_id_of(seg.c_str(), map, &id, err, sizeof(err));
	    r < 0)
		throw_error(env, -r, err);
	return Napi::Number::New(env, id);
}

// closeFd(fd): gives back the fd kernelCreate returned.
Napi::Value CloseFd(const Napi::CallbackInfo &info)
{
	::close(int(bpftime::napi::u32_arg(info, 0, "fd")));
	return info.Env().Undefined();
}

Napi::Object Init(Napi::Env env, Napi::Object exports)
{
	bpftime::napi::export_common(env, exports);
	exports.Set("mapOps", Napi::Function::New(env, MapOps));
	exports.Set("kernelCreate", Napi::Function::New(env, KernelCreate));
	exports.Set("kernelIdOf", Napi::Function::New(env, KernelIdOf));
	exports.Set("closeFd", Napi::Function::New(env, CloseFd));
	exports.Set("kernelDescribe", Napi::Function::New(env, KernelDescribe));
	return exports;
}

} // namespace

NODE_API_MODULE(bpftime_maps_shared, Init)
