// maps_userspace_binding.cpp: node-addon-api glue for
// @bpftime/maps-userspace. The map types live in this addon's copy of the
// core; the registry lives in @bpftime/handlers' addon. This binding only
// hands out the addresses of the static map-ops tables, each as an External
// tagged MAP_OPS_TYPE_TAG, which the TypeScript entry passes to
// registerMapOps() of @bpftime/handlers. Runs on the JS thread.
#include <bpftime/common/napi.hpp>
#include <bpftime/maps_userspace/maps_userspace.hpp>

namespace {

using bpftime::handlers::map_ops;

constexpr napi_type_tag map_ops_tag = {
	bpftime::handlers::MAP_OPS_TYPE_TAG_LOWER,
	bpftime::handlers::MAP_OPS_TYPE_TAG_UPPER
};

// mapOps() → [{ type, typeName, ops: External }]
Napi::Value MapOps(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	auto all = bpftime::maps_userspace::all_map_ops();
	Napi::Array out = Napi::Array::New(env, all.size());
	for (size_t i = 0; i < all.size(); i++) {
		// The table is const; the External only carries its address.
		auto ext = Napi::External<map_ops>::New(env, const_cast<map_ops *>(all[i]));
		napi_status st = napi_type_tag_object(env, ext, &map_ops_tag);
		if (st != napi_ok)
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

Napi::Object Init(Napi::Env env, Napi::Object exports)
{
	bpftime::napi::export_common(env, exports);
	exports.Set("mapOps", Napi::Function::New(env, MapOps));
	return exports;
}

} // namespace

NODE_API_MODULE(bpftime_maps_userspace, Init)
