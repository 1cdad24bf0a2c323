// vm_binding.cpp: node-addon-api glue for @bpftime/vm. Converts arguments,
// calls the core, maps errors to BpftimeError.
//
// Helpers written in JavaScript: the VM calls helpers through plain function
// pointers with five u64 arguments and no user data, so a fixed set of native
// trampolines (one per slot, generated from a template) forwards each call to
// the JS function registered in that slot. Programs run synchronously on the
// JS thread, so the trampolines reach the JS function through a thread-local
// pointer set for the duration of run(). A JS exception inside a helper cannot
// unwind through JIT-compiled frames: the trampoline records it, returns 0,
// and run() rethrows it once the program has finished.
#include <bpftime/common/napi.hpp>
#include <bpftime/vm/opcodes.hpp>
#include <bpftime/vm/vm.hpp>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <cstring>
#include <optional>
#include <utility>
#include <vector>

namespace {

using bpftime::napi::throw_error;
using bpftime::napi::unwrap;

constexpr napi_type_tag vm_tag = { 0x6270667469d5e101ULL, 0x564d48414e444c45ULL };
constexpr size_t MAX_JS_HELPERS = 64;

struct js_call_context {
	Napi::Env env;
	std::array<Napi::FunctionReference *, MAX_JS_HELPERS> *helpers;
	std::optional<Napi::Error> pending;
};

thread_local js_call_context *current_call = nullptr;

template <size_t Slot>
uint64_t js_trampoline(uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4,
		       uint64_t a5)
{
	js_call_context *ctx = current_call;
	if (!ctx || ctx->pending)
		return 0;
	Napi::FunctionReference *fn = (*ctx->helpers)[Slot];
	Napi::Env env = ctx->env;
	try {
		Napi::Value r = fn->Call({ Napi::BigInt::New(env, a1),
					   Napi::BigInt::New(env, a2),
					   Napi::BigInt::New(env, a3),
					   Napi::BigInt::New(env, a4),
					   Napi::BigInt::New(env, a5) });
		if (r.IsBigInt()) {
			bool lossless;
			return r.As<Napi::BigInt>().Uint64Value(&lossless);
		}
		if (r.IsNumber())
			return uint64_t(r.As<Napi::Number>().Int64Value());
		if (r.IsUndefined())
			return 0;
		ctx->pending = bpftime::napi::make_error(
			env, EINVAL, "helper returned neither a bigint nor a number");
	} catch (const Napi::Error &e) {
		ctx->pending = e;
	}
	return 0;
}

template <size_t... I>
constexpr std::array<bpftime::vm::helper_fn, sizeof...(I)>
make_trampolines(std::index_sequence<I...>)
{
	return { &js_trampoline<I>... };
}
constexpr auto trampolines =
	make_trampolines(std::make_index_sequence<MAX_JS_HELPERS>());

// Helper id 5 of the conformance plugins: returns its first argument. Kept
// native so tests of helper calls need no JS round trip.
uint64_t identity_helper(uint64_t a1, uint64_t, uint64_t, uint64_t, uint64_t)
{
	return a1;
}

class VmHandle : public Napi::ObjectWrap<VmHandle> {
    public:
	static void Init(Napi::Env env, Napi::Object exports)
	{
		Napi::Function f = DefineClass(
			env, "VmHandle",
			{ InstanceMethod("registerHelper", &VmHandle::RegisterHelper),
			  InstanceMethod("registerIdentityHelper",
					 &VmHandle::RegisterIdentityHelper),
			  InstanceMethod("addMemoryRegion", &VmHandle::AddMemoryRegion),
			  InstanceMethod("load", &VmHandle::Load),
			  InstanceMethod("run", &VmHandle::Run),
			  InstanceMethod("instructions", &VmHandle::Instructions),
			  InstanceMethod("compileTimeNs", &VmHandle::CompileTimeNs),
			  InstanceMethod("compileAot", &VmHandle::CompileAot),
			  InstanceMethod("loadAot", &VmHandle::LoadAot),
			  InstanceMethod("close", &VmHandle::Close) });
		exports.Set("VmHandle", f);
	}

