// executor.cpp: the JIT backend's executor: executable memory, runs, and the
// C++ side of tail calls and bounds checks.
//
// Threading: compile() runs once, on the loading thread. run() and
// call_function() are const and may run on any number of threads at once:
// each call keeps its run_ctx and its stack area on its own native stack,
// and the code and the callx table are read-only after compile().
//
// Runs on one thread form a chain (run_ctx::parent, innermost in tls_top):
// a helper's callback runs inside the run of the program that called the
// helper, a tail-called program inside the run that tail-called it. The chain
// gives the interpreter's semantics: in bounds-check mode a callback may use
// the stacks and contexts of the runs around it, a failing callback fails
// the run whose helper called it, and callbacks nest at most MAX_CALL_FRAMES
// deep. Error messages are the interpreter's, word for word.
#include "jit_x64.hpp"
#include "runtime.hpp"
#include "../fault.hpp"
#include "../tail_call.hpp"

#include <bpftime/vm/opcodes.hpp>

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <new>

namespace bpftime::vm::jit_x64 {

namespace {

using detail::program;

thread_local run_ctx *tls_top = nullptr;

#ifdef BPFTIME_VM_STATIC_TLS
// See probe_rc_tls_offset(). initial-exec: the generated code addresses it
// at a fixed offset from the thread pointer, the same in every thread.
__thread run_ctx *tls_probe_rc __attribute__((tls_model("initial-exec"))) =
	nullptr;
#endif

// Executable memory: written while RW, then RX for good (never RWX).
class code_memory {
    public:
	code_memory() = default;
	code_memory(const code_memory &) = delete;
	code_memory &operator=(const code_memory &) = delete;
	code_memory(code_memory &&o) noexcept
		: addr_(std::exchange(o.addr_, nullptr)),
		  len_(std::exchange(o.len_, 0)), used_(o.used_)
	{
	}
	code_memory &operator=(code_memory &&o) noexcept
	{
		if (this != &o) {
			reset();
			addr_ = std::exchange(o.addr_, nullptr);
			len_ = std::exchange(o.len_, 0);
			used_ = o.used_;
		}
		return *this;
	}
	~code_memory()
	{
		reset();
	}

	static result<code_memory> create(const std::vector<uint8_t> &code)
	{
		const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
		const size_t len = (code.size() + page - 1) / page * page;
		void *p = mmap(nullptr, len, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			return fail(errno, std::string("jit: mmap of ") +
						   std::to_string(len) +
						   " bytes: " + std::strerror(errno));
		code_memory m;
		m.addr_ = static_cast<uint8_t *>(p);
		m.len_ = len;
		m.used_ = code.size();
		std::memcpy(p, code.data(), code.size());
		if (mprotect(p, len, PROT_READ | PROT_EXEC) != 0)
			return fail(errno, std::string("jit: mprotect RX: ") +
						   std::strerror(errno));
		return m;
	}

	const uint8_t *data() const
	{
		return addr_;
	}
	size_t size() const
	{
		return used_;
	}

    private:
	void reset() noexcept
	{
		if (addr_)
			munmap(addr_, len_);
		addr_ = nullptr;
		len_ = 0;
	}

	uint8_t *addr_ = nullptr;
	size_t len_ = 0;
	size_t used_ = 0;
};

[[gnu::cold]] failure runtime_error(int code, uint32_t pc, const char *what,
				    uint64_t value)
{
	char buf[160];
	std::snprintf(buf, sizeof buf, "%u: %s %" PRIu64, pc, what, value);
	return fail(code, buf);
}

bool in_range(uint64_t lo, uint64_t len, uint64_t addr, uint64_t size)
{
	const uint64_t rel = addr - lo; // wraps when addr < lo
	return rel < len && size <= len - rel;
}

class jit_executor final : public detail::executor {
    public:
	explicit jit_executor(const program &p) : prog_(p)
	{
	}
	~jit_executor() override
	{
		if (mem_.data())
			detail::unregister_code(reinterpret_cast<uint64_t>(mem_.data()));
	}
	jit_executor(const jit_executor &) = delete;
	jit_executor &operator=(const jit_executor &) = delete;

