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
// Peephole: clang's BPF code computes addresses as `rX = rY; rX += rZ` (or
// += imm); when the add is no jump target the pair becomes one lea, and when
// loads through rX follow, the last of which overwrites rX, the address goes
// into the loads' operands instead ([rY + rZ + off]) and no lea is left.
//
// Cold paths (division by zero, INT_MIN / -1, bounds-check misses, failing
// callx lookups, ELOOP) are emitted after all functions and jump back, so
// the hot path only pays a not-taken branch.
#include "runtime.hpp"
#include "x64_assembler.hpp"

#include <bpftime/vm/opcodes.hpp>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <functional>
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

struct function_info {
	uint32_t start = 0;
	uint32_t end = 0; // one past the last instruction
	std::vector<reg> saved; // hosts of the r6-r9 the function writes
	bool pad = false;       // one more push keeps rsp 16-byte aligned
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
	status emit_pass();
	void emit_trampoline_and_stubs();
	void emit_prologue(const function_info &f);
	void emit_epilogue(const function_info &f);
	status emit_insn(uint32_t pc, const function_info &f);
	uint32_t emit_fused(uint32_t pc, const function_info &f);
	void emit_alu(const insn &in);
	void emit_divmod(const insn &in);
	void emit_shift(const insn &in, shift op);
	void emit_endian(const insn &in);
	status emit_jump(uint32_t pc, uint32_t target);
	status emit_jcond(uint32_t pc, const insn &in);
	status emit_call(uint32_t pc, const insn &in);
	void emit_callx(uint32_t pc, const insn &in);
	void emit_tail_call();
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
	std::vector<std::function<void()>> cold_;
	// Labels after the n_ pc labels and the function entries.
	label l_tramp_ = 0, l_tramp_exit_ = 0, l_unwind_ = 0, l_eloop_ = 0,
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
	for (uint32_t pc = 0; pc < n_; pc++) {
		const insn &in = prog_.insns[pc];
		const insn_kind k = opcode_table[in.code].kind;
		int64_t t = -1;
		if (k == insn_kind::jcond || k == insn_kind::ja)
			t = int64_t(pc) + 1 + in.off;
		else if (k == insn_kind::ja32)
			t = int64_t(pc) + 1 + in.imm;
		if (t >= 0 && t < n_)
			jump_target_[static_cast<size_t>(t)] = true;
	}
	std::sort(starts.begin(), starts.end());
	starts.erase(std::unique(starts.begin(), starts.end()), starts.end());
	if (starts.back() >= n_)
		return fail(EINVAL, at_pc(starts.back(),
					  "function start outside the program"));

	funcs_.clear();
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
		// At entry rsp is 8 mod 16 (the return address); an odd number
		// of pushes realigns it.
		f.pad = f.saved.size() % 2 == 0;
		f.entry = n_ + static_cast<label>(i);
		funcs_.push_back(std::move(f));
	}
	const label base = n_ + static_cast<label>(funcs_.size());
	l_tramp_ = base;
	l_tramp_exit_ = base + 1;
	l_unwind_ = base + 2;
	l_eloop_ = base + 3;
	l_callx_bad_ = base + 4;
	l_region_slow_ = base + 5;
	n_fixed_labels_ = base + 6;
	return {};
}

result<generated_code> codegen::run()
{
	if (n_ == 0)
		return fail(EINVAL, "jit: empty program");
	BPFTIME_TRY(plan_functions());
	for (;;) {
		as_.begin_pass(n_fixed_labels_);
		cold_.clear();
		BPFTIME_TRY(emit_pass());
		if (as_.end_pass())
			break;
	}
	generated_code out;
	out.code = as_.code();
	out.entry_offset = as_.offset_of(l_tramp_);
	for (const function_info &f : funcs_)
		out.functions.emplace_back(f.start, as_.offset_of(f.entry));
	return out;
}

