// x64_assembler.hpp: the small x86-64 encoder behind the JIT.
//
// It encodes exactly the instructions the JIT needs (Intel SDM vol. 2
// encodings, written out by hand) into a growing byte buffer, and resolves
// jumps to labels with the shortest encoding that fits:
//
//   assembler as;
//   do {
//       as.begin_pass(n_fixed_labels);
//       ... emit, bind(label), jcc(cond::e, label) ...
//   } while (!as.end_pass());
//
// Branch sizing: every jump site starts short (rel8). end_pass() patches each
// site with the final displacement and marks the short sites whose
// displacement does not fit as long for good; the caller re-emits until a
// pass marks nothing. The set of long sites only grows, so this ends, and the
// last pass had every displacement exact. Sites are identified by their order
// of emission, so the code generated in each pass must not depend on
// positions, only on the long/short decisions made here.
//
// Why @bpftime/attach has its own encoder (attach/native/src/uprobe/
// x86_emitter.hpp): its trampolines are written at a known absolute address
// (RIP-relative operands and rel32 branches to fixed targets, one pass) and
// are made of register saves (VEX ymm moves, pushfq, jmp [mem]) this
// assembler never emits, while this one is position-free, label-based and
// multi-pass, for the eBPF ALU, memory and atomic operations. They share the
// REX/ModRM bytes of a dozen moves; merging them would make attach depend on
// the vm (each is reusable on its own) for that.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace bpftime::vm::jit_x64 {

// Hardware register numbers: the low 3 bits go into ModRM/SIB/opcode, bit 3
// into REX.
enum reg : uint8_t {
	rax,
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

// Condition codes (the low nibble of Jcc).
enum class cond : uint8_t {
	o = 0x0,
	no = 0x1,
	b = 0x2,
	ae = 0x3,
	e = 0x4,
	ne = 0x5,
	be = 0x6,
	a = 0x7,
	s = 0x8,
	ns = 0x9,
	l = 0xc,
	ge = 0xd,
	le = 0xe,
	g = 0xf,
};

// Operand size of an instruction.
enum class width : uint8_t { b8, b16, b32, b64 };

// The group-1 arithmetic operations, numbered as in their /digit.
enum class alu : uint8_t {
	add = 0,
	or_ = 1,
	and_ = 4,
	sub = 5,
	xor_ = 6,
	cmp = 7,
};

// The group-2 shift operations, numbered as in their /digit.
enum class shift : uint8_t {
	rol = 0,
	ror = 1,
	shl = 4,
	shr = 5,
	sar = 7,
};

// [base + disp32], or [base + index + disp32] when has_index (index must
// not be rsp).
struct mem {
	reg base;
	int32_t disp = 0;
	bool has_index = false;
	reg index = rax;
};

using label = uint32_t;

class assembler {
    public:
	// Starts a pass: empties the buffer, makes labels [0, n_fixed) unbound
	// and numbers the labels of new_label() from n_fixed.
	void begin_pass(uint32_t n_fixed_labels);
	// Patches every jump of this pass; true when all fit, so the code is
	// final. False means some short jumps were marked long: emit again.
	bool end_pass();

	label new_label();
	void bind(label l);
	// Offset of a bound label in the code.
	size_t offset_of(label l) const
	{
		return static_cast<size_t>(labels_[l]);
	}

	const std::vector<uint8_t> &code() const
	{
		return buf_;
	}

	// Multi-byte nops up to the next multiple of `boundary` (a power of 2).
	void align(size_t boundary);

	// Control flow.
	void jmp(label l);
	void jcc(cond c, label l);
	void call(label l); // always rel32
	void call(reg r);   // call r64
	void ret();
	void push(reg r);
	void pop(reg r);

	// Register and immediate moves.
	void mov(width w, reg dst, reg src); // b32 or b64
	// dst = imm, choosing the shortest form (xor, mov r32, sign-extended
	// imm32, movabs). Clobbers flags when it picks xor.
	void mov_imm(reg dst, uint64_t imm);
	void mov_imm32(reg dst, uint32_t imm); // zero-extending, never xor
	void movzx(reg dst, reg src, width from); // from b8 or b16, to 32 bits
	void movsx(width to, reg dst, reg src, width from); // from b8/b16/b32
	void lea(reg dst, mem m, width w = width::b64); // b32 or b64