	status init(const features &feat)
	{
		callx_table_.resize(prog_.helpers.size());
		for (size_t i = 0; i < prog_.helpers.size(); i++)
			callx_table_[i] = reinterpret_cast<uint64_t>(prog_.helpers[i].fn);
		auto gen = generate(prog_, feat, callx_table_.data(),
				    callx_table_.size());
		if (!gen)
			return std::move(gen).error();
		auto mem = code_memory::create(gen->code);
		if (!mem)
			return std::move(mem).error();
		mem_ = std::move(*mem);
		detail::register_code(reinterpret_cast<uint64_t>(mem_.data()),
				      reinterpret_cast<uint64_t>(mem_.data()) +
					      mem_.size());
		entry_ = reinterpret_cast<entry_fn>(const_cast<uint8_t *>(
			mem_.data() + gen->entry_offset));
		probe_entry_ = reinterpret_cast<probe_entry_fn>(
			const_cast<uint8_t *>(mem_.data() +
					      gen->probe_entry_offset));
		alone_ = runs_alone(prog_);
		for (const auto &[pc, off] : gen->functions)
			functions_.emplace_back(pc, mem_.data() + off);
		return {};
	}

	result<uint64_t> run(void *ctx, uint64_t ctx_len) const noexcept override
	{
		const uint64_t args[5] = { reinterpret_cast<uint64_t>(ctx),
					   ctx_len, 0, 0, 0 };
		return enter(functions_.front().second, 0, args,
			     reinterpret_cast<uint64_t>(ctx), ctx_len, false);
	}

	// Called by a helper (through invoke_callback) while the run of the
	// program that called the helper is the innermost run of this thread.
	// A failing callback returns 0 and fails that run with the callback's
	// error; without an enclosing run the error is dropped.
	uint64_t call_function(uint32_t pc,
			       const uint64_t args[5]) const noexcept override
	{
		auto it = std::lower_bound(
			functions_.begin(), functions_.end(), pc,
			[](const auto &f, uint32_t v) { return f.first < v; });
		result<uint64_t> r =
			it == functions_.end() || it->first != pc ?
				result<uint64_t>(runtime_error(
					EINVAL, pc,
					"callback is not a function start, pc", pc)) :
				enter(it->second, pc, args, 0, 0, true);
		if (r)
			return *r;
		if (run_ctx *outer = tls_top; outer && outer->status == 0) {
			outer->final->put(std::move(r).error());
			outer->status = status_final;
		}
		return 0;
	}

	uint64_t compile_time_ns() const noexcept override
	{
		return compile_ns_;
	}

	void set_compile_time(uint64_t ns)
	{
		compile_ns_ = ns;
	}

	std::span<const uint8_t> code() const noexcept
	{
		return { mem_.data(), mem_.size() };
	}

	runner make_runner() const noexcept override
	{
		if (alone_)
			return { probe_entry_, this };
		return { &run_quick, this };
	}

	// The probe entry's failure path (probe_failed()): the rest of rc,
	// for the message; prepare() leaves err_* alone.
	uint64_t probe_outcome(probe_frame &pf, uint64_t r0) const noexcept
	{
		run_ctx &rc = pf.rc;
		final_slot final;
		const uint32_t status = rc.status;
		uint8_t *stack = reinterpret_cast<uint8_t *>(&pf) - stack_area_size;
		prepare(rc, stack, rc.ctx, rc.ctx_len, false, final);
		rc.status = status;
		result<uint64_t> r = outcome(rc, r0, final);
		*pf.err = r ? 0 : r.error().code;
		return r ? *r : 0;
	}