status codegen::emit_pass()
{
	emit_trampoline_and_stubs();
	for (const function_info &f : funcs_) {
		emit_prologue(f);
		for (uint32_t pc = f.start; pc < f.end; pc++) {
			if (pc != f.start)
				as_.bind(pc_label(pc));
			if (uint32_t n = emit_fused(pc, f)) {
				// The fused instructions are no jump targets;
				// their labels are bound all the same.
				while (--n)
					as_.bind(pc_label(++pc));
				continue;
			}
			BPFTIME_TRY(emit_insn(pc, f));
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

// uint64_t trampoline(run_ctx *rc, const void *fn): see runtime.hpp.
void codegen::emit_trampoline_and_stubs()
{
	as_.bind(l_tramp_);
	for (reg r : { rbp, rbx, r12, r13, r14, r15 })
		as_.push(r);
	// 6 pushes after the return address leave rsp 8 mod 16.
	as_.alu_ri(alu::sub, width::b64, rsp, 8);
	as_.mov(width::b64, r12, rdi);
	as_.store(width::b64, { r12, rc_saved_rsp }, rsp);
	as_.mov(width::b64, r11, rsi);
	as_.load(width::b64, rbp, { r12, rc_fp_init });
	const reg arg_regs[5] = { rdi, rsi, rdx, rcx, r8 };
	for (int i = 0; i < 5; i++)
		as_.load(width::b64, arg_regs[i], { r12, rc_args + 8 * i });
	// r0 and r6-r9 start at 0, as in the interpreter: a program that the
	// non-strict verifier let read them sees no host values.
	for (reg r : { rax, rbx, r13, r14, r15 })
		as_.mov_imm(r, 0);
	as_.call(r11);
	as_.bind(l_tramp_exit_);
	as_.alu_ri(alu::add, width::b64, rsp, 8);
	for (reg r : { r15, r14, r13, r12, rbx, rbp })
		as_.pop(r);
	as_.ret();

	// Ends the run from any depth: rc->status already says why.
	as_.bind(l_unwind_);
	as_.load(width::b64, rsp, { r12, rc_saved_rsp });
	as_.jmp(l_tramp_exit_);

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

void codegen::emit_prologue(const function_info &f)
{
	as_.bind(f.entry);
	for (reg r : f.saved)
		as_.push(r);
	if (f.pad)
		as_.push(r12);
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

// Fuses `mov64 d, s; add64 d, t|imm` (or sub64 d, imm) with what follows.
// Returns how many instructions it emitted code for, 0 when none.
uint32_t codegen::emit_fused(uint32_t pc, const function_info &f)
{
	if (pc + 1 >= f.end || jump_target_[pc + 1])
		return 0;
	const insn &a = prog_.insns[pc];
	const insn &b = prog_.insns[pc + 1];
	if (a.code != (BPF_ALU64 | BPF_MOV | BPF_X) || a.off != 0 ||
	    a.dst_reg == a.src_reg || b.dst_reg != a.dst_reg)
		return 0;
	const reg d = host(a.dst_reg), s = host(a.src_reg);
	mem addr{ s, 0 };
	if (b.code == (BPF_ALU64 | BPF_ADD | BPF_X)) {
		// After the mov, d holds s: `add d, d` doubles s.
		addr.has_index = true;
		addr.index = b.src_reg == a.dst_reg ? s : host(b.src_reg);
	} else if (b.code == (BPF_ALU64 | BPF_ADD | BPF_K)) {
		addr.disp = b.imm;
	} else if (b.code == (BPF_ALU64 | BPF_SUB | BPF_K) && b.imm != INT32_MIN) {
		addr.disp = -b.imm;
	} else {
		return 0;
	}

	// Loads through d; the last one must overwrite d, the ones before
	// must leave d, s and the index alone. In bounds-check mode every
	// address is materialised for its check, so nothing is folded.
	uint32_t n = 0;
	bool killed = false;
	while (!prog_.options.bounds_check && !killed &&
	       pc + 2 + n < f.end && !jump_target_[pc + 2 + n]) {
		const insn &l = prog_.insns[pc + 2 + n];
		const insn_kind k = opcode_table[l.code].kind;
		if ((k != insn_kind::ldx && k != insn_kind::ldxsx) ||
		    l.src_reg != a.dst_reg)
			break;
		const int64_t disp = int64_t(addr.disp) + l.off;
		if (disp < INT32_MIN || disp > INT32_MAX)
			break;
		const reg out = host(l.dst_reg);
		if (out != d &&
		    (out == s || (addr.has_index && out == addr.index)))
			break;
		killed = out == d;
		n++;
	}
	if (!killed) {
		as_.lea(d, addr);
		return 2;
	}
	for (uint32_t i = 0; i < n; i++) {
		const insn &l = prog_.insns[pc + 2 + i];
		mem m = addr;
		m.disp += l.off;
		if (opcode_table[l.code].kind == insn_kind::ldx)
			as_.load(access_width(l.code), host(l.dst_reg), m);
		else
			as_.load_sx(access_width(l.code), host(l.dst_reg), m);
	}
	return 2 + n;
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
	as_.jcc(jump_cond(op), pc_label(static_cast<uint32_t>(target)));
	return {};
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
