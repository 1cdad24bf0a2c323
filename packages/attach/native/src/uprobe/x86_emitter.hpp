// x86_emitter.hpp: the handful of x86-64 instructions the trampolines are
// made of, encoded by hand (Intel SDM vol. 2 encodings). The emitter knows the
// runtime address its first byte will have, so RIP-relative operands and
// rel32 branches are computed here; callers make sure the targets are within
// reach (see relocator.hpp's reach window) and check reachable() when not.
//
// Control plane only: builds code in a std::vector before it is copied to
// executable memory.
//
// Why this is not the JIT's encoder (@bpftime/vm, jit_x64/x64_assembler.hpp),
// which encodes the same instruction set by hand: the two share only the
// REX/ModRM bytes of a dozen moves, pushes and pops, and want opposite
// things. This emitter writes at a known absolute address, so every
// RIP-relative operand and rel32 branch to the probed code, the callbacks
// and the displaced instructions is exact in one pass and checked for
// reach; it needs what a trampoline saves (VEX ymm stores and loads,
// pushfq/popfq, jmp [mem], stack alignment). The JIT's assembler writes
// position-free code with labels whose rel8/rel32 sizes it settles over
// several passes, and encodes the eBPF ALU, memory and atomic operations at
// four widths, none of which a trampoline uses. Sharing one would make
// @bpftime/attach depend on @bpftime/vm (both are meant to be reusable on
// their own, ARCHITECTURE.md) or move an encoder into @bpftime/common for a
// few dozen shared lines, at the risk of the code either emits.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

namespace bpftime::attach::detail {

enum reg : uint8_t {
	rax = 0,
	rcx,
	rdx,
	rbx,
	rsp,
	rbp,
	rsi,
	rdi,
	r8,
	r9,
	r10,
	r11,
	r12,
	r13,
	r14,
	r15,
};

// Condition codes as the low nibble of Jcc (0x70+cc, 0x0F 0x80+cc).
enum cond : uint8_t { cc_z = 0x4, cc_nz = 0x5 };

// Does a rel32 displacement from `next` (the address after the
// instruction) reach `target`?
inline bool rel32_reaches(uint64_t next, uint64_t target) noexcept
{
	int64_t d = (int64_t)(target - next);
	return d >= INT32_MIN && d <= INT32_MAX;
}

class emitter {
    public:
	explicit emitter(uint64_t base) : base_(base)
	{
	}

	uint64_t base() const noexcept
	{
		return base_;
	}
	uint64_t here() const noexcept
	{
		return base_ + buf_.size();
	}
	size_t size() const noexcept
	{
		return buf_.size();
	}
	const std::vector<uint8_t> &bytes() const noexcept
	{
		return buf_;
	}
	// False once a rel32 could not reach its target; the code must not be
	// used then.
	bool ok() const noexcept
	{
		return ok_;
	}

	void byte(uint8_t b)
	{
		buf_.push_back(b);
	}
	void raw(const uint8_t *p, size_t n)
	{
		buf_.insert(buf_.end(), p, p + n);
	}
	void u32(uint32_t v)
	{
		for (int i = 0; i < 4; i++)
			byte(uint8_t(v >> (8 * i)));
	}
	void u64(uint64_t v)
	{
		for (int i = 0; i < 8; i++)
			byte(uint8_t(v >> (8 * i)));
	}
	void patch_u32(size_t at, uint32_t v)
	{
		for (int i = 0; i < 4; i++)
			buf_[at + i] = uint8_t(v >> (8 * i));
	}
	void align(size_t a, uint8_t fill = 0xcc)
	{
		while (here() % a)
			byte(fill);
	}

	// --- general-purpose registers ----------------------------------