    private:
	// Whether a run of p can neither start a run of its own on this thread
	// (a callback, a tail call) nor look outside its own stack and context
	// (bounds checks follow enclosing runs): then it needs no place in the
	// thread's chain of runs, and its runner is the generated probe entry.
	static bool runs_alone(const program &p)
	{
		if (p.options.bounds_check)
			return false;
		for (size_t pc = 0; pc < p.insns.size(); pc++) {
			const insn &i = p.insns[pc];
			const insn_kind k = opcode_table[i.code].kind;
			if (k == insn_kind::callx)
				return false;
			if (k == insn_kind::call && i.src_reg == 0 &&
			    uint32_t(i.imm) == detail::BPF_FUNC_tail_call)
				return false;
			// A helper that takes a callback (bpf_loop) runs it as
			// a run of its own, under this one. (A BPF_PSEUDO_FUNC
			// lddw cannot be recognised here: its src_reg was
			// cleared when it was resolved.)
			if (k == insn_kind::call && i.src_reg == 0 &&
			    uint32_t(i.imm) < p.helpers.size()) {
				for (bpf_arg_type a :
				     p.helpers[uint32_t(i.imm)].proto.args)
					if (a == ARG_PTR_TO_FUNC)
						return false;
			}
			if (k == insn_kind::lddw)
				pc++;
		}
		return true;
	}

	// run() without result<>: the path of a probe hit for a program that
	// does not run alone. What enter() does, with the outcome only
	// converted when the run did not simply exit.
	static uint64_t run_quick(const void *self, void *ctx, uint64_t ctx_len,
				  int *err) noexcept
	{
		const auto *x = static_cast<const jit_executor *>(self);
		alignas(16) uint8_t stack[stack_area_size];
		final_slot final;
		run_ctx rc;
		x->prepare(rc, stack, reinterpret_cast<uint64_t>(ctx), ctx_len,
			   false, final);
		rc.args[0] = reinterpret_cast<uint64_t>(ctx);
		rc.args[1] = ctx_len;
		rc.args[2] = rc.args[3] = rc.args[4] = 0;
		const uint64_t r0 = x->go(rc, x->functions_.front().second);
		if (rc.status == 0) [[likely]] {
			*err = 0;
			return r0;
		}
		result<uint64_t> r = x->outcome(rc, r0, final);
		*err = r ? 0 : r.error().code;
		return r ? *r : 0;
	}

	// Fills rc for a run on `stack` (stack_area_size bytes) under the
	// innermost run of this thread; rc.args and rc.saved_rsp are the
	// caller's and the trampoline's. The err_* fields are written
	// together with a nonzero status, and read only then.
	void prepare(run_ctx &rc, uint8_t *stack, uint64_t ctx,
		     uint64_t ctx_len, bool callback,
		     final_slot &final) const noexcept
	{
		const uint64_t lo = reinterpret_cast<uint64_t>(stack);
		rc.fp_init = lo + stack_area_size + MAX_BPF_STACK;
		rc.call_fp_min = lo + 2 * MAX_BPF_STACK;
		rc.stack_lo = lo;
		rc.ctx = ctx;
		rc.ctx_len = ctx_len;
		rc.status = 0;
		rc.prog = &prog_;
		rc.parent = tls_top;
		rc.callback_depth =
			rc.parent ? rc.parent->callback_depth + (callback ? 1 : 0) : 0;
		rc.final = &final;
	}

	// Runs fn with rc as the innermost run of this thread.
	uint64_t go(run_ctx &rc, const uint8_t *fn) const noexcept
	{
		tls_top = &rc;
		const uint64_t r0 = entry_(&rc, fn);
		tls_top = rc.parent;
		return r0;
	}

