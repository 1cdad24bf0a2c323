// vm.cpp: the public vm class over backend.hpp.
//
// load() is the only slow path: copy, verify, resolve lddw pseudo values,
// then hand the program to the backend factory. Everything a backend reads
// at run time (program, callback records) lives in vm::impl, which has a
// stable address for the life of the vm even when the vm object is moved.
#include "backend.hpp"
#include "llvm/llvm_backend.hpp"
#include "tail_call.hpp"

#include <bpftime/vm/opcodes.hpp>
#include <bpftime/vm/verifier.hpp>
#include <bpftime/vm/vm.hpp>

#include <algorithm>
#include <cstring>
#include <optional>
#include <string>

namespace bpftime::vm {

using detail::callback_record;
using detail::helper_entry;
using detail::program;

// Helper ids index a vector; kernel ids are below 256 and bpftime's own stay
// far below this bound.
static constexpr uint32_t MAX_HELPER_ID = 65535;

struct vm::impl {
	backend kind;
	vm_options opts;
	std::vector<helper_entry> helpers;
	std::unordered_map<uint32_t, helper_entry> kfuncs;
	lddw_resolver resolver;
	std::function<std::optional<map_desc>(uint8_t, int32_t)> map_describer;
	inline_resolver inliner;
	tail_call_resolver tail_call = nullptr;
	void *tail_call_user = nullptr;
	std::vector<memory_region> regions;

	// The loaded program. `callbacks` is reserved to its final size before
	// the first record is taken, so the addresses baked into lddw slots
	// stay valid until unload().
	program prog;
	std::vector<callback_record> callbacks;
	std::unique_ptr<detail::executor> exec;

	impl(backend b, vm_options o) : kind(b), opts(o)
	{
	}

	void unload() noexcept
	{
		exec.reset();
		callbacks.clear();
		prog = program{};
	}

