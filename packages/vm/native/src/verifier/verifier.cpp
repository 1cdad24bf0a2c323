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
//   5. the call graph is acyclic and at most MAX_CALL_FRAMES deep.
// Called by vm::load() only; runs once per program, allocates freely.
#include <bpftime/vm/opcodes.hpp>
#include <bpftime/vm/verifier.hpp>

#include <algorithm>
#include <cinttypes>
#include <cstdarg>
#include <cstdio>
#include <string>

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

struct function_range {
	uint32_t start;
	uint32_t end; // one past the last instruction
};

class verifier {
    public:
	verifier(std::span<const insn> prog, const verify_options &opts)
		: p_(prog), n_(static_cast<uint32_t>(prog.size())), o_(opts),
		  second_(prog.size(), 0)
	{
	}

	result<verify_info> run()
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
				} else if (!o_.helper_known ||
					   !o_.helper_known(id)) {
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
		flow(funcs_[f], pass.entry[f], in, seen, step,
		     [](uint16_t a, uint16_t b) {
			     return static_cast<uint16_t>(a | b);
		     });
	}

	// A forward dataflow over the function fr to its fixpoint, one
	// register mask per instruction: in[pc - fr.start] is the meet of
	// the masks flowing into pc (entry at the start), seen[] marks the
	// instructions reached, step(pc, mask in) gives the mask out of pc.
	template <class Step, class Meet>
	void flow(const function_range &fr, uint16_t entry,
		  std::vector<uint16_t> &in, std::vector<uint8_t> &seen,
		  Step step, Meet meet) const
	{
		const uint32_t len = fr.end - fr.start;
		in.assign(len, 0);
		seen.assign(len, 0);
		std::vector<uint8_t> queued(len, 0);
		std::vector<uint32_t> work{ fr.start };
		in[0] = entry;
		seen[0] = queued[0] = 1;
		while (!work.empty()) {
			const uint32_t pc = work.back();
			work.pop_back();
			queued[pc - fr.start] = 0;
			const uint16_t out = step(pc, in[pc - fr.start]);
			uint32_t succ[2];
			const int ns = successors(pc, succ);
			for (int k = 0; k < ns; k++) {
				const uint32_t j = succ[k] - fr.start;
				const uint16_t merged = seen[j] ? meet(in[j], out) : out;
				if (seen[j] && merged == in[j])
					continue;
				seen[j] = 1;
				in[j] = merged;
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
		flow(
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
		if (!o_.strict)
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
	o.helper_known = [](uint32_t) { return true; };
	o.kfunc_known = [](uint32_t) { return true; };
	o.strict = false;
	if (prog.empty() || prog.size() > BPF_MAX_INSNS)
		return true;
	verifier v(prog, o);
	if (!v.run())
		return true;
	return v.context_written(helper_written_args);
}

result<verify_info> verify(std::span<const insn> prog,
			   const verify_options &opts)
{
	if (prog.empty())
		return fail(EINVAL, "0: empty program");
	if (prog.size() > BPF_MAX_INSNS)
		return fail(E2BIG, "0: program of " + std::to_string(prog.size()) +
					   " instructions is too large (max " +
					   std::to_string(BPF_MAX_INSNS) + ")");
	return verifier(prog, opts).run();
}

} // namespace bpftime::vm
