// type_check.cpp: the kernel's type discipline (kernel/bpf/verifier.c,
// do_check and what it calls), for programs the structural passes of
// verifier.cpp accepted.
//
// Every path is explored depth first from the main function's entry. The
// state on a path is one frame per active function (registers r0-r10, 512
// bytes of stack with a type per byte and the register spilled in each
// aligned 8-byte slot) plus the references held (ring buffer records). A
// register is NOT_INIT, a scalar (tnum + signed/unsigned intervals,
// scalar.hpp) or a pointer (ctx, stack of frame n, map value, map key,
// helper memory such as a ring buffer record, a map, a function) with a
// fixed offset and a variable offset (a scalar) and, for results of
// helpers, a MAYBE_NULL flag and an id that NULL checks refine on every
// copy at once.
//
// Pruning follows the kernel's is_state_visited: states are kept at the
// targets of jumps and at calls; a path whose state
// is subsumed by a finished state kept at the same instruction (regsafe,
// stacksafe, refsafe: every register range of the old state contains the
// new one, same pointer kinds and offsets, consistent id maps) stops there.
// A state equal to one still being explored on its own path is an infinite
// loop; any other loop is unrolled until the kernel's limit of processed
// instructions (1,000,000) refuses the program. Registers dead at a pc
// (backward liveness per function) are ignored when comparing, as the
// kernel's liveness marks let it.
//
// Privileges are the kernel's for a privileged tracing program (CAP_BPF +
// CAP_PERFMON): pointers may be stored into maps, compared and passed to
// ARG_ANYTHING; uninitialised stack may be read (as an unknown number).
// Messages are the kernel's log lines, prefixed by the instruction index.
#include "verifier/type_check.hpp"
#include "verifier/scalar.hpp"

#include <bpftime/vm/opcodes.hpp>

#include <algorithm>
#include <array>
#include <cinttypes>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace bpftime::vm::detail {
namespace {

using namespace bpftime::uapi::map_types;

enum rtype : uint8_t {
	NOT_INIT,
	SCALAR,
	PTR_CTX,
	PTR_STACK,
	PTR_MAP_VALUE,
	PTR_MAP_KEY,
	CONST_PTR_MAP,
	PTR_MEM,
	PTR_FUNC,
	PTR_DYNPTR, // a struct bpf_dynptr a helper gave (user_ringbuf_drain)
};

// The kernel's reg_type_str, for messages.
std::string type_name(rtype t, bool maybe_null, bool ringbuf)
{
	std::string s;
	switch (t) {
	case NOT_INIT:
		return "?";
	case SCALAR:
		return "scalar";
	case PTR_CTX:
		s = "ctx";
		break;
	case PTR_STACK:
		s = "fp";
		break;
	case PTR_MAP_VALUE:
		s = "map_value";
		break;
	case PTR_MAP_KEY:
		s = "map_key";
		break;
	case CONST_PTR_MAP:
		s = "map_ptr";
		break;
	case PTR_MEM:
		s = ringbuf ? "ringbuf_mem" : "mem";
		break;
	case PTR_FUNC:
		s = "func";
		break;
	case PTR_DYNPTR:
		s = "dynptr";
		break;
	}
	return maybe_null ? s + "_or_null" : s;
}

struct reg {
	rtype type = NOT_INIT;
	bool maybe_null = false;
	bool ringbuf = false;
	uint8_t frame = 0;    // PTR_STACK: whose stack
	int32_t off = 0;      // fixed offset of a pointer
	uint32_t id = 0;      // NULL checks / equal scalars
	uint32_t ref = 0;     // reference this pointer holds (ring buffer)
	int32_t map = -1;     // index into checker::maps_
	uint32_t mem_size = 0; // PTR_MEM: bytes
	uint32_t func = 0;    // PTR_FUNC: start pc
	scalar v;             // scalar value, or a pointer's variable offset

	bool is_ptr() const noexcept
	{
		return type != NOT_INIT && type != SCALAR;
	}
	std::string name() const
	{
		return type_name(type, maybe_null, ringbuf);
	}
	static reg make_scalar(const scalar &s) noexcept
	{
		reg r;
		r.type = SCALAR;
		r.v = s;
		return r;
	}
	static reg pointer(rtype t, int32_t off = 0) noexcept
	{
		reg r;
		r.type = t;
		r.off = off;
		r.v = scalar::constant(0);
		return r;
	}
	bool operator==(const reg &) const = default;
};

// S_DYN1/S_DYN2: the first and second 8 bytes of a struct bpf_dynptr a
// helper initialised in the stack (the kernel's STACK_DYNPTR).
enum stype : uint8_t { S_INVALID, S_MISC, S_ZERO, S_SPILL, S_DYN1, S_DYN2 };
constexpr int SLOTS = MAX_BPF_STACK / 8;

struct frame {
	std::array<reg, MAX_BPF_REG> regs{};
	std::array<uint8_t, MAX_BPF_STACK> stype{}; // byte b: -(b+1) from fp
	std::array<reg, SLOTS> spill{};
	uint32_t callsite = 0;  // the call that made this frame (frame > 0)
	uint32_t func_start = 0;
	bool callback = false;  // entered from a helper (bpf_loop)
	uint32_t refs_at_entry = 0;
	bool operator==(const frame &) const = default;
};

struct ref_state {
	uint32_t id;
	uint32_t insn;
	bool operator==(const ref_state &) const = default;
};

struct state {
	std::vector<frame> frames;
	std::vector<ref_state> refs;
	// The helper call a bpf_loop callback just returned to (its next
	// iteration), or NONE: only such an arrival may be pruned against a
	// state still being explored. Not part of the state's value.
	uint32_t callback_return = NONE;
	static constexpr uint32_t NONE = ~0u;

	frame &cur() noexcept
	{
		return frames.back();
	}
	const frame &cur() const noexcept
	{
		return frames.back();
	}
	// Calls f on every register and spilled register of every frame.
	template <class F> void each_reg(F f)
	{
		for (frame &fr : frames) {
			for (reg &r : fr.regs)
				f(r);
			for (int s = 0; s < SLOTS; s++)
				if (fr.stype[size_t(s * 8)] == S_SPILL)
					f(fr.spill[size_t(s)]);
		}
	}
};

// A state kept at a prune point, with the kernel's branch count: how many
// paths that went through it are still being explored. 0: every path from
// it has been verified, so it may subsume later states.
struct node {
	state st;
	node *parent;
	int branches;
	uint32_t pc;
	uint32_t hits = 0;
	uint32_t misses = 0;
	uint64_t hash = 0; // of what an exact comparison compares
};

struct path {
	state st;
	uint32_t pc;
	node *parent;
};

[[gnu::format(printf, 2, 3)]] failure reject(uint64_t pc, const char *fmt, ...)
{
	char buf[320];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	return fail(EINVAL, std::to_string(pc) + ": " + buf);
}

std::string tnum_str(const tnum &t)
{
	char b[64];
	if (t.is_const())
		snprintf(b, sizeof(b), "%#" PRIx64, t.v);
	else
		snprintf(b, sizeof(b), "(%#" PRIx64 "; %#" PRIx64 ")", t.v, t.m);
	return b;
}

constexpr int64_t MAX_VAR_OFF = 1 << 29; // the kernel's BPF_MAX_VAR_OFF
constexpr uint64_t MAX_VAR_SIZ = 1u << 29; // BPF_MAX_VAR_SIZ
// States kept per instruction. Finished states that keep failing to
// subsume new ones are dropped first (the kernel's miss_cnt eviction), so
// the cap is rarely reached; past it new states are simply not kept, which
// costs pruning, never soundness.
constexpr size_t MAX_STATES_PER_PC = 1024;

// --- scalar arithmetic ------------------------------------------------------

bool add_ovf(int64_t a, int64_t b, int64_t &r)
{
	return __builtin_add_overflow(a, b, &r);
}
bool sub_ovf(int64_t a, int64_t b, int64_t &r)
{
	return __builtin_sub_overflow(a, b, &r);
}

scalar s_add(const scalar &a, const scalar &b)
{
	scalar r;
	r.var = a.var + b.var;
	int64_t lo, hi;
	if (!add_ovf(a.smin, b.smin, lo) && !add_ovf(a.smax, b.smax, hi)) {
		r.smin = lo;
		r.smax = hi;
	}
	uint64_t ulo, uhi;
	if (!__builtin_add_overflow(a.umin, b.umin, &ulo) &&
	    !__builtin_add_overflow(a.umax, b.umax, &uhi)) {
		r.umin = ulo;
		r.umax = uhi;
	}
	r.sync();
	return r;
}

scalar s_sub(const scalar &a, const scalar &b)
{
	scalar r;
	r.var = a.var - b.var;
	int64_t lo, hi;
	if (!sub_ovf(a.smin, b.smax, lo) && !sub_ovf(a.smax, b.smin, hi)) {
		r.smin = lo;
		r.smax = hi;
	}
	if (a.umin >= b.umax) {
		r.umin = a.umin - b.umax;
		r.umax = a.umax - b.umin;
	}
	r.sync();
	return r;
}

scalar s_neg(const scalar &a)
{
	return s_sub(scalar::constant(0), a);
}

// One 64-bit ALU operation on scalars (op is BPF_ADD ... BPF_ARSH; sdiv and
// smod when is_signed). The caller has refused shifts by 64 or more.
scalar s_alu(uint8_t op, bool is_signed, const scalar &a, const scalar &b,
	     unsigned width)
{
	const uint64_t wmask = width == 64 ? ~0ull : 0xffffffffull;
	if (a.is_const() && b.is_const()) {
		const uint64_t x = a.value(), y = b.value();
		uint64_t r = 0;
		switch (op) {
		case BPF_ADD: r = x + y; break;
		case BPF_SUB: r = x - y; break;
		case BPF_MUL: r = x * y; break;
		case BPF_OR: r = x | y; break;
		case BPF_AND: r = x & y; break;
		case BPF_XOR: r = x ^ y; break;
		case BPF_LSH: r = x << (y & (width - 1)); break;
		case BPF_RSH: r = x >> (y & (width - 1)); break;
		case BPF_ARSH:
			r = width == 64 ?
				    uint64_t(int64_t(x) >> (y & 63)) :
				    uint64_t(int64_t(int32_t(uint32_t(x))) >>
					     (y & 31));
			break;
		case BPF_DIV:
			if (!is_signed) {
				r = y ? x / y : 0;
			} else if (width == 64) {
				const int64_t sx = int64_t(x), sy = int64_t(y);
				r = sy == 0 ? 0 :
				    (sy == -1) ? uint64_t(0) - x :
						 uint64_t(sx / sy);
			} else {
				const int32_t sx = int32_t(uint32_t(x)),
					      sy = int32_t(uint32_t(y));
				r = sy == 0 ? 0 :
				    (sy == -1) ? uint64_t(uint32_t(0u - uint32_t(sx))) :
						 uint64_t(uint32_t(sx / sy));
			}
			break;
		case BPF_MOD:
			if (!is_signed) {
				r = y ? x % y : x;
			} else if (width == 64) {
				const int64_t sx = int64_t(x), sy = int64_t(y);
				r = sy == 0 ? x : (sy == -1) ? 0 : uint64_t(sx % sy);
			} else {
				const int32_t sx = int32_t(uint32_t(x)),
					      sy = int32_t(uint32_t(y));
				r = sy == 0 ? x :
				    (sy == -1) ? 0 : uint64_t(uint32_t(sx % sy));
			}
			break;
		default:
			return scalar::unknown();
		}
		return scalar::constant(r & wmask);
	}
	scalar r;
	switch (op) {
	case BPF_ADD:
		return s_add(a, b);
	case BPF_SUB:
		return s_sub(a, b);
	case BPF_MUL:
		r.var = a.var * b.var;
		if (a.smin >= 0 && b.smin >= 0 && a.umax <= 0xffffffffull &&
		    b.umax <= 0xffffffffull) {
			r.umin = a.umin * b.umin;
			r.umax = a.umax * b.umax;
		}
		break;
	case BPF_AND:
		r.var = a.var & b.var;
		r.umin = r.var.v;
		r.umax = std::min(a.umax, b.umax);
		if (a.smin >= 0 && b.smin >= 0) {
			r.smin = int64_t(r.umin);
			r.smax = int64_t(r.umax);
		}
		break;
	case BPF_OR:
		r.var = a.var | b.var;
		r.umin = std::max(a.umin, b.umin);
		r.umax = r.var.v | r.var.m;
		break;
	case BPF_XOR:
		r.var = a.var ^ b.var;
		r.umin = r.var.v;
		r.umax = r.var.v | r.var.m;
		break;
	case BPF_LSH:
		if (!b.is_const())
			return scalar::unknown();
		{
			const unsigned k = unsigned(b.value() & (width - 1));
			r.var = a.var.shl(k);
			if (k == 0 || a.umax <= (~0ull >> k)) {
				r.umin = a.umin << k;
				r.umax = a.umax << k;
			}
		}
		break;
	case BPF_RSH:
		if (!b.is_const()) {
			r.umax = a.umax;
			break;
		}
		{
			const unsigned k = unsigned(b.value() & (width - 1));
			r.var = a.var.shr(k);
			r.umin = a.umin >> k;
			r.umax = a.umax >> k;
		}
		break;
	case BPF_ARSH:
		if (!b.is_const())
			return scalar::unknown();
		{
			const unsigned k = unsigned(b.value() & 63);
			r.var = a.var.sar(k);
			r.smin = a.smin >> k;
			r.smax = a.smax >> k;
		}
		break;
	case BPF_DIV:
		if (is_signed)
			return scalar::unknown();
		// Unsigned division never grows its dividend (x / 0 is 0).
		r.umax = b.umin > 0 ? a.umax / b.umin : a.umax;
		r.umin = b.umin > 0 ? a.umin / std::max<uint64_t>(b.umax, 1) : 0;
		break;
	case BPF_MOD:
		if (is_signed)
			return scalar::unknown();
		// x % 0 is x; otherwise below the divisor.
		r.umax = b.umin > 0 ? std::min(a.umax, b.umax - 1) : a.umax;
		break;
	default:
		return scalar::unknown();
	}
	r.sync();
	return r;
}

// --- the checker -------------------------------------------------------------

struct helper_meta {
	int32_t map = -1;
	bool map_known = false;
	uint8_t map_reg = 0;
	int64_t alloc_size = -1;
	uint32_t release_ref = 0;
	uint8_t release_reg = 0;
	uint32_t callback = 0;
	bool has_callback = false;
	int64_t const_key = -1; // a 4-byte key known on the stack
	reg callback_ctx;
};

class checker {
    public:
	checker(std::span<const insn> p, const verify_options &o,
		const std::vector<uint32_t> &starts)
		: p_(p), n_(uint32_t(p.size())), o_(o), starts_(starts)
	{
	}

