// prog_check.cpp: the part of the kernel verifier's argument checks that
// keeps a program from crashing the process it runs in through a map helper
// (check_func_arg: ARG_CONST_MAP_PTR, ARG_PTR_TO_MAP_KEY/VALUE).
//
// bpftime's VM verifier is structural (bpftime/vm/verifier.hpp); it does not
// know types. A helper that takes a map dereferences its first argument as
// this process's map_instance, so `r1 = 0; call bpf_map_lookup_elem` would
// fault. This pass proves, for every call of a helper that takes a map, that
// the map argument holds a map pointer (from a map lddw, possibly moved
// between registers or spilled to the stack) on every path, and that the key
// and value arguments point into the stack, a map value or the context (not
// a number, a constant or a map), and that a buffer a helper reads or writes
// in the stack lies inside the frame with a constant size. Registers also
// carry their exact value where it is the same on every path (a constant, or
// a stack pointer's offset from r10). Whether a map value pointer was checked
// for NULL, and the sizes of buffers outside the stack, are not tracked. It is a forward dataflow over the instructions with, per
// register and per 8-byte stack slot, the set of kinds of value it may hold
// (join = union), run to a fixed point. Only calls of helpers this process
// provides are checked (others are refused at instantiation).
//
// Subprograms and callbacks start with their arguments as "param": a map
// passed down by the caller is accepted there. Stores through pointers other
// than r10 are not tracked (clang spills through r10 only).
#include "prog/prog_check.hpp"

#include <bpftime/handlers/bpf_defs.hpp>
#include <bpftime/handlers/helpers.hpp>

#include <array>
#include <span>
#include <deque>
#include <string>
#include <vector>

namespace bpftime::handlers {
namespace {

using namespace bpftime::vm;

constexpr uint8_t K_MAP = 1;    // a map pointer (lddw BPF_PSEUDO_MAP_FD / _IDX)
constexpr uint8_t K_PARAM = 2;  // an argument of a subprogram or callback
constexpr uint8_t K_OTHER = 4;  // a number, or a pointer of no kind below
constexpr uint8_t K_CONST = 8;  // a constant number (comes with K_OTHER)
constexpr uint8_t K_STACK = 16; // r10 plus a constant: the frame
constexpr uint8_t K_VALUE = 32; // a map value (bpf_map_lookup_elem's r0, lddw of a value)
constexpr uint8_t K_CTX = 64;   // the context
constexpr uint8_t CONST_VALUE = K_OTHER | K_CONST;
// What a key or value argument may be: the kernel's ARG_PTR_TO_MAP_KEY takes
// the stack or a map value; a subprogram's argument is its caller's. The
// context is accepted too, unlike the kernel: in bpftime it is plain memory
// of the caller (a buffer, the saved registers), and hand-written programs
// use it so.
constexpr uint8_t KEY_KINDS = K_STACK | K_VALUE | K_PARAM | K_CTX;
constexpr int SLOTS = MAX_BPF_STACK / 8;

struct state {
	std::array<uint8_t, MAX_BPF_REG> reg{};
	std::array<uint8_t, SLOTS> slot{};
	// The exact value of a register on every path, when known: the number
	// for a constant, the offset from r10 for a stack pointer.
	std::array<int64_t, MAX_BPF_REG> val{};
	std::array<bool, MAX_BPF_REG> known{};
	bool seen = false;

	void set(uint8_t r, uint8_t kind) noexcept
	{
		reg[r] = kind;
		known[r] = false;
	}
	void set(uint8_t r, uint8_t kind, int64_t v) noexcept
	{
		reg[r] = kind;
		known[r] = true;
		val[r] = v;
	}

