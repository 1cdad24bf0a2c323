// interpreter.cpp: make_interpreter(), a direct-threaded eBPF interpreter.
//
// Load time: the verified program is pre-decoded into `dinsn`s, one per
// instruction slot (indices are kept, so a pc in a message is the pc of the
// original program). Each dinsn holds the address of its handler, taken from
// a 256-entry label table built from BPFTIME_VM_OPCODES, plain uint8_t
// registers and the off/imm fields; calls get their target resolved (helper
// and kfunc pointers in `fns_`, kind in `src`).
//
// Run time: one function per memory policy and counting mode (engine<false,
// false>; engine<true, ...> for bounds-check mode; engine<..., true> when
// vm_options::insn_counter is set, which counts each dispatch), each a block
// of labels jumped to with `goto *pc->handler` (GCC/Clang computed goto). The
// choice is made once per run; the loop of the plain engines has no trace of
// counting. The pairs that clang emits in most loops get a
// fused handler, stored in the first slot of the pair: a register move or an
// lddw followed by an ALU operation of the same width on the same register
// (`r0 = r1; r0 += r3`, `w0 = w1; w0 += w3`, `r4 = map_value ll; r4 += r2`).
// The pair then costs one dispatch and one round trip of dst through memory
// instead of two; the second slot keeps its own handler, so a jump to it runs
// it alone. Each handler implements every legal form of its opcode (sdiv/smod by off, movsx by off, le/be/bswap and atomics by imm), so
// the table alone is a complete interpreter. The run owns, on the C stack, 11
// registers, MAX_CALL_FRAMES frames of MAX_BPF_STACK bytes and the saved
// r6-r9/r10 of each local call; nothing is allocated and nothing throws on
// this path. An error (bounds fault, bad callx, too deep calls) ends the run
// and builds its message then.
//
// Semantics are RFC 9669's, written without C++ undefined behaviour: 32-bit
// results zero-extended, shift counts masked, x/0 = 0, x%0 = x, signed
// INT_MIN/-1 = INT_MIN and INT_MIN%-1 = 0, le/be relative to a little-endian
// view of the registers.
#include "../backend.hpp"
#include "../fault.hpp"
#include "../tail_call.hpp"

#include <bpftime/vm/opcodes.hpp>

#include <array>
#include <bit>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <optional>
#include <type_traits>
#include <unordered_map>