	status run(verify_stats *stats)
	{
		compute_liveness();
		explored_.resize(n_);
		prune_.assign(n_, 0);
		for (uint32_t pc = 0; pc < n_; pc++) {
			const insn &i = p_[pc];
			const insn_kind k = opcode_table[i.code].kind;
			if (k == insn_kind::lddw) {
				pc++;
				continue;
			}
			if (k == insn_kind::jcond || k == insn_kind::ja ||
			    k == insn_kind::ja32) {
				const int64_t rel =
					k == insn_kind::ja32 ? i.imm : i.off;
				const int64_t t = int64_t(pc) + rel + 1;
				// Jump targets are where paths join (and loops
				// close); states are kept there only.
				if (t >= 0 && t < n_)
					prune_[size_t(t)] = 1;
			}
			if (k == insn_kind::call)
				prune_[pc] = 1;
		}
		for (uint32_t s : starts_)
			prune_[s] = 1;

		path first;
		first.pc = 0;
		first.parent = nullptr;
		frame f0;
		f0.regs[1] = reg::pointer(PTR_CTX);
		f0.regs[2] = reg::make_scalar(scalar::unknown());
		f0.regs[BPF_REG_FP] = reg::pointer(PTR_STACK);
		f0.regs[BPF_REG_FP].frame = 0;
		first.st.frames.push_back(f0);
		stack_.push_back(std::move(first));
		status st = explore();
		if (stats) {
			stats->insns_processed = processed_;
			stats->states_stored = stored_;
			stats->states_pruned = pruned_;
		}
		return st;
	}

    private:
	std::span<const insn> p_;
	uint32_t n_;
	const verify_options &o_;
	const std::vector<uint32_t> &starts_;
	std::vector<map_desc> maps_;
	std::vector<uint16_t> live_in_;
	std::vector<uint8_t> prune_;
	std::vector<std::vector<std::unique_ptr<node>>> explored_;
	std::vector<path> stack_;
	uint64_t processed_ = 0;
	uint64_t stored_ = 0;
	uint64_t pruned_ = 0;
	uint32_t next_id_ = 0;

	// The path being explored.
	state *st_ = nullptr;
	uint32_t pc_ = 0;
	node *parent_ = nullptr;

	uint32_t new_id()
	{
		return ++next_id_;
	}

	// --- liveness ----------------------------------------------------

	// Registers of the current function read before written on some path
	// from each pc (a backward dataflow per function), so states that
	// differ only in dead registers are equal, as the kernel's REG_LIVE
	// marks make them.
	void compute_liveness()
	{
		live_in_.assign(n_, 0);
		std::vector<uint8_t> second(n_, 0);
		for (uint32_t pc = 0; pc + 1 < n_; pc++)
			if (opcode_table[p_[pc].code].kind == insn_kind::lddw)
				second[++pc] = 1;
		auto func_end = [&](uint32_t pc) {
			auto it = std::upper_bound(starts_.begin(), starts_.end(),
						   pc);
			return it == starts_.end() ? n_ : *it;
		};
		bool changed = true;
		while (changed) {
			changed = false;
			for (uint32_t pc = n_; pc-- > 0;) {
				if (second[pc])
					continue;
				const insn &i = p_[pc];
				const insn_kind k = opcode_table[i.code].kind;
				uint16_t out = 0;
				const uint32_t end = func_end(pc);
				auto add = [&](int64_t t) {
					if (t >= 0 && t < end)
						out |= live_in_[size_t(t)];
				};
				switch (k) {
				case insn_kind::exit:
					break;
				case insn_kind::ja:
					add(int64_t(pc) + i.off + 1);
					break;
				case insn_kind::ja32:
					add(int64_t(pc) + i.imm + 1);
					break;
				case insn_kind::jcond:
					add(pc + 1);
					add(int64_t(pc) + i.off + 1);
					break;
				case insn_kind::lddw:
					add(pc + 2);
					break;
				default:
					add(pc + 1);
				}
				reg_use u = register_use(i);
				uint16_t reads = u.reads;
				if (k == insn_kind::call)
					reads |= 0x3e; // arguments, conservatively
				const uint16_t kill = u.writes | u.clobbers;
				const uint16_t in = uint16_t((out & ~kill) | reads);
				if (in != live_in_[pc]) {
					live_in_[pc] = in;
					changed = true;
				}
			}
		}
	}

	// Registers that matter in a frame that is not the innermost: those
	// live where its call returns.
	uint16_t live_of(const state &s, size_t fi, uint32_t pc) const
	{
		if (fi + 1 == s.frames.size())
			return uint16_t(live_in_[pc] | (1u << BPF_REG_FP));
		const frame &callee = s.frames[fi + 1];
		const uint32_t ret = callee.callback ? callee.callsite :
						       callee.callsite + 1;
		uint16_t l = ret < n_ ? live_in_[ret] : 0;
		if (callee.callback)
			l |= 0x3e; // the helper call runs again with them
		return uint16_t(l | (1u << BPF_REG_FP));
	}

	// --- state comparison (the kernel's states_equal) ---------------

	struct idmap {
		std::vector<std::pair<uint32_t, uint32_t>> m;
		bool check(uint32_t old_id, uint32_t cur_id)
		{
			if (old_id == 0)
				return true;
			if (cur_id == 0)
				return false;
			for (auto &[a, b] : m) {
				if (a == old_id)
					return b == cur_id;
				if (b == cur_id)
					return false;
			}
			m.push_back({ old_id, cur_id });
			return true;
		}
	};

	bool regsafe(const reg &old, const reg &cur, idmap &ids, bool exact)
	{
		if (old.type == NOT_INIT)
			return !exact || cur.type == NOT_INIT;
		if (old.type != cur.type)
			return false;
		if (old.type == SCALAR) {
			if (exact)
				return old.v == cur.v && ids.check(old.id, cur.id);
			return old.v.contains(cur.v) && ids.check(old.id, cur.id);
		}
		if (old.maybe_null != cur.maybe_null || old.ringbuf != cur.ringbuf ||
		    old.frame != cur.frame || old.off != cur.off ||
		    old.mem_size != cur.mem_size || old.func != cur.func)
			return false;
		if (old.map != cur.map &&
		    (old.map < 0 || cur.map < 0 ||
		     !same_map(maps_[size_t(old.map)], maps_[size_t(cur.map)])))
			return false;
		if (exact ? !(old.v == cur.v) : !old.v.contains(cur.v))
			return false;
		if (old.maybe_null && !ids.check(old.id, cur.id))
			return false;
		return ids.check(old.ref, cur.ref) &&
		       (old.ref == 0) == (cur.ref == 0);
	}

	static bool same_map(const map_desc &a, const map_desc &b)
	{
		return a.type == b.type && a.key_size == b.key_size &&
		       a.value_size == b.value_size && a.flags == b.flags &&
		       a.inner_type == b.inner_type &&
		       a.inner_key_size == b.inner_key_size &&
		       a.inner_value_size == b.inner_value_size;
	}

	bool stacksafe(const frame &old, const frame &cur, idmap &ids, bool exact)
	{
		for (int b = 0; b < MAX_BPF_STACK; b++) {
			const uint8_t o = old.stype[size_t(b)];
			const uint8_t c = cur.stype[size_t(b)];
			if (exact) {
				if (o != c)
					return false;
				continue;
			}
			if (o == S_INVALID)
				continue;
			if (o == S_MISC) {
				if (c == S_MISC || c == S_ZERO)
					continue;
				if (c == S_SPILL &&
				    cur.spill[size_t(b / 8)].type == SCALAR)
					continue;
				return false;
			}
			if (o == S_DYN1 || o == S_DYN2) {
				if (c != o)
					return false;
				continue;
			}
			if (o == S_ZERO) {
				if (c == S_ZERO)
					continue;
				if (c == S_SPILL) {
					const reg &r = cur.spill[size_t(b / 8)];
					if (r.type == SCALAR && r.v.is_const() &&
					    r.v.value() == 0)
						continue;
				}
				return false;
			}
			if (c != S_SPILL)
				return false;
		}
		for (int s = 0; s < SLOTS; s++) {
			if (old.stype[size_t(s * 8)] != S_SPILL)
				continue;
			if (!regsafe(old.spill[size_t(s)], cur.spill[size_t(s)], ids,
				     exact))
				return false;
		}
		return true;
	}

