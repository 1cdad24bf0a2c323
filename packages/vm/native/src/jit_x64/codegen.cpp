// codegen.cpp: translation of a verified eBPF program into x86-64 code.
//
// Register mapping. Every eBPF register lives in a host register for the
// whole run, chosen so that a helper call needs no moves at all: r1-r5 are
// already the System V argument registers and r0 the return register, and
// r6-r9 and r10 sit in callee-saved registers that helpers preserve.
//
//   r0 rax   r1 rdi   r2 rsi   r3 rdx   r4 rcx   r5 r8
//   r6 rbx   r7 r13   r8 r14   r9 r15   r10 rbp
//   host r12: the run_ctx of this run (runtime.hpp), constant
//   host r9, r10, r11: scratch within one eBPF instruction, never live
//   across two
//
// Constants. clang loads the address of global data with lddw inside the
// loops that use it, once per iteration. The hosts of the eBPF registers
// that a function never names are free for its whole body, so the lddw
// values its loops load, the most loaded first, get one each
// (plan_constants): loaded once in the prologue, each lddw of the value is
// a deferred copy of that register, and `d = imm64; d += t` an address
// [H + t]. Free hosts of r1-r5 come first: nothing needs them back (a
// function that names none of r1-r5 makes no call, which would scratch
// them); hosts of r6-r9 are callee-saved and so pushed by the prologue.
//
// Frames. The trampoline (emit_trampoline_and_stubs) saves the host's callee-saved
// registers and calls the entry function. Every eBPF function, the entry
// included, is a native function: its prologue pushes the hosts of the r6-r9
// it writes (so its caller finds them intact, the eBPF contract for a local
// call) and moves r10 one MAX_BPF_STACK frame down the run's stack area; exit
// undoes that and returns. A local call is a check that one more frame fits
// in the area (ELOOP otherwise, as the interpreter) and one `call rel32`. The
// native stack stays 16-byte aligned inside every function body, so helpers
// are called without adjustment.
//
// After every helper, kfunc and callx call the code tests run_ctx::status: a
// callback that a helper ran may have failed, and a tail call may have
// decided the result; both end the run there (unwind to the trampoline).
//
// Peepholes, for the shapes clang emits in loops. A backward liveness pass
// (compute_liveness) tells which eBPF registers a later instruction may
// still read; none of the rewrites spans a jump target.
//   - Addresses: `rX = rY` (or `rX = imm64`) then `rX += rZ` (or += imm),
//     then loads and stores through rX: the address goes into their
//     operands ([rY + rZ + off]) and rX is only computed (one lea) when a
//     later instruction reads it. `wX = wY; wX += wZ` is one 32-bit lea.
//   - Loop ends: `if cond goto +1; goto L` is one branch, `if !cond goto L`.
//   - Loop-carried sums: `d = s; d += t; t = d` and `d -= s; d += imm` are
//     reassociated so that the carried register waits on one add only.
//   - Deferred values: a copy or an address waits in `pend_` until an
//     instruction reads it, so a copy that only the loop's exit reads is
//     made after the loop (see `struct deferred`); a load or store through
//     a 64-bit copy takes the copy's source as its base.
// Loop heads (targets of backward jumps) start on a 64-byte line.
//
// Cold paths (division by zero, INT_MIN / -1, bounds-check misses, failing
// callx lookups, ELOOP) are emitted after all functions and jump back, so
// the hot path only pays a not-taken branch.
#include "runtime.hpp"
#include "x64_assembler.hpp"

#include <bpftime/vm/opcodes.hpp>

#include <dlfcn.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <functional>
#include <optional>
#include <string>

