// attach_binding.cpp: node-addon-api glue for @bpftime/attach. Probes in
// the Node process itself, with native callbacks that count hits and keep
// the registers of the last one (JavaScript cannot run inside a hook: the
// hooked function may be called on any thread, or by V8 itself).
//
// Called on the JS thread only; the counting callbacks run on whatever
// thread calls the hooked function and touch only atomics.
#include <bpftime/attach/attach.hpp>
#include <bpftime/common/log.hpp>
#include <bpftime/common/napi.hpp>

#include <atomic>
#include <cstring>
#include <memory>

namespace {

using bpftime::napi::throw_error;
using bpftime::napi::unwrap;
namespace at = bpftime::attach;

constexpr napi_type_tag probe_tag = { 0x6270667469d5e201ULL, 0x4154544143485052ULL };

at::attach_manager &manager()
{
	static at::attach_manager m;
	return m;
}

struct counter {
	std::atomic<uint64_t> hits{ 0 };
	// The last hit's registers; torn between concurrent hits, exact for
	// hits from one thread.
	std::atomic<uint64_t> regs[sizeof(at::pt_regs) / 8] = {};
	uint64_t value = 0; // override: the value returned
};

void record(const at::pt_regs *r, counter *c)
{
	uint64_t w[sizeof(at::pt_regs) / 8];
	memcpy(w, r, sizeof(w));
	for (size_t i = 0; i < std::size(w); i++)
		c->regs[i].store(w[i], std::memory_order_relaxed);
	c->hits.fetch_add(1, std::memory_order_relaxed);
}

void on_hit(const at::pt_regs *r, void *user)
{
	record(r, static_cast<counter *>(user));
}

bool on_override(at::pt_regs *r, void *user, uint64_t *ret)
{
	auto *c = static_cast<counter *>(user);
	record(r, c);
	*ret = c->value;
	return true;
}

Napi::Object info_object(Napi::Env env, const at::probe_info &i)
{
	Napi::Object o = Napi::Object::New(env);
	o.Set("id", Napi::BigInt::New(env, i.id));
	o.Set("kind", at::to_string(i.kind));
	o.Set("state", at::to_string(i.state));
	o.Set("mechanism", at::to_string(i.mech));
	o.Set("address", Napi::BigInt::New(env, i.address));
	o.Set("patchedBytes", Napi::Number::New(env, i.patched_bytes));
	o.Set("atFunctionEntry", Napi::Boolean::New(env, i.at_function_entry));
	o.Set("where", i.where);
	o.Set("reason", i.reason);
	o.Set("errno", Napi::Number::New(env, i.error));
	o.Set("missed", Napi::BigInt::New(env, i.missed));
	return o;
}

class probe_handle : public Napi::ObjectWrap<probe_handle> {
    public:
	static Napi::Function define(Napi::Env env)
	{
		return DefineClass(env, "ProbeHandle",
				   { InstanceMethod("hits", &probe_handle::hits),
				     InstanceMethod("lastRegs", &probe_handle::last_regs),
				     InstanceMethod("info", &probe_handle::info),
				     InstanceMethod("close", &probe_handle::close) });
	}

	// (kind, module, symbol, offset, forceBreakpoint, overrideValue)
	probe_handle(const Napi::CallbackInfo &info) : Napi::ObjectWrap<probe_handle>(info)
	{
		Napi::Env env = info.Env();
		bpftime::napi::tag(info.This().As<Napi::Object>(), probe_tag);
		std::string kind = bpftime::napi::string_arg(info, 0, "kind");
		at::probe_target t;
		t.module = bpftime::napi::string_arg(info, 1, "module");
		t.symbol = bpftime::napi::string_arg(info, 2, "symbol");
		t.offset = bpftime::napi::u64_arg(info, 3, "offset");
		at::attach_options opts;
		opts.force_breakpoint = bpftime::napi::arg(info, 4).ToBoolean();
		c_ = std::make_unique<counter>();
		c_->value = bpftime::napi::u64_arg(info, 5, "overrideValue");
		bpftime::result<uint64_t> id = bpftime::fail(EINVAL, "unknown probe kind '" + kind + "'");
		if (kind == "uprobe")
			id = manager().attach_uprobe(t, on_hit, c_.get(), opts);
		else if (kind == "uretprobe")
			id = manager().attach_uretprobe(t, on_hit, c_.get(), opts);
		else if (kind == "override")
			id = manager().attach_override(t, on_override, c_.get(), opts);
		id_ = unwrap(env, std::move(id));
	}