	// new VmHandle(backendName, boundsCheck)
	VmHandle(const Napi::CallbackInfo &info) : Napi::ObjectWrap<VmHandle>(info)
	{
		Napi::Env env = info.Env();
		bpftime::napi::tag(info.This().As<Napi::Object>(), vm_tag);
		auto backend = unwrap(env, bpftime::vm::parse_backend(
						   bpftime::napi::string_arg(info, 0, "backend")));
		bpftime::vm::vm_options opts;
		opts.bounds_check = bpftime::napi::arg(info, 1).ToBoolean();
		opts.ctx_size = bpftime::napi::u32_arg(info, 2, "contextSize");
		// An explicit option wins; otherwise BPFTIME_VERIFIER.
		Napi::Value mode = bpftime::napi::arg(info, 3);
		std::string mode_s = mode.IsString() ? mode.As<Napi::String>().Utf8Value() :
						       std::string(getenv("BPFTIME_VERIFIER") ?: "");
		opts.type_check =
			unwrap(env, bpftime::vm::parse_verifier_mode(mode_s.c_str()));

		unchecked_ = !opts.type_check;
		vm_.emplace(backend, opts);
		helpers_.fill(nullptr);
	}

	~VmHandle() override
	{
		for (auto *h : helpers_)
			delete h;
	}

    private:
	std::optional<bpftime::vm::vm> vm_;
	std::array<Napi::FunctionReference *, MAX_JS_HELPERS> helpers_;
	size_t used_slots_ = 0;
	bool unchecked_ = false; // BPFTIME_VERIFIER=off or verifier: 'off'
	// Buffers registered as memory regions stay referenced while the VM
	// may touch them.
	std::vector<Napi::Reference<Napi::Buffer<uint8_t>>> regions_;

	bpftime::vm::vm &get(Napi::Env env)
	{
		if (!vm_)
			throw_error(env, EBADF, "vm: closed");
		return *vm_;
	}

	Napi::Value RegisterHelper(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		uint32_t id = bpftime::napi::u32_arg(info, 0, "id");
		std::string name = bpftime::napi::string_arg(info, 1, "name");
		if (!bpftime::napi::arg(info, 2).IsFunction())
			throw_error(env, EINVAL, "Expected function for helper");
		if (used_slots_ == MAX_JS_HELPERS)
			throw_error(env, ENOSPC,
				    "vm: at most " + std::to_string(MAX_JS_HELPERS) +
					    " JavaScript helpers per VM");
		// A JavaScript helper gets its five registers as BigInts and
		// can only read memory it was given as a region: its
		// prototype is five ARG_ANYTHING returning RET_INTEGER.
		using namespace bpftime::vm;
		unwrap(env, get(env).register_helper(helper_proto{
				    .id = id,
				    .name = name,
				    .ret = RET_INTEGER,
				    .args = { ARG_ANYTHING, ARG_ANYTHING,
					      ARG_ANYTHING, ARG_ANYTHING,
					      ARG_ANYTHING },
				    .fn = trampolines[used_slots_] }));
		helpers_[used_slots_++] = new Napi::FunctionReference(
			Napi::Persistent(info[2].As<Napi::Function>()));
		return env.Undefined();
	}

	Napi::Value RegisterIdentityHelper(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		uint32_t id = bpftime::napi::u32_arg(info, 0, "id");
		using namespace bpftime::vm;
		unwrap(env, get(env).register_helper(helper_proto{
				    .id = id,
				    .name = "identity",
				    .ret = RET_INTEGER,
				    .args = { ARG_ANYTHING },
				    .fn = identity_helper }));
		return env.Undefined();
	}

	Napi::Value AddMemoryRegion(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		auto buf = bpftime::napi::buffer_arg(info, 0, "region");
		bool writable = bpftime::napi::arg(info, 1).ToBoolean();
		get(env).add_memory_region({ reinterpret_cast<uint64_t>(buf.Data()),
					     buf.Length(), writable });
		regions_.push_back(Napi::Persistent(buf));
		return env.Undefined();
	}

	// Said once per process, when the first such program is loaded to run
	// (compileAot runs nothing, so it says nothing).
	void warn_if_unchecked(Napi::Env env)
	{
		static std::once_flag warned;
		if (unchecked_)
			std::call_once(warned, [] {
				fprintf(stderr, "bpftime: the verifier's type discipline is "
						"OFF (BPFTIME_VERIFIER=off): programs are not "
						"proven memory-safe and may crash this "
						"process\n");
			});
	}

	Napi::Value Load(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		warn_if_unchecked(env);
		auto code = bpftime::napi::buffer_arg(info, 0, "code");
		unwrap(env, get(env).load(code.Data(), code.Length()));
		return env.Undefined();
	}