	bool states_equal(const state &old, const state &cur, uint32_t pc,
			  bool exact)
	{
		if (old.frames.size() != cur.frames.size() ||
		    old.refs.size() != cur.refs.size())
			return false;
		idmap ids;
		for (size_t fi = 0; fi < old.frames.size(); fi++) {
			const frame &of = old.frames[fi], &cf = cur.frames[fi];
			if (of.callsite != cf.callsite || of.callback != cf.callback ||
			    of.func_start != cf.func_start)
				return false;
			const uint16_t live = live_of(cur, fi, pc);
			for (int r = 0; r < MAX_BPF_REG; r++) {
				if (!exact && !(live >> r & 1))
					continue;
				if (!regsafe(of.regs[size_t(r)], cf.regs[size_t(r)],
					     ids, exact))
					return false;
			}
			if (!stacksafe(of, cf, ids, exact))
				return false;
		}
		for (size_t k = 0; k < old.refs.size(); k++)
			if (!ids.check(old.refs[k].id, cur.refs[k].id))
				return false;
		return true;
	}

	// --- exploration ---------------------------------------------------

	// A path ended (exit of the main function, or pruned): the states it
	// went through may now be finished.
	void path_done(node *n)
	{
		while (n) {
			if (--n->branches > 0)
				return;
			n = n->parent;
		}
	}

	// A hash of the state that exactly equal states share: the loop check
	// compares only states with the same hash.
	static uint64_t hash_of(const state &s)
	{
		uint64_t h = 1469598103934665603ull;
		auto mix = [&h](uint64_t x) {
			h ^= x;
			h *= 1099511628211ull;
		};
		auto mix_reg = [&](const reg &r) {
			mix(uint64_t(r.type) | uint64_t(r.maybe_null) << 8 |
			    uint64_t(r.frame) << 16 | uint64_t(uint32_t(r.off)) << 32);
			mix(r.v.var.v);
			mix(r.v.var.m);
			mix(uint64_t(r.v.smin));
			mix(uint64_t(r.v.smax));
			mix(r.v.umin);
			mix(r.v.umax);
		};
		for (const frame &f : s.frames) {
			for (const reg &r : f.regs)
				mix_reg(r);
			for (int b = 0; b < MAX_BPF_STACK; b += 8) {
				uint64_t w;
				std::memcpy(&w, &f.stype[size_t(b)], 8);
				mix(w);
				if (f.stype[size_t(b)] == S_SPILL)
					mix_reg(f.spill[size_t(b / 8)]);
			}
		}
		mix(s.refs.size());
		return h;
	}

	// The kernel's is_state_visited. True: the current path is pruned.
	result<bool> visit()
	{
		auto &list = explored_[pc_];
		const uint64_t hash = hash_of(*st_);
		for (size_t k = 0; k < list.size(); k++) {
			auto &old = list[k];
			if (old->branches > 0) {
				const insn &i = p_[pc_];
				// Another iteration of a callback converges when
				// it fits the iteration before (the kernel's
				// calls_callback); an arrival by any other path,
				// such as an outer loop, must not be pruned so.
				const bool calls_callback =
					i.code == (BPF_JMP | BPF_CALL) &&
					i.src_reg == BPF_HELPER_CALL &&
					(uint32_t(i.imm) == BPF_FUNC_loop ||
					 uint32_t(i.imm) == BPF_FUNC_user_ringbuf_drain ||
					 uint32_t(i.imm) == BPF_FUNC_for_each_map_elem) &&
					st_->callback_return == pc_;
				if (calls_callback &&
				    states_equal(old->st, *st_, pc_, false)) {
					pruned_++;
					return true;
				}
				if (calls_callback)
					widen(old->st);
				// A callback's exit that repeats an earlier
				// iteration's is not a loop of its own: the path
				// goes back to the helper's call, where iterations
				// converge (above).
				const bool callback_exit =
					i.code == (BPF_JMP | BPF_EXIT) &&
					st_->cur().callback;
				if (!callback_exit && old->hash == hash &&
				    states_equal(old->st, *st_, pc_, true))
					return reject(pc_, "infinite loop detected at "
							   "insn %u",
						      pc_);
				continue;
			}
			if (states_equal(old->st, *st_, pc_, false)) {
				old->hits++;
				pruned_++;
				return true;
			}
			// A finished state that rarely helps is dropped: no path
			// refers to it any more (its branches are done).
			if (++old->misses > old->hits * 3 + 8) {
				list[k] = std::move(list.back());
				list.pop_back();
				k--;
			}
		}
		if (list.size() >= MAX_STATES_PER_PC)
			return false;
		auto n = std::make_unique<node>();
		n->st = *st_;
		n->parent = parent_;
		n->branches = 1;
		n->pc = pc_;
		n->hash = hash;
		parent_ = n.get();
		list.push_back(std::move(n));
		stored_++;
		return false;
	}

	// Another iteration of a callback loop (bpf_loop) that does not yet
	// fit the state of the one before: numbers that changed become
	// unknown, so the iterations converge (an accumulator in the caller's
	// stack would otherwise grow forever). Only loses precision.
	void widen(const state &old)
	{
		if (old.frames.size() != st_->frames.size())
			return;
		auto w = [](const reg &o, reg &c) {
			if (o.type == SCALAR && c.type == SCALAR && !(o.v == c.v)) {
				c.v = scalar::unknown();
				c.id = 0;
			}
		};
		for (size_t fi = 0; fi < old.frames.size(); fi++) {
			const frame &of = old.frames[fi];
			frame &cf = st_->frames[fi];
			for (int r = 0; r < MAX_BPF_REG; r++)
				w(of.regs[size_t(r)], cf.regs[size_t(r)]);
			for (int sl = 0; sl < SLOTS; sl++)
				if (of.stype[size_t(sl * 8)] == S_SPILL &&
				    cf.stype[size_t(sl * 8)] == S_SPILL)
					w(of.spill[size_t(sl)], cf.spill[size_t(sl)]);
		}
	}

	void push_branch(state s, uint32_t pc)
	{
		if (parent_)
			parent_->branches++;
		stack_.push_back(path{ std::move(s), pc, parent_ });
	}

	status explore()
	{
		while (!stack_.empty()) {
			path p = std::move(stack_.back());
			stack_.pop_back();
			state s = std::move(p.st);
			st_ = &s;
			pc_ = p.pc;
			parent_ = p.parent;
			for (;;) {
				if (++processed_ > o_.insn_limit)
					return fail(E2BIG,
						    std::to_string(pc_) +
							    ": BPF program is too "
							    "large. Processed " +
							    std::to_string(processed_) +
							    " insn");
				if (prune_[pc_]) {
					auto hit = visit();
					if (!hit)
						return std::move(hit).error();
					if (*hit) {
						path_done(parent_);
						break;
					}
				}
				s.callback_return = state::NONE;
				auto next = step();
				if (!next)
					return std::move(next).error();
				if (*next < 0) {
					path_done(parent_);
					break;
				}
				pc_ = uint32_t(*next);
			}
		}
		return {};
	}

	// --- registers -------------------------------------------------------

	reg &R(int r)
	{
		return st_->cur().regs[size_t(r)];
	}

	status check_read(int r)
	{
		if (R(r).type == NOT_INIT)
			return reject(pc_, "R%d !read_ok", r);
		return {};
	}

	void set_scalar(int r, const scalar &v)
	{
		R(r) = reg::make_scalar(v);
	}

	// After a refinement of register r with a scalar id, every copy of it
	// (same id) learns the same (the kernel's sync_linked_regs).
	void propagate(const reg &r)
	{
		if (r.type != SCALAR || r.id == 0)
			return;
		st_->each_reg([&](reg &o) {
			if (o.type == SCALAR && o.id == r.id)
				o.v = r.v;
		});
	}

	// --- ALU -------------------------------------------------------------

	status do_alu(const insn &i)
	{
		const bool is64 = bpf_class(i.code) == BPF_ALU64;
		const uint8_t op = bpf_op(i.code);
		const bool x = bpf_src(i.code) == BPF_X;
		const int d = i.dst_reg, sr = i.src_reg;
		const opcode_info &oi = opcode_table[i.code];
		if (oi.kind == insn_kind::neg || oi.kind == insn_kind::endian) {
			BPFTIME_TRY(check_read(d));
			if (R(d).is_ptr()) {
				set_scalar(d, scalar::unknown());
				return {};
			}
			scalar v = R(d).v;
			if (oi.kind == insn_kind::neg) {
				v = is64 ? s_neg(v) : trunc32(s_neg(trunc32(v)));
			} else {
				const unsigned w = unsigned(i.imm);
				const bool le = bpf_class(i.code) == BPF_ALU &&
						bpf_src(i.code) == BPF_TO_LE;
				if (le) {
					if (w < 64)
						v = s_alu(BPF_AND, false, v,
							  scalar::constant((1ull << w) - 1),
							  64);
				} else if (v.is_const()) {
					uint64_t c = v.value();
					if (w == 16)
						c = __builtin_bswap16(uint16_t(c));
					else if (w == 32)
						c = __builtin_bswap32(uint32_t(c));
					else
						c = __builtin_bswap64(c);
					v = scalar::constant(c);
				} else {
					v = scalar::of_size(w / 8);
				}
			}
			set_scalar(d, v);
			return {};
		}
		if (x)
			BPFTIME_TRY(check_read(sr));
		if (op == BPF_MOV) {
			if (x) {
				const reg src = R(sr);
				if (i.off != 0) { // movsx
					if (src.is_ptr()) {
						set_scalar(d, scalar::unknown());
						return {};
					}
					scalar v = sext(src.v, unsigned(i.off));
					if (!is64)
						v = trunc32(v);
					set_scalar(d, v);
					return {};
				}
				if (is64) {
					if (src.type == SCALAR && src.id == 0 &&
					    !src.v.is_const())
						R(sr).id = new_id();
					R(d) = R(sr);
					return {};
				}
				if (src.is_ptr()) {
					set_scalar(d, scalar::of_size(4));
					return {};
				}
				const scalar t = trunc32(src.v);
				// A 32-bit copy of a value that fits is the same
				// value: keep the two linked.
				if (src.v.umax <= 0xffffffffull && !src.v.is_const()) {
					if (src.id == 0)
						R(sr).id = new_id();
					R(d) = R(sr);
					return {};
				}
				set_scalar(d, t);
				return {};
			}
			set_scalar(d, is64 ? scalar::constant(uint64_t(int64_t(i.imm))) :
					     scalar::constant(uint32_t(i.imm)));
			return {};
		}
		BPFTIME_TRY(check_read(d));
		const bool is_signed = (op == BPF_DIV || op == BPF_MOD) && i.off == 1;
		if ((op == BPF_LSH || op == BPF_RSH || op == BPF_ARSH) && !x) {
			const uint32_t lim = is64 ? 64 : 32;
			if (uint32_t(i.imm) >= lim)
				return reject(pc_, "invalid shift %d", i.imm);
		}
		const reg dst = R(d);
		const reg src = x ? R(sr) :
				    reg::make_scalar(is64 ? scalar::constant(uint64_t(
								    int64_t(i.imm))) :
							    scalar::constant(uint32_t(i.imm)));
		if (dst.is_ptr() || src.is_ptr())
			return ptr_alu(i, is64, op, d, dst, src);
		scalar r;
		if (is64) {
			r = s_alu(op, is_signed, dst.v, src.v, 64);
		} else {
			const bool sx = op == BPF_ARSH || is_signed;
			const scalar a = sx ? sext32(dst.v) : trunc32(dst.v);
			const scalar b = sx ? sext32(src.v) : trunc32(src.v);
			r = trunc32(s_alu(op, is_signed, a, b, 32));
		}
		set_scalar(d, r);
		return {};
	}