namespace bpftime::vm::detail {
namespace {

// One pre-decoded instruction slot.
struct dinsn {
	const void *handler;
	uint8_t dst;
	uint8_t src; // for calls: a call_kind
	int16_t off;
	int32_t imm; // for helper and kfunc calls: index into fns_
};
static_assert(sizeof(dinsn) == 16, "keep dinsn at 16 bytes");

enum call_kind : uint8_t {
	call_fn = 0,    // helper or kfunc through fns_[imm]
	call_local = 1, // BPF_PSEUDO_CALL, pc + imm + 1
	call_tail = 3,  // helper 12, bpf_tail_call
};

constexpr uint64_t STACK_SIZE = uint64_t(MAX_CALL_FRAMES) * MAX_BPF_STACK;

// One run of the interpreter on this thread: a program, a callback, or a
// tail-called program. They form a chain through `parent`, innermost on top
// (tls_top), so that a callback may use its callers' stacks and ctx in
// bounds-check mode, and so that a failing callback can fail the run whose
// helper called it.
struct activation {
	activation *parent = nullptr;
	uint64_t stack_lo = 0; // [stack_lo, stack_lo + STACK_SIZE)
	uint64_t ctx_lo = 0;
	uint64_t ctx_len = 0;
	int callback_depth = 0;
	// Set by a callback run from a helper of this activation that failed;
	// this activation ends with it as soon as the helper returns.
	std::optional<bpftime::error> pending;
};

thread_local activation *tls_top = nullptr;

bool in_range(uint64_t lo, uint64_t len, uint64_t addr, uint64_t size)
{
	const uint64_t rel = addr - lo; // wraps when addr < lo
	return rel < len && size <= len - rel;
}

// Bounds-check mode: the stacks and ctx of every activation on this thread,
// then the program's regions (stores only into writable ones).
[[gnu::noinline]] bool access_ok_slow(const activation &a, const program &p,
				      uint64_t addr, uint64_t size, bool store)
{
	for (const activation *x = a.parent; x; x = x->parent)
		if (in_range(x->stack_lo, STACK_SIZE, addr, size) ||
		    in_range(x->ctx_lo, x->ctx_len, addr, size))
			return true;
	for (const memory_region &r : p.regions)
		if (in_range(r.start, r.size, addr, size) &&
		    (!store || r.writable))
			return true;
	return false;
}

inline bool access_ok(const activation &a, const program &p, uint64_t addr,
		      uint64_t size, bool store)
{
	return in_range(a.stack_lo, STACK_SIZE, addr, size) ||
	       in_range(a.ctx_lo, a.ctx_len, addr, size) ||
	       access_ok_slow(a, p, addr, size, store);
}

// ubpf's bounds_check message, with the pc first as in verifier messages.
[[gnu::cold, gnu::noinline]] failure fault(const activation &a,
					   const program &p, uint32_t pc,
					   uint64_t addr, uint64_t size,
					   bool store)
{
	char buf[256];
	snprintf(buf, sizeof(buf),
		 "%u: out of bounds memory %s of %" PRIu64 " bytes at 0x%" PRIx64
		 " (stack 0x%" PRIx64 "+%" PRIu64 ", ctx 0x%" PRIx64
		 "+%" PRIu64 ", %zu regions)",
		 pc, store ? "store" : "load", size, addr, a.stack_lo,
		 STACK_SIZE, a.ctx_lo, a.ctx_len, p.regions.size());
	return fail(EFAULT, buf);
}

[[gnu::cold, gnu::noinline]] failure runtime_error(int code, uint32_t pc,
						   const char *what,
						   uint64_t value)
{
	char buf[160];
	snprintf(buf, sizeof(buf), "%u: %s %" PRIu64, pc, what, value);
	return fail(code, buf);
}

uint64_t sdiv64(uint64_t a, uint64_t b)
{
	const int64_t x = static_cast<int64_t>(a), y = static_cast<int64_t>(b);
	if (y == 0)
		return 0;
	if (y == -1) // INT64_MIN / -1 overflows in C++; RFC 9669: INT64_MIN
		return 0 - a;
	return static_cast<uint64_t>(x / y);
}

uint64_t smod64(uint64_t a, uint64_t b)
{
	const int64_t x = static_cast<int64_t>(a), y = static_cast<int64_t>(b);
	if (y == 0)
		return a;
	if (y == -1)
		return 0;
	return static_cast<uint64_t>(x % y);
}

uint32_t sdiv32(uint32_t a, uint32_t b)
{
	const int32_t x = static_cast<int32_t>(a), y = static_cast<int32_t>(b);
	if (y == 0)
		return 0;
	if (y == -1)
		return 0u - a;
	return static_cast<uint32_t>(x / y);
}

uint32_t smod32(uint32_t a, uint32_t b)
{
	const int32_t x = static_cast<int32_t>(a), y = static_cast<int32_t>(b);
	if (y == 0)
		return a;
	if (y == -1)
		return 0;
	return static_cast<uint32_t>(x % y);
}

// le/be relative to the host: a no-op (plus truncation) when they match.
template <std::endian E> uint64_t to_endian(uint64_t v, int32_t width)
{
	constexpr bool swap = E != std::endian::native;
	switch (width) {
	case 16:
		return swap ? __builtin_bswap16(static_cast<uint16_t>(v)) :
			      static_cast<uint16_t>(v);
	case 32:
		return swap ? __builtin_bswap32(static_cast<uint32_t>(v)) :
			      static_cast<uint32_t>(v);
	default:
		return swap ? __builtin_bswap64(v) : v;
	}
}

uint64_t bswap(uint64_t v, int32_t width)
{
	switch (width) {
	case 16:
		return __builtin_bswap16(static_cast<uint16_t>(v));
	case 32:
		return __builtin_bswap32(static_cast<uint32_t>(v));
	default:
		return __builtin_bswap64(v);
	}
}

template <class T> T atomic_rmw(T *p, int32_t op, T v, uint64_t &src_out,
				uint64_t &r0)
{
	constexpr int mo = __ATOMIC_SEQ_CST;
	T old = 0;
	switch (op) {
	case BPF_ADD:
	case BPF_ADD | BPF_FETCH:
		old = __atomic_fetch_add(p, v, mo);
		break;
	case BPF_OR:
	case BPF_OR | BPF_FETCH:
		old = __atomic_fetch_or(p, v, mo);
		break;
	case BPF_AND:
	case BPF_AND | BPF_FETCH:
		old = __atomic_fetch_and(p, v, mo);
		break;
	case BPF_XOR:
	case BPF_XOR | BPF_FETCH:
		old = __atomic_fetch_xor(p, v, mo);
		break;
	case BPF_XCHG:
		old = __atomic_exchange_n(p, v, mo);
		break;
	case BPF_CMPXCHG: {
		// On success `expected` keeps the old value (== r0), on failure
		// it receives it: either way r0 = old, zero-extended.
		T expected = static_cast<T>(r0);
		__atomic_compare_exchange_n(p, &expected, v, false, mo, mo);
		r0 = expected;
		return old;
	}
	}
	if (op & BPF_FETCH)
		src_out = old;
	return old;
}

class interpreter;

// The labels of one engine, exported once so the pre-decoder can store
// handler addresses: rows[] in BPFTIME_VM_OPCODES order, then the label of
// the bytes outside the table at rows[opcode_count].
struct label_set {
	const void *const *rows;
	// The fused pairs: [first][op][form], first in fused_first order, op
	// in fused_ops order, form 0 = imm, 1 = reg.
	const void *const *fused;
};

// What a fused pair starts with; the second instruction is ALU64 for the
// first two, ALU for mov32.
enum fused_first : size_t { fused_mov64, fused_lddw, fused_mov32, fused_firsts };

// The ALU operations a fused pair may end with: those that cannot fail and
// read no off field (div and mod have sdiv/smod by off). X(name, op, body):
// body computes `d op= s` in the unsigned type `ut` of the pair's width,
// shift counts masked as RFC 9669 says. This one list gives fused_ops, the
// label table and the handlers their common order.
#define BPFTIME_INTERP_FUSED_OPS(X)                                            \
	X(add, BPF_ADD, d += s)                                                \
	X(sub, BPF_SUB, d -= s)                                                \
	X(mul, BPF_MUL, d *= s)                                                \
	X(or, BPF_OR, d |= s)                                                  \
	X(and, BPF_AND, d &= s)                                                \
	X(xor, BPF_XOR, d ^= s)                                                \
	X(lsh, BPF_LSH, d <<= (s & (sizeof(ut) * 8 - 1)))                      \
	X(rsh, BPF_RSH, d >>= (s & (sizeof(ut) * 8 - 1)))                      \
	X(arsh, BPF_ARSH,                                                      \
	  d = static_cast<ut>(static_cast<std::make_signed_t<ut>>(d) >>         \
			      (s & (sizeof(ut) * 8 - 1))))

#define BPFTIME_INTERP_FUSED_CODE(name, op, ...) op,
constexpr uint8_t fused_ops[] = { BPFTIME_INTERP_FUSED_OPS(
	BPFTIME_INTERP_FUSED_CODE) };
#undef BPFTIME_INTERP_FUSED_CODE
constexpr size_t fused_op_count = std::size(fused_ops);

// The label index of the pair (i, second), or -1 when it is not fused. A
// second instruction reading dst as its register operand is left alone, so
// the fused handlers may read that operand before they write dst.
int fused_index(const insn &i, const insn &second)
{
	size_t first;
	if (opcode_table[i.code].kind == insn_kind::lddw)
		first = fused_lddw;
	else if (i.code == (BPF_ALU64 | BPF_MOV | BPF_X) && i.off == 0)
		first = fused_mov64;
	else if (i.code == (BPF_ALU | BPF_MOV | BPF_X) && i.off == 0)
		first = fused_mov32;
	else
		return -1;
	const uint8_t cls = first == fused_mov32 ? BPF_ALU : BPF_ALU64;
	const bool reg_form = bpf_src(second.code) == BPF_X;
	if (bpf_class(second.code) != cls || second.dst_reg != i.dst_reg ||
	    (reg_form && second.src_reg == i.dst_reg))
		return -1;
	for (size_t k = 0; k < fused_op_count; k++)
		if ((second.code & 0xf0) == fused_ops[k])
			return int((first * fused_op_count + k) * 2 +
				   (reg_form ? 1 : 0));
	return -1;
}

// Checked: bounds-check mode. Counting: vm_options::insn_counter is set;
// every dispatch adds one to a local count (a fused pair two) that is added
// to *insn_counter when the run ends. The plain engines are separate
// instantiations, so counting costs them nothing.
template <bool Checked, bool Counting> struct engine {
	static result<uint64_t> execute(const interpreter &self,
					activation &act, uint32_t entry,
					const uint64_t in[5],
					label_set *export_labels) noexcept;
};

class interpreter final : public executor {
    public:
	explicit interpreter(const program &p);