namespace bpftime::vm::jit_x64 {

namespace {

using detail::program;

constexpr reg reg_map[MAX_BPF_REG] = { rax, rdi, rsi, rdx, rcx, r8,
				       rbx, r13, r14, r15, rbp };

constexpr reg host(uint8_t bpf_reg)
{
	return reg_map[bpf_reg];
}

constexpr uint16_t bit(uint8_t r)
{
	return static_cast<uint16_t>(1u << r);
}

// Which opcodes this file emits, decoded from the instruction format alone.
// It must name exactly the opcodes of opcodes.hpp: a new entry in the table
// fails the build here until the JIT learns it.
constexpr bool jit_emits(uint8_t code)
{
	const uint8_t cls = bpf_class(code);
	const uint8_t op = bpf_op(code);
	const bool k = bpf_src(code) == BPF_K;
	switch (cls) {
	case BPF_ALU:
	case BPF_ALU64:
		if (op == BPF_NEG)
			return k;
		if (op == BPF_END)
			return cls == BPF_ALU || k; // ALU64 has only bswap
		return op <= BPF_ARSH;
	case BPF_JMP:
	case BPF_JMP32:
		if (op == BPF_JA)
			return k;
		if (op == BPF_CALL)
			return cls == BPF_JMP;
		if (op == BPF_EXIT)
			return cls == BPF_JMP && k;
		return op <= BPF_JSLE;
	case BPF_LD:
		return code == (BPF_LD | BPF_IMM | BPF_DW);
	case BPF_LDX:
		return bpf_mode(code) == BPF_MEM ||
		       (bpf_mode(code) == BPF_MEMSX && bpf_size(code) != BPF_DW);
	case BPF_ST:
		return bpf_mode(code) == BPF_MEM;
	case BPF_STX:
		return bpf_mode(code) == BPF_MEM ||
		       (bpf_mode(code) == BPF_ATOMIC &&
			(bpf_size(code) == BPF_W || bpf_size(code) == BPF_DW));
	}
	return false;
}

constexpr bool jit_agrees_with_opcode_table()
{
	for (unsigned c = 0; c < 256; c++)
		if (jit_emits(static_cast<uint8_t>(c)) !=
		    opcode_valid(static_cast<uint8_t>(c)))
			return false;
	return true;
}
static_assert(jit_agrees_with_opcode_table(),
	      "the JIT and opcodes.hpp disagree on the instruction set");

constexpr bool jit_emits_atomic(int32_t imm)
{
	switch (imm) {
	case BPF_ADD:
	case BPF_OR:
	case BPF_AND:
	case BPF_XOR:
	case BPF_ADD | BPF_FETCH:
	case BPF_OR | BPF_FETCH:
	case BPF_AND | BPF_FETCH:
	case BPF_XOR | BPF_FETCH:
	case BPF_XCHG:
	case BPF_CMPXCHG:
		return true;
	}
	return false;
}
#define BPFTIME_JIT_ATOMIC_CHECK(imm_, name_)                                  \
	static_assert(jit_emits_atomic(imm_), "the JIT lacks atomic " #name_);
BPFTIME_VM_ATOMIC_OPS(BPFTIME_JIT_ATOMIC_CHECK)
#undef BPFTIME_JIT_ATOMIC_CHECK

width access_width(uint8_t code)
{
	switch (bpf_size(code)) {
	case BPF_B:
		return width::b8;
	case BPF_H:
		return width::b16;
	case BPF_W:
		return width::b32;
	default:
		return width::b64;
	}
}

cond jump_cond(uint8_t op)
{
	switch (op) {
	case BPF_JEQ:
		return cond::e;
	case BPF_JGT:
		return cond::a;
	case BPF_JGE:
		return cond::ae;
	case BPF_JLT:
		return cond::b;
	case BPF_JLE:
		return cond::be;
	case BPF_JSGT:
		return cond::g;
	case BPF_JSGE:
		return cond::ge;
	case BPF_JSLT:
		return cond::l;
	case BPF_JSLE:
		return cond::le;
	default: // BPF_JNE, BPF_JSET (after test)
		return cond::ne;
	}
}

std::string at_pc(uint32_t pc, const std::string &what)
{
	return "jit: pc " + std::to_string(pc) + ": " + what;
}

std::string hex(uint64_t v)
{
	char buf[24];
	std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
	return buf;
}

// A value of an eBPF register that the code has not computed yet (see
// "Peepholes" above): `d = base + index + disp` (an address, 64 bits) or
// `d = base` (a copy, `w` wide). Its `deps` (eBPF registers) still hold
// what the value is computed from; no deferred value's deps include the d of
// another. A constant's host register (see "Constants") holds it for the
// whole function and is no dep.
struct deferred {
	uint8_t d = 0;
	uint16_t deps = 0;
	bool copy = false;
	width w = width::b64;
	mem addr{ rax };
};

struct function_info {
	uint32_t start = 0;
	uint32_t end = 0; // one past the last instruction
	// Pushed by the prologue: the hosts of the r6-r9 the function writes
	// and the callee-saved ones of `consts`.
	std::vector<reg> saved;
	bool pad = false; // one more push keeps rsp 16-byte aligned
	// Loaded by the prologue: lddw values and the free host registers that
	// hold them (see "Constants").
	std::vector<std::pair<uint64_t, reg>> consts;
	label entry = 0;
};

class codegen {
    public:
	codegen(const program &p, const features &f, const uint64_t *table,
		size_t table_len)
		: prog_(p), feat_(f), callx_table_(table),
		  callx_count_(table_len),
		  n_(static_cast<uint32_t>(p.insns.size()))
	{
	}

	result<generated_code> run();

    private:
	status plan_functions();
	void plan_constants(function_info &f, const std::vector<uint32_t> &depth);
	status emit_pass();
	void emit_trampoline_and_stubs();
	void emit_prologue(const function_info &f);
	// Whether the program calls a helper, a kfunc or callx.
	bool calls_native_code() const;
	void emit_epilogue(const function_info &f);
	status emit_insn(uint32_t pc, const function_info &f);
	void compute_liveness();
	uint32_t emit_fused(uint32_t pc, const function_info &f);
	uint32_t emit_branch_over_jump(uint32_t pc, const function_info &f);
	uint32_t emit_sub_add_imm(uint32_t pc, const function_info &f);
	uint32_t emit_deferred(uint32_t pc, const function_info &f);
	status emit_one(uint32_t pc, const function_info &f);
	bool emit_folded_access(uint32_t pc);
	// Deferred values, see `struct deferred`.
	void materialize(const deferred &e);
	void settle(uint16_t reads, uint16_t writes, uint16_t live);
	void settle_all(uint16_t live);
	void settle_for_jump(uint16_t live_at_target);
	void emit_compare(const insn &in);
	void emit_alu(const insn &in);
	void emit_divmod(const insn &in);
	void emit_shift(const insn &in, shift op);
	void emit_endian(const insn &in);
	status emit_jump(uint32_t pc, uint32_t target);
	status emit_jcond(uint32_t pc, const insn &in);
	status emit_call(uint32_t pc, const insn &in);
	void emit_callx(uint32_t pc, const insn &in);
	void emit_tail_call();
	void plan_inline_calls();
	void emit_inline_call(const inline_helper &h);
	void emit_status_check();
	mem address(uint32_t pc, uint8_t base, int16_t off, uint32_t size,
		    bool write);
	void emit_atomic(uint32_t pc, const insn &in);

	label pc_label(uint32_t pc) const
	{
		return pc;
	}
	int function_at(uint32_t pc) const
	{
		auto it = std::lower_bound(
			funcs_.begin(), funcs_.end(), pc,
			[](const function_info &f, uint32_t v) {
				return f.start < v;
			});
		if (it == funcs_.end() || it->start != pc)
			return -1;
		return static_cast<int>(it - funcs_.begin());
	}

	const program &prog_;
	features feat_;
	const uint64_t *callx_table_;
	size_t callx_count_;
	uint32_t n_;
	assembler as_;
	std::vector<function_info> funcs_;
	std::vector<bool> jump_target_; // by pc
	// By pc of an instruction's first slot: bit r set when eBPF register
	// r may be read after the instruction, before it is written again.
	std::vector<uint16_t> live_out_;
	std::vector<uint16_t> live_in_; // live before the instruction
	// By pc: already emitted by a peephole at an earlier pc (this pass).
	std::vector<bool> consumed_;
	std::vector<deferred> pend_; // within the current function
	std::vector<bool> loop_head_; // by pc: the target of a backward jump
	// By pc of a lddw: the host register that holds its value for the
	// whole function, if one does.
	std::vector<std::optional<reg>> const_host_;
	// By pc of a helper call: the inline form it is emitted as, if any
	// (plan_inline_calls).
	std::vector<std::optional<inline_helper>> inline_at_;
	std::vector<std::function<void()>> cold_;
	// Labels after the n_ pc labels and the function entries.
	label l_tramp_ = 0, l_tramp_probe_ = 0, l_unwind_ = 0, l_eloop_ = 0,
	      l_callx_bad_ = 0, l_region_slow_ = 0;
	uint32_t n_fixed_labels_ = 0;
};

status codegen::plan_functions()
{
	std::vector<uint32_t> starts = prog_.function_starts;
	starts.push_back(0);
	// Local call targets are function starts whether or not the caller of
	// the factory listed them.
	for (uint32_t pc = 0; pc < n_; pc++) {
		const insn &in = prog_.insns[pc];
		if (in.code == (BPF_JMP | BPF_CALL) &&
		    in.src_reg == BPF_PSEUDO_CALL) {
			int64_t t = int64_t(pc) + 1 + in.imm;
			if (t < 0 || t >= n_)
				return fail(EINVAL,
					    at_pc(pc, "call target " + std::to_string(t) +
						  " outside the program"));
			starts.push_back(static_cast<uint32_t>(t));
		}
	}
	jump_target_.assign(n_, false);
	loop_head_.assign(n_, false);
	// depth[pc]: how many backward jumps span pc (target <= pc <= jump),
	// by differences: +1 at each target, -1 after each jump.
	std::vector<uint32_t> depth(n_ + 1, 0);
	for (uint32_t pc = 0; pc < n_; pc++) {
		const insn &in = prog_.insns[pc];
		const insn_kind k = opcode_table[in.code].kind;
		int64_t t = -1;
		if (k == insn_kind::jcond || k == insn_kind::ja)
			t = int64_t(pc) + 1 + in.off;
		else if (k == insn_kind::ja32)
			t = int64_t(pc) + 1 + in.imm;
		if (t >= 0 && t < n_) {
			jump_target_[static_cast<size_t>(t)] = true;
			if (t <= pc) {
				loop_head_[static_cast<size_t>(t)] = true;
				depth[static_cast<size_t>(t)]++;
				depth[pc + 1]--;
			}
		}
	}
	for (uint32_t pc = 1; pc < n_; pc++)
		depth[pc] += depth[pc - 1];
	std::sort(starts.begin(), starts.end());
	starts.erase(std::unique(starts.begin(), starts.end()), starts.end());
	if (starts.back() >= n_)
		return fail(EINVAL, at_pc(starts.back(),
					  "function start outside the program"));

	funcs_.clear();
	const_host_.assign(n_, std::nullopt);
	for (size_t i = 0; i < starts.size(); i++) {
		function_info f;
		f.start = starts[i];
		f.end = i + 1 < starts.size() ? starts[i + 1] : n_;
		uint16_t writes = 0;
		for (uint32_t pc = f.start; pc < f.end; pc++)
			writes |= register_use(prog_.insns[pc]).writes;
		for (uint8_t r = 6; r <= 9; r++)
			if (writes & (1u << r))
				f.saved.push_back(host(r));
		plan_constants(f, depth);
		// At entry rsp is 8 mod 16 (the return address); an odd number
		// of pushes realigns it.
		f.pad = f.saved.size() % 2 == 0;
		f.entry = n_ + static_cast<label>(i);
		funcs_.push_back(std::move(f));
	}
	compute_liveness();
	plan_inline_calls();
	const label base = n_ + static_cast<label>(funcs_.size());
	l_tramp_ = base;
	l_tramp_probe_ = base + 1;
	l_unwind_ = base + 2;
	l_eloop_ = base + 3;
	l_callx_bad_ = base + 4;
	l_region_slow_ = base + 5;
	n_fixed_labels_ = base + 6;
	return {};
}

// Chooses f.consts, pushes the callee-saved ones on f.saved and marks every
// lddw of f whose value got a register in const_host_. `depth` is how many
// loops hold each pc; a value weighs the sum over its lddws, so one loaded
// in an inner loop goes first, and one that no loop loads gets no register.
void codegen::plan_constants(function_info &f, const std::vector<uint32_t> &depth)
{
	uint16_t named = 0;
	for (uint32_t pc = f.start; pc < f.end; pc++) {
		const reg_use u = register_use(prog_.insns[pc]);
		named |= u.reads | u.writes | u.clobbers;
		if (opcode_table[prog_.insns[pc].code].kind == insn_kind::lddw)
			pc++;
	}
	std::vector<reg> spare;
	for (int r : { 5, 4, 3, 2, 1, 6, 7, 8, 9 })
		if (!(named & bit(static_cast<uint8_t>(r))))
			spare.push_back(host(static_cast<uint8_t>(r)));
	if (spare.empty())
		return;

	struct candidate {
		uint64_t value;
		uint64_t weight;
	};
	std::vector<candidate> found; // in order of first lddw
	auto value_at = [&](uint32_t pc) {
		return uint64_t(uint32_t(prog_.insns[pc].imm)) |
		       uint64_t(uint32_t(prog_.insns[pc + 1].imm)) << 32;
	};
	auto is_lddw = [&](uint32_t pc) {
		return opcode_table[prog_.insns[pc].code].kind == insn_kind::lddw &&
		       pc + 1 < f.end;
	};
	for (uint32_t pc = f.start; pc < f.end; pc++) {
		if (!is_lddw(pc))
			continue;
		const uint64_t v = value_at(pc);
		auto it = std::find_if(found.begin(), found.end(),
				       [&](const candidate &c) { return c.value == v; });
		if (it == found.end())
			it = found.insert(found.end(), candidate{ v, 0 });
		it->weight += depth[pc];
		pc++;
	}
	std::stable_sort(found.begin(), found.end(),
			 [](const candidate &a, const candidate &b) {
				 return a.weight > b.weight;
			 });
	for (const candidate &c : found) {
		if (c.weight == 0 || f.consts.size() == spare.size())
			break;
		const reg r = spare[f.consts.size()];
		f.consts.emplace_back(c.value, r);
		if (r == rbx || r == r13 || r == r14 || r == r15)
			f.saved.push_back(r);
	}
	for (uint32_t pc = f.start; pc < f.end; pc++) {
		if (!is_lddw(pc))
			continue;
		for (const auto &[v, r] : f.consts)
			if (v == value_at(pc))
				const_host_[pc] = r;
		pc++;
	}
}

result<generated_code> codegen::run()
{
	if (n_ == 0)
		return fail(EINVAL, "jit: empty program");
	BPFTIME_TRY(plan_functions());
	for (;;) {
		as_.begin_pass(n_fixed_labels_);
		cold_.clear();
		consumed_.assign(n_, false);

		BPFTIME_TRY(emit_pass());
		if (as_.end_pass())
			break;
	}
	generated_code out;
	out.code = as_.code();
	out.entry_offset = as_.offset_of(l_tramp_);
	out.probe_entry_offset = as_.offset_of(l_tramp_probe_);
	for (const function_info &f : funcs_)
		out.functions.emplace_back(f.start, as_.offset_of(f.entry));
	return out;
}

status codegen::emit_pass()
{
	emit_trampoline_and_stubs();
	for (const function_info &f : funcs_) {
		emit_prologue(f);
		pend_.clear();
		for (uint32_t pc = f.start; pc < f.end; pc++) {
			if (pc != f.start) {
				// Every path into a jump target finds the
				// registers computed.
				if (jump_target_[pc])
					settle_all(live_in_[pc]);
				// Loops start on a 64-byte line. Measured on
				// Zen 4 (bench/suites/vm.mjs): a small loop runs
				// up to twice as fast there as at other offsets
				// (the 16- and 32-byte alignments of compilers
				// are not enough); the nops run once per entry.
				if (loop_head_[pc])
					as_.align(64);
				as_.bind(pc_label(pc));
			}
			if (consumed_[pc])
				continue;
			if (uint32_t n = emit_fused(pc, f)) {
				// The fused instructions are no jump targets;
				// their labels are bound all the same.
				while (--n)
					as_.bind(pc_label(++pc));
				continue;
			}
			BPFTIME_TRY(emit_one(pc, f));
			if (opcode_table[prog_.insns[pc].code].kind ==
			    insn_kind::lddw) {
				// The second slot is no jump target (verifier),
				// but every pc label is bound.
				if (++pc < n_)
					as_.bind(pc_label(pc));
			}
		}
	}
	for (size_t i = 0; i < cold_.size(); i++)
		cold_[i]();
	return {};
}


// The trampoline and the probe entry (see runtime.hpp), and the out-of-line
// paths the functions jump to: unwind, ELOOP, a bad callx, a region check.
void codegen::emit_trampoline_and_stubs()
{
	// The callee-saved host registers this run may change: rbp (r10) and
	// r12 (run_ctx), and those of r6-r9 and the constants that a function
	// writes. The functions restore theirs on return, but an unwind from
	// any depth skips their epilogues. Where the non-strict verifier lets
	// a program read r6-r9 unwritten, they are zeroed here, so saved too.
	const bool zero_regs = !prog_.options.strict_verifier;
	// A program that calls native code (a helper, a kfunc, callx) may be
	// ended inside it by a fault (end_run_after_fault, vm.hpp): that code
	// may have changed any callee-saved register before it faulted, and
	// its epilogue never runs, so all six are saved here. A program that
	// calls nothing can only fault in its own code, which changes no more
	// than the registers below.
	const bool calls_native = calls_native_code();
	std::vector<reg> saved = { rbp, r12 };
	for (reg r : { rbx, r13, r14, r15 }) {
		bool used = zero_regs || calls_native;
		for (const function_info &f : funcs_)
			used = used || std::find(f.saved.begin(), f.saved.end(),
						 r) != f.saved.end();
		if (used)
			saved.push_back(r);
	}
	// rsp is 8 mod 16 after the return address: an even number of pushes
	// needs one more slot.
	const bool pad = saved.size() % 2 == 0;
	auto push_saved = [&] {
		for (reg r : saved)
			as_.push(r);
	};
	auto pop_saved_and_ret = [&] {
		for (auto it = saved.rbegin(); it != saved.rend(); ++it)
			as_.pop(*it);
		as_.ret();
	};
	// r0 and r6-r9 start at 0, as in the interpreter: a program that the
	// non-strict verifier let read them sees no host values.
	auto zero = [&](std::initializer_list<reg> regs) {
		if (zero_regs)
			for (reg r : regs)
				as_.mov_imm(r, 0);
	};

	as_.bind(l_tramp_);
	push_saved();
	if (pad)
		as_.alu_ri(alu::sub, width::b64, rsp, 8);
	as_.mov(width::b64, r12, rdi);
	as_.store(width::b64, { r12, rc_saved_rsp }, rsp);
	as_.mov(width::b64, r11, rsi);
	as_.load(width::b64, rbp, { r12, rc_fp_init });
	const reg arg_regs[5] = { rdi, rsi, rdx, rcx, r8 };
	for (int i = 0; i < 5; i++)
		as_.load(width::b64, arg_regs[i], { r12, rc_args + 8 * i });
	zero({ rax, rbx, r13, r14, r15 });
	as_.call(r11);
	if (pad)
		as_.alu_ri(alu::add, width::b64, rsp, 8);
	pop_saved_and_ret();

	// The probe entry (see probe_entry_fn): a whole run of the main
	// function, its probe_frame and stack area in this frame.
	{
		constexpr int32_t frame_bytes =
			(stack_area_size + sizeof(probe_frame) + 15) / 16 * 16;
		const int32_t frame = frame_bytes + (pad ? 8 : 0);
		const label failed = as_.new_label(), done = as_.new_label();
		as_.bind(l_tramp_probe_);
		push_saved();
		as_.alu_ri(alu::sub, width::b64, rsp, frame);
		as_.lea(r12, { rsp, stack_area_size });
		as_.store(width::b64, { r12, pf_err }, rcx);
		as_.store(width::b64, { r12, pf_self }, rdi);
		as_.store(width::b64, { r12, rc_ctx }, rsi);
		as_.store(width::b64, { r12, rc_ctx_len }, rdx);
		as_.store_imm(width::b32, { r12, rc_status }, 0);
		as_.lea(rbp, { rsp, 2 * MAX_BPF_STACK });
		as_.store(width::b64, { r12, rc_call_fp_min }, rbp);
		// r10 of the main function is the top of the stack area, where
		// the frame starts: its prologue subtracts one frame.
		as_.lea(rbp, { r12, MAX_BPF_STACK });
		as_.store(width::b64, { r12, rc_saved_rsp }, rsp);
		// The run's run_ctx where a fault inside a helper finds it
		// (r12 may be the helper's by then): this run is in no chain.
		const std::optional<int32_t> tls =
			calls_native ? probe_rc_tls_offset() : std::nullopt;
		if (tls)
			as_.store_fs64(*tls, r12);
		as_.mov(width::b64, rdi, rsi);
		as_.mov(width::b64, rsi, rdx);
		zero({ rax, rdx, rcx, r8, rbx, r13, r14, r15 });
		as_.call(funcs_.front().entry);
		if (tls)
			as_.store_fs64_zero(*tls);
		as_.alu_mi(alu::cmp, width::b32, { r12, rc_status }, 0);
		as_.jcc(cond::ne, failed);
		as_.load(width::b64, rcx, { r12, pf_err });
		as_.store_imm(width::b32, { rcx, 0 }, 0);
		as_.bind(done);
		as_.alu_ri(alu::add, width::b64, rsp, frame);
		pop_saved_and_ret();
		as_.bind(failed);
		as_.mov(width::b64, rdi, r12);
		as_.mov(width::b64, rsi, rax);
		as_.mov_imm(rax, reinterpret_cast<uint64_t>(&probe_failed));
		as_.call(rax);
		as_.jmp(done);
	}

	// Ends the run from any depth: rc->status already says why. The
	// return address of the entry's call to the main function is still
	// in the slot below saved_rsp, so a ret lands after that call.
	as_.bind(l_unwind_);
	as_.load(width::b64, rsp, { r12, rc_saved_rsp });
	as_.lea(rsp, { rsp, -8 });
	as_.ret();

	// r10d = pc of the local call whose frame would not fit.
	as_.bind(l_eloop_);
	as_.store_imm(width::b32, { r12, rc_status }, ELOOP);
	as_.store(width::b32, { r12, rc_err_pc }, r10);
	as_.jmp(l_unwind_);

	// r10d = pc of the callx, r11 = the id it found no helper for.
	as_.bind(l_callx_bad_);
	as_.store_imm(width::b32, { r12, rc_status }, EINVAL);
	as_.store(width::b32, { r12, rc_err_pc }, r10);
	as_.store(width::b64, { r12, rc_err_addr }, r11);
	as_.jmp(l_unwind_);

	// Called with r11 = address, r10 = access_info; returns with every
	// eBPF register intact, or unwinds on a fault. The eBPF registers that
	// the C call may clobber are r0-r5; r11 is the caller's address.
	as_.bind(l_region_slow_);
	if (prog_.options.bounds_check) {
		const reg keep[7] = { rax, rdi, rsi, rdx, rcx, r8, r11 };
		for (reg r : keep)
			as_.push(r); // 7 pushes + return address: aligned
		as_.mov(width::b64, rdi, r12);
		as_.mov(width::b64, rsi, r11);
		as_.mov(width::b64, rdx, r10);
		as_.mov_imm(rax, reinterpret_cast<uint64_t>(&region_check));
		as_.call(rax);
		as_.test_rr(width::b32, rax, rax);
		as_.jcc(cond::e, l_unwind_);
		for (int i = 6; i >= 0; i--)
			as_.pop(keep[i]);
		as_.ret();
	}
}

bool codegen::calls_native_code() const
{
	for (size_t pc = 0; pc < prog_.insns.size(); pc++) {
		const insn &i = prog_.insns[pc];
		const insn_kind k = opcode_table[i.code].kind;
		if (k == insn_kind::callx ||
		    (k == insn_kind::call && i.src_reg != BPF_PSEUDO_CALL))
			return true;
		if (k == insn_kind::lddw)
			pc++;
	}
	return false;
}

void codegen::emit_prologue(const function_info &f)
{
	as_.bind(f.entry);
	for (reg r : f.saved)
		as_.push(r);
	if (f.pad)
		as_.push(r12);
	for (const auto &[v, r] : f.consts)
		as_.mov_imm(r, v);
	as_.alu_ri(alu::sub, width::b64, rbp, MAX_BPF_STACK);
	as_.bind(pc_label(f.start));
}

void codegen::emit_epilogue(const function_info &f)
{
	as_.alu_ri(alu::add, width::b64, rbp, MAX_BPF_STACK);
	if (f.pad)
		as_.pop(r12);
	for (auto it = f.saved.rbegin(); it != f.saved.rend(); ++it)
		as_.pop(*it);
	as_.ret();
}

// Liveness of r0-r9 after each instruction, per function, by the usual
// backward fixpoint (live_in = uses | live_out & ~defs). Calls follow the
// eBPF contract: a helper, kfunc or local call reads r1-r5 (which of them
// it takes is not known here), writes r0 and scratches r1-r5; exit reads r0.
// r6-r9 live across calls. A function's caller is not followed: the values
// a callee gets are its r1-r5, which are uses of the call instruction.
void codegen::compute_liveness()
{
	constexpr uint16_t r1_r5 = 0x3e;
	live_out_.assign(n_, 0);
	live_in_.assign(n_, 0);
	std::vector<uint16_t> &live_in = live_in_;
	std::vector<uint32_t> starts; // instruction starts of one function
	for (const function_info &f : funcs_) {
		starts.clear();
		for (uint32_t pc = f.start; pc < f.end; pc++) {
			starts.push_back(pc);
			if (opcode_table[prog_.insns[pc].code].kind ==
			    insn_kind::lddw)
				pc++;
		}
		auto in_of = [&](int64_t t) -> uint16_t {
			return t >= f.start && t < f.end ?
				       live_in[static_cast<size_t>(t)] :
				       0;
		};
		for (bool changed = true; changed;) {
			changed = false;
			for (auto it = starts.rbegin(); it != starts.rend(); ++it) {
				const uint32_t pc = *it;
				const insn &in = prog_.insns[pc];
				const insn_kind k = opcode_table[in.code].kind;
				uint16_t out = 0;
				switch (k) {
				case insn_kind::ja:
					out = in_of(int64_t(pc) + 1 + in.off);
					break;
				case insn_kind::ja32:
					out = in_of(int64_t(pc) + 1 + in.imm);
					break;
				case insn_kind::jcond:
					out = in_of(pc + 1) |
					      in_of(int64_t(pc) + 1 + in.off);
					break;
				case insn_kind::exit:
					break;
				case insn_kind::lddw:
					out = in_of(pc + 2);
					break;
				default:
					out = in_of(pc + 1);
				}
				const reg_use u = register_use(in);
				uint16_t uses = u.reads;
				if (k == insn_kind::call || k == insn_kind::callx)
					uses |= r1_r5;
				const uint16_t in_set = static_cast<uint16_t>(
					uses | (out & ~(u.writes | u.clobbers)));
				if (out != live_out_[pc] || in_set != live_in[pc]) {
					live_out_[pc] = out;
					live_in[pc] = in_set;
					changed = true;
				}
			}
		}
	}
}

uint32_t codegen::emit_fused(uint32_t pc, const function_info &f)
{
	if (uint32_t n = emit_branch_over_jump(pc, f))
		return n;
	if (uint32_t n = emit_sub_add_imm(pc, f))
		return n;
	return emit_deferred(pc, f);
}

void codegen::materialize(const deferred &e)
{
	if (e.copy)
		as_.mov(e.w, host(e.d), e.addr.base);
	else
		as_.lea(host(e.d), e.addr);
}

// Before an instruction that reads `reads` and writes `writes` (eBPF
// register bits), with `live` the registers live before it: a deferred
// value it reads, or whose deps it overwrites while the value is still
// wanted, is computed now; one it overwrites is forgotten.
void codegen::settle(uint16_t reads, uint16_t writes, uint16_t live)
{
	size_t keep = 0;
	for (size_t i = 0; i < pend_.size(); i++) {
		const deferred &e = pend_[i];
		const uint16_t d = bit(e.d);
		if (reads & d) {
			materialize(e);
		} else if (writes & e.deps) {
			if (live & d)
				materialize(e);
		} else if (!(writes & d)) {
			pend_[keep++] = e;
		}
	}
	pend_.resize(keep);
}

void codegen::settle_all(uint16_t live)
{
	for (const deferred &e : pend_)
		if (live & bit(e.d))
			materialize(e);
	pend_.clear();
}

// Before a jump: what the target reads is computed on this path; the rest
// stays deferred for the fall-through (if any).
void codegen::settle_for_jump(uint16_t live_at_target)
{
	settle(live_at_target, 0, 0);
}

// One instruction with its deferred values settled first.
status codegen::emit_one(uint32_t pc, const function_info &f)
{
	if (emit_folded_access(pc))
		return {};
	const insn &in = prog_.insns[pc];
	const insn_kind k = opcode_table[in.code].kind;
	const reg_use u = register_use(in);
	switch (k) {
	case insn_kind::call:
	case insn_kind::callx:
	case insn_kind::exit:
	case insn_kind::atomic:
		// A call reads r1-r5 (and may end the run); everything live
		// is computed first.
		settle_all(live_in_[pc] | u.reads);
		break;
	case insn_kind::ja:
	case insn_kind::ja32: {
		const int64_t t = int64_t(pc) + 1 +
				  (k == insn_kind::ja ? in.off : in.imm);
		settle_all(t >= 0 && t < n_ ? live_in_[size_t(t)] : 0xffff);
		break;
	}
	case insn_kind::jcond: {
		const int64_t t = int64_t(pc) + 1 + in.off;
		settle(u.reads, 0, live_in_[pc]);
		settle_for_jump(t >= 0 && t < n_ ? live_in_[size_t(t)] : 0xffff);
		break;
	}
	default:
		settle(u.reads, static_cast<uint16_t>(u.writes | u.clobbers),
		       live_in_[pc]);
	}
	return emit_insn(pc, f);
}

// A load or store through a register whose value is a deferred address or
// 64-bit copy: the address goes into the operand. False when the
// instruction is not one.
bool codegen::emit_folded_access(uint32_t pc)
{
	const insn &m = prog_.insns[pc];
	const insn_kind k = opcode_table[m.code].kind;
	const bool load = k == insn_kind::ldx || k == insn_kind::ldxsx;
	if (!load && k != insn_kind::st && k != insn_kind::stx)
		return false;
	// A checked access needs its address in r11 (address()).
	if (prog_.options.bounds_check)
		return false;
	const uint8_t through = load ? m.src_reg : m.dst_reg;
	auto it = std::find_if(pend_.begin(), pend_.end(), [&](const deferred &e) {
		return e.d == through && (!e.copy || e.w == width::b64);
	});
	if (it == pend_.end())
		return false;
	// A store of the address itself needs its value; a load into a
	// register the address is made of (other than d) would leave d
	// uncomputable.
	if (k == insn_kind::stx && m.src_reg == through)
		return false;
	if (load && m.dst_reg != through && (it->deps & bit(m.dst_reg)))
		return false;
	const int64_t disp = int64_t(it->addr.disp) + m.off;
	if (disp < INT32_MIN || disp > INT32_MAX)
		return false;
	mem at = it->addr;
	at.disp = static_cast<int32_t>(disp);
	const deferred self = *it;
	pend_.erase(it);
	const uint16_t reads = k == insn_kind::stx ? bit(m.src_reg) : 0;
	const uint16_t writes = load ? bit(m.dst_reg) : 0;
	settle(reads, writes, live_in_[pc]);
	const width w = access_width(m.code);
	switch (k) {
	case insn_kind::ldx:
		as_.load(w, host(m.dst_reg), at);
		break;
	case insn_kind::ldxsx:
		as_.load_sx(w, host(m.dst_reg), at);
		break;
	case insn_kind::st:
		as_.store_imm(w, at, m.imm);
		break;
	default:
		as_.store(w, at, host(m.src_reg));
	}
	if (!(load && m.dst_reg == through))
		pend_.push_back(self);
	return true;
}

// `if cond goto +1; goto L` (clang's loop latch) as `if !cond goto L`: the
// x86 condition codes come in pairs that differ in the low bit.
uint32_t codegen::emit_branch_over_jump(uint32_t pc, const function_info &f)
{
	const insn &j = prog_.insns[pc];
	if (opcode_table[j.code].kind != insn_kind::jcond || j.off != 1 ||
	    pc + 2 >= f.end || jump_target_[pc + 1])
		return 0;
	const insn &g = prog_.insns[pc + 1];
	int64_t target;
	if (opcode_table[g.code].kind == insn_kind::ja)
		target = int64_t(pc) + 2 + g.off;
	else if (opcode_table[g.code].kind == insn_kind::ja32)
		target = int64_t(pc) + 2 + g.imm;
	else
		return 0;
	if (target < f.start || target >= f.end)
		return 0; // emit_insn reports it
	settle(register_use(j).reads, 0, live_in_[pc]);
	settle_for_jump(live_in_[static_cast<size_t>(target)]);
	emit_compare(j);
	const cond c = jump_cond(bpf_op(j.code));
	as_.jcc(static_cast<cond>(static_cast<uint8_t>(c) ^ 1),
		pc_label(static_cast<uint32_t>(target)));
	return 2;
}

// `d -= s; d += imm` with s dead afterwards (clang's `d += imm - s`):
// `s = imm - s; d += s` puts one add on d's chain instead of two.
uint32_t codegen::emit_sub_add_imm(uint32_t pc, const function_info &f)
{
	const insn &a = prog_.insns[pc];
	const uint8_t cls = bpf_class(a.code);
	if ((cls != BPF_ALU && cls != BPF_ALU64) ||
	    a.code != (cls | BPF_SUB | BPF_X) || a.off != 0 ||
	    a.src_reg == a.dst_reg || pc + 1 >= f.end || jump_target_[pc + 1])
		return 0;
	const insn &b = prog_.insns[pc + 1];
	if (b.code != (cls | BPF_ADD | BPF_K) || b.dst_reg != a.dst_reg ||
	    b.off != 0 || (live_out_[pc + 1] & bit(a.src_reg)))
		return 0;
	const reg d = host(a.dst_reg), src = host(a.src_reg);
	// s is written here and not in the program: r6-r9 must stay the
	// caller's unless the prologue saved them.
	if (a.src_reg >= 6 &&
	    std::find(f.saved.begin(), f.saved.end(), src) == f.saved.end())
		return 0;
	const uint16_t both = static_cast<uint16_t>(bit(a.dst_reg) | bit(a.src_reg));
	settle(both, both, live_in_[pc]);
	const width w = cls == BPF_ALU64 ? width::b64 : width::b32;
	as_.neg(w, src);
	as_.alu_ri(alu::add, w, src, b.imm);
	as_.alu_rr(alu::add, w, d, src);
	return 2;
}

// Starts a deferred value, or computes at once what has a shorter form:
//   `d = s` (64 or 32 bits)                  -> deferred copy
//   `d = s; d += t|imm` (or -= imm), 64 bits -> deferred address
//   `d = imm64; d += t|imm` (or -= imm)      -> d loaded, deferred address
//   `wd = ws; wd += wt|imm` (or -= imm)      -> one 32-bit lea
//   `d = s; d += t; ...; t = d`              -> `t += s`, deferred copy d = t
// A lddw of a value that has a register (see "Constants") is `d = s` with s
// that register. Returns how many instructions it took (a lddw counts
// two), 0 when none of these is there.
uint32_t codegen::emit_deferred(uint32_t pc, const function_info &f)
{
	const insn &a = prog_.insns[pc];
	const bool from_imm = opcode_table[a.code].kind == insn_kind::lddw;
	const bool mov64 = a.code == (BPF_ALU64 | BPF_MOV | BPF_X) && a.off == 0;
	const bool mov32 = a.code == (BPF_ALU | BPF_MOV | BPF_X) && a.off == 0;
	if (!from_imm && !mov64 && !mov32)
		return 0;
	if (!from_imm && a.src_reg == a.dst_reg)
		return 0;
	const reg d = host(a.dst_reg);
	const uint16_t d_bit = bit(a.dst_reg);
	const width aw = mov32 ? width::b32 : width::b64;
	const std::optional<reg> kept = from_imm ? const_host_[pc] : std::nullopt;
	// A lddw whose value has no register is loaded into d first.
	const bool loaded = from_imm && !kept;
	const reg src = kept ? *kept : host(a.src_reg);
	const uint16_t src_bit = kept ? 0 : bit(a.src_reg);
	const uint32_t b_pc = pc + (from_imm ? 2 : 1);
	auto defer_copy = [&]() -> uint32_t {
		settle(src_bit, d_bit, live_in_[pc]);
		deferred e;
		e.d = a.dst_reg;
		e.deps = src_bit;
		e.copy = true;
		e.w = aw;
		e.addr = { src, 0 };
		pend_.push_back(e);
		return b_pc - pc;
	};

	if (b_pc >= f.end || jump_target_[b_pc])
		return loaded ? 0 : defer_copy();
	const insn &b = prog_.insns[b_pc];
	const uint8_t cls = mov32 ? BPF_ALU : BPF_ALU64;
	mem addr{ loaded ? d : src, 0 };
	uint16_t deps = loaded ? d_bit : src_bit;
	if (b.dst_reg != a.dst_reg) {
		return loaded ? 0 : defer_copy();
	} else if (b.code == (cls | BPF_ADD | BPF_X)) {
		// `d += d` after the move doubles its value.
		addr.has_index = true;
		addr.index = b.src_reg == a.dst_reg ? addr.base : host(b.src_reg);
		if (b.src_reg != a.dst_reg)
			deps |= bit(b.src_reg);
	} else if (b.code == (cls | BPF_ADD | BPF_K)) {
		addr.disp = b.imm;
	} else if (b.code == (cls | BPF_SUB | BPF_K) && b.imm != INT32_MIN) {
		addr.disp = -b.imm;
	} else {
		return loaded ? 0 : defer_copy();
	}

	// `d = s; d += t; ...; t = d`, the shape of `t += s` computed in a
	// copy (clang's `b += a` when b ends in r0): `t += s` then d = t
	// deferred leaves t's loop-carried chain one add long, and the copy
	// can often leave the loop. The few instructions in between may not
	// touch d, s or t; the move back to t is marked consumed.
	if (!from_imm && addr.has_index && b.src_reg != a.dst_reg) {
		for (uint32_t j = b_pc + 1;
		     j < f.end && j <= b_pc + 4 && !jump_target_[j]; j++) {
			const insn &c = prog_.insns[j];
			if (c.code == a.code && c.off == 0 &&
			    c.dst_reg == b.src_reg && c.src_reg == a.dst_reg) {
				settle(deps, static_cast<uint16_t>(d_bit | bit(b.src_reg)),
				       live_in_[pc]);
				as_.alu_rr(alu::add, aw, addr.index, addr.base);
				deferred e;
				e.d = a.dst_reg;
				e.deps = bit(b.src_reg);
				e.copy = true;
				e.w = aw;
				e.addr = { addr.index, 0 };
				pend_.push_back(e);
				consumed_[j] = true;
				return 2;
			}
			const insn_kind k = opcode_table[c.code].kind;
			const reg_use u = register_use(c);
			if ((k != insn_kind::alu && k != insn_kind::neg &&
			     k != insn_kind::endian && k != insn_kind::ldx &&
			     k != insn_kind::ldxsx && k != insn_kind::st &&
			     k != insn_kind::stx) ||
			    ((u.reads | u.writes | u.clobbers) & (deps | d_bit)))
				break;
		}
	}

	if (mov32 || prog_.options.bounds_check) {
		// lea r32 keeps the low 32 bits of the sum, zero-extended: what
		// the 32-bit move and add leave. In bounds-check mode every
		// address is materialised for its check anyway.
		if (loaded)
			return 0;
		settle(deps, d_bit, live_in_[pc]);
		if (live_out_[b_pc] & d_bit)
			as_.lea(d, addr, aw);
		return b_pc + 1 - pc;
	}

	if (loaded) {
		settle(0, d_bit, live_in_[pc]);
		as_.mov_imm(d, uint64_t(uint32_t(a.imm)) |
				       uint64_t(uint32_t(prog_.insns[pc + 1].imm))
					       << 32);
		// d now holds the immediate, a dep of its own deferred value.
		settle(static_cast<uint16_t>(deps & ~d_bit), d_bit, live_in_[b_pc]);
	} else {
		settle(deps, d_bit, live_in_[pc]);
	}
	deferred e;
	e.d = a.dst_reg;
	e.deps = deps;
	e.addr = addr;
	pend_.push_back(e);
	return b_pc + 1 - pc;
}

status codegen::emit_insn(uint32_t pc, const function_info &f)
{
	const insn &in = prog_.insns[pc];
	const width w = is_64bit(in.code) ? width::b64 : width::b32;
	switch (opcode_table[in.code].kind) {
	case insn_kind::alu:
		emit_alu(in);
		return {};
	case insn_kind::neg:
		as_.neg(w, host(in.dst_reg));
		return {};
	case insn_kind::endian:
		emit_endian(in);
		return {};
	case insn_kind::jcond:
		return emit_jcond(pc, in);
	case insn_kind::ja:
		return emit_jump(pc, static_cast<uint32_t>(int64_t(pc) + 1 + in.off));
	case insn_kind::ja32:
		return emit_jump(pc, static_cast<uint32_t>(int64_t(pc) + 1 + in.imm));
	case insn_kind::call:
		return emit_call(pc, in);
	case insn_kind::callx:
		emit_callx(pc, in);
		return {};
	case insn_kind::exit:
		emit_epilogue(f);
		return {};
	case insn_kind::lddw: {
		if (pc + 1 >= n_)
			return fail(EINVAL, at_pc(pc, "lddw without its second slot"));
		if (const_host_[pc]) {
			as_.mov(width::b64, host(in.dst_reg), *const_host_[pc]);
			return {};
		}
		uint64_t v = uint64_t(uint32_t(in.imm)) |
			     uint64_t(uint32_t(prog_.insns[pc + 1].imm)) << 32;
		as_.mov_imm(host(in.dst_reg), v);
		return {};
	}
	case insn_kind::ldx: {
		mem m = address(pc, in.src_reg, in.off, access_size(in.code), false);
		as_.load(access_width(in.code), host(in.dst_reg), m);
		return {};
	}
	case insn_kind::ldxsx: {
		mem m = address(pc, in.src_reg, in.off, access_size(in.code), false);
		as_.load_sx(access_width(in.code), host(in.dst_reg), m);
		return {};
	}
	case insn_kind::st: {
		mem m = address(pc, in.dst_reg, in.off, access_size(in.code), true);
		as_.store_imm(access_width(in.code), m, in.imm);
		return {};
	}
	case insn_kind::stx: {
		mem m = address(pc, in.dst_reg, in.off, access_size(in.code), true);
		as_.store(access_width(in.code), m, host(in.src_reg));
		return {};
	}
	case insn_kind::atomic:
		if (!jit_emits_atomic(in.imm))
			return fail(EINVAL, at_pc(pc, "invalid atomic operation " +
						  hex(uint32_t(in.imm))));
		emit_atomic(pc, in);
		return {};
	case insn_kind::invalid:
		break;
	}
	return fail(EINVAL, at_pc(pc, "invalid opcode " + hex(in.code)));
}

void codegen::emit_alu(const insn &in)
{
	const bool is64 = bpf_class(in.code) == BPF_ALU64;
	const width w = is64 ? width::b64 : width::b32;
	const reg dst = host(in.dst_reg);
	const bool x = bpf_src(in.code) == BPF_X;
	const reg src = host(in.src_reg);
	const int32_t imm = in.imm;

	auto binary = [&](alu op) {
		if (x)
			as_.alu_rr(op, w, dst, src);
		else
			as_.alu_ri(op, w, dst, imm);
	};

	switch (bpf_op(in.code)) {
	case BPF_ADD:
		return binary(alu::add);
	case BPF_SUB:
		return binary(alu::sub);
	case BPF_OR:
		return binary(alu::or_);
	case BPF_AND:
		return binary(alu::and_);
	case BPF_XOR:
		return binary(alu::xor_);
	case BPF_MUL:
		if (x)
			as_.imul_rr(w, dst, src);
		else
			as_.imul_rri(w, dst, dst, imm);
		return;
	case BPF_DIV:
	case BPF_MOD:
		return emit_divmod(in);
	case BPF_LSH:
		return emit_shift(in, shift::shl);
	case BPF_RSH:
		return emit_shift(in, shift::shr);
	case BPF_ARSH:
		return emit_shift(in, shift::sar);
	case BPF_MOV:
		if (!x) {
			// ALU64 sign-extends imm to 64 bits, ALU zero-extends
			// its 32-bit result.
			as_.mov_imm(dst, is64 ? uint64_t(int64_t(imm))
					      : uint64_t(uint32_t(imm)));
			return;
		}
		switch (in.off) {
		case 8:
			as_.movsx(w, dst, src, width::b8);
			return;
		case 16:
			as_.movsx(w, dst, src, width::b16);
			return;
		case 32:
			if (is64) {
				as_.movsx(width::b64, dst, src, width::b32);
				return;
			}
			break;
		}
		// A 32-bit mov onto itself still clears the upper half.
		if (!is64 || dst != src)
			as_.mov(w, dst, src);
		return;
	}
}

// dst = dst / src or dst % src with RFC 9669's answers where x86 has none:
// x / 0 = 0, x % 0 = x (zero-extended in 32-bit), and for the signed forms
// INT_MIN / -1 = INT_MIN, INT_MIN % -1 = 0 (idiv would raise #DE). div needs
// rdx:rax, which hold r3 and r0: they are parked in r9/r10 around it.
void codegen::emit_divmod(const insn &in)
{
	const bool is64 = bpf_class(in.code) == BPF_ALU64;
	const width w = is64 ? width::b64 : width::b32;
	const reg dst = host(in.dst_reg);
	const bool x = bpf_src(in.code) == BPF_X;
	const bool is_mod = bpf_op(in.code) == BPF_MOD;
	const bool sign = in.off == 1;

	if (!x) {
		const uint64_t divisor = is64 ? uint64_t(int64_t(in.imm))
					      : uint64_t(uint32_t(in.imm));
		if (divisor == 0) {
			if (!is_mod)
				as_.mov_imm(dst, 0);
			else if (!is64)
				as_.mov(width::b32, dst, dst);
			return;
		}
		if (sign && in.imm == -1) {
			if (!is_mod)
				as_.neg(w, dst);
			else
				as_.mov_imm(dst, 0);
			return;
		}
		if (!sign && std::has_single_bit(divisor)) {
			const int k = std::countr_zero(divisor);
			if (is_mod)
				as_.alu_ri(alu::and_, w, dst,
					   static_cast<int32_t>(divisor - 1));
			else if (k != 0)
				as_.shift_ri(shift::shr, w, dst, static_cast<uint8_t>(k));
			else if (!is64)
				as_.mov(width::b32, dst, dst);
			return;
		}
		as_.mov_imm(r11, divisor);
	} else {
		as_.mov(w, r11, host(in.src_reg));
	}

	const label done = as_.new_label();
	if (x) {
		const label zero = as_.new_label();
		as_.test_rr(w, r11, r11);
		as_.jcc(cond::e, zero);
		cold_.push_back([=, this] {
			as_.bind(zero);
			if (!is_mod)
				as_.mov_imm(dst, 0);
			else if (!is64)
				as_.mov(width::b32, dst, dst);
			as_.jmp(done);
		});
		if (sign) {
			const label minus_one = as_.new_label();
			as_.alu_ri(alu::cmp, w, r11, -1);
			as_.jcc(cond::e, minus_one);
			cold_.push_back([=, this] {
				as_.bind(minus_one);
				if (!is_mod)
					as_.neg(w, dst);
				else
					as_.mov_imm(dst, 0);
				as_.jmp(done);
			});
		}
	}
	if (dst != rax)
		as_.mov(width::b64, r10, rax);
	if (dst != rdx)
		as_.mov(width::b64, r9, rdx);
	if (dst != rax)
		as_.mov(w, rax, dst);
	if (sign)
		as_.cqo(w);
	else
		as_.alu_rr(alu::xor_, width::b32, rdx, rdx);
	if (sign)
		as_.idiv(w, r11);
	else
		as_.div(w, r11);
	const reg res = is_mod ? rdx : rax;
	if (dst != res)
		as_.mov(w, dst, res);
	if (dst != rax)
		as_.mov(width::b64, rax, r10);
	if (dst != rdx)
		as_.mov(width::b64, rdx, r9);
	as_.bind(done);
}

// x86 masks shift counts to 5/6 bits exactly as RFC 9669 masks them.
void codegen::emit_shift(const insn &in, shift op)
{
	const bool is64 = bpf_class(in.code) == BPF_ALU64;
	const width w = is64 ? width::b64 : width::b32;
	const reg dst = host(in.dst_reg);
	if (bpf_src(in.code) == BPF_K) {
		const uint8_t count = static_cast<uint8_t>(in.imm & (is64 ? 63 : 31));
		if (count != 0)
			as_.shift_ri(op, w, dst, count);
		else if (!is64)
			as_.mov(width::b32, dst, dst);
		return;
	}
	const reg src = host(in.src_reg);
	if (feat_.bmi2) {
		as_.shift_x(op, w, dst, dst, src);
		return;
	}
	if (src == rcx) {
		as_.shift_cl(op, w, dst);
		return;
	}
	// The count must be in cl, which holds r4: park r4 in r11.
	as_.mov(width::b64, r11, rcx);
	as_.mov(width::b32, rcx, src);
	if (dst == rcx) {
		as_.shift_cl(op, w, r11);
	} else {
		as_.shift_cl(op, w, dst);
	}
	as_.mov(width::b64, rcx, r11);
}

void codegen::emit_endian(const insn &in)
{
	const reg dst = host(in.dst_reg);
	// ALU64 bswap and ALU to-big-endian swap on this little-endian host;
	// ALU to-little-endian only truncates.
	const bool swap = bpf_class(in.code) == BPF_ALU64 ||
			  bpf_src(in.code) == BPF_TO_BE;
	switch (in.imm) {
	case 16:
		if (swap)
			as_.shift_ri(shift::ror, width::b16, dst, 8);
		as_.movzx(dst, dst, width::b16);
		return;
	case 32:
		if (swap)
			as_.bswap(width::b32, dst);
		else
			as_.mov(width::b32, dst, dst);
		return;
	default:
		if (swap)
			as_.bswap(width::b64, dst);
		return;
	}
}

status codegen::emit_jump(uint32_t pc, uint32_t target)
{
	if (target >= n_)
		return fail(EINVAL, at_pc(pc, "jump to " + std::to_string(target) +
					  " outside the program"));
	if (target != pc + 1)
		as_.jmp(pc_label(target));
	return {};
}

status codegen::emit_jcond(uint32_t pc, const insn &in)
{
	const int64_t target = int64_t(pc) + 1 + in.off;
	if (target < 0 || target >= n_)
		return fail(EINVAL, at_pc(pc, "jump to " + std::to_string(target) +
					  " outside the program"));
	if (target == pc + 1)
		return {}; // both ways lead to the next instruction
	emit_compare(in);
	as_.jcc(jump_cond(bpf_op(in.code)), pc_label(static_cast<uint32_t>(target)));
	return {};
}

// The flags a conditional jump tests; jump_cond() names the condition.
void codegen::emit_compare(const insn &in)
{
	const width w = bpf_class(in.code) == BPF_JMP ? width::b64 : width::b32;
	const uint8_t op = bpf_op(in.code);
	const reg dst = host(in.dst_reg);
	if (bpf_src(in.code) == BPF_X) {
		if (op == BPF_JSET)
			as_.test_rr(w, dst, host(in.src_reg));
		else
			as_.alu_rr(alu::cmp, w, dst, host(in.src_reg));
	} else if (op == BPF_JSET) {
		// Only the low byte can match a mask of 0..255.
		as_.test_ri(in.imm >= 0 && in.imm <= 255 ? width::b8 : w, dst,
			    in.imm);
	} else if (in.imm == 0) {
		// Same flags as cmp dst, 0 for every condition (CF = OF = 0).
		as_.test_rr(w, dst, dst);
	} else {
		as_.alu_ri(alu::cmp, w, dst, in.imm);
	}
}

status codegen::emit_call(uint32_t pc, const insn &in)
{
	if (in.src_reg == BPF_PSEUDO_CALL) {
		const int64_t target = int64_t(pc) + 1 + in.imm;
		const int f = function_at(static_cast<uint32_t>(target));
		if (f < 0)
			return fail(EINVAL, at_pc(pc, "local call to " +
							      std::to_string(target) +
							      ", not a function"));
		as_.alu_rm(alu::cmp, width::b64, rbp, { r12, rc_call_fp_min });
		const label deep = as_.new_label();
		as_.jcc(cond::b, deep);
		cold_.push_back([this, deep, pc] {
			as_.bind(deep);
			as_.mov_imm32(r10, pc);
			as_.jmp(l_eloop_);
		});
		as_.call(funcs_[static_cast<size_t>(f)].entry);
		return {};
	}
	helper_fn fn = nullptr;
	if (in.src_reg == BPF_PSEUDO_KFUNC_CALL) {
		auto it = prog_.kfuncs.find(static_cast<uint32_t>(in.imm));
		if (it != prog_.kfuncs.end())
			fn = it->second.fn;
		if (!fn)
			return fail(EINVAL, at_pc(pc, "call to unknown kfunc, BTF id " +
						  std::to_string(uint32_t(in.imm))));
	} else {
		const uint32_t id = static_cast<uint32_t>(in.imm);
		if (id == detail::BPF_FUNC_tail_call) {
			emit_tail_call();
			return {};
		}
		if (inline_at_[pc]) {
			emit_inline_call(*inline_at_[pc]);
			return {};
		}
		if (id < prog_.helpers.size())
			fn = prog_.helpers[id].fn;
		if (!fn)
			return fail(EINVAL, at_pc(pc, "call to unknown helper " +
							      std::to_string(id)));
	}
	// r1-r5 already are rdi rsi rdx rcx r8 and r0 is rax; the target may
	// be anywhere in the address space, hence the absolute form.
	as_.mov_imm(rax, reinterpret_cast<uint64_t>(fn));
	as_.call(rax);
	emit_status_check();
	return {};
}

// The offset from the thread pointer of the cpu_id field of glibc's struct
// rseq for this thread (__rseq_offset + 4, as include/uapi/linux/rseq.h lays
// it out), or -1 when glibc registers no rseq area (__rseq_size 0, or a
// glibc before 2.35 without the symbols).
int64_t rseq_cpu_offset()
{
	static const int64_t off = [] {
		const auto *size = static_cast<const unsigned int *>(
			dlsym(RTLD_DEFAULT, "__rseq_size"));
		const auto *offset = static_cast<const ptrdiff_t *>(
			dlsym(RTLD_DEFAULT, "__rseq_offset"));
		if (!size || !offset || *size == 0)
			return int64_t(-1);
		const int64_t o = int64_t(*offset) + 4;
		return o >= INT32_MIN && o <= INT32_MAX ? o : int64_t(-1);
	}();
	return off;
}

// Which helper calls have r1 = the value of one lddw on every path (the
// lddw and the call in one straight line: no jump target between them, no
// write of r1), and of those, which the inline resolver gives an inline
// form (the kernel's verifier knows the map of each call and asks the map's
// map_gen_lookup the same way).
void codegen::plan_inline_calls()
{
	inline_at_.assign(n_, std::nullopt);
	if (!prog_.inliner)
		return;
	for (const function_info &f : funcs_) {
		std::optional<uint64_t> r1;
		for (uint32_t pc = f.start; pc < f.end; pc++) {
			if (jump_target_[pc])
				r1.reset();
			const insn &in = prog_.insns[pc];
			const insn_kind k = opcode_table[in.code].kind;
			if (k == insn_kind::lddw) {
				if (in.dst_reg == 1 && pc + 1 < n_)
					r1 = uint64_t(uint32_t(in.imm)) |
					     uint64_t(uint32_t(prog_.insns[pc + 1].imm))
						     << 32;
				else if (in.dst_reg == 1)
					r1.reset();
				pc++;
				continue;
			}
			if (k == insn_kind::call && in.src_reg == 0 && r1) {
				auto h = prog_.inliner(uint32_t(in.imm), *r1);
				// The emitted form multiplies by imm32s.
				const bool ok =
					h && h->stride <= uint32_t(INT32_MAX) &&
					(h->kind == inline_helper::array_lookup ||
					 (h->kind == inline_helper::percpu_array_lookup &&
					  rseq_cpu_offset() >= 0 &&
					  h->cpu_stride <= uint32_t(INT32_MAX) &&
					  h->cpu_tls_offset >= INT32_MIN &&
					  h->cpu_tls_offset <= INT32_MAX));
				if (ok)
					inline_at_[pc] = h;
			}
			const reg_use u = register_use(in);
			if ((u.writes | u.clobbers) & (1u << 1) ||
			    k == insn_kind::call || k == insn_kind::callx)
				r1.reset();
		}
	}
}

// r2 (rsi) points at the key; r1-r5 are dead after a call, so only r0 (rax)
// and the scratch r11 are written:
//   eax = *(u32 *)rsi; if (eax >= max) rax = 0 else rax = base + rax * stride
// The kernel's array_map_gen_lookup emits the same.
void codegen::emit_inline_call(const inline_helper &h)
{
	const label null = as_.new_label(), done = as_.new_label();
	as_.load(width::b32, rax, { rsi, 0 });
	as_.alu_ri(alu::cmp, width::b32, rax, static_cast<int32_t>(h.max_entries));
	as_.jcc(cond::ae, null);
	if (h.stride && (h.stride & (h.stride - 1)) == 0) {
		uint8_t sh = 0;
		while ((1u << sh) != h.stride)
			sh++;
		if (sh)
			as_.shift_ri(shift::shl, width::b64, rax, sh);
	} else {
		as_.imul_rri(width::b64, rax, rax, static_cast<int32_t>(h.stride));
	}
	if (h.kind == inline_helper::percpu_array_lookup) {
		// r11 = cpu * cpu_stride, cpu being the runtime's slot of the
		// run when it set one, else rseq's cpu_id (plan_inline_calls
		// checked that glibc registered rseq).
		if (h.cpu_tls_offset) {
			const label no_slot = as_.new_label(),
				    have_cpu = as_.new_label();
			as_.load_fs32(r11, static_cast<int32_t>(h.cpu_tls_offset));
			as_.test_rr(width::b32, r11, r11);
			as_.jcc(cond::s, no_slot);
			as_.bind(have_cpu);
			cold_.push_back([this, no_slot, have_cpu] {
				as_.bind(no_slot);
				as_.load_fs32(r11, static_cast<int32_t>(rseq_cpu_offset()));
				as_.jmp(have_cpu);
			});
		} else {
			as_.load_fs32(r11, static_cast<int32_t>(rseq_cpu_offset()));
		}
		if (h.cpu_stride && (h.cpu_stride & (h.cpu_stride - 1)) == 0) {
			uint8_t sh = 0;
			while ((1u << sh) != h.cpu_stride)
				sh++;
			if (sh)
				as_.shift_ri(shift::shl, width::b64, r11, sh);
		} else {
			as_.imul_rri(width::b64, r11, r11, static_cast<int32_t>(h.cpu_stride));
		}
		as_.alu_rr(alu::add, width::b64, rax, r11);
	}
	as_.mov_imm(r11, h.base);
	as_.alu_rr(alu::add, width::b64, rax, r11);
	as_.bind(done);
	// Out of line: the hot path takes no jump.
	cold_.push_back([this, null, done] {
		as_.bind(null);
		as_.alu_rr(alu::xor_, width::b32, rax, rax);
		as_.jmp(done);
	});
}

void codegen::emit_status_check()
{
	as_.alu_mi(alu::cmp, width::b32, { r12, rc_status }, 0);
	as_.jcc(cond::ne, l_unwind_);
}

// r1 = ctx, r2 = prog_array and r3 = index already are the first three
// arguments of tail_call(ctx, prog_array, index, rc); r4 is scratched by the
// call anyway.
void codegen::emit_tail_call()
{
	as_.mov(width::b64, rcx, r12);
	as_.mov_imm(rax, reinterpret_cast<uint64_t>(&tail_call));
	as_.call(rax);
	emit_status_check();
}

// callx dst: dst holds a helper id (LLVM's encoding puts the register in the
// dst field). The table is looked up at run time; an id with no helper ends
// the run with EINVAL. Id 12 is bpf_tail_call when the program may tail-call
// at all (a helper registered under 12, or a resolver), as in the
// interpreter.
void codegen::emit_callx(uint32_t pc, const insn &in)
{
	const reg id = host(in.dst_reg);
	const label done = as_.new_label();
	const label tail = as_.new_label();
	const label bad = as_.new_label();
	const uint32_t tc = detail::BPF_FUNC_tail_call;
	const bool tail_ok = prog_.tail_call ||
			     (tc < prog_.helpers.size() && prog_.helpers[tc].fn);
	as_.mov(width::b64, r11, id);
	if (tail_ok) {
		as_.alu_ri(alu::cmp, width::b64, r11, static_cast<int32_t>(tc));
		as_.jcc(cond::e, tail);
		cold_.push_back([this, tail, done] {
			as_.bind(tail);
			emit_tail_call();
			as_.jmp(done);
		});
	}
	as_.alu_ri(alu::cmp, width::b64, r11,
		   static_cast<int32_t>(std::min<size_t>(callx_count_, INT32_MAX)));
	as_.jcc(cond::ae, bad);
	as_.mov_imm(r10, reinterpret_cast<uint64_t>(callx_table_));
	as_.load_indexed8(r11, r10, r11);
	as_.test_rr(width::b64, r11, r11);
	as_.jcc(cond::e, bad);
	as_.call(r11);
	emit_status_check();
	as_.bind(done);
	cold_.push_back([this, bad, id, pc] {
		as_.bind(bad);
		as_.mov(width::b64, r11, id);
		as_.mov_imm32(r10, pc);
		as_.jmp(l_callx_bad_);
	});
}

// The operand of a load or store at base + off. In bounds-check mode the
// address goes to r11 and is checked first: inline against the run's stack
// area, then (cold) against the context, then by region_check() through the
// shared slow stub. Accesses through r10 that stay inside the current frame
// need no check: r10 always points into the area.
mem codegen::address(uint32_t pc, uint8_t base, int16_t off, uint32_t size,
		     bool write)
{
	const reg b = host(base);
	if (!prog_.options.bounds_check)
		return { b, off };
	if (base == BPF_REG_FP && off >= -MAX_BPF_STACK &&
	    off + int32_t(size) <= 0)
		return { b, off };
	as_.lea(r11, { b, off });
	as_.mov(width::b64, r10, r11);
	as_.alu_rm(alu::sub, width::b64, r10, { r12, rc_stack_lo });
	as_.alu_ri(alu::cmp, width::b64, r10,
		   static_cast<int32_t>(stack_area_size - size));
	const label cold = as_.new_label();
	const label ok = as_.new_label();
	as_.jcc(cond::a, cold);
	as_.bind(ok);
	const uint32_t info = access_info(pc, write, size);
	cold_.push_back([this, cold, ok, size, info] {
		as_.bind(cold);
		// r10 = addr - ctx + size: in bounds when it did not wrap
		// (addr >= ctx) and is at most ctx_len.
		as_.mov(width::b64, r10, r11);
		as_.alu_rm(alu::sub, width::b64, r10, { r12, rc_ctx });
		as_.alu_ri(alu::add, width::b64, r10, static_cast<int32_t>(size));
		const label slow = as_.new_label();
		as_.jcc(cond::b, slow);
		as_.alu_rm(alu::cmp, width::b64, r10, { r12, rc_ctx_len });
		as_.jcc(cond::be, ok);
		as_.bind(slow);
		as_.mov_imm32(r10, info);
		as_.call(l_region_slow_);
		as_.jmp(ok);
	});
	return { r11, 0 };
}

void codegen::emit_atomic(uint32_t pc, const insn &in)
{
	const width w = bpf_size(in.code) == BPF_DW ? width::b64 : width::b32;
	mem m = address(pc, in.dst_reg, in.off, access_size(in.code), true);
	const reg src = host(in.src_reg);
	alu op = alu::add;
	switch (in.imm) {
	case BPF_ADD:
		as_.lock_alu(alu::add, w, m, src);
		return;
	case BPF_OR:
		as_.lock_alu(alu::or_, w, m, src);
		return;
	case BPF_AND:
		as_.lock_alu(alu::and_, w, m, src);
		return;
	case BPF_XOR:
		as_.lock_alu(alu::xor_, w, m, src);
		return;
	case BPF_ADD | BPF_FETCH:
		as_.lock_xadd(w, m, src); // src = old, zero-extended in 32-bit
		return;
	case BPF_XCHG:
		as_.xchg(w, m, src);
		return;
	case BPF_CMPXCHG:
		as_.lock_cmpxchg(w, m, src);
		// A 32-bit cmpxchg that succeeds does not write eax, so the
		// upper half of r0 would survive; RFC 9669 zero-extends.
		if (w == width::b32)
			as_.mov(width::b32, rax, rax);
		return;
	case BPF_OR | BPF_FETCH:
		op = alu::or_;
		break;
	case BPF_AND | BPF_FETCH:
		op = alu::and_;
		break;
	default: // BPF_XOR | BPF_FETCH
		op = alu::xor_;
		break;
	}
	// No x86 instruction fetches the old value of an or/and/xor: loop on
	// cmpxchg, which needs rax (r0): park r0 in r10, compute in r11, and
	// keep the address in r9 when it is based on rax or on r11.
	if (m.base == rax || m.base == r11) {
		as_.lea(r9, m);
		m = { r9, 0 };
	}
	as_.mov(width::b64, r10, rax);
	const reg operand = src == rax ? r10 : src;
	as_.load(w, rax, m);
	const label retry = as_.new_label();
	as_.bind(retry);
	as_.mov(width::b64, r11, rax);
	as_.alu_rr(op, w, r11, operand);
	as_.lock_cmpxchg(w, m, r11);
	as_.jcc(cond::ne, retry);
	// rax = the old value, zero-extended in 32-bit (loaded by mov r32 or
	// by a failed cmpxchg r32).
	if (src != rax) {
		as_.mov(w, src, rax);
		as_.mov(width::b64, rax, r10);
	}
}

} // namespace

result<generated_code> generate(const program &prog, const features &feat,
				const uint64_t *callx_table, size_t callx_count)
{
	codegen g(prog, feat, callx_table, callx_count);
	return g.run();
}

} // namespace bpftime::vm::jit_x64