    private:
	Napi::Value hits(const Napi::CallbackInfo &info)
	{
		return Napi::BigInt::New(info.Env(), c_->hits.load());
	}
	Napi::Value last_regs(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		at::pt_regs r;
		uint64_t w[sizeof(at::pt_regs) / 8];
		for (size_t i = 0; i < std::size(w); i++)
			w[i] = c_->regs[i].load(std::memory_order_relaxed);
		memcpy(&r, w, sizeof(r));
		Napi::Object o = Napi::Object::New(env);
		auto set = [&](const char *n, uint64_t v) { o.Set(n, Napi::BigInt::New(env, v)); };
		set("di", r.di);
		set("si", r.si);
		set("dx", r.dx);
		set("cx", r.cx);
		set("r8", r.r8);
		set("r9", r.r9);
		set("ax", r.ax);
		set("ip", r.ip);
		set("sp", r.sp);
		set("cs", r.cs);
		set("ss", r.ss);
		set("origAx", r.orig_ax);
		return o;
	}
	Napi::Value info(const Napi::CallbackInfo &info)
	{
		if (closed_)
			throw_error(info.Env(), ENOENT, "probe: closed");
		return info_object(info.Env(), unwrap(info.Env(), manager().info(id_)));
	}
	Napi::Value close(const Napi::CallbackInfo &info)
	{
		if (!closed_) {
			closed_ = true;
			unwrap(info.Env(), manager().detach(id_));
			// A hit already inside the callback on another thread
			// may still touch the counter: keep it alive (a few
			// bytes per closed probe).
			(void)c_.release();
		}
		return info.Env().Undefined();
	}

	std::unique_ptr<counter> c_;
	uint64_t id_ = 0;
	bool closed_ = false;
};

Napi::Value resolve_fn(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	at::probe_target t;
	t.module = bpftime::napi::string_arg(info, 0, "module");
	t.symbol = bpftime::napi::string_arg(info, 1, "symbol");
	t.offset = bpftime::napi::u64_arg(info, 2, "offset");
	at::location loc = unwrap(env, at::resolve(t));
	Napi::Object o = Napi::Object::New(env);
	o.Set("address", Napi::BigInt::New(env, loc.address));
	o.Set("fileOffset", Napi::BigInt::New(env, loc.file_offset));
	o.Set("module", loc.module.path);
	o.Set("symbol", loc.symbol);
	o.Set("symbolAddress", Napi::BigInt::New(env, loc.symbol_address));
	o.Set("symbolSize", Napi::BigInt::New(env, loc.symbol_size));
	return o;
}

Napi::Value modules_fn(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	auto mods = unwrap(env, at::loaded_modules());
	Napi::Array a = Napi::Array::New(env, mods.size());
	for (size_t i = 0; i < mods.size(); i++) {
		Napi::Object o = Napi::Object::New(env);
		o.Set("path", mods[i].path);
		o.Set("bias", Napi::BigInt::New(env, mods[i].bias));
		o.Set("start", Napi::BigInt::New(env, mods[i].start));
		o.Set("end", Napi::BigInt::New(env, mods[i].end));
		o.Set("mainExecutable", Napi::Boolean::New(env, mods[i].main_executable));
		a.Set(uint32_t(i), o);
	}
	return a;
}

Napi::Object init(Napi::Env env, Napi::Object exports)
{
	// The edge of the addon: the probes' log lines ("[bpftime attach] ...")
	// follow SPDLOG_LEVEL and BPFTIME_LOG_OUTPUT of the Node process.
	bpftime::log_configure(bpftime::log_options_from_env(),
			       { "bpftime attach", false });
	bpftime::napi::export_common(env, exports);
	exports.Set("ProbeHandle", probe_handle::define(env));
	exports.Set("resolve", Napi::Function::New(env, resolve_fn, "resolve"));
	exports.Set("loadedModules", Napi::Function::New(env, modules_fn, "loadedModules"));
	return exports;
}

} // namespace

NODE_API_MODULE(bpftime_attach, init)