	// mov [base+disp], src (64-bit)
	void store(reg base, int32_t disp, reg src)
	{
		rex(true, src, base);
		byte(0x89);
		mem(src, base, disp);
	}
	// mov dst, [base+disp] (64-bit)
	void load(reg dst, reg base, int32_t disp)
	{
		rex(true, dst, base);
		byte(0x8b);
		mem(dst, base, disp);
	}
	// mov qword [base+disp], simm32
	void store_imm(reg base, int32_t disp, int32_t imm)
	{
		rex(true, rax, base);
		byte(0xc7);
		mem(rax, base, disp);
		u32((uint32_t)imm);
	}
	// lea dst, [base+disp]
	void lea(reg dst, reg base, int32_t disp)
	{
		rex(true, dst, base);
		byte(0x8d);
		mem(dst, base, disp);
	}
	// lea dst, [rip+target]
	void lea_rip(reg dst, uint64_t target)
	{
		rex(true, dst, rax);
		byte(0x8d);
		rip_operand(dst, target, 0);
	}
	// mov dst, [rip+target]
	void load_rip(reg dst, uint64_t target)
	{
		rex(true, dst, rax);
		byte(0x8b);
		rip_operand(dst, target, 0);
	}
	// mov dst, imm64
	void mov_imm64(reg dst, uint64_t imm)
	{
		byte(uint8_t(0x48 | (dst >> 3)));
		byte(uint8_t(0xb8 + (dst & 7)));
		u64(imm);
	}
	// mov [rsp+disp], r64 where the register is rsp itself is never needed.
	void mov_reg(reg dst, reg src)
	{
		rex(true, src, dst);
		byte(0x89);
		byte(uint8_t(0xc0 | ((src & 7) << 3) | (dst & 7)));
	}
	// test a, b (64-bit)
	void test(reg a, reg b)
	{
		rex(true, b, a);
		byte(0x85);
		byte(uint8_t(0xc0 | ((b & 7) << 3) | (a & 7)));
	}
	// test al, al
	void test_al()
	{
		byte(0x84);
		byte(0xc0);
	}
	// and rsp, simm8
	void and_rsp(int8_t imm)
	{
		byte(0x48);
		byte(0x83);
		byte(0xe4);
		byte((uint8_t)imm);
	}
	void push(reg r)
	{
		if (r >= r8)
			byte(0x41);
		byte(uint8_t(0x50 + (r & 7)));
	}
	void pop(reg r)
	{
		if (r >= r8)
			byte(0x41);
		byte(uint8_t(0x58 + (r & 7)));
	}
	// push qword [base+disp]
	void push_mem(reg base, int32_t disp)
	{
		rex(false, rax, base);
		byte(0xff);
		mem(reg(6), base, disp);
	}
	// push simm32 (sign-extended to 64 bits)
	void push_imm32(int32_t imm)
	{
		byte(0x68);
		u32((uint32_t)imm);
	}
	// mov dword [rsp+disp8], imm32
	void store32_rsp(int8_t disp, uint32_t imm)
	{
		byte(0xc7);
		byte(0x44);
		byte(0x24);
		byte((uint8_t)disp);
		u32(imm);
	}
	void pushfq()
	{
		byte(0x9c);
	}
	void popfq()
	{
		byte(0x9d);
	}
	void ret()
	{
		byte(0xc3);
	}
	void int3()
	{
		byte(0xcc);
	}
	void call_reg(reg r)
	{
		if (r >= r8)
			byte(0x41);
		byte(0xff);
		byte(uint8_t(0xd0 | (r & 7)));
	}
	// jmp qword [base+disp]
	void jmp_mem(reg base, int32_t disp)
	{
		rex(false, rax, base);
		byte(0xff);
		mem(reg(4), base, disp);
	}
	void jmp(uint64_t target)
	{
		byte(0xe9);
		rel32(target);
	}
	void jcc(uint8_t cc, uint64_t target)
	{
		byte(0x0f);
		byte(uint8_t(0x80 | cc));
		rel32(target);
	}
	// Forward branches to a label bound later: returns the position of the
	// rel32 to pass to bind().
	size_t jcc_forward(uint8_t cc)
	{
		byte(0x0f);
		byte(uint8_t(0x80 | cc));
		size_t at = buf_.size();
		u32(0);
		return at;
	}
	size_t jmp_forward()
	{
		byte(0xe9);
		size_t at = buf_.size();
		u32(0);
		return at;
	}
	void bind(size_t rel32_at)
	{
		patch_u32(rel32_at, uint32_t(buf_.size() - (rel32_at + 4)));
	}

	// --- vector registers ------------------------------------------------

	// vmovdqu [base+disp], ymmN (VEX.256.F3.0F 7F /r) or, without AVX,
	// movdqu [base+disp], xmmN (F3 0F 7F /r).
	void store_vec(int n, reg base, int32_t disp, bool ymm)
	{
		vec(0x7f, n, base, disp, ymm);
	}
	void load_vec(int n, reg base, int32_t disp, bool ymm)
	{
		vec(0x6f, n, base, disp, ymm);
	}

    private:
	void rex(bool w, reg r, reg b)
	{
		uint8_t v = uint8_t(0x40 | (w ? 8 : 0) | ((r >> 3) << 2) | (b >> 3));
		if (v != 0x40)
			byte(v);
	}
	// ModRM (+SIB) (+disp8/disp32) for [base+disp] with `r` in ModRM.reg.
	void mem(reg r, reg base, int32_t disp)
	{
		bool d8 = disp >= -128 && disp <= 127;
		bool none = disp == 0 && (base & 7) != rbp;
		uint8_t mod = none ? 0 : d8 ? 1 : 2;
		byte(uint8_t((mod << 6) | ((r & 7) << 3) | (base & 7)));
		if ((base & 7) == rsp)
			byte(0x24);
		if (mod == 1)
			byte((uint8_t)disp);
		else if (mod == 2)
			u32((uint32_t)disp);
	}
	// ModRM for [rip+disp32]; `trailing` immediate bytes follow the disp.
	void rip_operand(reg r, uint64_t target, int trailing)
	{
		byte(uint8_t(((r & 7) << 3) | 5));
		uint64_t next = here() + 4 + trailing;
		if (!rel32_reaches(next, target))
			ok_ = false;
		u32(uint32_t(target - next));
	}
	void rel32(uint64_t target)
	{
		uint64_t next = here() + 4;
		if (!rel32_reaches(next, target))
			ok_ = false;
		u32(uint32_t(target - next));
	}
	void vec(uint8_t op, int n, reg base, int32_t disp, bool ymm)
	{
		if (ymm) {
			// Two-byte VEX: R̄ vvvv̄=1111 L=1 pp=10 (F3); base is
			// below r8 here, so X̄ and B̄ need no three-byte form.
			byte(0xc5);
			byte(uint8_t((n < 8 ? 0x80 : 0) | 0x78 | 0x04 | 0x02));
		} else {
			byte(0xf3);
			if (n >= 8 || base >= r8)
				byte(uint8_t(0x40 | (n >= 8 ? 4 : 0) |
					     (base >= r8 ? 1 : 0)));
			byte(0x0f);
		}
		byte(op);
		mem(reg(n & 7), base, disp);
	}

	uint64_t base_;
	std::vector<uint8_t> buf_;
	bool ok_ = true;
};

} // namespace bpftime::attach::detail