	// Arithmetic.
	void alu_rr(alu op, width w, reg dst, reg src);
	void alu_ri(alu op, width w, reg dst, int32_t imm);
	void alu_rm(alu op, width w, reg dst, mem m);  // dst op= [m]
	void alu_mi(alu op, width w, mem m, int32_t imm); // [m] op= imm
	void test_rr(width w, reg a, reg b);
	void test_ri(width w, reg a, int32_t imm); // b8 takes imm8
	void imul_rr(width w, reg dst, reg src);
	void imul_rri(width w, reg dst, reg src, int32_t imm);
	void neg(width w, reg r);
	void div(width w, reg divisor);  // unsigned rdx:rax / r
	void idiv(width w, reg divisor); // signed
	void cqo(width w);               // cdq (b32) or cqo (b64)
	void shift_ri(shift op, width w, reg r, uint8_t count); // b16/b32/b64
	void shift_cl(shift op, width w, reg r);
	// BMI2 shlx/shrx/sarx: dst = src op (count & (bits - 1)).
	void shift_x(shift op, width w, reg dst, reg src, reg count);
	void bswap(width w, reg r); // b32 or b64

	// Memory.
	void load(width w, reg dst, mem m);       // zero-extends b8/b16/b32
	void load_sx(width from, reg dst, mem m); // sign-extends to 64 bits
	void store(width w, mem m, reg src);
	void store_imm(width w, mem m, int32_t imm);
	// dst = [base + index * 8]
	void load_indexed8(reg dst, reg base, reg index);
	// dst (32 bits, zero-extended) = fs:[disp]: a field of the thread's TLS
	// block, such as glibc's struct rseq at __rseq_offset.
	void load_fs32(reg dst, int32_t disp);

	// Atomic read-modify-write on memory (lock prefix where needed).
	void lock_alu(alu op, width w, mem m, reg src); // b32/b64, add/or/and/xor
	void lock_xadd(width w, mem m, reg src);
	void lock_cmpxchg(width w, mem m, reg src);
	void xchg(width w, mem m, reg src); // locked by definition

	// mov qword ptr fs:[disp], src / 0: a thread-local of the static TLS
	// block, at its (negative) offset from the thread pointer.
	void store_fs64(int32_t disp, reg src);
	void store_fs64_zero(int32_t disp);

    private:
	void byte(uint8_t b)
	{
		buf_.push_back(b);
	}
	void u16(uint16_t v);
	void u32(uint32_t v);
	void u64(uint64_t v);
	// The immediate of an instruction whose opcode the caller picked by
	// fits_i8(imm): sign-extended imm8 form, else imm32.
	void imm8_or_32(int32_t imm);
	// REX prefix when any of its bits is needed, or when `force` (8-bit
	// accesses to spl/bpl/sil/dil).
	void rex(bool w, unsigned r, unsigned x, unsigned b, bool force = false);
	void modrm_reg(unsigned reg_field, unsigned rm);
	void modrm_mem(unsigned reg_field, mem m);
	// The common prefix/REX/opcode/ModRM sequence of a reg, r/m instruction.
	void rr(width w, uint8_t op, unsigned reg_field, unsigned rm,
		bool two_byte = false, bool byte_regs = false);
	void rm(width w, uint8_t op, unsigned reg_field, mem m,
		bool two_byte = false, bool byte_reg = false);
	void jump(int cc, label l);

	struct fixup {
		size_t at;   // offset of the displacement
		uint8_t len; // 1 or 4
		label target;
		int64_t site; // index into long_, or -1 for calls
	};

	std::vector<uint8_t> buf_;
	std::vector<int64_t> labels_;
	std::vector<fixup> fixups_;
	std::vector<bool> long_; // per jump site, sticky across passes
	size_t next_site_ = 0;
};

} // namespace bpftime::vm::jit_x64