	// Arithmetic with a pointer operand: the kernel's
	// adjust_ptr_min_max_vals for a privileged program.
	status ptr_alu(const insn &i, bool is64, uint8_t op, int d, reg dst,
		       reg src)
	{
		const char *opname = insn_mnemonic(i).data();
		if (!is64) {
			if (op == BPF_SUB) {
				set_scalar(d, scalar::of_size(4));
				return {};
			}
			return reject(pc_, "R%d 32-bit pointer arithmetic prohibited",
				      d);
		}
		if (dst.is_ptr() && src.is_ptr()) {
			if (op == BPF_SUB) {
				set_scalar(d, scalar::unknown());
				return {};
			}
			return reject(pc_, "R%d pointer %s pointer prohibited", d,
				      opname);
		}
		const reg &ptr = dst.is_ptr() ? dst : src;
		const reg &off = dst.is_ptr() ? src : dst;
		if (op != BPF_ADD && op != BPF_SUB) {
			if (op == BPF_AND || op == BPF_OR || op == BPF_XOR)
				return reject(pc_,
					      "R%d bitwise operator %s on pointer "
					      "prohibited",
					      d, opname);
			return reject(pc_,
				      "R%d pointer arithmetic with %s operator "
				      "prohibited",
				      d, opname);
		}
		if (op == BPF_SUB && !dst.is_ptr())
			return reject(pc_, "R%d tried to subtract pointer from scalar",
				      d);
		if (ptr.maybe_null)
			return reject(pc_,
				      "R%d pointer arithmetic on %s prohibited, "
				      "null-check it first",
				      d, ptr.name().c_str());
		if (ptr.type == CONST_PTR_MAP || ptr.type == PTR_FUNC ||
		    ptr.type == PTR_DYNPTR)
			return reject(pc_, "R%d pointer arithmetic on %s prohibited",
				      d, ptr.name().c_str());
		const scalar &v = off.v;
		const std::string tn = ptr.name();
		if (v.is_const()) {
			const int64_t c = int64_t(v.value());
			if (c >= MAX_VAR_OFF || c <= -MAX_VAR_OFF)
				return reject(pc_,
					      "math between %s pointer and %" PRId64
					      " is not allowed",
					      tn.c_str(), c);
		} else if (v.smin == std::numeric_limits<int64_t>::min()) {
			return reject(pc_,
				      "math between %s pointer and register with "
				      "unbounded min value is not allowed",
				      tn.c_str());
		} else if (v.smax >= MAX_VAR_OFF || v.smin <= -MAX_VAR_OFF) {
			return reject(pc_,
				      "value %" PRId64 " makes %s pointer be out of "
				      "bounds",
				      v.smin <= -MAX_VAR_OFF ? v.smin : v.smax,
				      tn.c_str());
		}
		reg r = ptr;
		if (v.is_const()) {
			const int64_t c = int64_t(v.value());
			const int64_t no = op == BPF_ADD ? int64_t(r.off) + c :
							   int64_t(r.off) - c;
			if (no >= MAX_VAR_OFF || no <= -MAX_VAR_OFF)
				return reject(pc_,
					      "value %" PRId64 " makes %s pointer be "
					      "out of bounds",
					      no, tn.c_str());
			r.off = int32_t(no);
		} else {
			r.v = op == BPF_ADD ? s_add(r.v, v) : s_sub(r.v, v);
			if (r.v.smin <= -MAX_VAR_OFF || r.v.smax >= MAX_VAR_OFF)
				return reject(pc_,
					      "value %" PRId64 " makes %s pointer be "
					      "out of bounds",
					      r.v.smax, tn.c_str());
		}
		r.id = 0;
		R(d) = r;
		return {};
	}

	// --- memory ------------------------------------------------------------

	map_desc *map_of(const reg &r)
	{
		return r.map >= 0 ? &maps_[size_t(r.map)] : nullptr;
	}

	// The bytes [lo, hi + size) a pointer's access may touch, relative to
	// the object's start, checked against [0, limit): the kernel's
	// check_mem_region_access and its messages.
	status region(int rn, const reg &r, int32_t insn_off, uint32_t size,
		      uint64_t limit, const char *what)
	{
		const int64_t fixed = int64_t(r.off) + insn_off;
		if (r.v.is_const()) {
			const int64_t o = fixed + int64_t(r.v.value());
			if (o < 0 || uint64_t(o) + size > limit)
				return reject(pc_,
					      "invalid access to %s, %s=%" PRIu64
					      " off=%" PRId64 " size=%u",
					      what,
					      std::string(what) == "map value" ?
						      "value_size" :
						      "mem_size",
					      limit, o, size);
			return {};
		}
		if (r.v.smin < 0 && (r.v.smin == std::numeric_limits<int64_t>::min() ||
				     fixed + r.v.smin < 0))
			return reject(pc_,
				      "R%d min value is negative, either use "
				      "unsigned index or do a if (index >=0) check.",
				      rn);
		if (fixed + r.v.smin < 0)
			return reject(pc_,
				      "R%d min value is outside of the allowed "
				      "memory range",
				      rn);
		if (r.v.umax >= MAX_VAR_OFF)
			return reject(pc_,
				      "R%d unbounded memory access, make sure to "
				      "bounds check any such access",
				      rn);
		if (uint64_t(fixed + int64_t(r.v.umax)) + size > limit)
			return reject(pc_,
				      "R%d max value is outside of the allowed "
				      "memory range",
				      rn);
		return {};
	}

	// A store of `val` (nullptr: an unknown number; for ST, a constant)
	// or a load (val unused) through register rn.
	struct access {
		bool write;
		const reg *val; // the stored value, when a register or constant
		reg loaded;     // what a load gives
	};

	status check_mem(int rn, int32_t insn_off, uint32_t size, access &a,
			 bool atomic)
	{
		const reg r = R(rn);
		if (r.type == NOT_INIT)
			return reject(pc_, "R%d !read_ok", rn);
		if (r.maybe_null || r.type == SCALAR || r.type == CONST_PTR_MAP ||
		    r.type == PTR_FUNC || r.type == PTR_DYNPTR)
			return reject(pc_, "R%d invalid mem access '%s'", rn,
				      r.name().c_str());
		a.loaded = reg::make_scalar(scalar::of_size(size));
		switch (r.type) {
		case PTR_CTX: {
			if (atomic)
				return reject(pc_,
					      "BPF_ATOMIC stores into R%d ctx is not "
					      "allowed",
					      rn);
			if (!r.v.is_const() || r.v.value() != 0) {
				return reject(pc_,
					      "variable ctx access var_off=%s off=%d "
					      "size=%u",
					      tnum_str(r.v.var).c_str(), r.off + insn_off,
					      size);
			}
			const int64_t o = int64_t(r.off) + insn_off;
			if (o < 0 || uint64_t(o) + size > o_.ctx_size ||
			    (a.write && !o_.ctx_writable))
				return reject(pc_,
					      "invalid bpf_context access off=%" PRId64
					      " size=%u%s",
					      o, size,
					      o_.ctx_size == 0 ?
						      " (the context size is not "
						      "known to the verifier)" :
						      "");
			return {};
		}
		case PTR_MAP_VALUE:
		case PTR_MAP_KEY: {
			const map_desc *m = map_of(r);
			if (!m)
				return reject(pc_,
					      "R%d invalid mem access '%s': the map is "
					      "not known to the verifier",
					      rn, r.name().c_str());
			const uint32_t lim = r.type == PTR_MAP_KEY ? m->key_size :
								     m->value_size;
			if (a.write && r.type == PTR_MAP_KEY)
				return reject(pc_, "R%d cannot write into map_key",
					      rn);
			if (a.write && (m->flags & BPF_F_RDONLY_PROG))
				return reject(pc_, "write into map forbidden, "
						   "value_size=%u off=%d size=%u",
					      lim, r.off + insn_off, size);
			return region(rn, r, insn_off, size, lim,
				      r.type == PTR_MAP_KEY ? "map key" :
							      "map value");
		}
		case PTR_MEM:
			return region(rn, r, insn_off, size, r.mem_size, "memory");
		case PTR_STACK:
			return stack_access(rn, r, insn_off, size, a, atomic);
		default:
			break;
		}
		return reject(pc_, "R%d invalid mem access '%s'", rn,
			      r.name().c_str());
	}

	frame &frame_of(const reg &r)
	{
		return st_->frames[r.frame];
	}

	// Marks the slot holding byte b as plain data if it held a spilled
	// register (a partial overwrite destroys it).
	static void unspill(frame &f, int b)
	{
		const int s = b / 8;
		if (f.stype[size_t(s * 8)] != S_SPILL)
			return;
		for (int k = 0; k < 8; k++)
			f.stype[size_t(s * 8 + k)] = S_MISC;
		f.spill[size_t(s)] = reg{};
	}

	status stack_access(int rn, const reg &r, int32_t insn_off, uint32_t size,
			    access &a, bool atomic)
	{
		frame &f = frame_of(r);
		const int64_t fixed = int64_t(r.off) + insn_off;
		if (!r.v.is_const()) {
			const int64_t lo = fixed + r.v.smin;
			const int64_t hi = fixed + r.v.smax;
			if (r.v.smin <= -MAX_VAR_OFF || r.v.smax >= MAX_VAR_OFF ||
			    lo < -MAX_BPF_STACK || hi + int64_t(size) > 0)
				return reject(pc_,
					      "invalid variable-offset %s stack R%d "
					      "var_off=%s off=%" PRId64 " size=%u",
					      a.write ? "write to" : "read from", rn,
					      tnum_str(r.v.var).c_str(), fixed, size);
			if (a.write || atomic) {
				for (int64_t o = lo; o < hi + int64_t(size); o++) {
					const int b = int(-o - 1);
					unspill(f, b);
					f.stype[size_t(b)] = S_MISC;
				}
			}
			return {};
		}
		const int64_t o = fixed + int64_t(r.v.value());
		if (o < -MAX_BPF_STACK || o + int64_t(size) > 0)
			return reject(pc_,
				      "invalid %s stack R%d off=%" PRId64 " size=%u",
				      a.write ? "write to" : "read from", rn, o, size);
		const bool slot = size == 8 && (-o) % 8 == 0;
		const int sl = int((-o) / 8) - 1;
		if (atomic) {
			if (slot && f.stype[size_t(sl * 8)] == S_SPILL &&
			    f.spill[size_t(sl)].is_ptr())
				return reject(pc_,
					      "attempt to corrupt spilled pointer on "
					      "stack");
			for (int64_t k = o; k < o + int64_t(size); k++) {
				const int b = int(-k - 1);
				unspill(f, b);
				f.stype[size_t(b)] = S_MISC;
			}
			return {};
		}
		if (a.write) {
			const reg *v = a.val;
			if (slot && v) {
				for (int k = 0; k < 8; k++)
					f.stype[size_t(sl * 8 + k)] = S_SPILL;
				f.spill[size_t(sl)] = *v;
				return {};
			}
			const bool zero = v && v->type == SCALAR && v->v.is_const() &&
					  v->v.value() == 0;
			for (int64_t k = o; k < o + int64_t(size); k++) {
				const int b = int(-k - 1);
				unspill(f, b);
				f.stype[size_t(b)] = zero ? S_ZERO : S_MISC;
			}
			return {};
		}
		// A load.
		if (slot && f.stype[size_t(sl * 8)] == S_SPILL) {
			a.loaded = f.spill[size_t(sl)];
			return {};
		}
		bool all_zero = true;
		for (int64_t k = o; k < o + int64_t(size); k++) {
			const int b = int(-k - 1);
			const uint8_t t = f.stype[size_t(b)];
			if (t == S_SPILL) {
				const reg &sp = f.spill[size_t(b / 8)];
				if (!(sp.type == SCALAR && sp.v.is_const() &&
				      sp.v.value() == 0))
					all_zero = false;
			} else if (t != S_ZERO) {
				all_zero = false;
			}
		}
		if (all_zero)
			a.loaded = reg::make_scalar(scalar::constant(0));
		return {};
	}