	// The prototype the verifier checks calls of helper id against.
	std::optional<helper_proto> proto_of(uint32_t id) const
	{
		if (id < helpers.size() && helpers[id].fn) {
			helper_proto p = helpers[id].proto;
			p.name = helpers[id].name;
			return p;
		}
		// bpf_tail_call is the backends' own; a resolver makes it
		// callable even when no helper was registered under id 12. The
		// vm knows no maps: what r2 names is the resolver's business, so
		// it is checked as a plain value here (a registry checks it as
		// the kernel's ARG_CONST_MAP_PTR before loading).
		if (id == BPF_FUNC_tail_call && tail_call != nullptr) {
			helper_proto p = tail_call_proto;
			p.args[1] = ARG_ANYTHING;
			return p;
		}
		return std::nullopt;
	}
};

static const char *pseudo_name(uint8_t kind)
{
	switch (kind) {
	case BPF_PSEUDO_MAP_FD:
		return "BPF_PSEUDO_MAP_FD";
	case BPF_PSEUDO_MAP_VALUE:
		return "BPF_PSEUDO_MAP_VALUE";
	case BPF_PSEUDO_BTF_ID:
		return "BPF_PSEUDO_BTF_ID";
	case BPF_PSEUDO_FUNC:
		return "BPF_PSEUDO_FUNC";
	case BPF_PSEUDO_MAP_IDX:
		return "BPF_PSEUDO_MAP_IDX";
	case BPF_PSEUDO_MAP_IDX_VALUE:
		return "BPF_PSEUDO_MAP_IDX_VALUE";
	}
	return "unknown";
}

std::string_view backend_name(backend b) noexcept
{
	switch (b) {
	case backend::interpreter:
		return "interpreter";
	case backend::jit_x64:
		return "jit";
	case backend::llvm:
		return "llvm";
	}
	return "unknown";
}

result<backend> parse_backend(std::string_view name)
{
	if (name == "interpreter")
		return backend::interpreter;
	if (name == "jit")
		return backend::jit_x64;
	if (name == "llvm")
		return backend::llvm;
	return fail(EINVAL, "unknown vm backend '" + std::string(name) +
				    "' (expected interpreter, jit or llvm)");
}

status backend_available(backend b) noexcept
{
	if (b != backend::llvm)
		return {};
	auto p = detail::llvm_plugin();
	if (!p)
		return std::move(p).error();
	return {};
}

vm::vm(backend b, vm_options opts) noexcept
	: impl_(std::make_unique<impl>(b, opts))
{
}

vm::~vm()
{
	// The executor refers to impl::prog: destroy it first.
	if (impl_)
		impl_->unload();
}

vm::vm(vm &&) noexcept = default;
vm &vm::operator=(vm &&other) noexcept
{
	if (this != &other) {
		if (impl_)
			impl_->unload();
		impl_ = std::move(other.impl_);
	}
	return *this;
}

backend vm::get_backend() const noexcept
{
	return impl_ ? impl_->kind : backend::interpreter;
}

static failure moved_from(const char *op)
{
	return fail(EINVAL, std::string("vm: ") + op + ": vm was moved from");
}

static failure loaded_already(const char *op)
{
	return fail(EBUSY, std::string("vm: ") + op +
				   ": a program is loaded; unload() first");
}

status vm::register_helper(const helper_proto &proto)
{
	if (!impl_)
		return moved_from("register_helper");
	const uint32_t id = proto.id;
	const std::string what = "vm: helper #" + std::to_string(id) + " '" +
				 std::string(proto.name) + "'";
	if (impl_->exec)
		return loaded_already("register_helper");
	if (!proto.fn)
		return fail(EINVAL, what + ": null function");
	// The verifier checks every call against the kinds; a helper that
	// declares none cannot be checked, so it cannot be called.
	if (proto.ret == RET_UNSPEC)
		return fail(EINVAL, what + ": no prototype (return and argument "
					   "kinds, helper_proto.hpp)");
	if (id > MAX_HELPER_ID)
		return fail(E2BIG, what + ": id above " +
					   std::to_string(MAX_HELPER_ID));
	if (id < impl_->helpers.size() && impl_->helpers[id].fn)
		return fail(EEXIST, what + ": id already registered as '" +
					    impl_->helpers[id].name + "'");
	if (id >= impl_->helpers.size())
		impl_->helpers.resize(id + 1);
	helper_entry e{ proto.fn, std::string(proto.name), proto };
	e.proto.name = {}; // proto_of() points it at e.name
	impl_->helpers[id] = std::move(e);
	return {};
}

status vm::register_kfunc(uint32_t btf_id, std::string name, helper_fn fn)
{
	if (!impl_)
		return moved_from("register_kfunc");
	const std::string what = "vm: kfunc btf_id " + std::to_string(btf_id) +
				 " '" + name + "'";
	if (impl_->exec)
		return loaded_already("register_kfunc");
	if (!fn)
		return fail(EINVAL, what + ": null function");
	auto [it, fresh] =
		impl_->kfuncs.try_emplace(btf_id, helper_entry{ fn, name, {} });
	if (!fresh)
		return fail(EEXIST, what + ": id already registered as '" +
					    it->second.name + "'");
	return {};
}

void vm::set_map_describer(
	std::function<std::optional<map_desc>(uint8_t kind, int32_t imm)> d)
{
	if (impl_)
		impl_->map_describer = std::move(d);
}

void vm::set_lddw_resolver(lddw_resolver r)
{
	if (impl_)
		impl_->resolver = std::move(r);
}

void vm::set_inline_resolver(inline_resolver r)
{
	if (impl_)
		impl_->inliner = std::move(r);
}

void vm::set_tail_call_resolver(tail_call_resolver r, void *user)
{
	if (impl_) {
		impl_->tail_call = r;
		impl_->tail_call_user = user;
	}
}

void vm::add_memory_region(memory_region r)
{
	if (impl_)
		impl_->regions.push_back(r);
}

status vm::load(const void *code, size_t len_bytes)
{
	if (len_bytes % sizeof(insn) != 0)
		return fail(EINVAL, "vm: load: program size " +
					    std::to_string(len_bytes) +
					    " is not a multiple of 8 bytes");
	std::vector<insn> insns(len_bytes / sizeof(insn));
	if (len_bytes)
		std::memcpy(insns.data(), code, len_bytes);
	return load(insns);
}

// Replaces every lddw with src_reg != 0 by its final value (see
// backend.hpp::program). Called by load() after verification, so the lddw
// pairs are complete and BPF_PSEUDO_FUNC targets are function starts.
static status resolve_lddw(vm::impl &m, bool pseudo)
{
	std::vector<insn> &in = m.prog.insns;
	size_t funcs = 0;
	for (size_t pc = 0; pc < in.size(); pc++)
		if (in[pc].code == (BPF_LD | BPF_IMM | BPF_DW)) {
			funcs += in[pc].src_reg == BPF_PSEUDO_FUNC;
			pc++;
		}
	m.callbacks.reserve(funcs);
	for (size_t pc = 0; pc < in.size(); pc++) {
		insn &i = in[pc];
		if (i.code != (BPF_LD | BPF_IMM | BPF_DW))
			continue;
		insn &hi = in[pc + 1];
		uint64_t value;
		if (i.src_reg == 0 || (!pseudo && i.src_reg != BPF_PSEUDO_FUNC)) {
			pc++;
			continue;
		} else if (i.src_reg == BPF_PSEUDO_FUNC) {
			m.callbacks.push_back(callback_record{
				nullptr, static_cast<uint32_t>(pc + i.imm + 1) });
			value = reinterpret_cast<uint64_t>(&m.callbacks.back());
		} else {
			const std::string where = std::to_string(pc) +
						  ": lddw with src_reg " +
						  std::to_string(i.src_reg) + " (" +
						  pseudo_name(i.src_reg) + ")";
			if (!m.resolver)
				return fail(EINVAL,
					    where + " needs a lddw resolver "
						    "(vm::set_lddw_resolver)");
			result<uint64_t> r = m.resolver(lddw_request{
				static_cast<uint32_t>(pc), i.src_reg, i.imm,
				hi.imm });
			if (!r)
				return fail(r.error().code,
					    where + ": " + r.error().message);
			value = *r;
		}
		i.src_reg = 0;
		i.imm = static_cast<int32_t>(static_cast<uint32_t>(value));
		hi.imm = static_cast<int32_t>(static_cast<uint32_t>(value >> 32));
		pc++;
	}
	return {};
}

status vm::load(std::span<const insn> prog)
{
	return load_with(prog, {}, nullptr);
}

status vm::load_aot(std::span<const uint8_t> object, std::span<const insn> expect)
{
	if (!impl_)
		return moved_from("load_aot");
	auto insns = detail::aot_object_insns(object);
	if (!insns)
		return std::move(insns).error();
	if (!expect.empty() &&
	    !std::equal(expect.begin(), expect.end(), insns->begin(), insns->end()))
		return fail(EINVAL, "vm: load_aot: the object was compiled from "
				    "other instructions than the program's");
	return load_with(*insns, object, nullptr);
}

result<std::vector<uint8_t>> vm::compile_aot(std::span<const insn> prog,
					     const char *cpu)
{
	if (!impl_)
		return moved_from("compile_aot");
	std::vector<uint8_t> out;
	if (status st = load_with(prog, {}, &out, cpu); !st)
		return std::move(st).error();
	return out;
}

// load(), load_aot() (object not empty) and compile_aot() (aot_out set: the
// program is compiled to *aot_out and not loaded).
status vm::load_with(std::span<const insn> prog, std::span<const uint8_t> object,
		     std::vector<uint8_t> *aot_out, const char *cpu)
{
	if (!impl_)
		return moved_from("load");
	impl &m = *impl_;
	// Copy before unload(): `prog` may be this vm's own instructions().
	std::vector<insn> insns(prog.begin(), prog.end());
	m.unload();
	// Only the interpreter counts instructions (vm_options::insn_counter).
	if (m.opts.insn_counter && m.kind != backend::interpreter)
		return fail(ENOTSUP, "vm: load: insn_counter needs the "
				     "interpreter backend");
	const std::vector<insn> original = aot_out ? insns : std::vector<insn>{};

	verify_options vo;
	vo.helper_proto_of = [&m](uint32_t id) { return m.proto_of(id); };
	vo.kfunc_known = [&m](uint32_t id) { return m.kfuncs.count(id) != 0; };
	vo.strict = m.opts.strict_verifier;
	vo.types = m.opts.type_check;
	vo.ctx_size = m.opts.ctx_size;
	vo.ctx_writable = m.opts.ctx_writable;
	vo.map_of = m.map_describer;
	result<verify_info> info = verify(insns, vo);
	if (!info)
		return std::move(info).error();

	m.prog.insns = std::move(insns);
	m.prog.helpers = m.helpers;
	m.prog.kfuncs = m.kfuncs;
	m.prog.options = m.opts;
	m.prog.regions = m.regions;
	m.prog.tail_call = m.tail_call;
	m.prog.tail_call_user = m.tail_call_user;
	m.prog.inliner = m.inliner;
	m.prog.function_starts = std::move(info->function_starts);
	m.prog.max_stack = info->max_stack;
	if (status st = resolve_lddw(m, aot_out == nullptr); !st) {
		m.unload();
		return st;
	}
	if (aot_out) {
		auto obj = detail::compile_llvm_aot(m.prog, original, cpu);
		m.unload();
		if (!obj)
			return std::move(obj).error();
		*aot_out = std::move(*obj);
		return {};
	}

	result<std::unique_ptr<detail::executor>> ex =
		!object.empty()		     ? detail::load_llvm_aot(m.prog, object) :
		m.kind == backend::jit_x64 ? detail::make_jit_x64(m.prog) :
		m.kind == backend::llvm	     ? detail::make_llvm(m.prog) :
					       detail::make_interpreter(m.prog);
	if (!ex) {
		m.unload();
		return std::move(ex).error();
	}
	m.exec = std::move(*ex);
	for (callback_record &c : m.callbacks)
		c.exec = m.exec.get();
	return {};
}

void vm::unload() noexcept
{
	if (impl_)
		impl_->unload();
}

result<uint64_t> vm::exec(void *ctx, uint64_t ctx_len) const noexcept
{
	if (!impl_ || !impl_->exec) [[unlikely]]
		return fail(EINVAL, "vm: exec: no program loaded");
	return impl_->exec->run(ctx, ctx_len);
}

runner vm::get_runner() const noexcept
{
	if (!impl_ || !impl_->exec)
		return {};
	return impl_->exec->make_runner();
}

std::span<const insn> vm::instructions() const noexcept
{
	if (!impl_ || !impl_->exec)
		return {};
	return impl_->prog.insns;
}

uint64_t vm::compile_time_ns() const noexcept
{
	return impl_ && impl_->exec ? impl_->exec->compile_time_ns() : 0;
}

// fn_value is what a BPF_PSEUDO_FUNC lddw evaluated to: the address of a
// callback_record of a loaded vm. 0 (a NULL callback) returns 0.
uint64_t invoke_callback(uint64_t fn_value, uint64_t a1, uint64_t a2,
			 uint64_t a3, uint64_t a4, uint64_t a5) noexcept
{
	const auto *rec = reinterpret_cast<const callback_record *>(fn_value);
	if (!rec || !rec->exec)
		return 0;
	const uint64_t args[5] = { a1, a2, a3, a4, a5 };
	return rec->exec->call_function(rec->pc, args);
}

namespace detail {

// Tail calls in progress on this thread: each one runs nested inside the
// program that made it, so entering increments and returning decrements.
static thread_local int tail_calls_in_progress = 0;

std::optional<result<uint64_t>> run_tail_call(const program &prog, void *ctx,
					      uint64_t ctx_len,
					      uint64_t prog_array,
					      uint64_t index,
					      uint64_t &r0) noexcept
{
	const vm *target =
		prog.tail_call ?
			prog.tail_call(prog.tail_call_user, prog_array, index) :
			nullptr;
	if (!target || target->instructions().empty()) {
		r0 = static_cast<uint64_t>(-int64_t(ENOENT));
		return std::nullopt;
	}
	if (tail_calls_in_progress >= MAX_TAIL_CALL_CNT) {
		r0 = static_cast<uint64_t>(-int64_t(ELOOP));
		return std::nullopt;
	}
	++tail_calls_in_progress;
	result<uint64_t> r = target->exec(ctx, ctx_len);
	--tail_calls_in_progress;
	return r;
}

} // namespace detail
} // namespace bpftime::vm