	result<uint64_t> enter(const uint8_t *fn, uint32_t pc,
			       const uint64_t args[5], uint64_t ctx,
			       uint64_t ctx_len, bool callback) const noexcept
	{
		alignas(16) uint8_t stack[stack_area_size];
		final_slot final;
		run_ctx rc;
		prepare(rc, stack, ctx, ctx_len, callback, final);
		std::memcpy(rc.args, args, sizeof rc.args);
		if (rc.callback_depth > MAX_CALL_FRAMES)
			return runtime_error(ELOOP, pc,
					     "callbacks nested too deep, depth",
					     static_cast<uint64_t>(rc.callback_depth));
		const uint64_t r0 = go(rc, fn);
		if (rc.status == 0)
			return r0;
		return outcome(rc, r0, final);
	}

	// The result of a run that ended with a nonzero status.
	[[gnu::noinline]] result<uint64_t>
	outcome(const run_ctx &rc, uint64_t r0,
		final_slot &final) const noexcept
	{
		switch (rc.status) {
		case 0:
			return r0;
		case status_final:
			return final.take();
		case status_fault:
			return signal_fault(rc);
		case EFAULT:
			return fault(rc);
		case ELOOP:
			return runtime_error(ELOOP, rc.err_pc,
					     "local calls nested too deep, frames",
					     MAX_CALL_FRAMES + 1);
		default:
			return runtime_error(static_cast<int>(rc.status), rc.err_pc,
					     "callx to unregistered helper id",
					     rc.err_addr);
		}
	}

	// A run that end_run() ended; the eBPF pc is not known.
	[[gnu::cold]] static failure signal_fault(const run_ctx &rc)
	{
		char buf[128];
		std::snprintf(buf, sizeof buf,
			      "run ended by a memory fault at 0x%" PRIx64
			      " (native pc 0x%" PRIx64 ")",
			      rc.err_addr, rc.err_info);
		return fail(EFAULT, buf);
	}

	// ubpf's bounds_check message, with the pc first as in verifier
	// messages.
	[[gnu::cold]] failure fault(const run_ctx &rc) const
	{
		char buf[256];
		std::snprintf(buf, sizeof buf,
			      "%u: out of bounds memory %s of %" PRIu32
			      " bytes at 0x%" PRIx64 " (stack 0x%" PRIx64
			      "+%" PRIu32 ", ctx 0x%" PRIx64 "+%" PRIu64
			      ", %zu regions)",
			      access_pc(rc.err_info),
			      access_write(rc.err_info) ? "store" : "load",
			      access_size_of(rc.err_info), rc.err_addr,
			      rc.stack_lo, stack_area_size, rc.ctx, rc.ctx_len,
			      prog_.regions.size());
		return fail(EFAULT, buf);
	}