	result<uint64_t> run(void *ctx, uint64_t ctx_len) const noexcept override;
	uint64_t call_function(uint32_t pc,
			       const uint64_t args[5]) const noexcept override;
	// Runs under detail::guarded_run(), so that a fault handler can end
	// the run (vm::end_run_after_fault): the interpreter has no unwinding
	// of its own, and the guard costs little beside an interpreted run.
	runner make_runner() const noexcept override
	{
		return { &run_guarded, this };
	}

	const program &prog() const noexcept
	{
		return prog_;
	}
	const dinsn *code() const noexcept
	{
		return code_.data();
	}
	const helper_fn *fns() const noexcept
	{
		return fns_.data();
	}

    private:
	result<uint64_t> enter(uint32_t entry, const uint64_t in[5],
			       uint64_t ctx, uint64_t ctx_len,
			       bool callback) const noexcept;
	static uint64_t run_plain(const void *self, void *ctx, uint64_t ctx_len,
				  int *err) noexcept
	{
		result<uint64_t> r =
			static_cast<const interpreter *>(self)->run(ctx, ctx_len);
		*err = r ? 0 : r.error().code;
		return r ? *r : 0;
	}
	static uint64_t run_guarded(const void *self, void *ctx,
				    uint64_t ctx_len, int *err) noexcept
	{
		// A run that a fault ended never restored tls_top: its
		// activations were abandoned with their frames.
		activation *const top = tls_top;
		const uint64_t r0 = detail::guarded_run(&run_plain, self, ctx,
							ctx_len, err);
		tls_top = top;
		return r0;
	}

