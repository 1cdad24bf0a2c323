// x64_assembler.cpp: encodings of the instructions the JIT emits.
//
// Reference: Intel SDM vol. 2, chapter 2 (instruction format, REX, VEX) and
// the instruction pages. Every function states its operand order in the
// header; here each only picks opcode bytes and ModRM fields.
#include "x64_assembler.hpp"

namespace bpftime::vm::jit_x64 {

namespace {

bool fits_i8(int64_t v)
{
	return v >= -128 && v <= 127;
}

// The 8-bit forms of registers 4-7 mean spl/bpl/sil/dil only with a REX
// prefix; without one they encode ah/ch/dh/bh.
bool needs_rex_for_byte(unsigned r)
{
	return r >= 4 && r <= 7;
}

} // namespace

void assembler::begin_pass(uint32_t n_fixed_labels)
{
	buf_.clear();
	fixups_.clear();
	labels_.assign(n_fixed_labels, -1);
	next_site_ = 0;
}

bool assembler::end_pass()
{
	bool stable = true;
	for (const fixup &f : fixups_) {
		int64_t disp = labels_[f.target] -
			       static_cast<int64_t>(f.at + f.len);
		if (f.len == 1) {
			if (!fits_i8(disp)) {
				long_[static_cast<size_t>(f.site)] = true;
				stable = false;
				continue;
			}
			buf_[f.at] = static_cast<uint8_t>(disp);
		} else {
			uint32_t v = static_cast<uint32_t>(
				static_cast<int32_t>(disp));
			for (int i = 0; i < 4; i++)
				buf_[f.at + i] = static_cast<uint8_t>(v >> (8 * i));
		}
	}
	return stable;
}

label assembler::new_label()
{
	labels_.push_back(-1);
	return static_cast<label>(labels_.size() - 1);
}

void assembler::bind(label l)
{
	labels_[l] = static_cast<int64_t>(buf_.size());
}

void assembler::u16(uint16_t v)
{
	byte(static_cast<uint8_t>(v));
	byte(static_cast<uint8_t>(v >> 8));
}

void assembler::u32(uint32_t v)
{
	for (int i = 0; i < 4; i++)
		byte(static_cast<uint8_t>(v >> (8 * i)));
}

void assembler::imm8_or_32(int32_t imm)
{
	if (fits_i8(imm))
		byte(static_cast<uint8_t>(imm));
	else
		u32(static_cast<uint32_t>(imm));
}

void assembler::u64(uint64_t v)
{
	for (int i = 0; i < 8; i++)
		byte(static_cast<uint8_t>(v >> (8 * i)));
}

void assembler::rex(bool w, unsigned r, unsigned x, unsigned b, bool force)
{
	uint8_t v = 0x40 | (w ? 8 : 0) | ((r >> 3) & 1) << 2 |
		    ((x >> 3) & 1) << 1 | ((b >> 3) & 1);
	if (v != 0x40 || force)
		byte(v);
}

void assembler::modrm_reg(unsigned reg_field, unsigned rm)
{
	byte(static_cast<uint8_t>(0xc0 | (reg_field & 7) << 3 | (rm & 7)));
}

void assembler::modrm_mem(unsigned reg_field, mem m)
{
	unsigned base = m.base & 7;
	unsigned mod;
	// mod 00 with base 101 is RIP-relative (or disp32-only with a SIB),
	// so rbp/r13 always carry a displacement.
	if (m.disp == 0 && base != 5)
		mod = 0;
	else if (fits_i8(m.disp))
		mod = 1;
	else
		mod = 2;
	// r/m 100 announces a SIB byte: scale 1, the index (100 = none) and
	// the base. rsp/r12 as base can only be encoded that way.
	const bool sib = m.has_index || base == 4;
	byte(static_cast<uint8_t>(mod << 6 | (reg_field & 7) << 3 |
				  (sib ? 4 : base)));
	if (sib)
		byte(static_cast<uint8_t>(
			(m.has_index ? (m.index & 7) : 4) << 3 | base));
	if (mod == 1)
		byte(static_cast<uint8_t>(m.disp));
	else if (mod == 2)
		u32(static_cast<uint32_t>(m.disp));
}

void assembler::rr(width w, uint8_t op, unsigned reg_field, unsigned rm_reg,
		   bool two_byte, bool byte_regs)
{
	if (w == width::b16)
		byte(0x66);
	rex(w == width::b64, reg_field, 0, rm_reg,
	    byte_regs && (needs_rex_for_byte(reg_field) ||
			  needs_rex_for_byte(rm_reg)));
	if (two_byte)
		byte(0x0f);
	byte(op);
	modrm_reg(reg_field, rm_reg);
}

void assembler::rm(width w, uint8_t op, unsigned reg_field, mem m,
		   bool two_byte, bool byte_reg)
{
	if (w == width::b16)
		byte(0x66);
	rex(w == width::b64, reg_field, m.has_index ? m.index : 0, m.base,
	    byte_reg && needs_rex_for_byte(reg_field));
	if (two_byte)
		byte(0x0f);
	byte(op);
	modrm_mem(reg_field, m);
}

void assembler::jump(int cc, label l)
{
	size_t site = next_site_++;
	if (site >= long_.size())
		long_.push_back(false);
	// A backward target is already placed in this pass: decide at once
	// rather than spend a pass on it.
	if (!long_[site] && labels_[l] >= 0 &&
	    !fits_i8(labels_[l] - static_cast<int64_t>(buf_.size() + 2)))
		long_[site] = true;
	if (!long_[site]) {
		byte(cc < 0 ? 0xeb : static_cast<uint8_t>(0x70 | cc));
		fixups_.push_back({ buf_.size(), 1, l, static_cast<int64_t>(site) });
		byte(0);
		return;
	}
	if (cc < 0) {
		byte(0xe9);
	} else {
		byte(0x0f);
		byte(static_cast<uint8_t>(0x80 | cc));
	}
	fixups_.push_back({ buf_.size(), 4, l, static_cast<int64_t>(site) });
	u32(0);
}

void assembler::jmp(label l)
{
	jump(-1, l);
}

void assembler::jcc(cond c, label l)
{
	jump(static_cast<int>(c), l);
}

void assembler::call(label l)
{
	byte(0xe8);
	fixups_.push_back({ buf_.size(), 4, l, -1 });
	u32(0);
}

void assembler::align(size_t boundary)
{
	// The recommended nop of each length 1-9 (Intel SDM vol. 2, NOP).
	static const uint8_t nops[9][9] = {
		{ 0x90 },
		{ 0x66, 0x90 },
		{ 0x0f, 0x1f, 0x00 },
		{ 0x0f, 0x1f, 0x40, 0x00 },
		{ 0x0f, 0x1f, 0x44, 0x00, 0x00 },
		{ 0x66, 0x0f, 0x1f, 0x44, 0x00, 0x00 },
		{ 0x0f, 0x1f, 0x80, 0x00, 0x00, 0x00, 0x00 },
		{ 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00 },
		{ 0x66, 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00 },
	};
	size_t pad = (boundary - buf_.size() % boundary) % boundary;
	while (pad > 0) {
		const size_t n = pad < 9 ? pad : 9;
		for (size_t i = 0; i < n; i++)
			byte(nops[n - 1][i]);
		pad -= n;
	}
}

void assembler::call(reg r)
{
	rex(false, 0, 0, r);
	byte(0xff);
	modrm_reg(2, r);
}

void assembler::ret()
{
	byte(0xc3);
}

void assembler::push(reg r)
{
	rex(false, 0, 0, r);
	byte(static_cast<uint8_t>(0x50 | (r & 7)));
}

void assembler::pop(reg r)
{
	rex(false, 0, 0, r);
	byte(static_cast<uint8_t>(0x58 | (r & 7)));
}

void assembler::mov(width w, reg dst, reg src)
{
	rr(w, 0x89, src, dst);
}

void assembler::mov_imm(reg dst, uint64_t imm)
{
	if (imm == 0) {
		rr(width::b32, 0x31, dst, dst); // xor r32, r32
	} else if (imm <= 0xffffffffu) {
		mov_imm32(dst, static_cast<uint32_t>(imm));
	} else if (static_cast<int64_t>(imm) >= INT32_MIN &&
		   static_cast<int64_t>(imm) <= INT32_MAX) {
		rr(width::b64, 0xc7, 0, dst); // mov r/m64, imm32 (sign-extended)
		u32(static_cast<uint32_t>(imm));
	} else {
		rex(true, 0, 0, dst); // movabs r64, imm64
		byte(static_cast<uint8_t>(0xb8 | (dst & 7)));
		u64(imm);
	}
}

void assembler::mov_imm32(reg dst, uint32_t imm)
{
	rex(false, 0, 0, dst);
	byte(static_cast<uint8_t>(0xb8 | (dst & 7)));
	u32(imm);
}

void assembler::movzx(reg dst, reg src, width from)
{
	rr(width::b32, from == width::b8 ? 0xb6 : 0xb7, dst, src, true,
	   from == width::b8);
}

void assembler::movsx(width to, reg dst, reg src, width from)
{
	if (from == width::b32)
		rr(width::b64, 0x63, dst, src); // movsxd
	else
		rr(to, from == width::b8 ? 0xbe : 0xbf, dst, src, true,
		   from == width::b8);
}

void assembler::lea(reg dst, mem m, width w)
{
	rm(w, 0x8d, dst, m);
}

void assembler::alu_rr(alu op, width w, reg dst, reg src)
{
	rr(w, static_cast<uint8_t>(static_cast<unsigned>(op) << 3 | 1), src,
	   dst);
}

void assembler::alu_ri(alu op, width w, reg dst, int32_t imm)
{
	rr(w, fits_i8(imm) ? 0x83 : 0x81, static_cast<unsigned>(op), dst);
	imm8_or_32(imm);
}

void assembler::alu_rm(alu op, width w, reg dst, mem m)
{
	rm(w, static_cast<uint8_t>(static_cast<unsigned>(op) << 3 | 3), dst, m);
}

void assembler::alu_mi(alu op, width w, mem m, int32_t imm)
{
	rm(w, fits_i8(imm) ? 0x83 : 0x81, static_cast<unsigned>(op), m);
	imm8_or_32(imm);
}

void assembler::test_rr(width w, reg a, reg b)
{
	rr(w, 0x85, b, a);
}

void assembler::test_ri(width w, reg a, int32_t imm)
{
	if (w == width::b8) {
		rr(width::b8, 0xf6, 0, a, false, true);
		byte(static_cast<uint8_t>(imm));
	} else {
		rr(w, 0xf7, 0, a);
		u32(static_cast<uint32_t>(imm));
	}
}

void assembler::imul_rr(width w, reg dst, reg src)
{
	rr(w, 0xaf, dst, src, true);
}

void assembler::imul_rri(width w, reg dst, reg src, int32_t imm)
{
	rr(w, fits_i8(imm) ? 0x6b : 0x69, dst, src);
	imm8_or_32(imm);
}

void assembler::neg(width w, reg r)
{
	rr(w, 0xf7, 3, r);
}

void assembler::div(width w, reg divisor)
{
	rr(w, 0xf7, 6, divisor);
}

void assembler::idiv(width w, reg divisor)
{
	rr(w, 0xf7, 7, divisor);
}

void assembler::cqo(width w)
{
	if (w == width::b64)
		byte(0x48);
	byte(0x99);
}

void assembler::shift_ri(shift op, width w, reg r, uint8_t count)
{
	if (count == 1) {
		rr(w, 0xd1, static_cast<unsigned>(op), r);
	} else {
		rr(w, 0xc1, static_cast<unsigned>(op), r);
		byte(count);
	}
}

void assembler::shift_cl(shift op, width w, reg r)
{
	rr(w, 0xd3, static_cast<unsigned>(op), r);
}

void assembler::shift_x(shift op, width w, reg dst, reg src, reg count)
{
	// VEX.LZ.{66,F3,F2}.0F38.W{0,1} F7 /r: reg = dst, r/m = src,
	// vvvv = count. R, X, B and vvvv are stored inverted.
	uint8_t pp = op == shift::shl ? 1 : op == shift::sar ? 2 : 3;
	byte(0xc4);
	byte(static_cast<uint8_t>((((dst >> 3) & 1) ? 0 : 0x80) | 0x40 |
				  (((src >> 3) & 1) ? 0 : 0x20) | 0x02));
	byte(static_cast<uint8_t>((w == width::b64 ? 0x80 : 0) |
				  ((~count & 0xf) << 3) | pp));
	byte(0xf7);
	modrm_reg(dst, src);
}

void assembler::bswap(width w, reg r)
{
	rex(w == width::b64, 0, 0, r);
	byte(0x0f);
	byte(static_cast<uint8_t>(0xc8 | (r & 7)));
}

void assembler::load(width w, reg dst, mem m)
{
	switch (w) {
	case width::b8:
		rm(width::b32, 0xb6, dst, m, true); // movzx r32, r/m8
		break;
	case width::b16:
		rm(width::b32, 0xb7, dst, m, true); // movzx r32, r/m16
		break;
	case width::b32:
	case width::b64:
		rm(w, 0x8b, dst, m);
		break;
	}
}

void assembler::load_fs32(reg dst, int32_t disp)
{
	byte(0x64); // fs segment override
	rex(false, dst, 0, 0);
	byte(0x8b);
	// ModRM mod=00 rm=100 and SIB base=101, no index: [disp32].
	byte(static_cast<uint8_t>((dst & 7) << 3 | 0x04));
	byte(0x25);
	u32(static_cast<uint32_t>(disp));
}

void assembler::load_sx(width from, reg dst, mem m)
{
	switch (from) {
	case width::b8:
		rm(width::b64, 0xbe, dst, m, true);
		break;
	case width::b16:
		rm(width::b64, 0xbf, dst, m, true);
		break;
	case width::b32:
	case width::b64:
		rm(width::b64, 0x63, dst, m); // movsxd
		break;
	}
}

void assembler::store(width w, mem m, reg src)
{
	if (w == width::b8)
		rm(width::b8, 0x88, src, m, false, true);
	else
		rm(w, 0x89, src, m);
}

// fs prefix, REX.W, opcode, ModRM mod=00 r/m=100 and SIB base=101
// index=100: an absolute disp32, which the fs segment makes thread-relative.
void assembler::store_fs64(int32_t disp, reg src)
{
	byte(0x64);
	rex(true, src, 0, 0);
	byte(0x89);
	byte(static_cast<uint8_t>((src & 7) << 3 | 0x04));
	byte(0x25);
	u32(static_cast<uint32_t>(disp));
}

void assembler::store_fs64_zero(int32_t disp)
{
	byte(0x64);
	rex(true, 0, 0, 0);
	byte(0xc7);
	byte(0x04);
	byte(0x25);
	u32(static_cast<uint32_t>(disp));
	u32(0);
}

void assembler::store_imm(width w, mem m, int32_t imm)
{
	switch (w) {
	case width::b8:
		rm(width::b8, 0xc6, 0, m);
		byte(static_cast<uint8_t>(imm));
		break;
	case width::b16:
		rm(width::b16, 0xc7, 0, m);
		u16(static_cast<uint16_t>(imm));
		break;
	case width::b32:
	case width::b64:
		rm(w, 0xc7, 0, m); // b64: imm32 sign-extended
		u32(static_cast<uint32_t>(imm));
		break;
	}
}

void assembler::load_indexed8(reg dst, reg base, reg index)
{
	rex(true, dst, index, base);
	byte(0x8b);
	unsigned mod = (base & 7) == 5 ? 1 : 0;
	byte(static_cast<uint8_t>(mod << 6 | (dst & 7) << 3 | 4));
	byte(static_cast<uint8_t>(3 << 6 | (index & 7) << 3 | (base & 7)));
	if (mod == 1)
		byte(0);
}

void assembler::lock_alu(alu op, width w, mem m, reg src)
{
	byte(0xf0);
	rm(w, static_cast<uint8_t>(static_cast<unsigned>(op) << 3 | 1), src, m);
}

void assembler::lock_xadd(width w, mem m, reg src)
{
	byte(0xf0);
	rm(w, 0xc1, src, m, true);
}

void assembler::lock_cmpxchg(width w, mem m, reg src)
{
	byte(0xf0);
	rm(w, 0xb1, src, m, true);
}

void assembler::xchg(width w, mem m, reg src)
{
	rm(w, 0x87, src, m);
}

} // namespace bpftime::vm::jit_x64
