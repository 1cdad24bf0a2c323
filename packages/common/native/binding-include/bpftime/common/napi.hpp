// napi.hpp: the glue every @bpftime binding shares (node-addon-api only).
//
// - Errors: the TypeScript loader hands the addon the BpftimeError class once
//   (`__setErrorClass`); throw_error() builds instances of it, so every
//   package throws the same class with `code`, `errno` and a message.
// - Wrapped classes carry a type tag (napi_type_tag_object), so a foreign
//   object passed where a Segment is expected is refused instead of being
//   reinterpreted.
// - Argument conversion that checks its input; the friendly messages for bad
//   arguments come from the TypeScript layer, these checks only keep the
//   native side safe from what slips past it.
//
// Called on the JS thread only.
#pragma once

#include <bpftime/common/result.hpp>

#include <napi.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <utility>

namespace bpftime::napi {

struct addon_state {
	Napi::FunctionReference error_class;
};

inline addon_state &state(Napi::Env env)
{
	auto *s = env.GetInstanceData<addon_state>();
	if (!s) {
		s = new addon_state();
		env.SetInstanceData(s);
	}
	return *s;
}

// Builds a BpftimeError (or a plain Error with code/errno before the class
// has been registered, which only happens if the addon is loaded by hand).
inline Napi::Error make_error(Napi::Env env, int code, const std::string &msg)
{
	addon_state &s = state(env);
	if (!s.error_class.IsEmpty()) {
		Napi::Object err = s.error_class.New(
			{ Napi::Number::New(env, code),
			  Napi::String::New(env, msg) });
		return Napi::Error(env, err);
	}
	Napi::Error err = Napi::Error::New(env, msg);
	err.Set("errno", Napi::Number::New(env, code));
	return err;
}

[[noreturn]] inline void throw_error(Napi::Env env, const bpftime::error &e)
{
	throw make_error(env, e.code, e.message);
}

[[noreturn]] inline void throw_error(Napi::Env env, int code,
				     const std::string &msg)
{
	throw make_error(env, code, msg);
}

template <class T> T unwrap(Napi::Env env, result<T> &&r)
{
	if (!r)
		throw_error(env, r.error());
	return std::move(r).value();
}

inline void unwrap(Napi::Env env, status &&r)
{
	if (!r)
		throw_error(env, r.error());
}

// Exported by every addon as `__setErrorClass(BpftimeError)`.
inline Napi::Value set_error_class(const Napi::CallbackInfo &info)
{
	if (info.Length() < 1 || !info[0].IsFunction())
		throw Napi::TypeError::New(info.Env(),
					   "__setErrorClass expects a class");
	state(info.Env()).error_class =
		Napi::Persistent(info[0].As<Napi::Function>());
	return info.Env().Undefined();
}

inline void export_common(Napi::Env env, Napi::Object exports)
{
	exports.Set("__setErrorClass",
		    Napi::Function::New(env, set_error_class, "__setErrorClass"));
}

// --- arguments ---------------------------------------------------------

inline Napi::Value arg(const Napi::CallbackInfo &info, size_t i)
{
	return i < info.Length() ? info[i] : info.Env().Undefined();
}

// Conversions of one value (an argument, an object's member, an array's
// element); `what` names it in the EINVAL message: "Expected u64 for key".
inline std::string string_value(Napi::Env env, Napi::Value v,
				const char *what)
{
	if (!v.IsString())
		throw_error(env, EINVAL, std::string("Expected string for ") + what);
	return v.As<Napi::String>().Utf8Value();
}

// A bigint, or a number that is an integer in [0, 2^53).
inline uint64_t u64_value(Napi::Env env, Napi::Value v, const char *what)
{
	if (v.IsBigInt()) {
		bool lossless = false;
		uint64_t x = v.As<Napi::BigInt>().Uint64Value(&lossless);
		if (lossless)
			return x;
	} else if (v.IsNumber()) {
		double d = v.As<Napi::Number>().DoubleValue();
		if (d >= 0 && d <= 9007199254740991.0 && d == uint64_t(d))
			return uint64_t(d);
	}
	throw_error(env, EINVAL, std::string("Expected u64 for ") + what);
}

inline uint32_t u32_value(Napi::Env env, Napi::Value v, const char *what)
{
	if (v.IsNumber()) {
		double d = v.As<Napi::Number>().DoubleValue();
		if (d >= 0 && d <= 4294967295.0 && d == uint32_t(d))
			return uint32_t(d);
	}
	throw_error(env, EINVAL, std::string("Expected u32 for ") + what);
}

inline std::string string_arg(const Napi::CallbackInfo &info, size_t i,
			      const char *what)
{
	return string_value(info.Env(), arg(info, i), what);
}

inline uint64_t u64_arg(const Napi::CallbackInfo &info, size_t i,
			const char *what)
{
	return u64_value(info.Env(), arg(info, i), what);
}

inline uint32_t u32_arg(const Napi::CallbackInfo &info, size_t i,
			const char *what)
{
	return u32_value(info.Env(), arg(info, i), what);
}

inline Napi::Buffer<uint8_t> buffer_arg(const Napi::CallbackInfo &info,
				       size_t i, const char *what)
{
	Napi::Value v = arg(info, i);
	if (!v.IsBuffer())
		throw_error(info.Env(), EINVAL,
			    std::string("Expected Buffer for ") + what);
	return v.As<Napi::Buffer<uint8_t>>();
}

inline Napi::BigInt to_bigint(Napi::Env env, uint64_t v)
{
	return Napi::BigInt::New(env, v);
}

// --- type tags -----------------------------------------------------------

// Tags a freshly wrapped object; check_tag() refuses objects that lack it.
inline void tag(Napi::Object obj, const napi_type_tag &t)
{
	obj.TypeTag(&t);
}

// --- wrapped classes the addon makes ----------------------------------------

// Defines the wrapped class T with `props` and exports it as `name`. The
// returned constructor, for new_tagged(), lives as long as the addon (never
// freed: one per class per load). Called from the addon's Init.
template <class T>
Napi::FunctionReference *
export_class(Napi::Env env, Napi::Object exports, const char *name,
	     const std::initializer_list<Napi::ClassPropertyDescriptor<T>> &props)
{
	Napi::Function f = Napi::ObjectWrap<T>::DefineClass(env, name, props);
	exports.Set(name, f);
	return new Napi::FunctionReference(Napi::Persistent(f));
}

// A new, tagged instance of a class exported with export_class, and its
// native object for the caller to fill.
template <class T>
std::pair<Napi::Object, T *> new_tagged(Napi::FunctionReference *ctor,
					 const napi_type_tag &t)
{
	Napi::Object obj = ctor->New({});
	tag(obj, t);
	return { obj, T::Unwrap(obj) };
}

template <class T>
T *unwrap_tagged(Napi::Env env, Napi::Value v, const napi_type_tag &t,
		 const char *what)
{
	if (!v.IsObject() || !v.As<Napi::Object>().CheckTypeTag(&t))
		throw_error(env, EINVAL, std::string("Expected ") + what);
	return T::Unwrap(v.As<Napi::Object>());
}

} // namespace bpftime::napi