	status do_ldx(const insn &i)
	{
		BPFTIME_TRY(check_read(i.src_reg));
		const uint32_t size = access_size(i.code);
		access a{ false, nullptr, {} };
		BPFTIME_TRY(check_mem(i.src_reg, i.off, size, a, false));
		reg v = a.loaded;
		if (opcode_table[i.code].kind == insn_kind::ldxsx) {
			v = reg::make_scalar(v.is_ptr() ? scalar::unknown() :
							  sext(v.v, size * 8));
		} else if (size < 8 && v.is_ptr()) {
			v = reg::make_scalar(scalar::of_size(size));
		} else if (size < 8) {
			v.v = scalar::of_size(size).contains(v.v) ?
				      v.v :
				      trunc32(v.v).umax < (1ull << (size * 8)) ?
				      trunc32(v.v) :
				      scalar::of_size(size);
			v.id = 0;
		}
		R(i.dst_reg) = v;
		return {};
	}

	status do_store(const insn &i)
	{
		const uint32_t size = access_size(i.code);
		BPFTIME_TRY(check_read(i.dst_reg));
		reg imm;
		const reg *val = nullptr;
		if (bpf_class(i.code) == BPF_STX) {
			BPFTIME_TRY(check_read(i.src_reg));
			val = &R(i.src_reg);
			if (size < 8 && val->is_ptr())
				val = nullptr;
			else if (size < 8 && !(val->v.umax < (1ull << (size * 8))))
				val = nullptr;
		} else {
			const uint64_t c = size == 8 ? uint64_t(int64_t(i.imm)) :
					   uint64_t(uint32_t(i.imm)) &
						   ((size == 4) ? 0xffffffffull :
						    (1ull << (size * 8)) - 1);
			imm = reg::make_scalar(scalar::constant(c));
			val = &imm;
		}
		reg copy;
		if (val) {
			copy = *val;
			val = &copy;
		}
		access a{ true, val, {} };
		return check_mem(i.dst_reg, i.off, size, a, false);
	}

	status do_atomic(const insn &i)
	{
		const uint32_t size = access_size(i.code);
		BPFTIME_TRY(check_read(i.dst_reg));
		BPFTIME_TRY(check_read(i.src_reg));
		if (i.imm == BPF_CMPXCHG)
			BPFTIME_TRY(check_read(0));
		const reg &d = R(i.dst_reg);
		if (d.type != PTR_STACK && d.type != PTR_MAP_VALUE &&
		    d.type != PTR_MEM && !(d.type == PTR_CTX && !d.maybe_null)) {
			if (d.type == SCALAR || d.maybe_null ||
			    d.type == CONST_PTR_MAP)
				return reject(pc_, "R%d invalid mem access '%s'",
					      i.dst_reg, d.name().c_str());
		}
		access a{ true, nullptr, {} };
		BPFTIME_TRY(check_mem(i.dst_reg, i.off, size, a, true));
		const scalar fetched = scalar::of_size(size);
		if (i.imm == BPF_CMPXCHG)
			set_scalar(0, fetched);
		else if (i.imm & BPF_FETCH)
			set_scalar(i.src_reg, fetched);
		return {};
	}

	// --- lddw ----------------------------------------------------------------

	result<int32_t> map_index(uint8_t kind, int32_t imm)
	{
		std::optional<map_desc> d;
		if (o_.map_of)
			d = o_.map_of(kind, imm);
		if (!d && o_.map_sizes &&
		    (kind == BPF_PSEUDO_MAP_FD || kind == BPF_PSEUDO_MAP_VALUE)) {
			if (auto kv = o_.map_sizes(uint32_t(imm))) {
				d = map_desc{};
				d->key_size = kv->first;
				d->value_size = kv->second;
			}
		}
		if (!d)
			return -1;
		maps_.push_back(*d);
		return int32_t(maps_.size() - 1);
	}

	status do_lddw(const insn &i)
	{
		const insn &hi = p_[pc_ + 1];
		reg r;
		switch (i.src_reg) {
		case 0:
			r = reg::make_scalar(scalar::constant(
				uint64_t(uint32_t(i.imm)) | uint64_t(uint32_t(hi.imm)) << 32));
			break;
		case BPF_PSEUDO_MAP_FD:
		case BPF_PSEUDO_MAP_IDX: {
			auto m = map_index(i.src_reg, i.imm);
			if (!m)
				return std::move(m).error();
			r = reg::pointer(CONST_PTR_MAP);
			r.map = *m;
			break;
		}
		case BPF_PSEUDO_MAP_VALUE:
		case BPF_PSEUDO_MAP_IDX_VALUE: {
			auto m = map_index(i.src_reg, i.imm);
			if (!m)
				return std::move(m).error();
			r = reg::pointer(PTR_MAP_VALUE, hi.imm);
			r.map = *m;
			if (*m >= 0 && uint32_t(hi.imm) >= maps_[size_t(*m)].value_size)
				return reject(pc_,
					      "invalid access to map value pointer, "
					      "value_size=%u off=%u",
					      maps_[size_t(*m)].value_size,
					      uint32_t(hi.imm));
			break;
		}
		case BPF_PSEUDO_FUNC:
			r = reg::pointer(PTR_FUNC);
			r.func = uint32_t(int64_t(pc_) + i.imm + 1);
			break;
		default: // BPF_PSEUDO_BTF_ID: no kernel objects in user space
			r = reg::make_scalar(scalar::unknown());
			break;
		}
		R(i.dst_reg) = r;
		return {};
	}

	// --- jumps -----------------------------------------------------------------

	// Is "a op b" always (1), never (0) or sometimes (-1) true?
	static int branch_taken(uint8_t op, const scalar &a, const scalar &b)
	{
		switch (op) {
		case BPF_JEQ:
		case BPF_JNE: {
			int eq = -1;
			if (a.is_const() && b.is_const())
				eq = a.value() == b.value();
			else if (a.umin > b.umax || a.umax < b.umin ||
				 a.smin > b.smax || a.smax < b.smin ||
				 ((a.var.v ^ b.var.v) & ~(a.var.m | b.var.m)))
				eq = 0;
			if (eq < 0)
				return -1;
			return op == BPF_JEQ ? eq : !eq;
		}
		case BPF_JGT:
			return a.umin > b.umax ? 1 : a.umax <= b.umin ? 0 : -1;
		case BPF_JGE:
			return a.umin >= b.umax ? 1 : a.umax < b.umin ? 0 : -1;
		case BPF_JLT:
			return a.umax < b.umin ? 1 : a.umin >= b.umax ? 0 : -1;
		case BPF_JLE:
			return a.umax <= b.umin ? 1 : a.umin > b.umax ? 0 : -1;
		case BPF_JSGT:
			return a.smin > b.smax ? 1 : a.smax <= b.smin ? 0 : -1;
		case BPF_JSGE:
			return a.smin >= b.smax ? 1 : a.smax < b.smin ? 0 : -1;
		case BPF_JSLT:
			return a.smax < b.smin ? 1 : a.smin >= b.smax ? 0 : -1;
		case BPF_JSLE:
			return a.smax <= b.smin ? 1 : a.smin > b.smax ? 0 : -1;
		case BPF_JSET:
			if (a.var.v & b.var.v)
				return 1;
			if (((a.var.v | a.var.m) & (b.var.v | b.var.m)) == 0)
				return 0;
			return -1;
		}
		return -1;
	}

	static uint8_t negate(uint8_t op)
	{
		switch (op) {
		case BPF_JEQ: return BPF_JNE;
		case BPF_JNE: return BPF_JEQ;
		case BPF_JGT: return BPF_JLE;
		case BPF_JGE: return BPF_JLT;
		case BPF_JLT: return BPF_JGE;
		case BPF_JLE: return BPF_JGT;
		case BPF_JSGT: return BPF_JSLE;
		case BPF_JSGE: return BPF_JSLT;
		case BPF_JSLT: return BPF_JSGE;
		case BPF_JSLE: return BPF_JSGT;
		}
		return op; // JSET: handled by the caller
	}

	// Narrows a and b to the values where "a op b" holds (reg_set_min_max).
	// False when no values remain.
	static bool refine(uint8_t op, bool jset_false, scalar &a, scalar &b)
	{
		switch (op) {
		case BPF_JEQ: {
			scalar m;
			m.var = a.var.intersect(b.var);
			m.umin = std::max(a.umin, b.umin);
			m.umax = std::min(a.umax, b.umax);
			m.smin = std::max(a.smin, b.smin);
			m.smax = std::min(a.smax, b.smax);
			if ((a.var.v ^ b.var.v) & ~(a.var.m | b.var.m))
				return false;
			m.sync();
			a = b = m;
			break;
		}
		case BPF_JNE:
			if (b.is_const()) {
				const uint64_t c = b.value();
				if (a.umin == c && a.umin < a.umax)
					a.umin++;
				else if (a.umax == c && a.umax > a.umin)
					a.umax--;
				if (a.smin == int64_t(c) && a.smin < a.smax)
					a.smin++;
				else if (a.smax == int64_t(c) && a.smax > a.smin)
					a.smax--;
				if (a.is_const() && a.value() == c)
					return false;
			}
			if (a.is_const()) {
				const uint64_t c = a.value();
				if (b.umin == c && b.umin < b.umax)
					b.umin++;
				else if (b.umax == c && b.umax > b.umin)
					b.umax--;
			}
			break;
		case BPF_JGT:
			if (b.umin == ~0ull || a.umax == 0)
				return false;
			a.umin = std::max(a.umin, b.umin + 1);
			b.umax = std::min(b.umax, a.umax - 1);
			break;
		case BPF_JGE:
			a.umin = std::max(a.umin, b.umin);
			b.umax = std::min(b.umax, a.umax);
			break;
		case BPF_JLT:
			if (a.umin == ~0ull || b.umax == 0)
				return false;
			a.umax = std::min(a.umax, b.umax - 1);
			b.umin = std::max(b.umin, a.umin + 1);
			break;
		case BPF_JLE:
			a.umax = std::min(a.umax, b.umax);
			b.umin = std::max(b.umin, a.umin);
			break;
		case BPF_JSGT:
			if (b.smin == std::numeric_limits<int64_t>::max() ||
			    a.smax == std::numeric_limits<int64_t>::min())
				return false;
			a.smin = std::max(a.smin, b.smin + 1);
			b.smax = std::min(b.smax, a.smax - 1);
			break;
		case BPF_JSGE:
			a.smin = std::max(a.smin, b.smin);
			b.smax = std::min(b.smax, a.smax);
			break;
		case BPF_JSLT:
			if (a.smin == std::numeric_limits<int64_t>::max() ||
			    b.smax == std::numeric_limits<int64_t>::min())
				return false;
			a.smax = std::min(a.smax, b.smax - 1);
			b.smin = std::max(b.smin, a.smin + 1);
			break;
		case BPF_JSLE:
			a.smax = std::min(a.smax, b.smax);
			b.smin = std::max(b.smin, a.smin);
			break;
		case BPF_JSET:
			if (jset_false && b.is_const()) {
				a.var = a.var.intersect(tnum{ 0, ~b.value() });
			} else if (!jset_false && b.is_const() && b.value() != 0 &&
				   (b.value() & (b.value() - 1)) == 0) {
				a.var = a.var.intersect(tnum{ b.value(), ~b.value() });
			}
			break;
		}
		a.sync();
		b.sync();
		return !a.empty() && !b.empty();
	}

