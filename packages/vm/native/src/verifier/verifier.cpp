// verifier.cpp: the structural verifier (see verifier.hpp for what it proves).
//
// Passes, each reporting the lowest offending index it finds:
//   1. each instruction alone: opcode in the table, legal fields, no write
//      into r10, constant r10-relative accesses inside the frame, lddw pairs;
//   2. calls and BPF_PSEUDO_FUNC: targets, helpers, kfuncs -> function starts;
//   3. jumps stay in their function, nothing falls off a function's end;
//   4. per function: an exit is reachable, and (strict) every register read
//      is written on all paths before (forward "must be initialised"
//      dataflow, meet = intersection, as the kernel's check_reg_arg does
//      per path);
//   5. the call graph is acyclic and at most MAX_CALL_FRAMES deep;
//   6. helper arguments against their prototypes' kinds (check_args): a
//      forward dataflow per function, on the same worklist as pass 4, of
//      the kind of value each register and 8-byte stack slot may hold.
// Called by vm::load() and by check_helper_args(); runs once per program,
// allocates freely.
#include "verifier/type_check.hpp"

#include <bpftime/vm/opcodes.hpp>
#include <bpftime/vm/verifier.hpp>

#include <algorithm>
#include <array>
#include <cinttypes>
#include <cstdarg>
#include <cstdio>
#include <string>
#include <string_view>