	// Joins o into this; true when this grew.
	bool join(const state &o)
	{
		if (!seen) {
			*this = o;
			seen = true;
			return true;
		}
		bool grew = false;
		for (size_t i = 0; i < MAX_BPF_REG; i++) {
			uint8_t v = reg[i] | o.reg[i];
			grew |= v != reg[i];
			reg[i] = v;
			if (known[i] && (!o.known[i] || o.val[i] != val[i])) {
				known[i] = false;
				grew = true;
			}
		}
		for (size_t i = 0; i < SLOTS; i++) {
			uint8_t v = slot[i] | o.slot[i];
			grew |= v != slot[i];
			slot[i] = v;
		}
		return grew;
	}
};

// The memory arguments of the helpers bpftime provides, as (pointer
// register, size register) pairs; a negative size is a fixed size. A
// pointer into the stack must lie inside the frame with its size: the
// kernel's check_helper_mem_access, which keeps a helper from writing over
// whatever lies beyond the program's stack.
struct mem_arg {
	uint8_t ptr;
	int8_t size;
};

std::span<const mem_arg> mem_args_of(uint32_t helper)
{
	static constexpr mem_arg probe[] = { { 1, 2 } };
	static constexpr mem_arg printk[] = { { 1, 2 } };
	static constexpr mem_arg write_user[] = { { 2, 3 } };
	static constexpr mem_arg strto[] = { { 1, 2 }, { 4, -8 } };
	static constexpr mem_arg snprintf_args[] = { { 1, 2 }, { 4, 5 } };
	switch (helper) {
	case 4:   // probe_read
	case 16:  // get_current_comm
	case 45:  // probe_read_str
	case 112: // probe_read_user
	case 113: // probe_read_kernel
	case 114: // probe_read_user_str
	case 115: // probe_read_kernel_str
		return probe;
	case 6: // trace_printk
		return printk;
	case 36: // probe_write_user
		return write_user;
	case 105: // strtol
	case 106: // strtoul
		return strto;
	case 165: // snprintf
		return snprintf_args;
	default:
		return {};
	}
}

// Which argument registers of a helper are a map, a key and a value (0:
// none), for the kernel helpers that take a map.
struct map_args {
	uint8_t map = 0, key = 0, value = 0;
};

map_args args_of(uint32_t helper)
{
	switch (helper) {
	case BPF_FUNC_map_lookup_elem:
	case BPF_FUNC_map_delete_elem:
		return { 1, 2, 0 };
	case BPF_FUNC_map_update_elem:
		return { 1, 2, 3 };
	case BPF_FUNC_tail_call:
	case BPF_FUNC_get_stackid:
	case 25: // perf_event_output
		return { 2, 0, 0 };
	case BPF_FUNC_map_push_elem:
	case BPF_FUNC_map_pop_elem:
	case BPF_FUNC_map_peek_elem:
		return { 1, 0, 2 };
	case 130: // ringbuf_output
	case 131: // ringbuf_reserve
	case 134: // ringbuf_query
	case 164: // for_each_map_elem
		return { 1, 0, 0 };
	case 195: // map_lookup_percpu_elem
		return { 1, 2, 0 };
	default:
		return {};
	}
}

constexpr uint8_t LDDW = BPF_LD | BPF_IMM | BPF_DW;

// The stack slot an r10-relative access of `size` bytes at `off` covers
// entirely, or -1 (partial, unaligned, outside the frame).
int slot_of(int16_t off, int size)
{
	if (size != 8 || off >= 0 || off < -MAX_BPF_STACK || (-off) % 8 != 0)
		return -1;
	return (-off) / 8 - 1;
}

// Marks every slot the access [off, off + size) touches as holding `kind`.
void clobber(state &s, int16_t off, int size, uint8_t kind)
{
	for (int b = off; b < off + size; b++) {
		if (b >= 0 || b < -MAX_BPF_STACK)
			continue;
		s.slot[size_t((-b - 1) / 8)] = kind;
	}
}

int size_of(uint8_t code)
{
	switch (code & 0x18) {
	case BPF_B:
		return 1;
	case BPF_H:
		return 2;
	case BPF_W:
		return 4;
	default:
		return 8;
	}
}

} // namespace

status check_helper_args(std::span<const insn> p, const std::string &what,
			 const map_sizes_fn &sizes)
{
	const size_t n = p.size();
	std::vector<state> in(n);
	std::deque<size_t> work;
	auto enter = [&](size_t pc, const state &s) {
		if (pc < n && in[pc].join(s))
			work.push_back(pc);
	};

	state entry;
	entry.set(1, K_CTX);
	entry.set(2, K_OTHER); // its length
	entry.set(10, K_STACK, 0);
	enter(0, entry);
	// Subprograms and callbacks: r1-r5 come from the caller.
	state sub;
	for (int r = 1; r <= 5; r++)
		sub.set(uint8_t(r), K_PARAM);
	sub.set(10, K_STACK, 0);
	for (size_t pc = 0; pc < n; pc++) {
		const insn &i = p[pc];
		if (i.code == (BPF_JMP | BPF_CALL) && i.src_reg == BPF_PSEUDO_CALL)
			enter(size_t(int64_t(pc) + 1 + i.imm), sub);
		if (i.code == LDDW && i.src_reg == BPF_PSEUDO_FUNC)
			enter(size_t(int64_t(pc) + 1 + i.imm), sub);
		if (i.code == LDDW)
			pc++;
	}

	while (!work.empty()) {
		size_t pc = work.front();
		work.pop_front();
		state s = in[pc];
		const insn &i = p[pc];
		const uint8_t cls = i.code & 0x07;
		const uint8_t dst = i.dst_reg, src = i.src_reg;
		auto next = [&](size_t to) { enter(to, s); };

		switch (cls) {
		case BPF_ALU:
		case BPF_ALU64: {
			const uint8_t op = i.code & 0xf0;
			const bool x = (i.code & BPF_X) != 0;
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
				// A 64-bit copy keeps what it is; anything else
				// is a number.
				if (cls == BPF_ALU64 && i.off == 0) {
					s.reg[dst] = v;
					s.known[dst] = vk;
					s.val[dst] = vv;
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
				// A pointer moved by a number stays a pointer of
				// its kind (at a known offset when both are known).
				bool k = dk && vk && v == CONST_VALUE;
				int64_t off = op == BPF_ADD ? dv + vv : dv - vv;
				if (k)
					s.set(dst, d, off);
				else
					s.set(dst, d);
			} else {
				s.set(dst, K_OTHER);
			}
			next(pc + 1);
			break;
		}
		case BPF_LD:
			if (i.code == LDDW) {
				if (i.src_reg == BPF_PSEUDO_MAP_FD)
					s.set(dst, K_MAP, int64_t(uint32_t(i.imm))); // the map id
				else if (i.src_reg == BPF_PSEUDO_MAP_IDX)
					s.set(dst, K_MAP);
				else if (i.src_reg == 0 && pc + 1 < n)
					s.set(dst, CONST_VALUE,
					      int64_t(uint64_t(uint32_t(i.imm)) |
						      uint64_t(uint32_t(p[pc + 1].imm)) << 32));
				else if (i.src_reg == BPF_PSEUDO_MAP_VALUE ||
					 i.src_reg == BPF_PSEUDO_MAP_IDX_VALUE)
					s.set(dst, K_VALUE);
				else
					s.set(dst, K_OTHER);
				next(pc + 2);
			} else {
				// Legacy packet loads set r0 and scratch r1-r5.
				for (uint8_t r = 0; r <= 5; r++)
					s.set(r, K_OTHER);
				next(pc + 1);
			}
			break;
		case BPF_LDX: {
			int sl = src == BPF_REG_FP ? slot_of(i.off, size_of(i.code)) : -1;
			s.set(dst, sl >= 0 && s.slot[size_t(sl)] ? s.slot[size_t(sl)] : K_OTHER);
			next(pc + 1);
			break;
		}
		case BPF_ST:
		case BPF_STX: {
			int size = size_of(i.code);
			if (dst == BPF_REG_FP) {
				uint8_t kind = K_OTHER;
				int sl = slot_of(i.off, size);
				if ((i.code & 0xe0) == BPF_MEM && sl >= 0)
					kind = cls == BPF_STX ? s.reg[src] : CONST_VALUE;
				clobber(s, i.off, size, kind);
			}
			if ((i.code & 0xe0) == BPF_ATOMIC) {
				if (i.imm == BPF_CMPXCHG)
					s.set(0, K_OTHER);
				else if (i.imm & BPF_FETCH)
					s.set(src, K_OTHER);
			}
			next(pc + 1);
			break;
		}
		case BPF_JMP:
		case BPF_JMP32: {
			uint8_t op = i.code & 0xf0;
			if (op == BPF_EXIT)
				break;
			if (op == BPF_CALL) {
				// Only helpers this process can run: a program
				// calling another one is refused when it is
				// instantiated, and checked then if a package
				// provides it by that time.
				if (i.src_reg == BPF_HELPER_CALL &&
				    (uint32_t(i.imm) == BPF_FUNC_tail_call ||
				     find_helper(uint32_t(i.imm)))) {
					map_args a = args_of(uint32_t(i.imm));
					std::string where = what + ": insn " +
							    std::to_string(pc) + ": " +
							    "helper #" +
							    std::to_string(i.imm);
					if (a.map) {
						uint8_t k = s.reg[a.map];
						if (k == 0 || (k & ~(K_MAP | K_PARAM)))
							return fail(EINVAL,
								    where + ": R" +
									    std::to_string(a.map) +
									    " is not a map on every "
									    "path (the kernel's "
									    "verifier: R" +
									    std::to_string(a.map) +
									    " type=scalar "
									    "expected=map_ptr)");
					}
					for (uint8_t r : { a.key, a.value }) {
						uint8_t k = r ? s.reg[r] : KEY_KINDS;
						if (k != 0 && !(k & ~KEY_KINDS))
							continue;
						const char *is =
							(k & K_CONST) ? "a constant" :
							(k & K_MAP)   ? "a map" :
									"a number";
						return fail(EINVAL,
							    where + ": R" + std::to_string(r) +
								    " may be " + is +
								    ", not a pointer to the stack, "
								    "a map value or the context (the kernel's "
								    "verifier: R" +
								    std::to_string(r) +
								    " type=scalar expected=fp, "
								    "map_value)");
					}
					// A buffer of `size` bytes at the stack pointer in
					// `ptr` must lie inside the frame.
					auto stack_check = [&](uint8_t ptr, bool size_known, int64_t size,
							       const std::string &size_what) -> status {
						if (s.reg[ptr] != K_STACK)
							return {};
						if (s.known[ptr] && size_known && size >= 0 &&
						    s.val[ptr] >= -MAX_BPF_STACK && s.val[ptr] + size <= 0)
							return {};
						std::string why = where;
						why += ": R";
						why += std::to_string(ptr);
						why += " points into the stack, but ";
						if (!s.known[ptr]) {
							why += "not at a known offset";
						} else if (!size_known) {
							why += size_what;
							why += " is not a known constant";
						} else {
							why += std::to_string(size);
							why += " bytes at fp";
							why += std::to_string(s.val[ptr]);
							why += " leave the 512-byte frame";
						}
						why += " (the kernel's verifier: invalid indirect "
						       "access to stack R";
						why += std::to_string(ptr);
						why += ")";
						return fail(EINVAL, std::move(why));
					};
					for (const mem_arg &m : mem_args_of(uint32_t(i.imm))) {
						bool size_known = m.size < 0 || s.known[uint8_t(m.size)];
						int64_t size = m.size < 0 ? -m.size : s.val[uint8_t(m.size)];
						std::string size_what = "R";
						size_what += std::to_string(m.size);
						size_what += " (its size)";
						BPFTIME_TRY(stack_check(m.ptr, size_known, size, size_what));
					}
					// Keys and values in the stack hold the map's
					// key_size and value_size bytes.
					if (a.map && sizes && s.reg[a.map] == K_MAP && s.known[a.map]) {
						auto kv = sizes(uint32_t(s.val[a.map]));
						if (kv && a.key)
							BPFTIME_TRY(stack_check(a.key, true, kv->first, ""));
						if (kv && a.value)
							BPFTIME_TRY(stack_check(a.value, true, kv->second, ""));
					}
				}
				// A call scratches r1-r5 and sets r0: a map value
				// (or NULL) from the lookup helpers.
				for (uint8_t r = 0; r <= 5; r++)
					s.set(r, K_OTHER);
				if (i.src_reg == BPF_HELPER_CALL &&
				    (i.imm == int32_t(BPF_FUNC_map_lookup_elem) ||
				     i.imm == 195 || i.imm == 131))
					s.set(0, K_VALUE);
				next(pc + 1);
				break;
			}
			int64_t off = cls == BPF_JMP32 && op == BPF_JA ? i.imm : i.off;
			next(size_t(int64_t(pc) + 1 + off));
			if (op != BPF_JA)
				next(pc + 1);
			break;
		}
		default:
			next(pc + 1);
		}
	}
	return {};
}

} // namespace bpftime::handlers