	const program &prog_;
	// prog_.options.insn_counter != nullptr: code_ holds the labels of the
	// counting engines. Read once per enter().
	const bool counting_;
	std::vector<dinsn> code_;
	std::vector<helper_fn> fns_;
};

static std::array<const void *, 256> label_table(const label_set &ls)
{
	std::array<const void *, 256> t;
	t.fill(ls.rows[opcode_count]);
	size_t row = 0;
#define BPFTIME_INTERP_FILL(code_, name_, ...) t[code_] = ls.rows[row++];
	BPFTIME_VM_OPCODES(BPFTIME_INTERP_FILL)
#undef BPFTIME_INTERP_FILL
	return t;
}

interpreter::interpreter(const program &p)
	: prog_(p), counting_(p.options.insn_counter != nullptr)
{
	label_set ls{};
	const uint64_t none[5] = {};
	activation scratch;
	if (p.options.bounds_check)
		(void)(counting_ ? engine<true, true>::execute(*this, scratch,
							       0, none, &ls) :
				   engine<true, false>::execute(
					   *this, scratch, 0, none, &ls));
	else
		(void)(counting_ ? engine<false, true>::execute(*this, scratch,
								0, none, &ls) :
				   engine<false, false>::execute(
					   *this, scratch, 0, none, &ls));
	const std::array<const void *, 256> table = label_table(ls);

	std::unordered_map<uint32_t, int32_t> helper_slot, kfunc_slot;
	const std::vector<insn> &in = p.insns;
	code_.resize(in.size());
	for (size_t pc = 0; pc < in.size(); pc++) {
		const insn &i = in[pc];
		dinsn &d = code_[pc];
		d.handler = table[i.code];
		d.dst = i.dst_reg;
		d.src = i.src_reg;
		d.off = i.off;
		d.imm = i.imm;
		const insn_kind k = opcode_table[i.code].kind;
		if (k == insn_kind::lddw) {
			// The second slot keeps its imm (upper half); it is
			// never dispatched to.
			code_[pc + 1] = dinsn{ ls.rows[opcode_count], 0, 0, 0,
					       in[pc + 1].imm };
			pc++;
			continue;
		}
		if (k != insn_kind::call)
			continue;
		const uint32_t id = static_cast<uint32_t>(i.imm);
		if (i.src_reg == BPF_PSEUDO_CALL) {
			d.src = call_local;
		} else if (i.src_reg == BPF_HELPER_CALL &&
			   id == BPF_FUNC_tail_call) {
			d.src = call_tail;
		} else {
			const bool kf = i.src_reg == BPF_PSEUDO_KFUNC_CALL;
			auto &slots = kf ? kfunc_slot : helper_slot;
			auto [it, fresh] = slots.try_emplace(
				id, static_cast<int32_t>(fns_.size()));
			if (fresh)
				fns_.push_back(kf ? p.kfuncs.at(id).fn :
						    p.helpers[id].fn);
			d.src = call_fn;
			d.imm = it->second;
		}
	}

	for (size_t pc = 0; pc < in.size();) {
		const size_t first = pc;
		pc += opcode_table[in[pc].code].kind == insn_kind::lddw ? 2 : 1;
		if (pc >= in.size())
			break;
		if (const int k = fused_index(in[first], in[pc]); k >= 0)
			code_[first].handler = ls.fused[k];
	}
}

result<uint64_t> interpreter::enter(uint32_t entry, const uint64_t in[5],
				    uint64_t ctx, uint64_t ctx_len,
				    bool callback) const noexcept
{
	activation act;
	act.parent = tls_top;
	act.ctx_lo = ctx;
	act.ctx_len = ctx_len;
	act.callback_depth =
		act.parent ? act.parent->callback_depth + (callback ? 1 : 0) :
			     0;
	if (act.callback_depth > MAX_CALL_FRAMES)
		return runtime_error(ELOOP, entry,
				     "callbacks nested too deep, depth",
				     static_cast<uint64_t>(act.callback_depth));
	tls_top = &act;
	// Nested conditionals of prvalues: r is built in place, no move.
	const bool checked = prog_.options.bounds_check;
	result<uint64_t> r =
		__builtin_expect(counting_, 0) ?
			(checked ? engine<true, true>::execute(*this, act,
							       entry, in,
							       nullptr) :
				   engine<false, true>::execute(
					   *this, act, entry, in, nullptr)) :
			(checked ? engine<true, false>::execute(*this, act,
								entry, in,
								nullptr) :
				   engine<false, false>::execute(
					   *this, act, entry, in, nullptr));
	tls_top = act.parent;
	return r;
}

result<uint64_t> interpreter::run(void *ctx, uint64_t ctx_len) const noexcept
{
	const uint64_t in[5] = { reinterpret_cast<uint64_t>(ctx), ctx_len, 0, 0,
				 0 };
	return enter(0, in, reinterpret_cast<uint64_t>(ctx), ctx_len, false);
}

// Called by a helper (through invoke_callback) while the program that called
// the helper is the innermost activation of this thread. A failing callback
// returns 0 and fails that program with the callback's error; without an
// enclosing program the error is dropped.
uint64_t interpreter::call_function(uint32_t pc,
				    const uint64_t args[5]) const noexcept
{
	result<uint64_t> r = enter(pc, args, 0, 0, true);
	if (r)
		return *r;
	if (activation *outer = tls_top; outer && !outer->pending)
		outer->pending = std::move(r).error();
	return 0;
}

struct saved_frame {
	const dinsn *ret;
	uint64_t r6, r7, r8, r9, r10;
};

// The instruction count of one counting run, added to the caller's counter
// however the run ends (exit, fault, failed callback).
struct insn_tally {
	uint64_t n = 0;
	uint64_t *to;
	explicit insn_tally(uint64_t *counter) noexcept : to(counter)
	{
	}
	~insn_tally()
	{
		*to += n;
	}
	insn_tally(const insn_tally &) = delete;
	insn_tally &operator=(const insn_tally &) = delete;
};
struct no_tally {
	explicit no_tally(uint64_t *) noexcept
	{
	}
};

template <bool Checked, bool Counting>
result<uint64_t>
engine<Checked, Counting>::execute(const interpreter &self, activation &act,
				   uint32_t entry, const uint64_t in[5],
				   label_set *export_labels) noexcept
{
	if (export_labels) [[unlikely]] {
#define BPFTIME_INTERP_LABEL(code_, name_, ...) &&L_##name_,
		// The last entry is the label of bytes outside the table.
		static const void *const rows[] = {
			BPFTIME_VM_OPCODES(BPFTIME_INTERP_LABEL) &&L_invalid
		};
#undef BPFTIME_INTERP_LABEL
		static_assert(sizeof(rows) / sizeof(rows[0]) ==
			      opcode_count + 1);
#define BPFTIME_INTERP_FUSED_LABEL(first, name, ...)                           \
	&&L_##first##_##name##_imm, &&L_##first##_##name##_reg,
#define BPFTIME_INTERP_MOV64F(name, ...)                                       \
	BPFTIME_INTERP_FUSED_LABEL(mov64f, name)
#define BPFTIME_INTERP_LDDWF(name, ...) BPFTIME_INTERP_FUSED_LABEL(lddwf, name)
#define BPFTIME_INTERP_MOV32F(name, ...)                                       \
	BPFTIME_INTERP_FUSED_LABEL(mov32f, name)
		static const void *const fused[] = {
			BPFTIME_INTERP_FUSED_OPS(BPFTIME_INTERP_MOV64F)
				BPFTIME_INTERP_FUSED_OPS(BPFTIME_INTERP_LDDWF)
					BPFTIME_INTERP_FUSED_OPS(
						BPFTIME_INTERP_MOV32F)
		};
#undef BPFTIME_INTERP_MOV64F
#undef BPFTIME_INTERP_LDDWF
#undef BPFTIME_INTERP_MOV32F
#undef BPFTIME_INTERP_FUSED_LABEL
		static_assert(sizeof(fused) / sizeof(fused[0]) ==
			      fused_firsts * fused_op_count * 2);
		export_labels->rows = rows;
		export_labels->fused = fused;
		return uint64_t(0);
	}

	const program &prog = self.prog();
	const dinsn *const base = self.code();
	const helper_fn *const fns = self.fns();

	alignas(16) uint8_t stack[STACK_SIZE];
	saved_frame frames[MAX_CALL_FRAMES];
	int depth = 0;
	uint64_t reg[MAX_BPF_REG] = {};
	reg[1] = in[0];
	reg[2] = in[1];
	reg[3] = in[2];
	reg[4] = in[3];
	reg[5] = in[4];
	reg[BPF_REG_FP] = reinterpret_cast<uint64_t>(stack) + STACK_SIZE;
	act.stack_lo = reinterpret_cast<uint64_t>(stack);

	const dinsn *pc = base + entry;
	[[maybe_unused]] std::conditional_t<Counting, insn_tally, no_tally> tally(
		prog.options.insn_counter);

	// One dispatch runs one instruction (a lddw included), except a fused
	// pair, whose handler counts its second instruction itself.
#define NEXT                                                                   \
	do {                                                                   \
		if constexpr (Counting)                                        \
			++tally.n;                                             \
		goto *pc->handler;                                             \
	} while (0)
#define DST reg[pc->dst]
#define SRC reg[pc->src]
#define IMM64 static_cast<uint64_t>(static_cast<int64_t>(pc->imm))
#define IMM32 static_cast<uint32_t>(pc->imm)
#define PC_INDEX static_cast<uint32_t>(pc - base)
#define CHECK(addr, size, store)                                               \
	do {                                                                   \
		if constexpr (Checked) {                                       \
			if (!access_ok(act, prog, addr, size, store))          \
				[[unlikely]] return fault(act, prog, PC_INDEX, \
							  addr, size, store);  \
		}                                                              \
	} while (0)

	NEXT;

	// ALU64. `d` is the destination register, `s` the operand (imm
	// sign-extended to 64 bits).
#define ALU64(op, ...)                                                         \
	L_##op##64_imm:                                                        \
	{                                                                      \
		uint64_t &d = DST;                                             \
		const uint64_t s = IMM64;                                      \
		__VA_ARGS__;                                                   \
		++pc;                                                          \
		NEXT;                                                          \
	}                                                                      \
	L_##op##64_reg:                                                        \
	{                                                                      \
		uint64_t &d = DST;                                             \
		const uint64_t s = SRC;                                        \
		__VA_ARGS__;                                                   \
		++pc;                                                          \
		NEXT;                                                          \
	}
	// ALU: operands are the low 32 bits, the result is zero-extended.
#define ALU32(op, ...)                                                         \
	L_##op##32_imm:                                                        \
	{                                                                      \
		uint32_t d = static_cast<uint32_t>(DST);                       \
		const uint32_t s = IMM32;                                      \
		__VA_ARGS__;                                                   \
		DST = d;                                                       \
		++pc;                                                          \
		NEXT;                                                          \
	}                                                                      \
	L_##op##32_reg:                                                        \
	{                                                                      \
		uint32_t d = static_cast<uint32_t>(DST);                       \
		const uint32_t s = static_cast<uint32_t>(SRC);                 \
		__VA_ARGS__;                                                   \
		DST = d;                                                       \
		++pc;                                                          \
		NEXT;                                                          \
	}

	ALU64(add, d += s)
	ALU64(sub, d -= s)
	ALU64(mul, d *= s)
	ALU64(or, d |= s)
	ALU64(and, d &= s)
	ALU64(xor, d ^= s)
	ALU64(lsh, d <<= (s & 63))
	ALU64(rsh, d >>= (s & 63))
	ALU64(arsh, d = static_cast<uint64_t>(static_cast<int64_t>(d) >>
					      (s & 63)))
	ALU64(div, d = pc->off ? sdiv64(d, s) : s ? d / s : 0)
	ALU64(mod, d = pc->off ? smod64(d, s) : s ? d % s : d)
	ALU32(add, d += s)
	ALU32(sub, d -= s)
	ALU32(mul, d *= s)
	ALU32(or, d |= s)
	ALU32(and, d &= s)
	ALU32(xor, d ^= s)
	ALU32(lsh, d <<= (s & 31))
	ALU32(rsh, d >>= (s & 31))
	ALU32(arsh, d = static_cast<uint32_t>(static_cast<int32_t>(d) >>
					      (s & 31)))
	ALU32(div, d = pc->off ? sdiv32(d, s) : s ? d / s : 0)
	ALU32(mod, d = pc->off ? smod32(d, s) : s ? d % s : d)
#undef ALU64
#undef ALU32

L_mov64_imm:
	DST = IMM64;
	++pc;
	NEXT;
L_mov64_reg:
	switch (pc->off) {
	case 0:
		DST = SRC;
		break;
	case 8:
		DST = static_cast<uint64_t>(static_cast<int8_t>(SRC));
		break;
	case 16:
		DST = static_cast<uint64_t>(static_cast<int16_t>(SRC));
		break;
	default:
		DST = static_cast<uint64_t>(static_cast<int32_t>(SRC));
		break;
	}
	++pc;
	NEXT;
L_mov32_imm:
	DST = IMM32;
	++pc;
	NEXT;
L_mov32_reg:
	switch (pc->off) {
	case 0:
		DST = static_cast<uint32_t>(SRC);
		break;
	case 8:
		DST = static_cast<uint32_t>(static_cast<int8_t>(SRC));
		break;
	default:
		DST = static_cast<uint32_t>(static_cast<int16_t>(SRC));
		break;
	}
	++pc;
	NEXT;
L_neg64:
	DST = 0 - DST;
	++pc;
	NEXT;
L_neg32:
	DST = static_cast<uint32_t>(0u - static_cast<uint32_t>(DST));
	++pc;
	NEXT;
L_le:
	DST = to_endian<std::endian::little>(DST, pc->imm);
	++pc;
	NEXT;
L_be:
	DST = to_endian<std::endian::big>(DST, pc->imm);
	++pc;
	NEXT;
L_bswap:
	DST = bswap(DST, pc->imm);
	++pc;
	NEXT;

	// Jumps: taken -> pc + off + 1.
#define J64(op, T, cond)                                                       \
	JCOND_WITH(op, T, uint64_t, IMM64, SRC, cond)
#define J32(op, T, cond)                                                       \
	JCOND_WITH(op##32, T, uint32_t, IMM32, SRC, cond)
#define JCOND_WITH(op, T, U, ei, er, cond)                                     \
	L_##op##_imm:                                                          \
	{                                                                      \
		const T a = static_cast<T>(static_cast<U>(DST));               \
		const T b = static_cast<T>(static_cast<U>(ei));                \
		pc += (cond) ? pc->off + 1 : 1;                                \
		NEXT;                                                          \
	}                                                                      \
	L_##op##_reg:                                                          \
	{                                                                      \
		const T a = static_cast<T>(static_cast<U>(DST));               \
		const T b = static_cast<T>(static_cast<U>(er));                \
		pc += (cond) ? pc->off + 1 : 1;                                \
		NEXT;                                                          \
	}

	J64(jeq, uint64_t, a == b)
	J64(jne, uint64_t, a != b)
	J64(jgt, uint64_t, a > b)
	J64(jge, uint64_t, a >= b)
	J64(jlt, uint64_t, a < b)
	J64(jle, uint64_t, a <= b)
	J64(jset, uint64_t, (a & b) != 0)
	J64(jsgt, int64_t, a > b)
	J64(jsge, int64_t, a >= b)
	J64(jslt, int64_t, a < b)
	J64(jsle, int64_t, a <= b)
	J32(jeq, uint32_t, a == b)
	J32(jne, uint32_t, a != b)
	J32(jgt, uint32_t, a > b)
	J32(jge, uint32_t, a >= b)
	J32(jlt, uint32_t, a < b)
	J32(jle, uint32_t, a <= b)
	J32(jset, uint32_t, (a & b) != 0)
	J32(jsgt, int32_t, a > b)
	J32(jsge, int32_t, a >= b)
	J32(jslt, int32_t, a < b)
	J32(jsle, int32_t, a <= b)
#undef JCOND_WITH
#undef J64
#undef J32

L_ja:
	pc += pc->off + 1;
	NEXT;
L_ja32:
	pc += pc->imm + 1;
	NEXT;

#define LDDW_VALUE                                                             \
	(static_cast<uint64_t>(static_cast<uint32_t>(pc[0].imm)) |             \
	 (static_cast<uint64_t>(static_cast<uint32_t>(pc[1].imm)) << 32))
L_lddw:
	DST = LDDW_VALUE;
	pc += 2;
	NEXT;

	// The fused pairs (see the top of this file). `a_expr` is the value the
	// first instruction gives dst, `second` the ALU instruction; the
	// result is computed in UT and zero-extended from it.
#define FUSED(first, UT, a_expr, width, name, op, ...)                         \
	L_##first##_##name##_imm:                                              \
	{                                                                      \
		using ut = UT;                                                 \
		const dinsn &second = pc[width];                               \
		const ut s = static_cast<ut>(static_cast<int64_t>(second.imm)); \
		ut d = static_cast<ut>(a_expr);                                \
		__VA_ARGS__;                                                   \
		DST = d;                                                       \
		pc += (width) + 1;                                             \
		if constexpr (Counting)                                        \
			++tally.n;                                             \
		NEXT;                                                          \
	}                                                                      \
	L_##first##_##name##_reg:                                              \
	{                                                                      \
		using ut = UT;                                                 \
		const dinsn &second = pc[width];                               \
		const ut s = static_cast<ut>(reg[second.src]);                 \
		ut d = static_cast<ut>(a_expr);                                \
		__VA_ARGS__;                                                   \
		DST = d;                                                       \
		pc += (width) + 1;                                             \
		if constexpr (Counting)                                        \
			++tally.n;                                             \
		NEXT;                                                          \
	}
#define FUSED_MOV64(...) FUSED(mov64f, uint64_t, SRC, 1, __VA_ARGS__)
#define FUSED_LDDW(...)                                                        \
	FUSED(lddwf, uint64_t, LDDW_VALUE, 2, __VA_ARGS__)
#define FUSED_MOV32(...) FUSED(mov32f, uint32_t, SRC, 1, __VA_ARGS__)
	BPFTIME_INTERP_FUSED_OPS(FUSED_MOV64)
	BPFTIME_INTERP_FUSED_OPS(FUSED_LDDW)
	BPFTIME_INTERP_FUSED_OPS(FUSED_MOV32)
#undef FUSED_MOV64
#undef FUSED_LDDW
#undef FUSED_MOV32
#undef LDDW_VALUE
#undef FUSED

	// Memory. Accesses may be unaligned: memcpy compiles to one mov.
#define LOAD(name, T, W)                                                       \
	L_##name:                                                              \
	{                                                                      \
		const uint64_t addr = SRC + static_cast<int64_t>(pc->off);     \
		CHECK(addr, sizeof(T), false);                                 \
		T v;                                                           \
		memcpy(&v, reinterpret_cast<const void *>(addr), sizeof v);    \
		DST = static_cast<uint64_t>(static_cast<W>(v));                \
		++pc;                                                          \
		NEXT;                                                          \
	}
#define STORE(name, T, VAL)                                                    \
	L_##name:                                                              \
	{                                                                      \
		const uint64_t addr = DST + static_cast<int64_t>(pc->off);     \
		CHECK(addr, sizeof(T), true);                                  \
		const T v = static_cast<T>(VAL);                               \
		memcpy(reinterpret_cast<void *>(addr), &v, sizeof v);          \
		++pc;                                                          \
		NEXT;                                                          \
	}
	LOAD(ldxb, uint8_t, uint8_t)
	LOAD(ldxh, uint16_t, uint16_t)
	LOAD(ldxw, uint32_t, uint32_t)
	LOAD(ldxdw, uint64_t, uint64_t)
	LOAD(ldxsb, int8_t, int64_t)
	LOAD(ldxsh, int16_t, int64_t)
	LOAD(ldxsw, int32_t, int64_t)
	STORE(stb, uint8_t, pc->imm)
	STORE(sth, uint16_t, pc->imm)
	STORE(stw, uint32_t, pc->imm)
	STORE(stdw, uint64_t, IMM64)
	STORE(stxb, uint8_t, SRC)
	STORE(stxh, uint16_t, SRC)
	STORE(stxw, uint32_t, SRC)
	STORE(stxdw, uint64_t, SRC)
#undef LOAD
#undef STORE

L_atomic32:
	{
		const uint64_t addr = DST + static_cast<int64_t>(pc->off);
		CHECK(addr, 4, true);
		uint64_t fetched = SRC;
		atomic_rmw<uint32_t>(reinterpret_cast<uint32_t *>(addr),
				     pc->imm, static_cast<uint32_t>(SRC),
				     fetched, reg[0]);
		// cmpxchg writes only r0, which may be the source register too.
		if (pc->imm != BPF_CMPXCHG)
			SRC = fetched;
		++pc;
		NEXT;
	}
L_atomic64:
	{
		const uint64_t addr = DST + static_cast<int64_t>(pc->off);
		CHECK(addr, 8, true);
		uint64_t fetched = SRC;
		atomic_rmw<uint64_t>(reinterpret_cast<uint64_t *>(addr),
				     pc->imm, SRC, fetched, reg[0]);
		if (pc->imm != BPF_CMPXCHG)
			SRC = fetched;
		++pc;
		NEXT;
	}

L_call:
	switch (pc->src) {
	case call_fn:
		reg[0] = fns[pc->imm](reg[1], reg[2], reg[3], reg[4], reg[5]);
		if (act.pending) [[unlikely]]
			return std::move(*act.pending);
		++pc;
		NEXT;
	case call_local:
		if (depth + 1 >= MAX_CALL_FRAMES) [[unlikely]]
			return runtime_error(ELOOP, PC_INDEX,
					     "local calls nested too deep, frames",
					     static_cast<uint64_t>(depth + 2));
		frames[depth++] = { pc + 1, reg[6], reg[7], reg[8], reg[9],
				    reg[BPF_REG_FP] };
		reg[BPF_REG_FP] -= MAX_BPF_STACK;
		pc += pc->imm + 1;
		NEXT;
	default: {
		uint64_t r0 = 0;
		if (auto r = run_tail_call(prog,
					   reinterpret_cast<void *>(reg[1]),
					   act.ctx_len, reg[2], reg[3], r0))
			return std::move(*r);
		reg[0] = r0;
		++pc;
		NEXT;
	}
	}
L_callx:
	{
		// LLVM puts the register holding the helper id in dst.
		const uint64_t id = DST;
		if (id >= prog.helpers.size() || !prog.helpers[id].fn)
			[[unlikely]] {
			if (id != BPF_FUNC_tail_call || !prog.tail_call)
				return runtime_error(
					EINVAL, PC_INDEX,
					"callx to unregistered helper id", id);
		}
		if (id == BPF_FUNC_tail_call) {
			uint64_t r0 = 0;
			if (auto r = run_tail_call(
				    prog, reinterpret_cast<void *>(reg[1]),
				    act.ctx_len, reg[2], reg[3], r0))
				return std::move(*r);
			reg[0] = r0;
		} else {
			reg[0] = prog.helpers[id].fn(reg[1], reg[2], reg[3],
						     reg[4], reg[5]);
			if (act.pending) [[unlikely]]
				return std::move(*act.pending);
		}
		++pc;
		NEXT;
	}
L_exit:
	if (depth == 0)
		return reg[0];
	{
		const saved_frame &f = frames[--depth];
		reg[6] = f.r6;
		reg[7] = f.r7;
		reg[8] = f.r8;
		reg[9] = f.r9;
		reg[BPF_REG_FP] = f.r10;
		pc = f.ret;
	}
	NEXT;

L_invalid:
	// Only opcodes outside the table land here, and the verifier refused
	// them: reaching it is a bug in the verifier or the pre-decoder. End
	// the run rather than execute garbage inside a target process.
	return runtime_error(EINVAL, PC_INDEX,
			     "interpreter reached an invalid opcode, byte",
			     self.prog().insns[PC_INDEX].code);

#undef NEXT
#undef DST
#undef SRC
#undef IMM64
#undef IMM32
#undef PC_INDEX
#undef CHECK
}

} // namespace

result<std::unique_ptr<executor>> make_interpreter(const program &prog)
{
	return std::unique_ptr<executor>(new interpreter(prog));
}

} // namespace bpftime::vm::detail