namespace bpftime::vm {
namespace {

constexpr uint16_t FP_BIT = 1u << BPF_REG_FP;
constexpr uint16_t R1_R5 = 0x3e;
constexpr uint16_t R6_R9 = 0x3c0;
constexpr uint16_t MAIN_ENTRY = (1u << 1) | (1u << 2) | FP_BIT; // ctx, len
constexpr uint16_t SUBPROG_ENTRY = R1_R5 | FP_BIT;

[[gnu::format(printf, 2, 3)]] failure reject(uint64_t pc, const char *fmt,
					     ...)
{
	char buf[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	return fail(EINVAL, std::to_string(pc) + ": " + buf);
}

const char *rule_text(field_rule r)
{
	switch (r) {
	case field_rule::zero:
		return "must be 0";
	case field_rule::any:
		return "is accepted";
	case field_rule::reg:
		return "must be a register r0-r10";
	case field_rule::pseudo_ld:
		return "must be 0 or a BPF_PSEUDO_* kind 1-6";
	case field_rule::pseudo_call:
		return "must be 0 (helper), 1 (local call) or 2 (kfunc)";
	case field_rule::divmod:
		return "must be 0 (unsigned) or 1 (signed)";
	case field_rule::movsx32:
		return "must be 0, 8 or 16";
	case field_rule::movsx64:
		return "must be 0, 8, 16 or 32";
	case field_rule::endian:
		return "must be 16, 32 or 64";
	case field_rule::atomic_op:
		return "must be an atomic operation (add, or, and, xor, their "
		       "fetch forms, xchg or cmpxchg)";
	}
	return "is invalid";
}

bool is_jump(insn_kind k)
{
	return k == insn_kind::jcond || k == insn_kind::ja ||
	       k == insn_kind::ja32;
}

// Target of a jump, relative to the instruction after it.
int64_t jump_target(uint32_t pc, const insn &i)
{
	const int64_t rel =
		opcode_table[i.code].kind == insn_kind::ja32 ? i.imm : i.off;
	return int64_t(pc) + rel + 1;
}

// Does the instruction use r10 other than as the base of its memory access?
// Then a pointer into the frame escapes and max_stack cannot be trusted.
bool fp_escapes(const insn &i)
{
	switch (opcode_table[i.code].kind) {
	case insn_kind::ldx:
	case insn_kind::ldxsx:
	case insn_kind::st:
		return false;
	case insn_kind::stx:
	case insn_kind::atomic:
		return i.src_reg == BPF_REG_FP;
	default:
		return (register_use(i).reads & FP_BIT) != 0;
	}
}

// --- helper arguments (pass 6) ---------------------------------------------
//
// The kinds of value a register or an 8-byte stack slot may hold on some path
// to an instruction (join = union). A helper dereferences what its prototype
// says is a map, a key or a buffer: `r1 = 0; call bpf_map_lookup_elem` would
// fault in the process running the program, so a kind outside what the
// argument accepts refuses the program, as the kernel's check_func_arg does.
constexpr uint8_t K_MAP = 1;    // a map pointer (lddw BPF_PSEUDO_MAP_FD / _IDX)
constexpr uint8_t K_PARAM = 2;  // an argument of a sub-program or callback
constexpr uint8_t K_OTHER = 4;  // a number, or a pointer of no kind below
constexpr uint8_t K_CONST = 8;  // a constant number (comes with K_OTHER)
constexpr uint8_t K_STACK = 16; // r10 plus a constant: the frame
constexpr uint8_t K_VALUE = 32; // a map value (lookup's r0, lddw of a value)
constexpr uint8_t K_CTX = 64;   // the context
constexpr uint8_t CONST_VALUE = K_OTHER | K_CONST;
// What a key or value argument may be: the kernel's ARG_PTR_TO_MAP_KEY takes
// the stack or a map value; a sub-program's argument is its caller's. The
// context is accepted too, unlike the kernel: in bpftime it is plain memory
// of the caller (a buffer, the saved registers), and hand-written programs
// use it so.
constexpr uint8_t KEY_KINDS = K_STACK | K_VALUE | K_PARAM | K_CTX;
constexpr int SLOTS = MAX_BPF_STACK / 8;

struct arg_state {
	std::array<uint8_t, MAX_BPF_REG> reg{};
	std::array<uint8_t, SLOTS> slot{};
	// The exact value of a register on every path, when known: the number
	// for a constant, the offset from r10 for a stack pointer, the map id
	// for a map.
	std::array<int64_t, MAX_BPF_REG> val{};
	std::array<bool, MAX_BPF_REG> known{};

	void set(uint8_t r, uint8_t kind) noexcept
	{
		reg[r] = kind;
		known[r] = false;
		val[r] = 0;
	}
	void set(uint8_t r, uint8_t kind, int64_t v) noexcept
	{
		reg[r] = kind;
		known[r] = true;
		val[r] = v;
	}
	bool operator==(const arg_state &) const = default;

	static arg_state join(const arg_state &a, const arg_state &b) noexcept
	{
		arg_state o = a;
		for (size_t i = 0; i < MAX_BPF_REG; i++) {
			o.reg[i] = a.reg[i] | b.reg[i];
			if (!(a.known[i] && b.known[i] && a.val[i] == b.val[i])) {
				o.known[i] = false;
				o.val[i] = 0;
			}
		}
		for (size_t i = 0; i < SLOTS; i++)
			o.slot[i] = a.slot[i] | b.slot[i];
		return o;
	}
};

// The stack slot an r10-relative access of `size` bytes at `off` covers
// entirely, or -1 (partial, unaligned, outside the frame).
int slot_of(int16_t off, int size)
{
	if (size != 8 || off >= 0 || off < -MAX_BPF_STACK || (-off) % 8 != 0)
		return -1;
	return (-off) / 8 - 1;
}

// Marks every slot the access [off, off + size) touches as holding `kind`.
void clobber(arg_state &s, int16_t off, int size, uint8_t kind)
{
	for (int b = off; b < off + size; b++) {
		if (b >= 0 || b < -MAX_BPF_STACK)
			continue;
		s.slot[size_t((-b - 1) / 8)] = kind;
	}
}

// What r0 holds after a helper returning `r`.
uint8_t return_kind(bpf_return_type r)
{
	switch (r) {
	case RET_PTR_TO_MAP_VALUE_OR_NULL:
	case RET_PTR_TO_RINGBUF_MEM_OR_NULL:
		return K_VALUE;
	default:
		return K_OTHER;
	}
}

// The transfer function of pass 6 for one instruction of a verified program.
arg_state arg_step(const insn &i, const insn *next, arg_state s,
		   const std::function<std::optional<helper_proto>(uint32_t)> &protos)
{
	const uint8_t cls = bpf_class(i.code);
	const uint8_t dst = i.dst_reg, src = i.src_reg;
	switch (cls) {
	case BPF_ALU:
	case BPF_ALU64: {
		const uint8_t op = bpf_op(i.code);
		const bool x = bpf_src(i.code) == BPF_X;
		const uint8_t d = s.reg[dst];
		const uint8_t v = x ? s.reg[src] : CONST_VALUE;
		const bool dk = s.known[dst];
		const bool vk = x ? s.known[src] : true;
		const int64_t dv = s.val[dst];
		const int64_t vv = x ? s.val[src] : int64_t(i.imm);
		const bool add_sub = op == BPF_ADD || op == BPF_SUB;
		auto fit = [&](int64_t r) {
			return cls == BPF_ALU ? int64_t(uint32_t(r)) : r;
		};
		if (op == BPF_MOV) {
			// A 64-bit copy keeps what it is; anything else is a
			// number.
			if (cls == BPF_ALU64 && i.off == 0) {
				s.reg[dst] = v;
				s.known[dst] = vk;
				s.val[dst] = vk ? vv : 0;
			} else if (v == CONST_VALUE && vk && i.off == 0) {
				s.set(dst, CONST_VALUE, fit(vv));
			} else {
				s.set(dst, v == CONST_VALUE ? CONST_VALUE : K_OTHER);
			}
		} else if (op == BPF_NEG || op == BPF_END) {
			s.set(dst, d == CONST_VALUE ? CONST_VALUE : K_OTHER);
		} else if (d == CONST_VALUE && v == CONST_VALUE) {
			bool k = dk && vk;
			int64_t r = 0;
			switch (op) {
			case BPF_ADD:
				r = int64_t(uint64_t(dv) + uint64_t(vv));
				break;
			case BPF_SUB:
				r = int64_t(uint64_t(dv) - uint64_t(vv));
				break;
			case BPF_MUL:
				r = int64_t(uint64_t(dv) * uint64_t(vv));
				break;
			case BPF_AND:
				r = dv & vv;
				break;
			case BPF_OR:
				r = dv | vv;
				break;
			default:
				k = false;
			}
			if (k)
				s.set(dst, CONST_VALUE, fit(r));
			else
				s.set(dst, CONST_VALUE);
		} else if (cls == BPF_ALU64 && add_sub &&
			   !(d & ~(K_STACK | K_VALUE | K_CTX)) &&
			   !(v & ~K_OTHER & ~K_CONST)) {
			// A pointer moved by a number stays a pointer of its
			// kind (at a known offset when both are known).
			const bool k = dk && vk && v == CONST_VALUE;
			const int64_t off = op == BPF_ADD ? dv + vv : dv - vv;
			if (k)
				s.set(dst, d, off);
			else
				s.set(dst, d);
		} else {
			s.set(dst, K_OTHER);
		}
		return s;
	}
	case BPF_LD: // lddw: the only BPF_LD the structural passes accept
		if (i.src_reg == BPF_PSEUDO_MAP_FD)
			s.set(dst, K_MAP, int64_t(uint32_t(i.imm))); // the map id
		else if (i.src_reg == BPF_PSEUDO_MAP_IDX)
			s.set(dst, K_MAP);
		else if (i.src_reg == 0)
			s.set(dst, CONST_VALUE,
			      int64_t(uint64_t(uint32_t(i.imm)) |
				      uint64_t(uint32_t(next->imm)) << 32));
		else if (i.src_reg == BPF_PSEUDO_MAP_VALUE ||
			 i.src_reg == BPF_PSEUDO_MAP_IDX_VALUE)
			s.set(dst, K_VALUE);
		else
			s.set(dst, K_OTHER);
		return s;
	case BPF_LDX: {
		const int sl = src == BPF_REG_FP ?
				       slot_of(i.off, int(access_size(i.code))) :
				       -1;
		s.set(dst, sl >= 0 && s.slot[size_t(sl)] ? s.slot[size_t(sl)] :
							     K_OTHER);
		return s;
	}
	case BPF_ST:
	case BPF_STX: {
		const int size = int(access_size(i.code));
		if (dst == BPF_REG_FP) {
			uint8_t kind = K_OTHER;
			const int sl = slot_of(i.off, size);
			if (bpf_mode(i.code) == BPF_MEM && sl >= 0)
				kind = cls == BPF_STX ? s.reg[src] : CONST_VALUE;
			clobber(s, i.off, size, kind);
		}
		if (bpf_mode(i.code) == BPF_ATOMIC) {
			if (i.imm == BPF_CMPXCHG)
				s.set(0, K_OTHER);
			else if (i.imm & BPF_FETCH)
				s.set(src, K_OTHER);
		}
		return s;
	}
	default: { // jumps write nothing; a call scratches r0-r5
		if (bpf_op(i.code) != BPF_CALL || cls != BPF_JMP)
			return s;
		for (uint8_t r = 0; r <= 5; r++)
			s.set(r, K_OTHER);
		if (i.src_reg == BPF_HELPER_CALL && protos) {
			if (auto p = protos(uint32_t(i.imm)))
				s.set(0, return_kind(p->ret));
		}
		return s;
	}
	}
}

struct function_range {
	uint32_t start;
	uint32_t end; // one past the last instruction
};

class verifier {
    public:
	// any_helper: every helper call passes passes 1-5, with or without a
	// prototype (check_helper_args, may_write_context).
	verifier(std::span<const insn> prog, const verify_options &opts,
		 bool any_helper = false)
		: p_(prog), n_(static_cast<uint32_t>(prog.size())), o_(opts),
		  any_helper_(any_helper), second_(prog.size(), 0)
	{
	}

	// Passes 1-5.
	result<verify_info> run_structure()
	{
		BPFTIME_TRY(check_insns());
		BPFTIME_TRY(check_calls());
		BPFTIME_TRY(check_jumps());
		for (size_t f = 0; f < funcs_.size(); f++)
			BPFTIME_TRY(check_function(f));
		BPFTIME_TRY(check_call_depth());
		verify_info info;
		info.function_starts = starts_;
		info.max_stack = escapes_ ? MAX_BPF_STACK :
					    (max_depth_ + 7) / 8 * 8;
		return info;
	}

    private:
	std::span<const insn> p_;
	uint32_t n_;
	const verify_options &o_;
	bool any_helper_;
	std::vector<uint8_t> second_; // 1 at the second slot of a lddw
	std::vector<uint32_t> starts_;
	std::vector<function_range> funcs_;
	std::vector<uint32_t> func_of_; // function index of each pc
	std::vector<uint32_t> callback_roots_; // functions of PSEUDO_FUNC
	uint32_t max_depth_ = 0;
	bool escapes_ = false;

	status check_insns()
	{
		for (uint32_t pc = 0; pc < n_; pc++) {
			const insn &i = p_[pc];
			if (is_legacy_packet_load(i.code))
				return reject(
					pc,
					"legacy packet load BPF_LD_ABS/BPF_LD_IND "
					"(opcode 0x%02x) is not supported",
					i.code);
			const opcode_info &o = opcode_table[i.code];
			if (!o.valid)
				return reject(pc, "invalid opcode 0x%02x",
					      i.code);
			BPFTIME_TRY(check_fields_of(pc, i, o));
			if (register_use(i).writes & FP_BIT)
				return reject(pc, "frame pointer is read only");
			BPFTIME_TRY(check_stack_access(pc, i, o));
			if (fp_escapes(i))
				escapes_ = true;
			if (o.kind == insn_kind::lddw) {
				if (pc + 1 >= n_)
					return reject(
						pc,
						"incomplete lddw: the program ends "
						"before its second slot");
				const insn &h = p_[pc + 1];
				if (h.code != 0 || h.dst_reg != 0 ||
				    h.src_reg != 0 || h.off != 0)
					return reject(
						pc,
						"invalid lddw: the second slot must "
						"have code, registers and off 0");
				if (i.src_reg == BPF_PSEUDO_FUNC && h.imm != 0)
					return reject(
						pc,
						"invalid lddw: BPF_PSEUDO_FUNC needs "
						"imm 0 in the second slot");
				second_[pc + 1] = 1;
				pc++;
			}
		}
		return {};
	}

	status check_fields_of(uint32_t pc, const insn &i, const opcode_info &o)
	{
		const insn_field f = check_fields(i);
		if (f == insn_field::none)
			return {};
		const int name_len = static_cast<int>(o.mnemonic.size());
		const char *name = o.mnemonic.data();
		switch (f) {
		case insn_field::dst:
		case insn_field::src: {
			const unsigned v = f == insn_field::dst ? i.dst_reg :
								  i.src_reg;
			const field_rule r = f == insn_field::dst ? o.dst : o.src;
			if (r == field_rule::reg)
				return reject(
					pc,
					"invalid register r%u in %s of %.*s "
					"(opcode 0x%02x)",
					v, f == insn_field::dst ? "dst_reg" :
								 "src_reg",
					name_len, name, i.code);
			return reject(pc,
				      "%.*s (opcode 0x%02x): %s %u %s",
				      name_len, name, i.code,
				      f == insn_field::dst ? "dst_reg" :
							     "src_reg",
				      v, rule_text(r));
		}
		case insn_field::off:
			return reject(pc, "%.*s (opcode 0x%02x): off %d %s",
				      name_len, name, i.code, i.off,
				      rule_text(o.off));
		case insn_field::imm:
			return reject(pc, "%.*s (opcode 0x%02x): imm %d %s",
				      name_len, name, i.code, i.imm,
				      rule_text(o.imm));
		case insn_field::none:
			break;
		}
		return {};
	}

	// Constant r10-relative accesses: the kernel's check_stack_access_within_bounds.
	status check_stack_access(uint32_t pc, const insn &i, const opcode_info &o)
	{
		unsigned base;
		switch (o.kind) {
		case insn_kind::ldx:
		case insn_kind::ldxsx:
			base = i.src_reg;
			break;
		case insn_kind::st:
		case insn_kind::stx:
		case insn_kind::atomic:
			base = i.dst_reg;
			break;
		default:
			return {};
		}
		if (base != BPF_REG_FP)
			return {};
		const int64_t off = i.off;
		const int64_t size = access_size(i.code);
		if (off < -MAX_BPF_STACK || off + size > 0)
			return reject(pc,
				      "invalid stack access off=%" PRId64
				      " size=%" PRId64
				      ": outside the frame [-%d, 0) of r10",
				      off, size, MAX_BPF_STACK);
		max_depth_ = std::max<uint32_t>(max_depth_,
						static_cast<uint32_t>(-off));
		return {};
	}

	// The kernel's add_subprog(): every call target and every function
	// whose address is taken starts a function.
	status check_target(uint32_t pc, int64_t t, const char *what)
	{
		if (t < 0 || t >= n_)
			return reject(pc, "%s to invalid destination %" PRId64,
				      what, t);
		if (second_[t])
			return reject(pc,
				      "%s into the middle of the lddw at %" PRId64,
				      what, t - 1);
		return {};
	}

	status check_calls()
	{
		starts_.push_back(0);
		std::vector<uint32_t> callbacks;
		for (uint32_t pc = 0; pc < n_; pc++) {
			if (second_[pc])
				continue;
			const insn &i = p_[pc];
			const insn_kind k = opcode_table[i.code].kind;
			if (k == insn_kind::call) {
				const uint32_t id = static_cast<uint32_t>(i.imm);
				if (i.src_reg == BPF_PSEUDO_CALL) {
					const int64_t t = int64_t(pc) + i.imm + 1;
					BPFTIME_TRY(check_target(pc, t, "call"));
					starts_.push_back(static_cast<uint32_t>(t));
				} else if (i.src_reg == BPF_PSEUDO_KFUNC_CALL) {
					if (!o_.kfunc_known || !o_.kfunc_known(id))
						return reject(
							pc,
							"call to unknown kfunc "
							"btf_id %u",
							id);
				} else if (!any_helper_ &&
					   (!o_.helper_proto_of ||
					    !o_.helper_proto_of(id))) {
					return reject(pc,
						      "call to unknown helper #%u",
						      id);
				}
			} else if (k == insn_kind::lddw &&
				   i.src_reg == BPF_PSEUDO_FUNC) {
				const int64_t t = int64_t(pc) + i.imm + 1;
				BPFTIME_TRY(check_target(
					pc, t, "BPF_PSEUDO_FUNC reference"));
				starts_.push_back(static_cast<uint32_t>(t));
				callbacks.push_back(static_cast<uint32_t>(t));
			}
		}
		std::sort(starts_.begin(), starts_.end());
		starts_.erase(std::unique(starts_.begin(), starts_.end()),
			      starts_.end());
		func_of_.assign(n_, 0);
		for (size_t f = 0; f < starts_.size(); f++) {
			const uint32_t end = f + 1 < starts_.size() ?
						     starts_[f + 1] :
						     n_;
			funcs_.push_back({ starts_[f], end });
			std::fill(func_of_.begin() + starts_[f],
				  func_of_.begin() + end,
				  static_cast<uint32_t>(f));
		}
		for (uint32_t t : callbacks)
			callback_roots_.push_back(func_of_[t]);
		return {};
	}

	status check_jumps()
	{
		for (uint32_t pc = 0; pc < n_; pc++) {
			if (second_[pc])
				continue;
			const insn &i = p_[pc];
			const insn_kind k = opcode_table[i.code].kind;
			const function_range &fr = funcs_[func_of_[pc]];
			if (is_jump(k)) {
				const int64_t t = jump_target(pc, i);
				if (t < 0 || t >= n_)
					return reject(
						pc,
						"jump out of range from insn %u "
						"to %" PRId64,
						pc, t);
				if (second_[t])
					return reject(
						pc,
						"jump into the middle of the lddw "
						"at %" PRId64,
						t - 1);
				if (t < fr.start || t >= fr.end)
					return reject(
						pc,
						"jump out of range from insn %u "
						"to %" PRId64
						": outside its function [%u, %u)",
						pc, t, fr.start, fr.end);
			}
			if (k == insn_kind::exit || k == insn_kind::ja ||
			    k == insn_kind::ja32)
				continue;
			const uint32_t next = pc + (k == insn_kind::lddw ? 2 : 1);
			if (next == n_)
				return reject(pc,
					      "falls through off the end of the "
					      "program (the last instruction "
					      "must be an exit or a jump)");
			if (next == fr.end)
				return reject(pc,
					      "falls through into the function at "
					      "%u",
					      next);
		}
		return {};
	}

	// Successors of a verified instruction; returns their count.
	int successors(uint32_t pc, uint32_t out[2]) const
	{
		const insn &i = p_[pc];
		switch (opcode_table[i.code].kind) {
		case insn_kind::exit:
			return 0;
		case insn_kind::ja:
		case insn_kind::ja32:
			out[0] = static_cast<uint32_t>(jump_target(pc, i));
			return 1;
		case insn_kind::jcond:
			out[0] = pc + 1;
			out[1] = static_cast<uint32_t>(jump_target(pc, i));
			return out[1] == out[0] ? 1 : 2;
		case insn_kind::lddw:
			out[0] = pc + 2;
			return 1;
		default:
			out[0] = pc + 1;
			return 1;
		}
	}

	struct ctx_pass {
		std::vector<uint16_t> &entry;  // per function: r1-r9 at entry
		std::vector<uint8_t> &returns; // per function: r0 at an exit
		bool &spilled;
		bool changed;
		bool written;
	};

	// One pass of context_written() over function f.
	void context_flow(size_t f, ctx_pass &pass,
			  const std::function<uint16_t(uint32_t)> &writes)
	{
		auto suspect = [](uint16_t m, unsigned r) {
			return (m >> r & 1u) != 0;
		};
		auto step = [&](uint32_t pc, uint16_t m) -> uint16_t {
			const insn &i = p_[pc];
			const uint16_t dst = static_cast<uint16_t>(1u << i.dst_reg);
			const uint16_t loaded = pass.spilled ? dst : 0;
			switch (opcode_table[i.code].kind) {
			case insn_kind::alu: {
				// Any arithmetic on a suspect value may rebuild
				// the pointer, so the result stays suspect.
				const bool from_src = bpf_src(i.code) == BPF_X &&
						      suspect(m, i.src_reg);
				if (bpf_op(i.code) == BPF_MOV)
					m = static_cast<uint16_t>(m & ~dst);
				if (from_src)
					m |= dst;
				break;
			}
			case insn_kind::lddw:
				m = static_cast<uint16_t>(m & ~dst);
				break;
			case insn_kind::ldx:
			case insn_kind::ldxsx:
				m = static_cast<uint16_t>((m & ~dst) | loaded);
				break;
			case insn_kind::st:
				if (suspect(m, i.dst_reg))
					pass.written = true;
				break;
			case insn_kind::stx:
			case insn_kind::atomic:
				if (suspect(m, i.dst_reg)) {
					pass.written = true;
					break;
				}
				if (suspect(m, i.src_reg)) {
					// Into memory other than the stack:
					// where it goes is not followed.
					if (i.dst_reg != BPF_REG_FP) {
						pass.written = true;
						break;
					}
					if (!pass.spilled)
						pass.changed = true;
					pass.spilled = true;
				}
				if (opcode_table[i.code].kind == insn_kind::atomic) {
					const bool spill = pass.spilled;
					const uint16_t src =
						static_cast<uint16_t>(1u << i.src_reg);
					if (i.imm == BPF_CMPXCHG)
						m = static_cast<uint16_t>(
							(m & ~1u) | (spill ? 1u : 0u));
					else if (i.imm & BPF_FETCH)
						m = static_cast<uint16_t>(
							(m & ~src) | (spill ? src : 0));
				}
				break;
			case insn_kind::call:
				if (i.src_reg == BPF_PSEUDO_CALL) {
					const uint32_t g =
						func_of_[pc + i.imm + 1];
					// r6-r9 too: a callee that the non-strict
					// verifier let read them unwritten sees the
					// caller's.
					const uint16_t a = static_cast<uint16_t>(
						m & (R1_R5 | R6_R9));
					if ((pass.entry[g] | a) != pass.entry[g]) {
						pass.entry[g] |= a;
						pass.changed = true;
					}
					m = static_cast<uint16_t>(
						(m & ~(R1_R5 | 1u)) |
						(pass.returns[g] ? 1u : 0u));
					break;
				}
				if (m & (i.src_reg == 0 && writes ?
						 writes(static_cast<uint32_t>(i.imm)) :
						 R1_R5))
					pass.written = true;
				m = static_cast<uint16_t>(m & ~(R1_R5 | 1u));
				break;
			case insn_kind::callx:
				if (m & R1_R5)
					pass.written = true;
				m = static_cast<uint16_t>(m & ~(R1_R5 | 1u));
				break;
			case insn_kind::exit:
				if (suspect(m, 0) && !pass.returns[f]) {
					pass.returns[f] = 1;
					pass.changed = true;
				}
				break;
			default: // neg, endian keep dst; jumps write nothing
				break;
			}
			return m;
		};
		std::vector<uint16_t> in;
		std::vector<uint8_t> seen;
		flow<uint16_t>(funcs_[f], pass.entry[f], in, seen, step,
		     [](uint16_t a, uint16_t b) {
			     return static_cast<uint16_t>(a | b);
		     });
	}

	// A forward dataflow over the function fr to its fixpoint, one
	// register mask per instruction: in[pc - fr.start] is the meet of
	// the masks flowing into pc (entry at the start), seen[] marks the
	// instructions reached, step(pc, mask in) gives the mask out of pc.
	template <class State, class Step, class Meet>
	void flow(const function_range &fr, const State &entry,
		  std::vector<State> &in, std::vector<uint8_t> &seen,
		  Step step, Meet meet) const
	{
		const uint32_t len = fr.end - fr.start;
		in.assign(len, State{});
		seen.assign(len, 0);
		std::vector<uint8_t> queued(len, 0);
		std::vector<uint32_t> work{ fr.start };
		in[0] = entry;
		seen[0] = queued[0] = 1;
		while (!work.empty()) {
			const uint32_t pc = work.back();
			work.pop_back();
			queued[pc - fr.start] = 0;
			const State out = step(pc, in[pc - fr.start]);
			uint32_t succ[2];
			const int ns = successors(pc, succ);
			for (int k = 0; k < ns; k++) {
				const uint32_t j = succ[k] - fr.start;
				State merged = seen[j] ? meet(in[j], out) : out;
				if (seen[j] && merged == in[j])
					continue;
				seen[j] = 1;
				in[j] = std::move(merged);
				if (!queued[j]) {
					queued[j] = 1;
					work.push_back(succ[k]);
				}
			}
		}
	}

	status check_function(size_t f)
	{
		const function_range fr = funcs_[f];
		const uint32_t len = fr.end - fr.start;
		// in[pc - start]: registers written on every path to pc.
		std::vector<uint16_t> in;
		std::vector<uint8_t> seen;
		flow<uint16_t>(
			fr, f == 0 ? MAIN_ENTRY : SUBPROG_ENTRY, in, seen,
			[&](uint32_t pc, uint16_t m) {
				const reg_use u = register_use(p_[pc]);
				return static_cast<uint16_t>((m & ~u.clobbers) |
							     u.writes);
			},
			[](uint16_t a, uint16_t b) {
				return static_cast<uint16_t>(a & b);
			});
		bool exit_seen = false;
		for (uint32_t j = 0; j < len; j++)
			if (seen[j] && !second_[fr.start + j] &&
			    opcode_table[p_[fr.start + j].code].kind ==
				    insn_kind::exit)
				exit_seen = true;
		if (!exit_seen)
			return reject(fr.start,
				      "no reachable exit in the function that "
				      "starts here");
		// The type discipline checks reads path by path (the kernel's
		// check_reg_arg), more precisely than this meet over all paths.
		if (!o_.strict || o_.types)
			return {};
		for (uint32_t j = 0; j < len; j++) {
			if (!seen[j] || second_[fr.start + j])
				continue;
			const uint16_t missing = static_cast<uint16_t>(
				register_use(p_[fr.start + j]).reads & ~in[j]);
			if (missing == 0)
				continue;
			const int r = __builtin_ctz(missing);
			return reject(fr.start + j,
				      "R%d !read_ok: r%d is read before it is "
				      "written on some path",
				      r, r);
		}
		return {};
	}

    public:
	// Pass 6: every helper call with a prototype, against its kinds, in
	// order of pc (the lowest offending call is reported). The dataflow
	// runs to its fixpoint first, so the state checked at a call is what
	// may reach it on any path.
	status check_args()
	{
		for (size_t f = 0; f < funcs_.size(); f++) {
			const function_range &fr = funcs_[f];
			arg_state entry;
			if (f == 0) {
				entry.set(1, K_CTX);
				entry.set(2, K_OTHER); // its length
			} else {
				// Sub-programs and callbacks: r1-r5 come from
				// the caller.
				for (uint8_t r = 1; r <= 5; r++)
					entry.set(r, K_PARAM);
			}
			entry.set(BPF_REG_FP, K_STACK, 0);
			std::vector<arg_state> in;
			std::vector<uint8_t> seen;
			flow<arg_state>(
				fr, entry, in, seen,
				[&](uint32_t pc, const arg_state &s) {
					return arg_step(p_[pc],
							pc + 1 < n_ ? &p_[pc + 1] :
								      nullptr,
							s, o_.helper_proto_of);
				},
				&arg_state::join);
			for (uint32_t pc = fr.start; pc < fr.end; pc++) {
				const insn &i = p_[pc];
				if (!seen[pc - fr.start] || second_[pc] ||
				    i.code != (BPF_JMP | BPF_CALL) ||
				    i.src_reg != BPF_HELPER_CALL ||
				    !o_.helper_proto_of)
					continue;
				const auto p = o_.helper_proto_of(uint32_t(i.imm));
				if (p)
					BPFTIME_TRY(check_call_args(
						pc, *p, in[pc - fr.start]));
			}
		}
		return {};
	}

    private:
	status check_call_args(uint32_t pc, const helper_proto &p,
			       const arg_state &s) const
	{
		const std::string where =
			"helper #" + std::to_string(int32_t(p_[pc].imm));
		auto arg = [&](int r) { return p.args[size_t(r - 1)]; };
		uint8_t map = 0, key = 0, value = 0;
		for (uint8_t r = 5; r >= 1; r--) {
			const bpf_arg_type b = base_type(arg(r));
			if (b == ARG_CONST_MAP_PTR)
				map = r;
			else if (b == ARG_PTR_TO_MAP_KEY)
				key = r;
			else if (b == ARG_PTR_TO_MAP_VALUE)
				value = r;
		}
		if (map) {
			const uint8_t k = s.reg[map];
			if (k == 0 || (k & ~(K_MAP | K_PARAM)))
				return reject(pc,
					      "%s: R%u is not a map on every path "
					      "(the kernel's verifier: R%u "
					      "type=scalar expected=map_ptr)",
					      where.c_str(), map, map);
		}
		for (uint8_t r : { key, value }) {
			const uint8_t k = r ? s.reg[r] : KEY_KINDS;
			if (k != 0 && !(k & ~KEY_KINDS))
				continue;
			const char *is = (k & K_CONST) ? "a constant" :
					 (k & K_MAP)   ? "a map" :
							 "a number";
			return reject(pc,
				      "%s: R%u may be %s, not a pointer to the "
				      "stack, a map value or the context (the "
				      "kernel's verifier: R%u type=scalar "
				      "expected=fp, map_value)",
				      where.c_str(), r, is, r);
		}
		// A buffer of `size` bytes at the stack pointer in `ptr` must lie
		// inside the frame: the kernel's check_helper_mem_access, which
		// keeps a helper from writing over whatever lies beyond the
		// program's stack.
		auto stack_check = [&](uint8_t ptr, bool size_known, int64_t size,
				       int size_reg) -> status {
			if (s.reg[ptr] != K_STACK)
				return {};
			if (s.known[ptr] && size_known && size >= 0 &&
			    s.val[ptr] >= -MAX_BPF_STACK && s.val[ptr] + size <= 0)
				return {};
			std::string why;
			if (!s.known[ptr])
				why = "not at a known offset";
			else if (!size_known)
				why = "R" + std::to_string(size_reg) +
				      " (its size) is not a known constant";
			else
				why = std::to_string(size) + " bytes at fp" +
				      std::to_string(s.val[ptr]) +
				      " leave the 512-byte frame";
			return reject(pc,
				      "%s: R%u points into the stack, but %s (the "
				      "kernel's verifier: invalid indirect access "
				      "to stack R%u)",
				      where.c_str(), ptr, why.c_str(), ptr);
		};
		for (uint8_t r = 1; r <= 5; r++) {
			const bpf_arg_type b = base_type(arg(r));
			if (b == ARG_PTR_TO_LONG) {
				BPFTIME_TRY(stack_check(r, true, 8, 0));
				continue;
			}
			if (b != ARG_PTR_TO_MEM || r == 5)
				continue;
			const bpf_arg_type sz = base_type(arg(r + 1));
			if (sz != ARG_CONST_SIZE && sz != ARG_CONST_SIZE_OR_ZERO)
				continue;
			const uint8_t sr = uint8_t(r + 1);
			BPFTIME_TRY(stack_check(r, s.known[sr], s.val[sr], sr));
		}
		// Keys and values in the stack hold the map's key_size and
		// value_size bytes.
		if (map && o_.map_sizes && s.reg[map] == K_MAP && s.known[map]) {
			const auto kv = o_.map_sizes(uint32_t(s.val[map]));
			if (kv && key)
				BPFTIME_TRY(stack_check(key, true, kv->first, 0));
			if (kv && value)
				BPFTIME_TRY(stack_check(value, true, kv->second, 0));
		}
		return {};
	}

    public:
	// may_write_context(): a forward "may hold a pointer derived from the
	// context" dataflow over every function, to a fixpoint across calls.
	// A value stored to the stack makes every later load suspect
	// (`spilled`), as the stack slots are not followed one by one.
	bool context_written(const std::function<uint16_t(uint32_t)> &writes)
	{
		const size_t nf = funcs_.size();
		std::vector<uint16_t> entry(nf, 0);
		std::vector<uint8_t> returns(nf, 0);
		entry[0] = 1u << 1;
		bool spilled = false;
		for (;;) {
			ctx_pass pass{ entry, returns, spilled, false, false };
			for (size_t f = 0; f < nf && !pass.written; f++)
				context_flow(f, pass, writes);
			if (pass.written)
				return true;
			if (!pass.changed)
				return false;
		}
	}

    private:
	enum class mark : uint8_t { unvisited, on_stack, done };

	// Frames needed from function f down (1 = f alone); `level` is the
	// frame number f would run in, `call_pc` the call that reaches it.
	result<int> frames_from(uint32_t f, int level, uint32_t call_pc,
				std::vector<mark> &m, std::vector<int> &height,
				const std::vector<std::vector<std::pair<uint32_t, uint32_t>>>
					&callees)
	{
		if (m[f] == mark::on_stack)
			return reject(call_pc, "recursive call to the function at %u",
				      funcs_[f].start);
		if (m[f] == mark::done) {
			if (level - 1 + height[f] > MAX_CALL_FRAMES)
				return reject(call_pc,
					      "call stack of %d frames is too "
					      "deep (max %d)",
					      level - 1 + height[f],
					      MAX_CALL_FRAMES);
			return height[f];
		}
		if (level > MAX_CALL_FRAMES)
			return reject(call_pc,
				      "call stack of %d frames is too deep "
				      "(max %d)",
				      level, MAX_CALL_FRAMES);
		m[f] = mark::on_stack;
		int h = 1;
		for (const auto &[pc, g] : callees[f]) {
			auto r = frames_from(g, level + 1, pc, m, height, callees);
			if (!r)
				return std::move(r).error();
			h = std::max(h, 1 + *r);
		}
		m[f] = mark::done;
		height[f] = h;
		return h;
	}

	status check_call_depth()
	{
		std::vector<std::vector<std::pair<uint32_t, uint32_t>>> callees(
			funcs_.size());
		for (uint32_t pc = 0; pc < n_; pc++) {
			if (second_[pc])
				continue;
			const insn &i = p_[pc];
			if (opcode_table[i.code].kind == insn_kind::call &&
			    i.src_reg == BPF_PSEUDO_CALL)
				callees[func_of_[pc]].push_back(
					{ pc, func_of_[pc + i.imm + 1] });
		}
		std::vector<mark> m(funcs_.size(), mark::unvisited);
		std::vector<int> height(funcs_.size(), 0);
		auto r = frames_from(0, 1, 0, m, height, callees);
		if (!r)
			return std::move(r).error();
		// Callbacks run on a fresh stack (executor::call_function), so
		// each is a root of its own.
		for (uint32_t f : callback_roots_) {
			auto rc = frames_from(f, 1, funcs_[f].start, m, height,
					      callees);
			if (!rc)
				return std::move(rc).error();
		}
		return {};
	}
};

} // namespace

bool may_write_context(
	std::span<const insn> prog,
	const std::function<uint16_t(uint32_t id)> &helper_written_args)
{
	verify_options o;
	o.kfunc_known = [](uint32_t) { return true; };
	o.strict = false;
	if (prog.empty() || prog.size() > BPF_MAX_INSNS)
		return true;
	verifier v(prog, o, true);
	if (!v.run_structure())
		return true;
	return v.context_written(helper_written_args);
}

result<bool> parse_verifier_mode(const char *value)
{
	if (!value || !*value || std::string_view(value) == "strict")
		return true;
	if (std::string_view(value) == "off")
		return false;
	return fail(EINVAL, std::string("BPFTIME_VERIFIER: '") + value +
				    "' is not 'strict' or 'off'");
}

result<verify_info> verify(std::span<const insn> prog,
			   const verify_options &opts, verify_stats *stats)
{
	if (prog.empty())
		return fail(EINVAL, "0: empty program");
	if (prog.size() > BPF_MAX_INSNS)
		return fail(E2BIG, "0: program of " + std::to_string(prog.size()) +
					   " instructions is too large (max " +
					   std::to_string(BPF_MAX_INSNS) + ")");
	verifier v(prog, opts);
	result<verify_info> info = v.run_structure();
	if (!info)
		return info;
	// The type discipline subsumes the argument kinds of pass 6 (and
	// knows map-of-maps results are maps, which pass 6 cannot).
	if (opts.types)
		BPFTIME_TRY(detail::check_types(prog, opts,
						info->function_starts, stats));
	else
		BPFTIME_TRY(v.check_args());
	return info;
}

status check_helper_args(std::span<const insn> prog,
			 const verify_options &opts)
{
	if (prog.empty() || prog.size() > BPF_MAX_INSNS)
		return {};
	verify_options o;
	o.helper_proto_of = opts.helper_proto_of;
	o.map_sizes = opts.map_sizes;
	o.kfunc_known = [](uint32_t) { return true; };
	o.strict = false;
	verifier v(prog, o, true);
	if (!v.run_structure())
		return {};
	return v.check_args();
}

} // namespace bpftime::vm
