// handlers_binding.cpp: node-addon-api glue for @bpftime/handlers. Converts
// arguments and results, calls the core, maps errors to BpftimeError; no
// logic of its own. Every function runs on the JS thread.
#include <bpftime/common/napi.hpp>
#include <bpftime/handlers/fields.hpp>
#include <bpftime/handlers/attach_kinds.hpp>
#include <bpftime/handlers/helpers.hpp>
#include <bpftime/handlers/json.hpp>
#include <bpftime/handlers/program.hpp>
#include <bpftime/handlers/registry.hpp>
#include <bpftime/handlers/syscalls_x86_64.hpp>

#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <type_traits>

namespace {

using namespace bpftime::handlers;
using bpftime::napi::string_value;
using bpftime::napi::throw_error;
using bpftime::napi::u32_value;
using bpftime::napi::u64_value;
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

std::span<const uint8_t> bytes_value(Napi::Env env, Napi::Value v,
				     const char *what)
{
	if (!v.IsTypedArray() ||
	    v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
		throw_error(env, EINVAL, std::string("Expected Buffer for ") + what);
	auto a = v.As<Napi::Uint8Array>();
	return { a.Data(), a.ByteLength() };
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

// A JS array of value(env, e) for each element e of `all`, in order.
template <class List, class ToValue>
Napi::Array array_of(Napi::Env env, const List &all, ToValue value)
{
	Napi::Array out = Napi::Array::New(env, all.size());
	for (size_t i = 0; i < all.size(); i++)
		out.Set(uint32_t(i), value(env, all[i]));
	return out;
}

Napi::Buffer<uint8_t> copy_buffer(Napi::Env env, const void *p, size_t n)
{
	return Napi::Buffer<uint8_t>::Copy(env, static_cast<const uint8_t *>(p), n);
}

// --- handler fields (fields.hpp) ------------------------------------------
//
// Each kind's spec is read from a JS object and its descriptor written from
// the kind's field list; `js` below holds one conversion per field_codec.

namespace js {

// How a missing required field is named: "Expected u32 for keySize".
constexpr const char *type_name(field_codec::u32) { return "u32"; }
constexpr const char *type_name(field_codec::id) { return "u32"; }
constexpr const char *type_name(field_codec::u64) { return "u64"; }
constexpr const char *type_name(field_codec::i32) { return "i32"; }
constexpr const char *type_name(field_codec::flag) { return "boolean"; }
constexpr const char *type_name(field_codec::atomic_flag) { return "boolean"; }
constexpr const char *type_name(field_codec::string) { return "string"; }
constexpr const char *type_name(field_codec::obj_name) { return "string"; }
constexpr const char *type_name(field_codec::map_type) { return "u32"; }
constexpr const char *type_name(field_codec::prog_type) { return "u32"; }
constexpr const char *type_name(field_codec::attach_type) { return "u32"; }
constexpr const char *type_name(field_codec::perf_type) { return "string"; }
constexpr const char *type_name(field_codec::bytes) { return "Buffer"; }
constexpr const char *type_name(field_codec::insns) { return "Buffer"; }
constexpr const char *type_name(field_codec::id_list) { return "array"; }

// Codecs that share a JS form: the kernel enums are plain numbers in JS,
// an id is one too (but NO_ID is written as undefined), an object name is a
// string.
template <class C, class... Of>
concept codec_in = (std::is_same_v<C, Of> || ...);
template <class C>
concept js_u32 = codec_in<C, field_codec::u32, field_codec::map_type,
			  field_codec::prog_type, field_codec::attach_type>;
template <class C>
concept js_string = codec_in<C, field_codec::string, field_codec::obj_name>;
template <class C>
concept js_boolean = codec_in<C, field_codec::flag, field_codec::atomic_flag>;

// --- JS value -> spec member (the value is neither undefined nor null) ---

template <class Codec, class Spec>
	requires js_u32<Codec> || std::is_same_v<Codec, field_codec::id>
void read(Napi::Env env, Codec, Napi::Value v, const char *key, uint32_t &out,
	  const Spec &)
{
	out = u32_value(env, v, key);
}
template <class Spec>
void read(Napi::Env env, field_codec::u64, Napi::Value v, const char *key,
	  uint64_t &out, const Spec &)
{
	out = u64_value(env, v, key);
}
template <class Spec>
void read(Napi::Env env, field_codec::i32, Napi::Value v, const char *key,
	  int32_t &out, const Spec &)
{
	if (v.IsNumber()) {
		double d = v.As<Napi::Number>().DoubleValue();
		if (d >= -2147483648.0 && d <= 2147483647.0 &&
		    d == double(int32_t(d))) {
			out = int32_t(d);
			return;
		}
	}
	throw_error(env, EINVAL, std::string("Expected i32 for ") + key);
}
// Anything but true is false, as the TypeScript API passes it.
template <class Spec>
void read(Napi::Env, field_codec::flag, Napi::Value v, const char *,
	  bool &out, const Spec &)
{
	out = v.IsBoolean() && v.As<Napi::Boolean>().Value();
}
template <js_string Codec, class Spec>
void read(Napi::Env env, Codec, Napi::Value v, const char *key,
	  std::string &out, const Spec &)
{
	out = string_value(env, v, key);
}
template <class Spec>
void read(Napi::Env env, field_codec::perf_type, Napi::Value v, const char *key,
	  perf_event_type &out, const Spec &)
{
	std::string type = string_value(env, v, key);
	auto t = parse_perf_event_type(type);
	if (!t)
		throw_error(env, EINVAL,
			    "perf_event: create: unknown event type '" + type +
				    "'");
	out = *t;
}
template <class Spec>
void read(Napi::Env env, field_codec::bytes, Napi::Value v, const char *key,
	  std::vector<uint8_t> &out, const Spec &)
{
	auto b = bytes_value(env, v, key);
	out.assign(b.begin(), b.end());
}
// The prog's name is read before (it comes first in the field list).
template <class Spec>
void read(Napi::Env env, field_codec::insns, Napi::Value v, const char *key,
	  std::vector<bpftime::vm::insn> &out, const Spec &s)
{
	auto code = bytes_value(env, v, key);
	if (code.size() % sizeof(bpftime::vm::insn))
		throw_error(env, EINVAL,
			    "prog '" + s.name + "': load: " +
				    std::to_string(code.size()) +
				    " bytes of instructions, not a multiple of 8");
	out.resize(code.size() / sizeof(bpftime::vm::insn));
	memcpy(out.data(), code.data(), code.size());
}
template <class Spec>
void read(Napi::Env env, field_codec::id_list, Napi::Value v, const char *key,
	  std::vector<uint32_t> &out, const Spec &)
{
	if (!v.IsArray())
		throw_error(env, EINVAL, std::string("Expected array for ") + key);
	auto a = v.As<Napi::Array>();
	for (uint32_t i = 0; i < a.Length(); i++) {
		std::string at = std::string(key) + "[" + std::to_string(i) + "]";
		out.push_back(u32_value(env, a.Get(i), at.c_str()));
	}
}

// Fields given on create; absent: an error when required, else the spec's
// default (NO_ID for ids, -1 for pids, 0 ...). State and derived fields are
// the registry's, never read.
template <class Codec, class Spec, class T>
void field(Napi::Env env, field_role::required, Codec c, Napi::Object o,
	   const char *key, T &out, const Spec &s)
{
	Napi::Value v = o.Get(key);
	if (v.IsUndefined() || v.IsNull())
		throw_error(env, EINVAL,
			    std::string("Expected ") + type_name(c) + " for " + key);
	read(env, c, v, key, out, s);
}
template <class Codec, class Spec, class T>
void field(Napi::Env env, field_role::optional, Codec c, Napi::Object o,
	   const char *key, T &out, const Spec &s)
{
	Napi::Value v = o.Get(key);
	if (!v.IsUndefined() && !v.IsNull())
		read(env, c, v, key, out, s);
}
template <class Codec, class Spec, class T>
void field(Napi::Env, field_role::state, Codec, Napi::Object, const char *,
	   T &, const Spec &)
{
}
template <class Codec, class Spec, class T>
void field(Napi::Env, field_role::derived, Codec, Napi::Object, const char *,
	   T &, const Spec &)
{
}

// --- spec member -> JS value ---------------------------------------------

template <js_u32 Codec> Napi::Value value(Napi::Env env, Codec, uint32_t v)
{
	return Napi::Number::New(env, v);
}
Napi::Value value(Napi::Env env, field_codec::id, uint32_t v)
{
	return id_or_undefined(env, v);
}
Napi::Value value(Napi::Env env, field_codec::u64, uint64_t v)
{
	return Napi::BigInt::New(env, v);
}
Napi::Value value(Napi::Env env, field_codec::i32, int32_t v)
{
	return Napi::Number::New(env, v);
}
template <js_boolean Codec> Napi::Value value(Napi::Env env, Codec, bool v)
{
	return Napi::Boolean::New(env, v);
}
template <js_string Codec>
Napi::Value value(Napi::Env env, Codec, const std::string &v)
{
	return Napi::String::New(env, v);
}
Napi::Value value(Napi::Env env, field_codec::perf_type, perf_event_type v)
{
	return Napi::String::New(env, perf_event_type_name(v));
}
Napi::Value value(Napi::Env env, field_codec::bytes,
		  const std::vector<uint8_t> &v)
{
	return copy_buffer(env, v.data(), v.size());
}
Napi::Value value(Napi::Env env, field_codec::insns,
		  const std::vector<bpftime::vm::insn> &v)
{
	return copy_buffer(env, v.data(), v.size() * sizeof(bpftime::vm::insn));
}
Napi::Value value(Napi::Env env, field_codec::id_list,
		  const std::vector<uint32_t> &v)
{
	Napi::Array a = Napi::Array::New(env, v.size());
	for (size_t i = 0; i < v.size(); i++)
		a.Set(uint32_t(i), v[i]);
	return a;
}

constexpr bool is_spec_key(field_role::required) { return true; }
constexpr bool is_spec_key(field_role::optional) { return true; }
constexpr bool is_spec_key(field_role::state) { return false; }
constexpr bool is_spec_key(field_role::derived) { return false; }

#define BPFTIME_JS_READ(member, shared, json_key, js_key, codec, role)         \
	field(env, field_role::role{}, field_codec::codec{}, o, js_key,        \
	      s.member, s);
#define BPFTIME_JS_WRITE(member, shared, json_key, js_key, codec, role)        \
	o.Set(js_key, value(env, field_codec::codec{}, s.member));
#define BPFTIME_JS_DESCRIPTOR_KEY(member, shared, json_key, js_key, codec,     \
				  role)                                        \
	descriptor.Set(descriptor.Length(), js_key);
#define BPFTIME_JS_SPEC_KEY(member, shared, json_key, js_key, codec, role)     \
	if (is_spec_key(field_role::role{}))                                   \
		spec.Set(spec.Length(), js_key);
// btf's from_object is unused: createBtf takes the bytes, not an object.
#define BPFTIME_JS_KIND(K, S, H, FIELDS)                                       \
	[[maybe_unused]] void from_object(Napi::Env env, Napi::Object o, S &s) \
	{                                                                      \
		FIELDS(BPFTIME_JS_READ)                                        \
	}                                                                      \
	void to_object(Napi::Env env, const S &s, Napi::Object o)              \
	{                                                                      \
		FIELDS(BPFTIME_JS_WRITE)                                       \
	}                                                                      \
	void keys_of(Napi::Env env, const S *, Napi::Array descriptor,         \
		     Napi::Array spec)                                         \
	{                                                                      \
		FIELDS(BPFTIME_JS_DESCRIPTOR_KEY)                              \
		FIELDS(BPFTIME_JS_SPEC_KEY)                                    \
	}
BPFTIME_HANDLER_KINDS(BPFTIME_JS_KIND)
#undef BPFTIME_JS_KIND
#undef BPFTIME_JS_SPEC_KEY
#undef BPFTIME_JS_DESCRIPTOR_KEY
#undef BPFTIME_JS_WRITE
#undef BPFTIME_JS_READ

// Descriptor keys the binding computes from a handler's fields rather than
// copies: a map's userValueSize (map_user_value_size: the bytes user space
// reads and writes per value, per-CPU values for every possible CPU).
template <class S> void computed_keys(const S *, Napi::Array) {}
void computed_keys(const map_spec *, Napi::Array descriptor)
{
	descriptor.Set(descriptor.Length(), "userValueSize");
}
template <class S> void set_computed(Napi::Env, const S &, Napi::Object) {}
void set_computed(Napi::Env, const map_spec &s, Napi::Object o)
{
	o.Set("userValueSize", map_user_value_size(s));
}

// { map: { descriptor: [...], spec: [...] }, prog: ... }: the keys of each
// kind's descriptor (besides id, generation and kind) and of the spec object
// its create call reads. test/fields.test.ts compares them with the
// TypeScript types.
Napi::Object field_keys(Napi::Env env)
{
	Napi::Object out = Napi::Object::New(env);
#define BPFTIME_JS_KEYS(K, S, H, FIELDS)                                       \
	{                                                                      \
		Napi::Object kind = Napi::Object::New(env);                    \
		Napi::Array descriptor = Napi::Array::New(env);                \
		Napi::Array spec = Napi::Array::New(env);                      \
		keys_of(env, static_cast<const S *>(nullptr), descriptor,      \
			spec);                                                 \
		computed_keys(static_cast<const S *>(nullptr), descriptor);    \
		kind.Set("descriptor", descriptor);                            \
		kind.Set("spec", spec);                                        \
		out.Set(#K, kind);                                             \
	}
	BPFTIME_HANDLER_KINDS(BPFTIME_JS_KEYS)
#undef BPFTIME_JS_KEYS
	return out;
}

} // namespace js

Napi::Value describe(Napi::Env env, const handler_info &info)
{
	Napi::Object o = Napi::Object::New(env);
	o.Set("id", info.h.id);
	o.Set("generation", Napi::BigInt::New(env, info.h.generation));
	o.Set("kind", std::string(kind_name(info.kind)));
	std::visit(
		[&](const auto &s) {
			js::to_object(env, s, o);
			js::set_computed(env, s, o);
		},
		info.spec);
	return o;
}

// --- the registry handle ----------------------------------------------------

class RegistryHandle : public Napi::ObjectWrap<RegistryHandle> {
    public:
	static Napi::FunctionReference *ctor;

	static void Init(Napi::Env env, Napi::Object exports)
	{
		ctor = bpftime::napi::export_class<RegistryHandle>(
			env, exports, "RegistryHandle",
			{
				InstanceMethod("capacity", &RegistryHandle::Capacity),
				InstanceMethod("changeCounter",
					       &RegistryHandle::ChangeCounter),
				InstanceMethod("size", &RegistryHandle::Size),
				InstanceMethod(
					"createMap",
					&RegistryHandle::Create<map_spec, &registry::create_map>),
				InstanceMethod(
					"createProg",
					&RegistryHandle::Create<prog_spec, &registry::create_prog>),
				InstanceMethod(
					"createLink",
					&RegistryHandle::Create<link_spec, &registry::create_link>),
				InstanceMethod(
					"createPerfEvent",
					&RegistryHandle::Create<perf_event_spec,
								&registry::create_perf_event>),
				InstanceMethod("createBtf", &RegistryHandle::CreateBtf),
				InstanceMethod("release", &RegistryHandle::Release),
				InstanceMethod("get", &RegistryHandle::Get),
				InstanceMethod("list", &RegistryHandle::List),
				InstanceMethod("beginLoad", &RegistryHandle::BeginLoad),
				InstanceMethod("endLoad", &RegistryHandle::EndLoad),
				InstanceMethod("owners", &RegistryHandle::Owners),
				InstanceMethod("rollBackDeadLoads",
					       &RegistryHandle::RollBackDeadLoads),
				InstanceMethod("mapLookup", &RegistryHandle::MapLookup),
				InstanceMethod("mapUpdate", &RegistryHandle::MapUpdate),
				InstanceMethod("mapDelete", &RegistryHandle::MapDelete),
				InstanceMethod("mapLookupAndDelete",
					       &RegistryHandle::MapLookupAndDelete),
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
	}

	static Napi::Object Wrap(Napi::Env env, std::unique_ptr<registry> r)
	{
		auto [obj, h] = bpftime::napi::new_tagged<RegistryHandle>(
			ctor, registry_tag);
		h->reg_ = std::shared_ptr<registry>(std::move(r));
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

	// The key at argument i, or nullptr (the first key) for null or
	// undefined: mapNextKey's key and mapLookupBatch's `after`.
	const void *optional_key(const Napi::CallbackInfo &info, size_t i,
				 const map_instance &m)
	{
		Napi::Value k = bpftime::napi::arg(info, i);
		if (k.IsNull() || k.IsUndefined())
			return nullptr;
		return sized(info, i, m, m.key_size, "key").data();
	}

	// Whether the map operation found its entry: false for ENOENT, any
	// other error thrown.
	static bool found(Napi::Env env, const bpftime::status &st)
	{
		if (st)
			return true;
		if (st.error().code != ENOENT)
			throw_error(env, st.error());
		return false;
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

	// The spec objects' keys are those of fields.hpp (js::field_keys).
	template <class Spec> Spec spec_arg(const Napi::CallbackInfo &info)
	{
		Spec s;
		js::from_object(info.Env(), object_arg(info, 0, "spec"), s);
		return s;
	}

	// createMap(spec, id?) and the others of a JS spec object: the
	// registry's create_* of the spec, its handle as { id, generation }.
	template <class Spec, auto create_fn>
	Napi::Value Create(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		auto s = spec_arg<Spec>(info);
		return handle_value(
			env, unwrap(env, (get(env).*create_fn)(s, id_arg(info, 1))));
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
		return array_of(env, get(env).list(), describe);
	}

	Napi::Value BeginLoad(const Napi::CallbackInfo &info)
	{
		get(info.Env()).begin_load();
		return info.Env().Undefined();
	}

	Napi::Value EndLoad(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		unwrap(env, get(env).end_load());
		return env.Undefined();
	}

	static Napi::Value describe_owner(Napi::Env env, const owner_info &o)
	{
		Napi::Object r = Napi::Object::New(env);
		r.Set("id", o.h.id);
		r.Set("generation", Napi::BigInt::New(env, o.h.generation));
		r.Set("kind", std::string(kind_name(o.kind)));
		r.Set("name", o.name);
		r.Set("pid", o.pid);
		r.Set("startTime", Napi::BigInt::New(env, o.start_time));
		r.Set("inLoad", o.in_load);
		r.Set("alive", o.alive);
		return r;
	}

	Napi::Value Owners(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		return array_of(env, unwrap(env, get(env).owners()), describe_owner);
	}

	Napi::Value RollBackDeadLoads(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		return array_of(env, unwrap(env, get(env).roll_back_dead_loads()),
				describe_owner);
	}

	// mapLookup(id, generation, key) → Buffer, or undefined when absent.
	Napi::Value MapLookup(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		auto m = map_at(info);
		auto key = sized(info, 2, *m, m->key_size, "key");
		Napi::Buffer<uint8_t> out =
			Napi::Buffer<uint8_t>::New(env, m->user_value_size);
		// A bloom filter's lookup reads the value it is asked about
		// from the value buffer, as the kernel's bpf() passes it.
		if (info.Length() > 3 && !info[3].IsUndefined()) {
			auto in = sized(info, 3, *m, m->user_value_size, "value");
			memcpy(out.Data(), in.data(), in.size());
		}
		if (!found(env, m->lookup(key.data(), out.Data())))
			return env.Undefined();
		return out;
	}

	// mapLookupAndDelete(id, generation, key) → Buffer, or undefined when
	// absent (an empty queue or stack).
	Napi::Value MapLookupAndDelete(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		auto m = map_at(info);
		auto key = sized(info, 2, *m, m->key_size, "key");
		Napi::Buffer<uint8_t> out =
			Napi::Buffer<uint8_t>::New(env, m->user_value_size);
		if (!found(env, m->lookup_and_delete(key.data(), out.Data())))
			return env.Undefined();
		return out;
	}

	Napi::Value MapUpdate(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		auto m = map_at(info);
		auto key = sized(info, 2, *m, m->key_size, "key");
		auto value = sized(info, 3, *m, m->user_value_size, "value");
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
		return Napi::Boolean::New(env, found(env, m->remove(key.data())));
	}

	// mapNextKey(id, generation, key | null) → Buffer, or undefined after
	// the last key.
	Napi::Value MapNextKey(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		auto m = map_at(info);
		const void *key = optional_key(info, 2, *m);
		Napi::Buffer<uint8_t> out = Napi::Buffer<uint8_t>::New(env, m->key_size);
		if (!found(env, m->next_key(key, out.Data())))
			return env.Undefined();
		return out;
	}

	// mapLookupBatch(id, generation, after | null, maxCount) →
	// { count, keys, values }: up to maxCount entries after `after`.
	Napi::Value MapLookupBatch(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		auto m = map_at(info);
		const void *after = optional_key(info, 2, *m);
		uint32_t max = bpftime::napi::u32_arg(info, 3, "maxCount");
		if (max == 0)
			throw_error(env, EINVAL, m->describe() + ": lookup batch: count is 0");
		// Bounded so that one call cannot ask for more than 1 GiB.
		uint64_t per = uint64_t(m->key_size) + m->user_value_size;
		if (per * max > (1ULL << 30))
			max = uint32_t((1ULL << 30) / per);
		Napi::Buffer<uint8_t> keys =
			Napi::Buffer<uint8_t>::New(env, size_t(max) * m->key_size);
		Napi::Buffer<uint8_t> values =
			Napi::Buffer<uint8_t>::New(env, size_t(max) * m->user_value_size);
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
		if (keys.size() % m->key_size || values.size() % m->user_value_size ||
		    keys.size() / m->key_size != values.size() / m->user_value_size)
			throw_error(env, EINVAL,
				    m->describe() + ": update batch: " +
					    std::to_string(keys.size()) +
					    " bytes of keys and " +
					    std::to_string(values.size()) +
					    " bytes of values do not make whole "
					    "entries of " +
					    std::to_string(m->key_size) + "+" +
					    std::to_string(m->user_value_size) + " bytes");
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
		else
			o.backend = unwrap(env, backend_from_env());
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
		// Where bpf_trace_printk writes (BPFTIME_TRACE_PRINTK_SINK), read
		// once per process, before the first program can print.
		static std::once_flag sink_once;
		static bpftime::status sink_status;
		std::call_once(sink_once, [] {
			sink_status = trace_printk_sink_from_env();
		});
		unwrap(env, bpftime::status(sink_status));
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
	// Opens without rolling back dead loaders' handlers, to list them.
	if (mode == "inspect")
		return RegistryHandle::Wrap(
			env, unwrap(env, registry::open(std::move(seg), false)));
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

// declareMapTypeProvider(type, provider): a package (not loaded here) that
// declares the map type in its package.json.
Napi::Value DeclareMapTypeProvider(const Napi::CallbackInfo &info)
{
	declare_map_type_provider(bpftime::napi::u32_arg(info, 0, "type"),
				  bpftime::napi::string_arg(info, 1, "provider"));
	return info.Env().Undefined();
}

Napi::Value RegisteredMapTypes(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	return array_of(env, registered_map_ops(),
			[](Napi::Env env, const map_ops *ops) {
				Napi::Object o = Napi::Object::New(env);
				o.Set("type", ops->map_type);
				o.Set("typeName", ops->type_name ? ops->type_name : "");
				o.Set("provider", ops->provider ? ops->provider : "");
				return o;
			});
}

Napi::Value Helpers(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	return array_of(env, available_helpers(), [](Napi::Env env, const auto &h) {
		Napi::Object o = Napi::Object::New(env);
		o.Set("id", h.id);
		o.Set("name", std::string(h.name));
		return o;
	});
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

// The attach vocabulary (attach_kinds.hpp), for test/attach-kinds.test.ts to
// compare with src/attach-kinds.ts.
void export_attach_kinds(Napi::Env env, Napi::Object exports)
{
	Napi::Array types = Napi::Array::New(env);
#define BPFTIME_X(id, value, name) types.Set(uint32_t(value), name);
	BPFTIME_PERF_EVENT_TYPES(BPFTIME_X)
#undef BPFTIME_X
	exports.Set("perfEventTypeNames", types);
	Napi::Array families = Napi::Array::New(env);
	for (unsigned i = 0; i < HOOK_FAMILY_COUNT; i++)
		families.Set(i, hook_family_name(hook_family(i)));
	exports.Set("hookFamilyNames", families);
	Napi::Array kinds = Napi::Array::New(env);
	for (unsigned i = 0; i < ATTACH_KIND_COUNT; i++) {
		Napi::Object k = Napi::Object::New(env);
		k.Set("name", attach_kind_name(attach_kind(i)));
		k.Set("family", hook_family_name(family_of(attach_kind(i))));
		kinds.Set(i, k);
	}
	exports.Set("attachKinds", kinds);
	Napi::Object sys = Napi::Object::New(env);
	for (const syscall_entry &e : SYSCALLS_X86_64)
		sys.Set(e.name, e.nr);
	exports.Set("syscallsX86_64", sys);
}

Napi::Object Init(Napi::Env env, Napi::Object exports)
{
	bpftime::napi::export_common(env, exports);
	RegistryHandle::Init(env, exports);
	exports.Set("openRegistry", Napi::Function::New(env, OpenRegistry));
	exports.Set("registerMapOps", Napi::Function::New(env, RegisterMapOps));
	exports.Set("registeredMapTypes", Napi::Function::New(env, RegisteredMapTypes));
	exports.Set("declareMapTypeProvider",
		    Napi::Function::New(env, DeclareMapTypeProvider));
	exports.Set("helpers", Napi::Function::New(env, Helpers));
	exports.Set("optionsFromEnv", Napi::Function::New(env, OptionsFromEnv));
	exports.Set("backendFromEnv", Napi::Function::New(env, BackendFromEnv));
	exports.Set("defaultCapacity", Napi::Number::New(env, DEFAULT_MAX_FD_COUNT));
	exports.Set("jsonVersion", Napi::Number::New(env, JSON_FORMAT_VERSION));
	exports.Set("fieldKeys", js::field_keys(env));
	export_attach_kinds(env, exports);
	return exports;
}

} // namespace

NODE_API_MODULE(bpftime_handlers, Init)