	const program &prog_;
	std::vector<uint64_t> callx_table_;
	code_memory mem_;
	entry_fn entry_ = nullptr;
	probe_entry_fn probe_entry_ = nullptr;
	bool alone_ = false; // runs_alone(prog_)
	std::vector<std::pair<uint32_t, const uint8_t *>> functions_; // by pc
	uint64_t compile_ns_ = 0;
};

} // namespace

std::optional<int32_t> probe_rc_tls_offset() noexcept
{
#ifdef BPFTIME_VM_STATIC_TLS
	uint64_t tp;
	asm("mov %%fs:0, %0" : "=r"(tp));
	const int64_t off = int64_t(reinterpret_cast<uint64_t>(&tls_probe_rc) - tp);
	if (off < INT32_MIN || off > INT32_MAX)
		return std::nullopt;
	return int32_t(off);
#else
	return std::nullopt;
#endif
}

bool end_run(ucontext_t *uc) noexcept
{
	greg_t *g = uc->uc_mcontext.gregs;
	// The outermost run: callbacks and tail calls end with the run around
	// them, and the frames between are abandoned (the outermost go() puts
	// tls_top back). A probe entry's run takes no place in the chain, but
	// is outside any chain that a callback of it starts.
	run_ctx *rc = nullptr;
#ifdef BPFTIME_VM_STATIC_TLS
	if ((rc = tls_probe_rc) != nullptr) {
		// The runs its callbacks started lie deeper in the stack, at
		// lower addresses: their go() will not put tls_top back.
		run_ctx *t = tls_top;
		while (t && reinterpret_cast<uint64_t>(t) < reinterpret_cast<uint64_t>(rc))
			t = t->parent;
		tls_top = t;
	}
#endif
	if (!rc && (rc = tls_top) != nullptr) {
		while (rc->parent)
			rc = rc->parent;
	}
	if (!rc && detail::in_jit_x64_code(uint64_t(g[REG_RIP])))
		rc = reinterpret_cast<run_ctx *>(g[REG_R12]);
	if (!rc)
		return false;
	// A result decided before the fault (status_final) stands.
	if (rc->status == 0) {
		rc->err_addr = uint64_t(g[REG_CR2]);
		rc->err_info = uint64_t(g[REG_RIP]);
		rc->status = status_fault;
	}
	// What l_unwind does: return from the entry's call of the main
	// function, whose return address is still below saved_rsp.
	const uint64_t sp = rc->saved_rsp;
	g[REG_RSP] = greg_t(sp);
	g[REG_RIP] = greg_t(*reinterpret_cast<const uint64_t *>(sp - 8));
	g[REG_R12] = greg_t(reinterpret_cast<uint64_t>(rc));
	return true;
}

uint64_t probe_failed(probe_frame *pf, uint64_t r0) noexcept
{
	return static_cast<const jit_executor *>(pf->self)->probe_outcome(*pf, r0);
}

uint64_t region_check(run_ctx *rc, uint64_t addr, uint64_t info) noexcept
{
	const uint64_t size = access_size_of(info);
	const bool write = access_write(info);
	for (const run_ctx *x = rc->parent; x; x = x->parent)
		if (in_range(x->stack_lo, stack_area_size, addr, size) ||
		    in_range(x->ctx, x->ctx_len, addr, size))
			return 1;
	for (const memory_region &r : rc->prog->regions)
		if (in_range(r.start, r.size, addr, size) &&
		    (!write || r.writable))
			return 1;
	rc->status = EFAULT;
	rc->err_pc = access_pc(info);
	rc->err_addr = addr;
	rc->err_info = info;
	return 0;
}

uint64_t tail_call(uint64_t ctx, uint64_t prog_array, uint64_t index,
		   run_ctx *rc) noexcept
{
	uint64_t r0 = 0;
	if (auto r = detail::run_tail_call(*rc->prog, reinterpret_cast<void *>(ctx),
					   rc->ctx_len, prog_array, index, r0);
	    r && rc->status == 0) {
		rc->final->put(std::move(*r));
		rc->status = status_final;
	}
	return r0;
}

features detect_features() noexcept
{
	features f;
	__builtin_cpu_init();
	f.bmi2 = __builtin_cpu_supports("bmi2");
	return f;
}

result<std::unique_ptr<detail::executor>> compile(const program &prog,
						  const features &feat)
{
	const auto t0 = std::chrono::steady_clock::now();
	try {
		auto e = std::make_unique<jit_executor>(prog);
		BPFTIME_TRY(e->init(feat));
		e->set_compile_time(static_cast<uint64_t>(
			std::chrono::duration_cast<std::chrono::nanoseconds>(
				std::chrono::steady_clock::now() - t0)
				.count()));
		return std::unique_ptr<detail::executor>(std::move(e));
	} catch (const std::bad_alloc &) {
		return fail(ENOMEM, "jit: out of memory while compiling " +
					    std::to_string(prog.insns.size()) +
					    " instructions");
	}
}

std::span<const uint8_t> code_of(const detail::executor &e) noexcept
{
	if (auto *j = dynamic_cast<const jit_executor *>(&e))
		return j->code();
	return {};
}

} // namespace bpftime::vm::jit_x64

namespace bpftime::vm::detail {

result<std::unique_ptr<executor>> make_jit_x64(const program &prog)
{
	return jit_x64::compile(prog, jit_x64::detect_features());
}

} // namespace bpftime::vm::detail