	// compileAot(code: Buffer) -> Buffer: an ELF object (vm::compile_aot).
	Napi::Value CompileAot(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		auto code = bpftime::napi::buffer_arg(info, 0, "code");
		if (code.Length() % sizeof(bpftime::vm::insn) != 0)
			throw_error(env, EINVAL, "vm: compileAot: program size " +
							 std::to_string(code.Length()) +
							 " is not a multiple of 8 bytes");
		std::vector<bpftime::vm::insn> insns(code.Length() / sizeof(bpftime::vm::insn));
		std::memcpy(insns.data(), code.Data(), code.Length());
		auto obj = unwrap(env, get(env).compile_aot(insns));
		return Napi::Buffer<uint8_t>::Copy(env, obj.data(), obj.size());
	}

	// loadAot(object: Buffer): vm::load_aot.
	Napi::Value LoadAot(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		auto obj = bpftime::napi::buffer_arg(info, 0, "object");
		warn_if_unchecked(env);
		unwrap(env, get(env).load_aot({ obj.Data(), obj.Length() }));
		return env.Undefined();
	}

	// run(ctx?: Buffer) -> bigint. The context is passed by address: the
	// program reads and writes the caller's Buffer in place.
	Napi::Value Run(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		void *ctx = nullptr;
		uint64_t len = 0;
		Napi::Value c = bpftime::napi::arg(info, 0);
		if (c.IsBuffer()) {
			auto buf = c.As<Napi::Buffer<uint8_t>>();
			ctx = buf.Data();
			len = buf.Length();
		} else if (!c.IsUndefined() && !c.IsNull()) {
			throw_error(env, EINVAL, "Expected Buffer for ctx");
		}
		js_call_context call{ env, &helpers_, std::nullopt };
		js_call_context *saved = current_call;
		current_call = &call;
		auto r = get(env).exec(ctx, len);
		current_call = saved;
		if (call.pending)
			throw *call.pending;
		return Napi::BigInt::New(env, unwrap(env, std::move(r)));
	}

	Napi::Value Instructions(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		auto insns = get(env).instructions();
		return Napi::Buffer<uint8_t>::Copy(
			env, reinterpret_cast<const uint8_t *>(insns.data()),
			insns.size_bytes());
	}

	Napi::Value CompileTimeNs(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		return Napi::BigInt::New(env, get(env).compile_time_ns());
	}

	Napi::Value Close(const Napi::CallbackInfo &info)
	{
		vm_.reset();
		regions_.clear();
		return info.Env().Undefined();
	}
};

// opcodeTableAccepts(code: Buffer): Buffer of one byte per 8-byte slot, 1
// where the opcode table (opcodes.hpp) accepts the slot's opcode and fields:
// what the TypeScript disassembler is tested against.
Napi::Value OpcodeTableAccepts(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	auto code = bpftime::napi::buffer_arg(info, 0, "code");
	const size_t n = code.Length() / sizeof(bpftime::vm::insn);
	auto out = Napi::Buffer<uint8_t>::New(env, n);
	for (size_t k = 0; k < n; k++) {
		bpftime::vm::insn i;
		std::memcpy(&i, code.Data() + k * sizeof(i), sizeof(i));
		out.Data()[k] = bpftime::vm::opcode_table[i.code].valid &&
				bpftime::vm::check_fields(i) ==
					bpftime::vm::insn_field::none;
	}
	return out;
}

// backendUnavailable(name): undefined when programs can load on the
// backend in this process, else why not (vm::backend_available).
Napi::Value BackendUnavailable(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	auto b = unwrap(env, bpftime::vm::parse_backend(
				     bpftime::napi::string_arg(info, 0, "backend")));
	auto st = bpftime::vm::backend_available(b);
	if (st)
		return env.Undefined();
	return Napi::String::New(env, st.error().message);
}

Napi::Object Init(Napi::Env env, Napi::Object exports)
{
	bpftime::napi::export_common(env, exports);
	VmHandle::Init(env, exports);
	exports.Set("backendUnavailable", Napi::Function::New(env, BackendUnavailable));
	exports.Set("opcodeTableAccepts",
		    Napi::Function::New(env, OpcodeTableAccepts));
	return exports;
}

} // namespace

NODE_API_MODULE(bpftime_vm, Init)