	// Does the NULL check on reg `id` in state s go this way? Marks every
	// copy (same id): NULL (scalar 0) or not NULL.
	static void mark_null(state &s, uint32_t id, bool is_null)
	{
		uint32_t ref = 0;
		s.each_reg([&](reg &r) {
			if (!r.maybe_null || r.id != id)
				return;
			if (is_null) {
				ref = r.ref ? r.ref : ref;
				r = reg::make_scalar(scalar::constant(0));
			} else {
				r.maybe_null = false;
			}
		});
		// A NULL ring buffer record holds nothing to release
		// (the kernel's release_reference_state on the NULL branch).
		if (is_null && ref)
			std::erase_if(s.refs, [&](const ref_state &x) {
				return x.id == ref;
			});
	}

	// Successor of a conditional jump at pc_; returns the fall-through pc,
	// the other side pushed, or -1 when neither... (never: one side is
	// always feasible).
	result<int64_t> do_jcond(const insn &i)
	{
		const bool x = bpf_src(i.code) == BPF_X;
		const bool is64 = bpf_class(i.code) == BPF_JMP;
		const uint8_t op = bpf_op(i.code);
		const int d = i.dst_reg, sr = i.src_reg;
		BPFTIME_TRY(check_read(d));
		if (x)
			BPFTIME_TRY(check_read(sr));
		const int64_t target = int64_t(pc_) + i.off + 1;
		const int64_t fall = pc_ + 1;
		const reg a = R(d);
		const reg b = x ? R(sr) :
				  reg::make_scalar(is64 ? scalar::constant(uint64_t(
								  int64_t(i.imm))) :
							  scalar::constant(uint32_t(i.imm)));
		// NULL checks: pointer or NULL against 0.
		auto is_zero = [](const reg &r) {
			return r.type == SCALAR && r.v.is_const() && r.v.value() == 0;
		};
		if ((op == BPF_JEQ || op == BPF_JNE) && is64 &&
		    ((a.is_ptr() && is_zero(b)) || (b.is_ptr() && is_zero(a)))) {
			const reg &p = a.is_ptr() ? a : b;
			if (!p.maybe_null) {
				// A pointer that is not NULL is never 0.
				return op == BPF_JEQ ? fall : target;
			}
			state other = *st_;
			// Taken side: JEQ -> NULL, JNE -> not NULL.
			mark_null(other, p.id, op == BPF_JEQ);
			mark_null(*st_, p.id, op != BPF_JEQ);
			push_branch(std::move(other), uint32_t(target));
			return fall;
		}
		if (a.is_ptr() || b.is_ptr()) {
			push_branch(*st_, uint32_t(target));
			return fall;
		}
		scalar av = a.v, bv = b.v;
		const bool sop = op == BPF_JSGT || op == BPF_JSGE ||
				 op == BPF_JSLT || op == BPF_JSLE;
		// A 32-bit compare works on the low halves; what it learns goes
		// back into a register only when the register equals its view.
		bool a_same = true, b_same = true;
		if (!is64) {
			av = sop ? sext32(a.v) : trunc32(a.v);
			bv = sop ? sext32(b.v) : trunc32(b.v);
			a_same = av == a.v || (sop ? (a.v.smin >= INT32_MIN &&
						     a.v.smax <= INT32_MAX) :
						    a.v.umax <= 0xffffffffull);
			b_same = x && (bv == b.v || (sop ? (b.v.smin >= INT32_MIN &&
							    b.v.smax <= INT32_MAX) :
							   b.v.umax <= 0xffffffffull));
		}
		const int taken = branch_taken(op, av, bv);
		if (taken == 1)
			return target;
		if (taken == 0)
			return fall;
		scalar ta = av, tb = bv, fa = av, fb = bv;
		const bool t_ok = refine(op, false, ta, tb);
		const bool f_ok = op == BPF_JSET ? refine(op, true, fa, fb) :
						   refine(negate(op), false, fa, fb);
		auto apply = [&](state &s, const scalar &na, const scalar &nb) {
			state *save = st_;
			st_ = &s;
			if (a_same) {
				R(d).v = na;
				propagate(R(d));
			}
			if (x && b_same) {
				R(sr).v = nb;
				propagate(R(sr));
			}
			st_ = save;
		};
		if (t_ok && f_ok) {
			state other = *st_;
			apply(other, ta, tb);
			apply(*st_, fa, fb);
			push_branch(std::move(other), uint32_t(target));
			return fall;
		}
		if (t_ok) {
			apply(*st_, ta, tb);
			return target;
		}
		apply(*st_, fa, fb);
		return fall;
	}

	// --- calls -------------------------------------------------------------------

	// A helper argument that points to `size` bytes (size_reg: the register
	// holding the size, for messages; 0 when fixed): the kernel's
	// check_helper_mem_access.
	status helper_mem(int rn, const reg &r, uint64_t size_min, uint64_t size_max,
			  bool write, int size_reg)
	{
		if (r.type == PTR_CTX) {
			if (!r.v.is_const())
				return reject(pc_, "R%d variable ctx access", rn);
			const int64_t o = r.off + int64_t(r.v.value());
			if (o < 0 || uint64_t(o) + size_max > o_.ctx_size ||
			    (write && !o_.ctx_writable))
				return reject(pc_,
					      "invalid bpf_context access off=%" PRId64
					      " size=%" PRIu64,
					      o, size_max);
			return {};
		}
		if (r.type != PTR_STACK && r.type != PTR_MAP_VALUE &&
		    r.type != PTR_MEM && r.type != PTR_MAP_KEY)
			return reject(pc_,
				      "R%d type=%s expected=fp, pkt, pkt_meta, "
				      "map_key, map_value, mem, ringbuf_mem, buf, "
				      "trusted_ptr_",
				      rn, r.name().c_str());
		if (size_max == 0)
			return {};
		if (r.type == PTR_STACK) {
			frame &f = frame_of(r);
			const int64_t lo = r.off + r.v.smin;
			const int64_t hi = r.off + (r.v.is_const() ?
							    int64_t(r.v.value()) :
							    r.v.smax) +
					   int64_t(size_max);
			if (!r.v.is_const() &&
			    (r.v.smin <= -MAX_VAR_OFF || r.v.smax >= MAX_VAR_OFF))
				return reject(pc_,
					      "R%d variable offset stack access "
					      "unbounded",
					      rn);
			const int64_t start = r.v.is_const() ?
						      r.off + int64_t(r.v.value()) :
						      lo;
			if (start < -MAX_BPF_STACK || hi > 0)
				return reject(pc_,
					      "invalid indirect access to stack R%d "
					      "off=%" PRId64 " size=%" PRIu64,
					      rn, start, size_max);
			if (write) {
				for (int64_t k = start; k < hi; k++) {
					const int b = int(-k - 1);
					unspill(f, b);
					f.stype[size_t(b)] = S_MISC;
				}
			}
			(void)size_min;
			return {};
		}
		const map_desc *m = map_of(r);
		if ((r.type == PTR_MAP_VALUE || r.type == PTR_MAP_KEY) && !m)
			return reject(pc_,
				      "R%d points into a map the verifier does not "
				      "know",
				      rn);
		if (write && r.type == PTR_MAP_VALUE &&
		    (m->flags & BPF_F_RDONLY_PROG))
			return reject(pc_, "R%d write into map forbidden", rn);
		const uint64_t lim = r.type == PTR_MEM ? r.mem_size :
				     r.type == PTR_MAP_KEY ? m->key_size :
							     m->value_size;
		reg probe = r;
		// check the region [off, off + size_max) as one access.
		if (size_max > lim)
			return reject(pc_,
				      "invalid access to %s, %s=%" PRIu64
				      " off=%d size=%" PRIu64,
				      r.type == PTR_MEM ? "memory" : "map value",
				      r.type == PTR_MEM ? "mem_size" : "value_size",
				      lim, r.off, size_max);
		(void)size_reg;
		return region(rn, probe, 0, uint32_t(size_max), lim,
			      r.type == PTR_MEM ? "memory" : "map value");
	}

	// Is this helper allowed with this map type (check_map_func_compatibility)?
	status map_compat(uint32_t id, const helper_proto &p, const map_desc &m)
	{
		const uint32_t t = m.type;
		// 0: not described; past the kernel's types: bpftime's own map
		// types (their packages check their helpers themselves).
		if (t == 0 || t > BPF_MAP_TYPE_ARENA)
			return {};
		bool ok = true;
		const bool elem = id == BPF_FUNC_map_lookup_elem ||
				  id == BPF_FUNC_map_update_elem ||
				  id == BPF_FUNC_map_delete_elem;
		switch (t) {
		case BPF_MAP_TYPE_RINGBUF:
			ok = id == BPF_FUNC_ringbuf_output ||
			     id == BPF_FUNC_ringbuf_reserve ||
			     id == BPF_FUNC_ringbuf_query ||
			     id == BPF_FUNC_ringbuf_reserve_dynptr;
			break;
		case BPF_MAP_TYPE_PERF_EVENT_ARRAY:
			ok = !elem && id != BPF_FUNC_ringbuf_output &&
			     id != BPF_FUNC_ringbuf_reserve;
			break;
		case BPF_MAP_TYPE_PROG_ARRAY:
			ok = id == BPF_FUNC_tail_call;
			break;
		case BPF_MAP_TYPE_ARRAY_OF_MAPS:
		case BPF_MAP_TYPE_HASH_OF_MAPS:
			ok = id == BPF_FUNC_map_lookup_elem;
			break;
		case BPF_MAP_TYPE_QUEUE:
		case BPF_MAP_TYPE_STACK:
			ok = id == BPF_FUNC_map_push_elem ||
			     id == BPF_FUNC_map_pop_elem ||
			     id == BPF_FUNC_map_peek_elem;
			break;
		default:
			break;
		}
		if (ok) {
			switch (id) {
			case BPF_FUNC_ringbuf_output:
			case BPF_FUNC_ringbuf_reserve:
			case BPF_FUNC_ringbuf_query:
				ok = t == BPF_MAP_TYPE_RINGBUF;
				break;
			case BPF_FUNC_tail_call:
				ok = t == BPF_MAP_TYPE_PROG_ARRAY;
				break;
			case BPF_FUNC_perf_event_output:
				ok = t == BPF_MAP_TYPE_PERF_EVENT_ARRAY;
				break;
			case BPF_FUNC_map_push_elem:
			case BPF_FUNC_map_pop_elem:
			case BPF_FUNC_map_peek_elem:
				ok = t == BPF_MAP_TYPE_QUEUE ||
				     t == BPF_MAP_TYPE_STACK ||
				     t == BPF_MAP_TYPE_BLOOM_FILTER;
				break;
			default:
				break;
			}
		}
		if (!ok)
			return reject(pc_, "cannot pass map_type %u into func bpf_%.*s#%u",
				      t, int(p.name.size()), p.name.data(), id);
		return {};
	}

