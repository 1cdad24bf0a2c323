// insn_counter.cpp: the counting interpreter (see the header).
#include "insn_counter.hpp"

#include <climits>
#include <cstring>
#include <string>

namespace bench {

using bpftime::fail;
using bpftime::result;
namespace v = bpftime::vm;

namespace {

// More than any bench program runs; a program looping forever here (a
// misread jump) ends with an error instead of hanging the suite.
constexpr uint64_t MAX_STEPS = 4'000'000'000ull;

uint64_t bswap(uint64_t x, int32_t bits)
{
	switch (bits) {
	case 16:
		return __builtin_bswap16(static_cast<uint16_t>(x));
	case 32:
		return __builtin_bswap32(static_cast<uint32_t>(x));
	default:
		return __builtin_bswap64(x);
	}
}

uint64_t truncate(uint64_t x, int32_t bits)
{
	return bits >= 64 ? x : x & ((uint64_t(1) << bits) - 1);
}

// ALU and ALU64, RFC 9669 section 4.1: 32-bit operations work on the low
// halves and zero-extend; shift counts are masked; x / 0 = 0, x % 0 = x,
// signed INT_MIN / -1 = INT_MIN and INT_MIN % -1 = 0 (no trap).
bool alu(const v::insn &i, uint64_t *r)
{
	const bool is64 = v::bpf_class(i.code) == v::BPF_ALU64;
	const uint8_t op = v::bpf_op(i.code);
	const bool x = v::bpf_src(i.code) == v::BPF_X;
	uint64_t &dst = r[i.dst_reg];
	if (op == v::BPF_END) {
		const bool swap = is64 || x; // ALU64 bswap, or ALU to-big-endian
		dst = swap ? bswap(dst, i.imm) : truncate(dst, i.imm);
		return true;
	}
	uint64_t a = dst;
	uint64_t b = x ? r[i.src_reg] : uint64_t(int64_t(i.imm));
	if (!is64) {
		a = uint32_t(a);
		b = uint32_t(b);
	}
	const bool sign = i.off == 1;
	uint64_t res;
	switch (op) {
	case v::BPF_ADD:
		res = a + b;
		break;
	case v::BPF_SUB:
		res = a - b;
		break;
	case v::BPF_MUL:
		res = a * b;
		break;
	case v::BPF_DIV:
		if (b == 0)
			res = 0;
		else if (!sign)
			res = a / b;
		else if (is64)
			res = (int64_t(a) == INT64_MIN && int64_t(b) == -1) ?
				      a :
				      uint64_t(int64_t(a) / int64_t(b));
		else
			res = (int32_t(a) == INT32_MIN && int32_t(b) == -1) ?
				      a :
				      uint32_t(int32_t(a) / int32_t(b));
		break;
	case v::BPF_MOD:
		if (b == 0)
			res = a;
		else if (!sign)
			res = a % b;
		else if (is64)
			res = int64_t(b) == -1 ? 0 : uint64_t(int64_t(a) % int64_t(b));
		else
			res = int32_t(b) == -1 ? 0 : uint32_t(int32_t(a) % int32_t(b));
		break;
	case v::BPF_OR:
		res = a | b;
		break;
	case v::BPF_AND:
		res = a & b;
		break;
	case v::BPF_XOR:
		res = a ^ b;
		break;
	case v::BPF_LSH:
		res = a << (b & (is64 ? 63 : 31));
		break;
	case v::BPF_RSH:
		res = a >> (b & (is64 ? 63 : 31));
		break;
	case v::BPF_ARSH:
		res = is64 ? uint64_t(int64_t(a) >> (b & 63)) :
			     uint32_t(int32_t(a) >> (b & 31));
		break;
	case v::BPF_NEG:
		res = -a;
		break;
	case v::BPF_MOV:
		// movsx: off = 8, 16 or 32 sign-extends the source's low bits.
		if (x && i.off == 8)
			res = uint64_t(int64_t(int8_t(b)));
		else if (x && i.off == 16)
			res = uint64_t(int64_t(int16_t(b)));
		else if (x && i.off == 32)
			res = uint64_t(int64_t(int32_t(b)));
		else
			res = b;
		break;
	default:
		return false;
	}
	dst = is64 ? res : uint32_t(res);
	return true;
}

bool condition(uint8_t op, bool is64, uint64_t a, uint64_t b, bool &taken)
{
	if (!is64) {
		a = uint32_t(a);
		b = uint32_t(b);
	}
	const int64_t sa = is64 ? int64_t(a) : int64_t(int32_t(a));
	const int64_t sb = is64 ? int64_t(b) : int64_t(int32_t(b));
	switch (op) {
	case v::BPF_JEQ:
		taken = a == b;
		return true;
	case v::BPF_JNE:
		taken = a != b;
		return true;
	case v::BPF_JGT:
		taken = a > b;
		return true;
	case v::BPF_JGE:
		taken = a >= b;
		return true;
	case v::BPF_JLT:
		taken = a < b;
		return true;
	case v::BPF_JLE:
		taken = a <= b;
		return true;
	case v::BPF_JSET:
		taken = (a & b) != 0;
		return true;
	case v::BPF_JSGT:
		taken = sa > sb;
		return true;
	case v::BPF_JSGE:
		taken = sa >= sb;
		return true;
	case v::BPF_JSLT:
		taken = sa < sb;
		return true;
	case v::BPF_JSLE:
		taken = sa <= sb;
		return true;
	}
	return false;
}

uint32_t size_of(uint8_t code)
{
	switch (v::bpf_size(code)) {
	case v::BPF_B:
		return 1;
	case v::BPF_H:
		return 2;
	case v::BPF_W:
		return 4;
	default:
		return 8;
	}
}

} // namespace

result<count_result> count_insns(std::span<const v::insn> prog, const counter_env &env,
				 uint64_t ctx, uint64_t ctx_len)
{
	alignas(16) uint8_t stack[v::MAX_BPF_STACK] = {};
	const uint64_t stack_lo = reinterpret_cast<uint64_t>(stack);
	uint64_t r[v::MAX_BPF_REG] = {};
	r[1] = ctx;
	r[2] = ctx_len;
	r[v::BPF_REG_FP] = stack_lo + sizeof stack;

	auto in = [](uint64_t lo, uint64_t len, uint64_t addr, uint32_t size) {
		return addr >= lo && addr - lo < len && size <= len - (addr - lo);
	};
	auto accessible = [&](uint64_t addr, uint32_t size) {
		if (in(stack_lo, sizeof stack, addr, size) || in(ctx, ctx_len, addr, size))
			return true;
		for (const v::memory_region &m : env.regions)
			if (in(m.start, m.size, addr, size))
				return true;
		return false;
	};

	count_result out;
	size_t pc = 0;
	for (;;) {
		if (pc >= prog.size())
			return fail(EINVAL, "count: pc " + std::to_string(pc) + " past the end");
		if (++out.insns > MAX_STEPS)
			return fail(ELOOP, "count: more than 4e9 instructions");
		const v::insn &i = prog[pc];
		// Built only on an error: this loop runs every instruction.
		auto at = [pc] { return "count: pc " + std::to_string(pc) + ": "; };
		const uint8_t cls = v::bpf_class(i.code);
		const uint8_t op = v::bpf_op(i.code);
		switch (cls) {
		case v::BPF_ALU:
		case v::BPF_ALU64:
			if (!alu(i, r))
				return fail(EINVAL, at() + "unknown ALU operation");
			pc++;
			continue;
		case v::BPF_JMP:
		case v::BPF_JMP32: {
			const bool is64 = cls == v::BPF_JMP;
			if (op == v::BPF_JA) {
				pc += 1 + (is64 ? int64_t(i.off) : int64_t(i.imm));
				continue;
			}
			if (op == v::BPF_EXIT && is64) {
				out.r0 = r[0];
				return out;
			}
			if (op == v::BPF_CALL && is64) {
				if (v::bpf_src(i.code) != v::BPF_K || i.src_reg != v::BPF_HELPER_CALL)
					return fail(ENOTSUP, at() + "only helper calls are counted "
								  "(no local calls, kfuncs or callx)");
				const uint32_t id = uint32_t(i.imm);
				if (id >= env.helpers.size() || !env.helpers[id])
					return fail(EINVAL, at() + "unknown helper " + std::to_string(id));
				r[0] = env.helpers[id](r[1], r[2], r[3], r[4], r[5]);
				pc++;
				continue;
			}
			const uint64_t b = v::bpf_src(i.code) == v::BPF_X ?
						   r[i.src_reg] :
						   uint64_t(int64_t(i.imm));
			bool taken = false;
			if (!condition(op, is64, r[i.dst_reg], b, taken))
				return fail(EINVAL, at() + "unknown jump");
			pc += taken ? 1 + int64_t(i.off) : 1;
			continue;
		}
		case v::BPF_LD:
			if (i.code != (v::BPF_LD | v::BPF_IMM | v::BPF_DW) || pc + 1 >= prog.size())
				return fail(ENOTSUP, at() + "only lddw in class LD");
			r[i.dst_reg] = uint64_t(uint32_t(i.imm)) |
				       uint64_t(uint32_t(prog[pc + 1].imm)) << 32;
			pc += 2;
			continue;
		case v::BPF_LDX: {
			const uint32_t size = size_of(i.code);
			const uint64_t addr = r[i.src_reg] + int64_t(i.off);
			const bool sx = v::bpf_mode(i.code) == v::BPF_MEMSX;
			if (!sx && v::bpf_mode(i.code) != v::BPF_MEM)
				return fail(ENOTSUP, at() + "unknown load mode");
			if (!accessible(addr, size))
				return fail(EFAULT, at() + "load outside stack and data");
			uint64_t val = 0;
			std::memcpy(&val, reinterpret_cast<const void *>(addr), size);
			if (sx && size < 8) {
				const int shift = 64 - 8 * int(size);
				val = uint64_t(int64_t(val << shift) >> shift);
			}
			r[i.dst_reg] = val;
			pc++;
			continue;
		}
		case v::BPF_ST:
		case v::BPF_STX: {
			if (v::bpf_mode(i.code) != v::BPF_MEM)
				return fail(ENOTSUP, at() + "atomics are not counted");
			const uint32_t size = size_of(i.code);
			const uint64_t addr = r[i.dst_reg] + int64_t(i.off);
			const uint64_t val = cls == v::BPF_STX ? r[i.src_reg] : uint64_t(int64_t(i.imm));
			if (!accessible(addr, size))
				return fail(EFAULT, at() + "store outside stack and data");
			std::memcpy(reinterpret_cast<void *>(addr), &val, size);
			pc++;
			continue;
		}
		}
		return fail(EINVAL, at() + "unknown instruction class");
	}
}

} // namespace bench
