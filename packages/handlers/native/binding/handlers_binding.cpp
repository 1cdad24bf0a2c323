// handlers_binding.cpp: node-addon-api glue for @bpftime/handlers. Converts
// arguments and results, calls the core, maps errors to BpftimeError; no
// logic of its own. Every function runs on the JS thread.
#include <bpftime/common/napi.hpp>
#include <bpftime/handlers/helpers.hpp>
#include <bpftime/handlers/json.hpp>
#include <bpftime/handlers/program.hpp>
#include <bpftime/handlers/registry.hpp>

#include <cstring>
#include <memory>
#include <optional>

namespace {

using namespace bpftime::handlers;
using bpftime::napi::throw_error;
using bpftime::napi::unwrap;

constexpr napi_type_tag registry_tag = { 0x6270667469d5e201ULL,
					 0x5245474953545259ULL };
constexpr napi_type_tag map_ops_tag = { MAP_OPS_TYPE_TAG_LOWER,
					MAP_OPS_TYPE_TAG_UPPER };

// --- argument conversion ---------------------------------------------------

Napi::Object object_arg(const Napi::CallbackInfo &info, size_t i,
			const char *what)
{
	Napi::Value v = bpftime::napi::arg(info, i);
	if (!v.IsObject())
		throw_error(info.Env(), EINVAL, std::string("Expected object for ") + what);
	return v.As<Napi::Object>();
}

uint32_t u32_field(Napi::Env env, Napi::Object o, const char *key,
		   std::optional<uint32_t> dflt = std::nullopt)
{
	Napi::Value v = o.Get(key);
	if (v.IsUndefined() || v.IsNull()) {
		if (dflt)
			return *dflt;
		throw_error(env, EINVAL, std::string("Expected u32 for ") + key);
	}
	if (v.IsNumber()) {
		double d = v.As<Napi::Number>().DoubleValue();
		if (d >= 0 && d <= 4294967295.0 && d == double(uint32_t(d)))
			return uint32_t(d);
	}
	throw_error(env, EINVAL, std::string("Expected u32 for ") + key);
}

int32_t i32_field(Napi::Env env, Napi::Object o, const char *key, int32_t dflt)
{
	Napi::Value v = o.Get(key);
	if (v.IsUndefined() || v.IsNull())
		return dflt;
	if (v.IsNumber()) {
		double d = v.As<Napi::Number>().DoubleValue();
		if (d >= -2147483648.0 && d <= 2147483647.0 && d == double(int32_t(d)))
			return int32_t(d);
	}
	throw_error(env, EINVAL, std::string("Expected i32 for ") + key);
}

uint64_t u64_value(Napi::Env env, Napi::Value v, const char *key)
{
	if (v.IsBigInt()) {
		bool lossless = false;
		uint64_t x = v.As<Napi::BigInt>().Uint64Value(&lossless);
		if (lossless)
			return x;
	} else if (v.IsNumber()) {
		double d = v.As<Napi::Number>().DoubleValue();
		if (d >= 0 && d <= 9007199254740991.0 && d == double(uint64_t(d)))
			return uint64_t(d);
	}
	throw_error(env, EINVAL, std::string("Expected u64 for ") + key);
}

uint64_t u64_field(Napi::Env env, Napi::Object o, const char *key)
{
	Napi::Value v = o.Get(key);
	if (v.IsUndefined() || v.IsNull())
		return 0;
	return u64_value(env, v, key);
}

std::string string_field(Napi::Env env, Napi::Object o, const char *key)
{
	Napi::Value v = o.Get(key);
	if (v.IsUndefined() || v.IsNull())
		return {};
	if (!v.IsString())
		throw_error(env, EINVAL, std::string("Expected string for ") + key);
	return v.As<Napi::String>().Utf8Value();
}

std::span<const uint8_t> bytes_value(Napi::Env env, Napi::Value v,
				     const char *what)
{
	if (!v.IsTypedArray() ||
	    v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
		throw_error(env, EINVAL, std::string("Expected Buffer for ") + what);
	auto a = v.As<Napi::Uint8Array>();
	return { a.Data(), a.ByteLength() };
}

std::vector<uint32_t> u32_array_field(Napi::Env env, Napi::Object o,
				      const char *key)
{
	std::vector<uint32_t> out;
	Napi::Value v = o.Get(key);
	if (v.IsUndefined() || v.IsNull())
		return out;
	if (!v.IsArray())
		throw_error(env, EINVAL, std::string("Expected array for ") + key);
	auto a = v.As<Napi::Array>();
	for (uint32_t i = 0; i < a.Length(); i++) {
		Napi::Object wrap = Napi::Object::New(env);
		wrap.Set("x", a.Get(i));
		out.push_back(u32_field(env, wrap, "x"));
	}
	return out;
}

uint32_t id_arg(const Napi::CallbackInfo &info, size_t i)
{
	Napi::Value v = bpftime::napi::arg(info, i);
	if (v.IsUndefined() || v.IsNull())
		return NO_ID;
	return bpftime::napi::u32_arg(info, i, "id");
}

handle handle_arg(const Napi::CallbackInfo &info, size_t i)
{
	handle h;
	h.id = bpftime::napi::u32_arg(info, i, "id");
	h.generation = bpftime::napi::u64_arg(info, i + 1, "generation");
	return h;
}

Napi::Value handle_value(Napi::Env env, handle h)
{
	Napi::Object o = Napi::Object::New(env);
	o.Set("id", h.id);
	o.Set("generation", Napi::BigInt::New(env, h.generation));
	return o;
}

Napi::Value id_or_undefined(Napi::Env env, uint32_t id)
{
	return id == NO_ID ? env.Undefined() : Napi::Number::New(env, id);
}

Napi::Buffer<uint8_t> copy_buffer(Napi::Env env, const void *p, size_t n)
{
	return Napi::Buffer<uint8_t>::Copy(env, static_cast<const uint8_t *>(p), n);
}

Napi::Value describe(Napi::Env env, const handler_info &info)
{
	Napi::Object o = Napi::Object::New(env);
	o.Set("id", info.h.id);
	o.Set("generation", Napi::BigInt::New(env, info.h.generation));
	o.Set("kind", std::string(kind_name(info.kind)));
	if (auto *s = std::get_if<map_spec>(&info.spec)) {
		o.Set("type", s->type);
		o.Set("name", s->name);
		o.Set("keySize", s->key_size);
		o.Set("valueSize", s->value_size);
		o.Set("maxEntries", s->max_entries);
		o.Set("flags", s->flags);
		o.Set("innerMapId", id_or_undefined(env, s->inner_map_id));
		o.Set("btfId", id_or_undefined(env, s->btf_id));
		o.Set("btfKeyTypeId", s->btf_key_type_id);
		o.Set("btfValueTypeId", s->btf_value_type_id);
		o.Set("btfVmlinuxValueTypeId", s->btf_vmlinux_value_type_id);
		o.Set("numaNode", s->numa_node);
		o.Set("ifindex", s->ifindex);
		o.Set("mapExtra", Napi::BigInt::New(env, s->map_extra));
		o.Set("frozen", s->frozen);
	} else if (auto *s = std::get_if<prog_spec>(&info.spec)) {
		o.Set("type", s->type);
		o.Set("name", s->name);
		o.Set("license", s->license);
		o.Set("insns", copy_buffer(env, s->insns.data(),
					   s->insns.size() * sizeof(bpftime::vm::insn)));
		o.Set("expectedAttachType", s->expected_attach_type);
		o.Set("attachBtfId", s->attach_btf_id);
		o.Set("progFlags", s->prog_flags);
		o.Set("kernVersion", s->kern_version);
		Napi::Array fa = Napi::Array::New(env, s->fd_array.size());
		for (size_t i = 0; i < s->fd_array.size(); i++)
			fa.Set(uint32_t(i), s->fd_array[i]);
		o.Set("fdArray", fa);
		Napi::Array ids = Napi::Array::New(env, s->map_ids.size());
		for (size_t i = 0; i < s->map_ids.size(); i++)
			ids.Set(uint32_t(i), s->map_ids[i]);
		o.Set("mapIds", ids);
	} else if (auto *s = std::get_if<link_spec>(&info.spec)) {
		o.Set("progId", s->prog_id);
		o.Set("targetId", id_or_undefined(env, s->target_id));
		o.Set("attachType", s->attach_type);
		o.Set("flags", s->flags);
		o.Set("cookie", Napi::BigInt::New(env, s->cookie));
	} else if (auto *s = std::get_if<perf_event_spec>(&info.spec)) {
		o.Set("type", perf_event_type_name(s->type));
		o.Set("path", s->path);
		o.Set("offset", Napi::BigInt::New(env, s->offset));
		o.Set("symbol", s->symbol);
		o.Set("pid", s->pid);
		o.Set("refCtrOffset", Napi::BigInt::New(env, s->ref_ctr_offset));
		o.Set("syscallId", s->syscall_id);
		o.Set("syscallExit", s->syscall_exit);
		o.Set("customName", s->custom_name);
		o.Set("customConfig", Napi::BigInt::New(env, s->custom_config));
	} else if (auto *s = std::get_if<btf_spec>(&info.spec)) {
		o.Set("data", copy_buffer(env, s->data.data(), s->data.size()));
	}
	return o;
}

// --- the registry handle ----------------------------------------------------

class RegistryHandle : public Napi::ObjectWrap<RegistryHandle> {
    public:
	static Napi::FunctionReference *ctor;

	static void Init(Napi::Env env, Napi::Object exports)
	{
		Napi::Function f = DefineClass(
			env, "RegistryHandle",
			{
				InstanceMethod("capacity", &RegistryHandle::Capacity),
				InstanceMethod("changeCounter",
					       &RegistryHandle::ChangeCounter),
				InstanceMethod("size", &RegistryHandle::Size),
				InstanceMethod("createMap", &RegistryHandle::CreateMap),
				InstanceMethod("createProg", &RegistryHandle::CreateProg),
				InstanceMethod("createLink", &RegistryHandle::CreateLink),
				InstanceMethod("createPerfEvent",
					       &RegistryHandle::CreatePerfEvent),
				InstanceMethod("createBtf", &RegistryHandle::CreateBtf),
				InstanceMethod("release", &RegistryHandle::Release),
				InstanceMethod("get", &RegistryHandle::Get),
				InstanceMethod("list", &RegistryHandle::List),
				InstanceMethod("mapLookup", &RegistryHandle::MapLookup),
				InstanceMethod("mapUpdate", &RegistryHandle::MapUpdate),
				InstanceMethod("mapDelete", &RegistryHandle::MapDelete),
				InstanceMethod("mapNextKey", &RegistryHandle::MapNextKey),
				InstanceMethod("mapLookupBatch",
					       &RegistryHandle::MapLookupBatch),
				InstanceMethod("mapUpdateBatch",
					       &RegistryHandle::MapUpdateBatch),
				InstanceMethod("mapDeleteBatch",
					       &RegistryHandle::MapDeleteBatch),
				InstanceMethod("mapMmap", &RegistryHandle::MapMmap),
				InstanceMethod("mapFreeze", &RegistryHandle::MapFreeze),
				InstanceMethod("mapFrozen", &RegistryHandle::MapFrozen),
				InstanceMethod("progInstantiate",
					       &RegistryHandle::ProgInstantiate),
				InstanceMethod("progRun", &RegistryHandle::ProgRun),
				InstanceMethod("exportJson", &RegistryHandle::ExportJson),
				InstanceMethod("importJson", &RegistryHandle::ImportJson),
				InstanceMethod("close", &RegistryHandle::Close),
			});
		ctor = new Napi::FunctionReference(Napi::Persistent(f));
		exports.Set("RegistryHandle", f);
	}

	static Napi::Object Wrap(Napi::Env env, std::unique_ptr<registry> r)
	{
		Napi::Object obj = ctor->New({});
		bpftime::napi::tag(obj, registry_tag);
		Unwrap(obj)->reg_ = std::shared_ptr<registry>(std::move(r));
		return obj;
	}

	RegistryHandle(const Napi::CallbackInfo &info)
		: Napi::ObjectWrap<RegistryHandle>(info)
	{
	}

    private:
	// Shared with Buffers that view map memory, so the mapping outlives
	// close() until they are collected.
	std::shared_ptr<registry> reg_;

	registry &get(Napi::Env env)
	{
		if (!reg_)
			throw_error(env, EBADF, "registry is closed");
		return *reg_;
	}

	std::shared_ptr<map_instance> map_at(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		return unwrap(env, get(env).map(handle_arg(info, 0)));
	}

	std::span<const uint8_t> sized(const Napi::CallbackInfo &info, size_t i,
				       const map_instance &m, uint32_t size,
				       const char *what)
	{
		auto b = bytes_value(info.Env(), bpftime::napi::arg(info, i), what);
		if (b.size() != size)
			throw_error(info.Env(), EINVAL,
				    m.describe() + ": " + what + " is " +
					    std::to_string(b.size()) +
					    " bytes, the map's are " +
					    std::to_string(size));
		return b;
	}

	Napi::Value Capacity(const Napi::CallbackInfo &info)
	{
		return Napi::Number::New(info.Env(), get(info.Env()).capacity());
	}

	Napi::Value ChangeCounter(const Napi::CallbackInfo &info)
	{
		return Napi::BigInt::New(info.Env(), get(info.Env()).change_counter());
	}

	Napi::Value Size(const Napi::CallbackInfo &info)
	{
		return Napi::Number::New(info.Env(), get(info.Env()).size());
	}

	Napi::Value CreateMap(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		Napi::Object o = object_arg(info, 0, "spec");
		map_spec s;
		s.type = u32_field(env, o, "type");
		s.key_size = u32_field(env, o, "keySize");
		s.value_size = u32_field(env, o, "valueSize");
		s.max_entries = u32_field(env, o, "maxEntries");
		s.flags = u32_field(env, o, "flags", 0);
		s.name = string_field(env, o, "name");
		s.inner_map_id = u32_field(env, o, "innerMapId", NO_ID);
		s.btf_id = u32_field(env, o, "btfId", NO_ID);
		s.btf_key_type_id = u32_field(env, o, "btfKeyTypeId", 0);
		s.btf_value_type_id = u32_field(env, o, "btfValueTypeId", 0);
		s.btf_vmlinux_value_type_id =
			u32_field(env, o, "btfVmlinuxValueTypeId", 0);
		s.numa_node = u32_field(env, o, "numaNode", 0);
		s.ifindex = u32_field(env, o, "ifindex", 0);
		s.map_extra = u64_field(env, o, "mapExtra");
		return handle_value(env, unwrap(env, get(env).create_map(s, id_arg(info, 1))));
	}

	Napi::Value CreateProg(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		Napi::Object o = object_arg(info, 0, "spec");
		prog_spec s;
		s.type = u32_field(env, o, "type");
		s.name = string_field(env, o, "name");
		s.license = string_field(env, o, "license");
		auto code = bytes_value(env, o.Get("insns"), "insns");
		if (code.size() % sizeof(bpftime::vm::insn))
			throw_error(env, EINVAL,
				    "prog '" + s.name + "': load: " +
					    std::to_string(code.size()) +
					    " bytes of instructions, not a "
					    "multiple of 8");
		s.insns.resize(code.size() / sizeof(bpftime::vm::insn));
		memcpy(s.insns.data(), code.data(), code.size());
		s.expected_attach_type = u32_field(env, o, "expectedAttachType", 0);
		s.attach_btf_id = u32_field(env, o, "attachBtfId", 0);
		s.prog_flags = u32_field(env, o, "progFlags", 0);
		s.kern_version = u32_field(env, o, "kernVersion", 0);
		s.fd_array = u32_array_field(env, o, "fdArray");
		return handle_value(env, unwrap(env, get(env).create_prog(s, id_arg(info, 1))));
	}

	Napi::Value CreateLink(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		Napi::Object o = object_arg(info, 0, "spec");
		link_spec s;
		s.prog_id = u32_field(env, o, "progId");
		s.target_id = u32_field(env, o, "targetId", NO_ID);
		s.attach_type = u32_field(env, o, "attachType", 0);
		s.flags = u32_field(env, o, "flags", 0);
		s.cookie = u64_field(env, o, "cookie");
		return handle_value(env, unwrap(env, get(env).create_link(s, id_arg(info, 1))));
	}

	Napi::Value CreatePerfEvent(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		Napi::Object o = object_arg(info, 0, "spec");
		perf_event_spec s;
		std::string type = string_field(env, o, "type");
		auto t = parse_perf_event_type(type);
		if (!t)
			throw_error(env, EINVAL,
				    "perf_event: create: unknown event type '" +
					    type + "'");
		s.type = *t;
		s.path = string_field(env, o, "path");
		s.offset = u64_field(env, o, "offset");
		s.symbol = string_field(env, o, "symbol");
		s.pid = i32_field(env, o, "pid", -1);
		s.ref_ctr_offset = u64_field(env, o, "refCtrOffset");
		s.syscall_id = i32_field(env, o, "syscallId", -1);
		Napi::Value exit = o.Get("syscallExit");
		s.syscall_exit = exit.IsBoolean() && exit.As<Napi::Boolean>().Value();
		s.custom_name = string_field(env, o, "customName");
		s.custom_config = u64_field(env, o, "customConfig");
		return handle_value(env,
				    unwrap(env, get(env).create_perf_event(s, id_arg(info, 1))));
	}

	Napi::Value CreateBtf(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		auto data = bytes_value(env, bpftime::napi::arg(info, 0), "data");
		return handle_value(env, unwrap(env, get(env).create_btf(data, id_arg(info, 1))));
	}

	Napi::Value Release(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		if (bpftime::napi::arg(info, 1).IsUndefined())
			unwrap(env, get(env).release(bpftime::napi::u32_arg(info, 0, "id")));
		else
			unwrap(env, get(env).release(handle_arg(info, 0)));
		return env.Undefined();
	}

	Napi::Value Get(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		auto r = get(env).get(bpftime::napi::u32_arg(info, 0, "id"));
		if (!r) {
			if (r.error().code == EBADF)
				return env.Undefined();
			throw_error(env, r.error());
		}
		return describe(env, *r);
	}

	Napi::Value List(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		auto all = get(env).list();
		Napi::Array out = Napi::Array::New(env, all.size());
		for (size_t i = 0; i < all.size(); i++)
			out.Set(uint32_t(i), describe(env, all[i]));
		return out;
	}

	// mapLookup(id, generation, key) → Buffer, or undefined when absent.
	Napi::Value MapLookup(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		auto m = map_at(info);
		auto key = sized(info, 2, *m, m->key_size, "key");
		Napi::Buffer<uint8_t> out = Napi::Buffer<uint8_t>::New(env, m->value_size);
		auto st = m->lookup(key.data(), out.Data());
		if (!st) {
			if (st.error().code == ENOENT)
				return env.Undefined();
			throw_error(env, st.error());
		}
		return out;
	}

	Napi::Value MapUpdate(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		auto m = map_at(info);
		auto key = sized(info, 2, *m, m->key_size, "key");
		auto value = sized(info, 3, *m, m->value_size, "value");
		uint64_t flags = bpftime::napi::u64_arg(info, 4, "flags");
		unwrap(env, m->update(key.data(), value.data(), flags));
		return env.Undefined();
	}

	// mapDelete(id, generation, key) → whether there was an entry.
	Napi::Value MapDelete(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		auto m = map_at(info);
		auto key = sized(info, 2, *m, m->key_size, "key");
		auto st = m->remove(key.data());
		if (!st) {
			if (st.error().code == ENOENT)
				return Napi::Boolean::New(env, false);
			throw_error(env, st.error());
		}
		return Napi::Boolean::New(env, true);
	}

	// mapNextKey(id, generation, key | null) → Buffer, or undefined after
	// the last key.
	Napi::Value MapNextKey(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		auto m = map_at(info);
		const void *key = nullptr;
		Napi::Value k = bpftime::napi::arg(info, 2);
		if (!k.IsNull() && !k.IsUndefined())
			key = sized(info, 2, *m, m->key_size, "key").data();
		Napi::Buffer<uint8_t> out = Napi::Buffer<uint8_t>::New(env, m->key_size);
		auto st = m->next_key(key, out.Data());
		if (!st) {
			if (st.error().code == ENOENT)
				return env.Undefined();
			throw_error(env, st.error());
		}
		return out;
	}

	// mapLookupBatch(id, generation, after | null, maxCount) →
	// { count, keys, values }: up to maxCount entries after `after`.
	Napi::Value MapLookupBatch(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		auto m = map_at(info);
		const void *after = nullptr;
		Napi::Value k = bpftime::napi::arg(info, 2);
		if (!k.IsNull() && !k.IsUndefined())
			after = sized(info, 2, *m, m->key_size, "key").data();
		uint32_t max = bpftime::napi::u32_arg(info, 3, "maxCount");
		if (max == 0)
			throw_error(env, EINVAL, m->describe() + ": lookup batch: count is 0");
		// Bounded so that one call cannot ask for more than 1 GiB.
		uint64_t per = uint64_t(m->key_size) + m->value_size;
		if (per * max > (1ULL << 30))
			max = uint32_t((1ULL << 30) / per);
		Napi::Buffer<uint8_t> keys =
			Napi::Buffer<uint8_t>::New(env, size_t(max) * m->key_size);
		Napi::Buffer<uint8_t> values =
			Napi::Buffer<uint8_t>::New(env, size_t(max) * m->value_size);
		uint32_t n = unwrap(env, m->lookup_batch(after, max, keys.Data(),
							  values.Data()));
		Napi::Object out = Napi::Object::New(env);
		out.Set("count", n);
		out.Set("keys", keys);
		out.Set("values", values);
		return out;
	}

	Napi::Value MapUpdateBatch(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		auto m = map_at(info);
		auto keys = bytes_value(env, bpftime::napi::arg(info, 2), "keys");
		auto values = bytes_value(env, bpftime::napi::arg(info, 3), "values");
		uint64_t flags = bpftime::napi::u64_arg(info, 4, "flags");
		if (keys.size() % m->key_size || values.size() % m->value_size ||
		    keys.size() / m->key_size != values.size() / m->value_size)
			throw_error(env, EINVAL,
				    m->describe() + ": update batch: " +
					    std::to_string(keys.size()) +
					    " bytes of keys and " +
					    std::to_string(values.size()) +
					    " bytes of values do not make whole "
					    "entries of " +
					    std::to_string(m->key_size) + "+" +
					    std::to_string(m->value_size) + " bytes");
		uint32_t n = uint32_t(keys.size() / m->key_size);
		return Napi::Number::New(
			env, unwrap(env, m->update_batch(keys.data(), values.data(), n,
							 flags)));
	}

	Napi::Value MapDeleteBatch(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		auto m = map_at(info);
		auto keys = bytes_value(env, bpftime::napi::arg(info, 2), "keys");
		if (keys.size() % m->key_size)
			throw_error(env, EINVAL,
				    m->describe() + ": delete batch: " +
					    std::to_string(keys.size()) +
					    " bytes are not whole keys of " +
					    std::to_string(m->key_size));
		uint32_t n = uint32_t(keys.size() / m->key_size);
		return Napi::Number::New(env,
					 unwrap(env, m->delete_batch(keys.data(), n)));
	}

	// A Buffer over the value area of a BPF_F_MMAPABLE map; it keeps the
	// registry (and the mapping) alive until collected.
	Napi::Value MapMmap(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		auto m = map_at(info);
		auto region = unwrap(env, m->mmap_region());
		auto *keep = new std::shared_ptr<registry>(reg_);
		return Napi::Buffer<uint8_t>::New(
			env, region.data(), region.size(),
			[](Napi::Env, uint8_t *, std::shared_ptr<registry> *k) {
				delete k;
			},
			keep);
	}

	Napi::Value MapFreeze(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		unwrap(env, map_at(info)->freeze());
		return env.Undefined();
	}

	Napi::Value MapFrozen(const Napi::CallbackInfo &info)
	{
		return Napi::Boolean::New(info.Env(), map_at(info)->frozen());
	}

	instance_options options_arg(const Napi::CallbackInfo &info, size_t i)
	{
		Napi::Env env = info.Env();
		instance_options o;
		Napi::Value b = bpftime::napi::arg(info, i);
		if (b.IsString())
			o.backend = unwrap(env, bpftime::vm::parse_backend(
							b.As<Napi::String>().Utf8Value()));
		Napi::Value bc = bpftime::napi::arg(info, i + 1);
		o.bounds_check = bc.IsBoolean() && bc.As<Napi::Boolean>().Value();
		return o;
	}

	std::shared_ptr<program_instance> instance_at(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		handle h = handle_arg(info, 0);
		registry &r = get(env);
		auto cur = unwrap(env, r.handle_of(h.id));
		if (cur.generation != h.generation)
			throw_error(env, EBADF,
				    "prog (id " + std::to_string(h.id) +
					    "): stale handle: the program was "
					    "released");
		return unwrap(env, r.instantiate(h.id, options_arg(info, 2)));
	}

	// progInstantiate(id, generation, backend?, boundsCheck?) →
	// { backend, compileTimeNs }
	Napi::Value ProgInstantiate(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		auto inst = instance_at(info);
		Napi::Object o = Napi::Object::New(env);
		o.Set("backend", std::string(bpftime::vm::backend_name(inst->backend())));
		o.Set("compileTimeNs", Napi::BigInt::New(env, inst->compile_time_ns()));
		return o;
	}

	// progRun(id, generation, backend?, boundsCheck?, ctx?, cookie?,
	// funcIp?) → r0 as a bigint. The program may write into ctx.
	Napi::Value ProgRun(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		auto inst = instance_at(info);
		void *ctx = nullptr;
		uint64_t len = 0;
		Napi::Value c = bpftime::napi::arg(info, 4);
		if (!c.IsUndefined() && !c.IsNull()) {
			auto b = bytes_value(env, c, "ctx");
			ctx = const_cast<uint8_t *>(b.data());
			len = b.size();
		}
		run_context rc;
		Napi::Value cookie = bpftime::napi::arg(info, 5);
		if (!cookie.IsUndefined())
			rc.cookie = u64_value(env, cookie, "cookie");
		Napi::Value ip = bpftime::napi::arg(info, 6);
		if (!ip.IsUndefined())
			rc.func_ip = u64_value(env, ip, "funcIp");
		auto r = inst->run(ctx, len, rc);
		if (!r)
			throw_error(env, r.error().code,
				    "prog '" + inst->name() + "': run: " +
					    r.error().message);
		return Napi::BigInt::New(env, *r);
	}

	Napi::Value ExportJson(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		return Napi::String::New(env, unwrap(env, get(env).export_json()));
	}

	Napi::Value ImportJson(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		std::string text = bpftime::napi::string_arg(info, 0, "json");
		unwrap(env, get(env).import_json(text));
		return env.Undefined();
	}

	Napi::Value Close(const Napi::CallbackInfo &info)
	{
		reg_.reset();
		return info.Env().Undefined();
	}
};

Napi::FunctionReference *RegistryHandle::ctor = nullptr;

// openRegistry(mode, segmentName, capacity?) with mode 'create', 'open' or
// 'openOrCreate'. The addon maps the segment itself: a Segment of
// @bpftime/shm belongs to another addon and cannot be shared.
Napi::Value OpenRegistry(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	std::string mode = bpftime::napi::string_arg(info, 0, "mode");
	std::string name = bpftime::napi::string_arg(info, 1, "segment name");
	registry_options o;
	if (!bpftime::napi::arg(info, 2).IsUndefined())
		o.capacity = bpftime::napi::u32_arg(info, 2, "capacity");
	auto seg = unwrap(env, bpftime::shm::segment::open(name));
	if (mode == "create")
		return RegistryHandle::Wrap(env, unwrap(env, registry::create(std::move(seg), o)));
	if (mode == "open")
		return RegistryHandle::Wrap(env, unwrap(env, registry::open(std::move(seg))));
	if (mode == "openOrCreate")
		return RegistryHandle::Wrap(
			env, unwrap(env, registry::open_or_create(std::move(seg), o)));
	throw_error(env, EINVAL, "unknown registry open mode '" + mode + "'");
}

// registerMapOps(external): an External tagged MAP_OPS_TYPE_TAG whose data
// is a `const map_ops *` from a map package's addon.
Napi::Value RegisterMapOps(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	Napi::Value v = bpftime::napi::arg(info, 0);
	bool tagged = false;
	if (v.IsExternal())
		napi_check_object_type_tag(env, v, &map_ops_tag, &tagged);
	if (!tagged)
		throw_error(env, EINVAL,
			    "registerMapOps expects a map-ops table exported by a "
			    "bpftime map package");
	const map_ops *ops = v.As<Napi::External<map_ops>>().Data();
	unwrap(env, register_map_ops(ops));
	return env.Undefined();
}

Napi::Value RegisteredMapTypes(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	auto all = registered_map_ops();
	Napi::Array out = Napi::Array::New(env, all.size());
	for (size_t i = 0; i < all.size(); i++) {
		Napi::Object o = Napi::Object::New(env);
		o.Set("type", all[i]->map_type);
		o.Set("typeName", all[i]->type_name ? all[i]->type_name : "");
		o.Set("provider", all[i]->provider ? all[i]->provider : "");
		out.Set(uint32_t(i), o);
	}
	return out;
}

Napi::Value Helpers(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	auto all = available_helpers();
	Napi::Array out = Napi::Array::New(env, all.size());
	for (size_t i = 0; i < all.size(); i++) {
		Napi::Object o = Napi::Object::New(env);
		o.Set("id", all[i].id);
		o.Set("name", std::string(all[i].name));
		out.Set(uint32_t(i), o);
	}
	return out;
}

Napi::Value OptionsFromEnv(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	auto o = unwrap(env, registry::options_from_env());
	Napi::Object out = Napi::Object::New(env);
	out.Set("capacity", o.capacity);
	return out;
}

Napi::Value BackendFromEnv(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	auto b = unwrap(env, backend_from_env());
	return Napi::String::New(env, std::string(bpftime::vm::backend_name(b)));
}

// Kernel name tables, index = number.
template <class F> Napi::Value name_table(Napi::Env env, F name, uint32_t n)
{
	Napi::Array out = Napi::Array::New(env);
	for (uint32_t i = 0; i < n; i++)
		out.Set(i, std::string(name(i)));
	return out;
}

Napi::Object Init(Napi::Env env, Napi::Object exports)
{
	bpftime::napi::export_common(env, exports);
	RegistryHandle::Init(env, exports);
	exports.Set("openRegistry", Napi::Function::New(env, OpenRegistry));
	exports.Set("registerMapOps", Napi::Function::New(env, RegisterMapOps));
	exports.Set("registeredMapTypes", Napi::Function::New(env, RegisteredMapTypes));
	exports.Set("helpers", Napi::Function::New(env, Helpers));
	exports.Set("optionsFromEnv", Napi::Function::New(env, OptionsFromEnv));
	exports.Set("backendFromEnv", Napi::Function::New(env, BackendFromEnv));
	exports.Set("defaultCapacity", Napi::Number::New(env, DEFAULT_MAX_FD_COUNT));
	exports.Set("jsonVersion", Napi::Number::New(env, JSON_FORMAT_VERSION));
	exports.Set("mapTypeNames", name_table(env, map_type_name, 64));
	exports.Set("progTypeNames", name_table(env, prog_type_name, 64));
	exports.Set("attachTypeNames", name_table(env, attach_type_name, 64));
	exports.Set("helperNames", name_table(env, helper_name, 256));
	return exports;
}

} // namespace

NODE_API_MODULE(bpftime_handlers, Init)