	// The 4-byte value a stack pointer points at, when the stack holds a
	// known one (zeroed bytes or a spilled constant); -1 otherwise.
	int64_t stack_u32(const reg &r)
	{
		if (r.type != PTR_STACK || !r.v.is_const())
			return -1;
		const int64_t o = r.off + int64_t(r.v.value());
		if (o < -MAX_BPF_STACK || o + 4 > 0)
			return -1;
		const frame &f = frame_of(r);
		bool zero = true;
		for (int64_t k = o; k < o + 4; k++)
			zero &= f.stype[size_t(-k - 1)] == S_ZERO;
		if (zero)
			return 0;
		if ((-o) % 8 == 0 && f.stype[size_t(-o - 1)] == S_SPILL) {
			const reg &sp = f.spill[size_t((-o) / 8 - 1)];
			if (sp.type == SCALAR && sp.v.is_const())
				return int64_t(uint32_t(sp.v.value()));
		}
		return -1;
	}

	// The kernel's dynptr helpers: which argument a helper initialises
	// (1) or uses (2) as a struct bpf_dynptr. Their bpftime prototypes
	// say ARG_ANYTHING, but the helpers dereference what they get, so the
	// kernel's ARG_PTR_TO_DYNPTR rules apply.
	static int dynptr_role(uint32_t id, int rn)
	{
		switch (id) {
		case BPF_FUNC_ringbuf_reserve_dynptr:
			return rn == 4 ? 1 : 0;
		case BPF_FUNC_ringbuf_submit_dynptr:
		case BPF_FUNC_ringbuf_discard_dynptr:
		case BPF_FUNC_dynptr_write:
		case BPF_FUNC_dynptr_data:
			return rn == 1 ? 2 : 0;
		case BPF_FUNC_dynptr_read:
			return rn == 3 ? 2 : 0;
		}
		return 0;
	}

	// A dynptr argument: a stack slot pair the helper initialises, or an
	// initialised one (or the one a drain callback was given).
	status check_dynptr(int rn, const reg &r, bool init)
	{
		if (!init && r.type == PTR_DYNPTR && r.off == 0 && r.v.is_const() &&
		    r.v.value() == 0)
			return {};
		if (r.type != PTR_STACK || !r.v.is_const())
			return reject(pc_, "R%d type=%s expected=dynptr_ptr", rn,
				      r.name().c_str());
		const int64_t o = r.off + int64_t(r.v.value());
		if (o < -MAX_BPF_STACK || o + 16 > 0 || (-o) % 8 != 0)
			return reject(pc_,
				      "R%d: a dynptr must be 16 bytes at an 8-byte "
				      "aligned stack offset (off=%" PRId64 ")",
				      rn, o);
		frame &f = frame_of(r);
		if (init) {
			for (int64_t k = o; k < o + 16; k++) {
				const int b = int(-k - 1);
				unspill(f, b);
				f.stype[size_t(b)] = k < o + 8 ? S_DYN1 : S_DYN2;
			}
			return {};
		}
		for (int64_t k = o; k < o + 16; k++)
			if (f.stype[size_t(-k - 1)] != (k < o + 8 ? S_DYN1 : S_DYN2))
				return reject(pc_,
					      "Expected an initialized dynptr as arg "
					      "#%d",
					      rn);
		return {};
	}

	// After submit/discard: the dynptr is gone (the kernel invalidates it).
	void release_dynptr(const reg &r)
	{
		if (r.type != PTR_STACK || !r.v.is_const())
			return;
		const int64_t o = r.off + int64_t(r.v.value());
		frame &f = frame_of(r);
		for (int64_t k = o; k < o + 16; k++)
			f.stype[size_t(-k - 1)] = S_MISC;
	}

	// One argument of a helper call.
	status check_arg(uint32_t id, const helper_proto &p, int rn,
			 helper_meta &meta)
	{
		const bpf_arg_type at = p.args[size_t(rn - 1)];
		const bpf_arg_type b = base_type(at);
		if (b == ARG_DONTCARE)
			return {};
		BPFTIME_TRY(check_read(rn));
		const reg &r = R(rn);
		auto is_null = [&] {
			return r.type == SCALAR && r.v.is_const() && r.v.value() == 0;
		};
		auto expected = [&](const char *what) {
			return reject(pc_, "R%d type=%s expected=%s", rn,
				      r.name().c_str(), what);
		};
		if (const int role = dynptr_role(id, rn))
			return check_dynptr(rn, r, role == 1);
		switch (b) {
		case ARG_ANYTHING:
			// An address a helper writes through with no size the
			// verifier knows (bpf_probe_write_user): the kernel's
			// helper fails on the program's own memory (kernel
			// addresses); here it would succeed past the object, so
			// such pointers are refused.
			if ((at & MEM_WRITE) && r.is_ptr()) {
				// The bytes written are the helper's size
				// argument: they must lie inside the object.
				for (int k = 1; k <= 5; k++) {
					const bpf_arg_type sk = base_type(p.args[size_t(k - 1)]);
					if (sk != ARG_CONST_SIZE && sk != ARG_CONST_SIZE_OR_ZERO)
						continue;
					const reg &sz = R(k);
					if (sz.type == SCALAR && sz.v.smin >= 0 &&
					    sz.v.umax < MAX_VAR_SIZ)
						return helper_mem(rn, r, sz.v.umin, sz.v.umax,
								  true, k);
					break;
				}
				return reject(pc_,
					      "R%d type=%s: helper #%u writes through "
					      "it with a size it does not prove; pass a "
					      "user address",
					      rn, r.name().c_str(), id);
			}
			return {};
		case ARG_CONST_MAP_PTR:
			if (r.type != CONST_PTR_MAP || r.maybe_null)
				return expected("map_ptr");
			meta.map = r.map;
			meta.map_known = r.map >= 0;
			meta.map_reg = uint8_t(rn);
			if (meta.map_known)
				BPFTIME_TRY(map_compat(id, p, maps_[size_t(r.map)]));
			return {};
		case ARG_PTR_TO_MAP_KEY:
		case ARG_PTR_TO_MAP_VALUE: {
			// The context too, unlike the kernel: in bpftime it is
			// plain memory of the caller (a buffer, the saved
			// registers) and programs use it so; its bytes are
			// checked against ctx_size like any other.
			if (r.type == SCALAR || r.maybe_null || r.type == CONST_PTR_MAP ||
			    r.type == PTR_FUNC)
				return expected("fp, pkt, pkt_meta, map_key, map_value");
			if (!meta.map_known)
				return reject(pc_,
					      "R%d: the map's %s size is not known to "
					      "the verifier",
					      rn, b == ARG_PTR_TO_MAP_KEY ? "key" : "value");
			const map_desc &m = maps_[size_t(meta.map)];
			const uint32_t size = b == ARG_PTR_TO_MAP_KEY ? m.key_size :
									m.value_size;
			if (b == ARG_PTR_TO_MAP_KEY && size == 4)
				meta.const_key = stack_u32(r);
			return helper_mem(rn, r, size, size, (at & MEM_UNINIT) != 0, 0);
		}
		case ARG_PTR_TO_MEM: {
			if ((at & PTR_MAYBE_NULL) && is_null())
				return {};
			if (r.maybe_null || r.type == SCALAR)
				return expected("fp, pkt, pkt_meta, map_key, "
						"map_value, mem, ringbuf_mem, buf");
			// The size is the next argument (ARG_CONST_SIZE*).
			if (rn == 5)
				return {};
			const bpf_arg_type sz = base_type(p.args[size_t(rn)]);
			if (sz != ARG_CONST_SIZE && sz != ARG_CONST_SIZE_OR_ZERO)
				return helper_mem(rn, r, 1, 1,
						  !(at & MEM_RDONLY), 0);
			const int srn = rn + 1;
			BPFTIME_TRY(check_read(srn));
			const reg &s = R(srn);
			if (s.type != SCALAR)
				return reject(pc_, "R%d type=%s expected=scalar", srn,
					      s.name().c_str());
			if (s.v.smin < 0)
				return reject(pc_,
					      "R%d min value is negative, either use "
					      "unsigned or 'var &= const'",
					      srn);
			if (s.v.umin == 0 && sz == ARG_CONST_SIZE)
				return reject(pc_,
					      "R%d invalid zero-sized read: "
					      "u64=[%" PRIu64 ",%" PRIu64 "]",
					      srn, s.v.umin, s.v.umax);
			if (s.v.umax >= MAX_VAR_SIZ)
				return reject(pc_,
					      "R%d unbounded memory access, use 'var "
					      "&= const' or 'if (var < const)'",
					      srn);
			const bool write = (at & MEM_UNINIT) ||
					   (!(at & MEM_RDONLY) && (at & MEM_WRITE));
			return helper_mem(rn, r, s.v.umin, s.v.umax, write, srn);
		}
		case ARG_CONST_SIZE:
		case ARG_CONST_SIZE_OR_ZERO:
			if (r.type != SCALAR)
				return expected("scalar");
			return {};
		case ARG_CONST_ALLOC_SIZE_OR_ZERO:
			if (r.type != SCALAR)
				return expected("scalar");
			// The kernel wants a constant; a bounded size is accepted
			// too, with the record as small as the size may be (a
			// program that then touches it must prove more).
			if (r.v.umin > 0xffffffffull)
				return reject(pc_, "R%d is not a known constant'",
					      rn);
			meta.alloc_size = int64_t(r.v.umin);
			return {};
		case ARG_PTR_TO_CTX:
			if ((at & PTR_MAYBE_NULL) && is_null())
				return {};
			if (r.type != PTR_CTX)
				return expected("ctx");
			if (r.off != 0 || !r.v.is_const() || r.v.value() != 0)
				return reject(pc_,
					      "dereference of modified ctx ptr R%d "
					      "off=%d disallowed",
					      rn, r.off);
			return {};
		case ARG_PTR_TO_FUNC:
			if (r.type != PTR_FUNC)
				return expected("func");
			meta.callback = r.func;
			meta.has_callback = true;
			return {};
		case ARG_PTR_TO_STACK:
			if ((at & PTR_MAYBE_NULL) && is_null()) {
				meta.callback_ctx = r;
				return {};
			}
			if (r.type != PTR_STACK)
				return expected("fp");
			meta.callback_ctx = r;
			return {};
		case ARG_PTR_TO_LONG:
			if (r.type != PTR_STACK && r.type != PTR_MAP_VALUE &&
			    r.type != PTR_MEM)
				return expected("fp, map_value");
			return helper_mem(rn, r, 8, 8, true, 0);
		case ARG_PTR_TO_CONST_STR:
			if (r.type != PTR_MAP_VALUE && r.type != PTR_STACK &&
			    r.type != PTR_MEM)
				return expected("map_value");
			return helper_mem(rn, r, 1, 1, false, 0);
		case ARG_PTR_TO_RINGBUF_MEM:
			if (r.type != PTR_MEM || !r.ringbuf || r.maybe_null)
				return expected("ringbuf_mem");
			if (r.off != 0 || !r.v.is_const() || r.v.value() != 0)
				return reject(pc_,
					      "R%d must have zero offset when passed "
					      "to release func",
					      rn);
			meta.release_ref = r.ref;
			meta.release_reg = uint8_t(rn);
			return {};
		default:
			return {};
		}
	}

	// Drops reference `ref`: every pointer holding it becomes a number
	// (the kernel's release_reference; for privileged programs the
	// copies become unknown scalars).
	void release(uint32_t ref)
	{
		std::erase_if(st_->refs, [&](const ref_state &x) { return x.id == ref; });
		st_->each_reg([&](reg &r) {
			if (r.is_ptr() && r.ref == ref)
				r = reg::make_scalar(scalar::unknown());
		});
	}

	result<int64_t> do_helper(const insn &i)
	{
		const uint32_t id = uint32_t(i.imm);
		std::optional<helper_proto> p;
		if (id == BPF_FUNC_tail_call)
			p = tail_call_proto;
		if (o_.helper_proto_of)
			if (auto q = o_.helper_proto_of(id))
				p = q;
		if (!p)
			return reject(pc_, "invalid func unknown#%u", id);
		if (id == BPF_FUNC_tail_call)
			p->args[1] = ARG_CONST_MAP_PTR;
		helper_meta meta;
		for (int rn = 1; rn <= 5; rn++)
			BPFTIME_TRY(check_arg(id, *p, rn, meta));
		if (id == BPF_FUNC_ringbuf_submit_dynptr ||
		    id == BPF_FUNC_ringbuf_discard_dynptr)
			release_dynptr(R(1));
		if (id == BPF_FUNC_tail_call && !st_->refs.empty())
			return reject(pc_,
				      "tail_call would lead to reference leak");
		if (meta.release_ref) {
			bool held = false;
			for (const ref_state &x : st_->refs)
				held |= x.id == meta.release_ref;
			if (!held)
				return reject(pc_,
					      "R%d: reference has not been acquired "
					      "before",
					      meta.release_reg);
			release(meta.release_ref);
		}
		if (meta.has_callback) {
			// A helper that calls back (bpf_loop): the callback
			// runs in a new frame, with r1 the index and r2 the
			// context; the helper may call it again, so its exit
			// returns to this call (the kernel's iterating
			// callbacks).
			const bool is_loop = id == BPF_FUNC_loop;
			const bool is_drain = id == BPF_FUNC_user_ringbuf_drain;
			const bool is_for_each = id == BPF_FUNC_for_each_map_elem;
			if (!is_loop && !is_drain && !is_for_each)
				return reject(pc_,
					      "helper #%u takes a callback the "
					      "verifier cannot follow",
					      id);
			if (st_->frames.size() >= size_t(MAX_CALL_FRAMES))
				return reject(pc_,
					      "the call stack of %zu frames is too "
					      "deep",
					      st_->frames.size() + 1);
			state cb = *st_;
			frame nf;
			nf.callsite = pc_;
			nf.func_start = meta.callback;
			nf.callback = true;
			nf.refs_at_entry = uint32_t(cb.refs.size());
			// bpf_loop: the index; user_ringbuf_drain: the
			// helper's own dynptr, a number to the program
			// (only dynptr helpers take it).
			if (is_for_each && !meta.map_known)
				return reject(pc_,
					      "R1: bpf_for_each_map_elem needs a "
					      "map the verifier knows");
			if (is_for_each) {
				// callback(map, key, value, ctx): the map's
				// own key and value, as the kernel's
				// set_map_elem_callback_state gives them.
				nf.regs[1] = reg::pointer(CONST_PTR_MAP);
				nf.regs[1].map = meta.map;
				nf.regs[2] = reg::pointer(PTR_MAP_KEY);
				nf.regs[2].map = meta.map;
				nf.regs[3] = reg::pointer(PTR_MAP_VALUE);
				nf.regs[3].map = meta.map;
				nf.regs[4] = meta.callback_ctx;
			} else {
				if (is_loop)
					nf.regs[1] = reg::make_scalar(
						scalar::urange(0, 0xffffffffull));
				else
					nf.regs[1] = reg::pointer(PTR_DYNPTR);
				nf.regs[2] = meta.callback_ctx;
			}
			nf.regs[BPF_REG_FP] = reg::pointer(PTR_STACK);
			nf.regs[BPF_REG_FP].frame = uint8_t(cb.frames.size());
			cb.frames.push_back(nf);
			push_branch(std::move(cb), meta.callback);
		}
		frame &f = st_->cur();
		for (int r = 1; r <= 5; r++)
			f.regs[size_t(r)] = reg{};
		reg r0;
		switch (p->ret) {
		case RET_VOID:
			r0 = reg{};
			break;
		case RET_PTR_TO_MAP_VALUE_OR_NULL: {
			r0.id = new_id();
			r0.maybe_null = true;
			r0.v = scalar::constant(0);
			if (meta.map_known) {
				const map_desc m = maps_[size_t(meta.map)];
				if (m.type == BPF_MAP_TYPE_ARRAY_OF_MAPS ||
				    m.type == BPF_MAP_TYPE_HASH_OF_MAPS) {
					map_desc in;
					in.type = m.inner_type;
					in.key_size = m.inner_key_size;
					in.value_size = m.inner_value_size;
					in.max_entries = m.inner_max_entries;
					maps_.push_back(in);
					r0.type = CONST_PTR_MAP;
					r0.map = int32_t(maps_.size() - 1);
					break;
				}
			}
			r0.type = PTR_MAP_VALUE;
			r0.map = meta.map;
			// An array lookup of a constant key below max_entries cannot
			// fail (the kernel's const-key array lookups).
			if (meta.map_known && meta.const_key >= 0 &&
			    id == BPF_FUNC_map_lookup_elem) {
				const map_desc &m = maps_[size_t(meta.map)];
				if ((m.type == BPF_MAP_TYPE_ARRAY ||
				     m.type == BPF_MAP_TYPE_PERCPU_ARRAY) &&
				    uint64_t(meta.const_key) < m.max_entries) {
					r0.maybe_null = false;
					r0.id = 0;
				}
			}
			break;
		}
		case RET_PTR_TO_RINGBUF_MEM_OR_NULL:
		case RET_PTR_TO_MEM_OR_NULL:
			if (meta.alloc_size < 0)
				return reject(pc_,
					      "helper #%u returns memory of a size "
					      "the verifier does not know",
					      id);
			r0.type = PTR_MEM;
			r0.maybe_null = true;
			r0.mem_size = uint32_t(meta.alloc_size);
			r0.v = scalar::constant(0);
			r0.id = new_id();
			if (p->ret == RET_PTR_TO_RINGBUF_MEM_OR_NULL) {
				r0.ringbuf = true;
				r0.ref = r0.id;
				st_->refs.push_back({ r0.id, pc_ });
			}
			break;
		default:
			r0 = reg::make_scalar(scalar::unknown());
			break;
		}
		f.regs[0] = r0;
		return int64_t(pc_) + 1;
	}

	result<int64_t> do_call(const insn &i)
	{
		if (i.src_reg == BPF_PSEUDO_KFUNC_CALL) {
			// A ufunc: its arguments are numbers to the verifier.
			for (int r = 1; r <= 5; r++)
				R(r) = reg{};
			set_scalar(0, scalar::unknown());
			return int64_t(pc_) + 1;
		}
		if (i.src_reg == BPF_HELPER_CALL)
			return do_helper(i);
		// bpf-to-bpf: a new frame; r1-r5 are the callee's arguments.
		if (st_->frames.size() >= size_t(MAX_CALL_FRAMES))
			return reject(pc_, "the call stack of %zu frames is too deep",
				      st_->frames.size() + 1);
		const uint32_t target = uint32_t(int64_t(pc_) + i.imm + 1);
		frame nf;
		nf.callsite = pc_;
		nf.func_start = target;
		nf.refs_at_entry = uint32_t(st_->refs.size());
		for (int r = 1; r <= 5; r++)
			nf.regs[size_t(r)] = R(r);
		nf.regs[BPF_REG_FP] = reg::pointer(PTR_STACK);
		nf.regs[BPF_REG_FP].frame = uint8_t(st_->frames.size());
		st_->frames.push_back(nf);
		return int64_t(target);
	}

	result<int64_t> do_exit()
	{
		BPFTIME_TRY(check_read(0));
		if (st_->frames.size() == 1) {
			if (!st_->refs.empty())
				return reject(pc_,
					      "Unreleased reference id=%u "
					      "alloc_insn=%u",
					      st_->refs[0].id, st_->refs[0].insn);
			return int64_t(-1);
		}
		frame callee = std::move(st_->frames.back());
		st_->frames.pop_back();
		const uint8_t gone = uint8_t(st_->frames.size());
		reg r0 = callee.regs[0];
		if (r0.type == PTR_STACK && r0.frame >= gone)
			return reject(pc_, "cannot return stack pointer to the caller");
		// Nothing in the caller may keep pointing into the frame that
		// ends.
		bool dangling = false;
		st_->each_reg([&](reg &r) {
			if (r.type == PTR_STACK && r.frame >= gone)
				dangling = true;
		});
		if (dangling)
			return reject(pc_,
				      "a pointer to the stack of the returning "
				      "function escapes into its caller");
		if (callee.callback) {
			if (st_->refs.size() != callee.refs_at_entry)
				return reject(pc_,
					      "Unreleased reference id=%u "
					      "alloc_insn=%u",
					      st_->refs.back().id, st_->refs.back().insn);
			if (r0.type != SCALAR || r0.v.smin < 0 || r0.v.smax > 1)
				return reject(pc_,
					      "At callback return the register R0 "
					      "has %s should have been in [0, 1]",
					      r0.type == SCALAR ? "unknown scalar value" :
								  r0.name().c_str());
			// Back to the helper call, which may call again.
			st_->callback_return = callee.callsite;
			return int64_t(callee.callsite);
		}
		frame &f = st_->cur();
		for (int r = 1; r <= 5; r++)
			f.regs[size_t(r)] = reg{};
		f.regs[0] = r0;
		return int64_t(callee.callsite) + 1;
	}

	// --- one instruction ---------------------------------------------------------

	// Executes the instruction at pc_ on the current state: the next pc,
	// or -1 when the path ends.
	result<int64_t> step()
	{
		const insn &i = p_[pc_];
		switch (opcode_table[i.code].kind) {
		case insn_kind::alu:
		case insn_kind::neg:
		case insn_kind::endian:
			BPFTIME_TRY(do_alu(i));
			return int64_t(pc_) + 1;
		case insn_kind::lddw:
			BPFTIME_TRY(do_lddw(i));
			return int64_t(pc_) + 2;
		case insn_kind::ldx:
		case insn_kind::ldxsx:
			BPFTIME_TRY(do_ldx(i));
			return int64_t(pc_) + 1;
		case insn_kind::st:
		case insn_kind::stx:
			BPFTIME_TRY(do_store(i));
			return int64_t(pc_) + 1;
		case insn_kind::atomic:
			BPFTIME_TRY(do_atomic(i));
			return int64_t(pc_) + 1;
		case insn_kind::ja:
			return int64_t(pc_) + i.off + 1;
		case insn_kind::ja32:
			return int64_t(pc_) + i.imm + 1;
		case insn_kind::jcond:
			return do_jcond(i);
		case insn_kind::call:
			return do_call(i);
		case insn_kind::callx:
			return reject(pc_,
				      "callx (a helper called through a register) "
				      "cannot be checked");
		case insn_kind::exit:
			return do_exit();
		case insn_kind::invalid:
			break;
		}
		return reject(pc_, "invalid opcode 0x%02x", i.code);
	}
};

} // namespace

status check_types(std::span<const insn> prog, const verify_options &opts,
		   const std::vector<uint32_t> &function_starts,
		   verify_stats *stats)
{
	checker c(prog, opts, function_starts);
	return c.run(stats);
}

} // namespace bpftime::vm::detail
