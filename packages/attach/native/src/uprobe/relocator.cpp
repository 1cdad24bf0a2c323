// relocator.cpp: see relocator.hpp.
#include "relocator.hpp"

#include <Zydis/Zydis.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>

namespace bpftime::attach::detail {
namespace {

std::string hex(uint64_t v)
{
	char b[24];
	snprintf(b, sizeof(b), "0x%" PRIx64, v);
	return b;
}

struct zydis {
	ZydisDecoder decoder;
	ZydisFormatter formatter;
	zydis()
	{
		ZydisDecoderInit(&decoder, ZYDIS_MACHINE_MODE_LONG_64,
				 ZYDIS_STACK_WIDTH_64);
		ZydisFormatterInit(&formatter, ZYDIS_FORMATTER_STYLE_INTEL);
	}
};

const zydis &z()
{
	static const zydis instance;
	return instance;
}

bool is_jcxz_loop(ZydisMnemonic m)
{
	return m == ZYDIS_MNEMONIC_JCXZ || m == ZYDIS_MNEMONIC_JECXZ ||
	       m == ZYDIS_MNEMONIC_JRCXZ || m == ZYDIS_MNEMONIC_LOOP ||
	       m == ZYDIS_MNEMONIC_LOOPE || m == ZYDIS_MNEMONIC_LOOPNE;
}

} // namespace

std::string region::describe() const
{
	std::string s;
	for (const insn &i : insns) {
		if (!s.empty())
			s += "; ";
		s += i.text;
	}
	return s;
}

result<insn> decode(uint64_t address, const uint8_t *code, size_t avail)
{
	ZydisDecodedInstruction in;
	ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
	ZyanStatus st = ZydisDecoderDecodeFull(&z().decoder, code, avail, &in,
					       ops);
	if (!ZYAN_SUCCESS(st)) {
		char b[96];
		snprintf(b, sizeof(b),
			 "no valid instruction at %s (bytes %02x %02x %02x)",
			 hex(address).c_str(), avail > 0 ? code[0] : 0,
			 avail > 1 ? code[1] : 0, avail > 2 ? code[2] : 0);
		return fail(EINVAL, b);
	}
	insn out;
	out.address = address;
	out.length = in.length;
	memcpy(out.bytes, code, in.length);
	char text[96];
	if (ZYAN_SUCCESS(ZydisFormatterFormatInstruction(
		    &z().formatter, &in, ops, in.operand_count_visible, text,
		    sizeof(text), address, nullptr)))
		out.text = text;
	else
		out.text.assign(1, '?'); // not = "?": GCC 12 -Wrestrict false positive (PR 105329)

	auto refuse = [&](const char *why) {
		std::string m = "instruction '";
		m += out.text;
		m += "' at ";
		m += hex(address);
		m += ' ';
		m += why;
		return fail(EINVAL, std::move(m));
	};

	// A RIP-relative memory operand: its disp32 is rewritten wherever
	// the instruction goes.
	for (int i = 0; i < in.operand_count; i++) {
		const ZydisDecodedOperand &op = ops[i];
		if (op.type != ZYDIS_OPERAND_TYPE_MEMORY ||
		    op.mem.base != ZYDIS_REGISTER_RIP)
			continue;
		ZyanU64 abs = 0;
		if (!ZYAN_SUCCESS(ZydisCalcAbsoluteAddress(&in, &op, address,
							   &abs)) ||
		    in.raw.disp.size != 32)
			return refuse("has a RIP-relative operand we cannot "
				      "compute");
		out.rip_relative = true;
		out.rip_target = abs;
		out.disp_offset = in.raw.disp.offset;
	}

	const bool far = in.meta.branch_type == ZYDIS_BRANCH_TYPE_FAR;
	switch (in.mnemonic) {
	case ZYDIS_MNEMONIC_RET:
	case ZYDIS_MNEMONIC_IRET:
	case ZYDIS_MNEMONIC_IRETD:
	case ZYDIS_MNEMONIC_IRETQ:
	case ZYDIS_MNEMONIC_SYSRET:
	case ZYDIS_MNEMONIC_SYSEXIT:
		out.kind = insn_kind::ret;
		return out;
	case ZYDIS_MNEMONIC_UD0:
	case ZYDIS_MNEMONIC_UD1:
	case ZYDIS_MNEMONIC_UD2:
	case ZYDIS_MNEMONIC_HLT:
	case ZYDIS_MNEMONIC_INT3:
	case ZYDIS_MNEMONIC_INT1:
		out.kind = insn_kind::stop;
		return out;
	default:
		break;
	}

	if (!(in.attributes & ZYDIS_ATTRIB_IS_RELATIVE) || out.rip_relative) {
		// Indirect control transfers are position independent except
		// for a RIP-relative operand, handled above.
		if (in.mnemonic == ZYDIS_MNEMONIC_JMP) {
			out.kind = insn_kind::jmp_indirect;
		} else if (in.mnemonic == ZYDIS_MNEMONIC_CALL) {
			if (far)
				return refuse("is a far call");
			out.kind = insn_kind::call_indirect;
			out.modrm_offset = in.raw.modrm.offset;
			// The return address pushed before the jmp moves rsp:
			// an operand that reads rsp would see it moved.
			for (int i = 0; i < in.operand_count_visible; i++) {
				const ZydisDecodedOperand &op = ops[i];
				if ((op.type == ZYDIS_OPERAND_TYPE_REGISTER &&
				     op.reg.value == ZYDIS_REGISTER_RSP) ||
				    (op.type == ZYDIS_OPERAND_TYPE_MEMORY &&
				     (op.mem.base == ZYDIS_REGISTER_RSP ||
				      op.mem.index == ZYDIS_REGISTER_RSP)))
					return refuse("calls through the stack "
						      "pointer");
			}
		}
		return out;
	}

	// A relative immediate: compute its target.
	const ZydisDecodedOperand *rel = nullptr;
	int imm_index = 0;
	for (int i = 0; i < in.operand_count; i++) {
		if (ops[i].type == ZYDIS_OPERAND_TYPE_IMMEDIATE &&
		    ops[i].imm.is_relative) {
			rel = &ops[i];
			break;
		}
	}
	for (int i = 0; i < 2; i++)
		if (in.raw.imm[i].is_relative)
			imm_index = i;
	ZyanU64 target = 0;
	if (!rel || !ZYAN_SUCCESS(ZydisCalcAbsoluteAddress(&in, rel, address,
							   &target)))
		return refuse("has a relative operand we cannot compute");
	out.target = target;
	const uint8_t rel_bits = in.raw.imm[imm_index].size;
	out.imm_offset = in.raw.imm[imm_index].offset;

	if (in.mnemonic == ZYDIS_MNEMONIC_JMP) {
		out.kind = insn_kind::jmp_rel;
	} else if (in.mnemonic == ZYDIS_MNEMONIC_CALL) {
		out.kind = insn_kind::call_rel;
	} else if (is_jcxz_loop(in.mnemonic)) {
		out.kind = insn_kind::jcxz_loop;
	} else if (in.mnemonic == ZYDIS_MNEMONIC_XBEGIN) {
		if (rel_bits != 32)
			return refuse("has a 16-bit abort offset");
		out.kind = insn_kind::xbegin;
	} else if (in.meta.category == ZYDIS_CATEGORY_COND_BR) {
		// Jcc: 0x70+cc (rel8) or 0F 0x80+cc (rel32).
		out.kind = insn_kind::jcc_rel;
		out.cc = in.opcode & 0x0f;
	} else {
		return refuse("has a relative operand of an unknown kind");
	}
	if (rel_bits == 16)
		return refuse("has a 16-bit branch displacement");
	return out;
}

result<region> plan_region(uint64_t address, const uint8_t *code,
			   size_t avail, uint32_t min_bytes)
{
	region r;
	r.address = address;
	while (r.length < min_bytes) {
		if (r.length >= avail)
			return fail(ERANGE, "the mapping ends " +
						    std::to_string(r.length) +
						    " bytes after the probe");
		auto i = decode(address + r.length, code + r.length,
				avail - r.length);
		if (!i)
			return std::move(i).error();
		r.length += i->length;
		const bool last = r.length >= min_bytes;
		if (i->ends_flow() && !last) {
			// What follows may be padding, data or another
			// function: the jump must not cover it.
			std::string why = "the function ends with '" +
					  i->text + "' at +" +
					  std::to_string(r.length - i->length) +
					  ", before " +
					  std::to_string(min_bytes) + " bytes";
			return fail(ERANGE, why);
		}
		if ((i->kind == insn_kind::call_rel ||
		     i->kind == insn_kind::call_indirect) &&
		    !last)
			// The callee would return into the middle of the
			// patched bytes (only a short indirect call can get
			// here: a call rel32 is 5 bytes long).
			return fail(ERANGE, "'" + i->text +
						    "' returns into the bytes "
						    "a jump would cover");
		r.insns.push_back(std::move(*i));
	}
	return r;
}

std::vector<uint64_t> reach_targets(const region &r)
{
	std::vector<uint64_t> t;
	const uint64_t lo = r.address, hi = r.address + r.length;
	for (const insn &i : r.insns) {
		if (i.rip_relative)
			t.push_back(i.rip_target);
		if (i.is_relative_branch() && (i.target < lo || i.target >= hi))
			t.push_back(i.target);
	}
	t.push_back(hi);
	return t;
}

std::pair<uint64_t, uint64_t> reach_window(const std::vector<uint64_t> &targets,
					   uint64_t slack)
{
	const uint64_t reach = (1ULL << 31) - slack;
	uint64_t lo = 0, hi = UINT64_MAX;
	for (uint64_t t : targets) {
		uint64_t tlo = t > reach ? t - reach : 0;
		uint64_t thi = t < UINT64_MAX - reach ? t + reach : UINT64_MAX;
		lo = tlo > lo ? tlo : lo;
		hi = thi < hi ? thi : hi;
	}
	return { lo, hi };
}

namespace {

// Points the rel32 field at `field` of `b`, the copy of `i` about to be
// emitted at e.here(), at `target`: counted from the copy's end, as the CPU
// counts it (an immediate may follow the field). EINVAL naming the
// instruction and `what` when the copy is too far from the target.
status set_rel32(uint8_t *b, const insn &i, const emitter &e, size_t field,
		 uint64_t target, const char *what)
{
	const uint64_t next = e.here() + i.length;
	if (!rel32_reaches(next, target))
		return fail(EINVAL,
			    "'" + i.text + "': " + what + " out of reach");
	const uint32_t d = uint32_t(target - next);
	memcpy(b + field, &d, 4);
	return {};
}

// Emits `b`, the copy of `i` (rewritten or not), with its RIP-relative
// operand, if it has one, pointed back at what the original addressed.
status emit_copy(uint8_t *b, const insn &i, emitter &e)
{
	if (i.rip_relative) {
		status s = set_rel32(b, i, e, i.disp_offset, i.rip_target,
				     "operand");
		if (!s)
			return s;
	}
	e.raw(b, i.length);
	return {};
}

} // namespace

status emit_relocated(const region &r, emitter &e,
		      std::vector<std::pair<uint32_t, uint32_t>> &boundaries)
{
	const uint64_t start = e.here();
	const uint64_t lo = r.address, hi = r.address + r.length;
	for (const insn &i : r.insns) {
		boundaries.emplace_back(uint32_t(i.address - r.address),
					uint32_t(e.here() - start));
		// A branch back to the first byte runs the probe again, as the
		// original instruction would be hit again; branches to other
		// bytes of the region are refused by the planner (the site
		// falls back to a breakpoint).
		if (i.is_relative_branch() && i.target > lo && i.target < hi)
			return fail(EINVAL, "'" + i.text +
						    "' branches inside the "
						    "displaced bytes");
		const uint64_t next_orig = i.address + i.length;
		switch (i.kind) {
		case insn_kind::jmp_rel:
			e.jmp(i.target);
			break;
		case insn_kind::jcc_rel:
			e.jcc(i.cc, i.target);
			break;
		case insn_kind::jcxz_loop: {
			// op +2 ; jmp short +5 ; jmp rel32 target
			uint8_t b[15];
			memcpy(b, i.bytes, i.length);
			b[i.length - 1] = 2;
			e.raw(b, i.length);
			e.byte(0xeb);
			e.byte(0x05);
			e.jmp(i.target);
			break;
		}
		case insn_kind::call_rel:
		case insn_kind::call_indirect: {
			// The original return address, then the call's
			// operand as a jump: the callee returns to the code
			// after the region (the call is its last instruction).
			e.push_imm32(int32_t(uint32_t(next_orig)));
			if ((uint64_t)(int64_t)(int32_t)(uint32_t)next_orig !=
			    next_orig)
				e.store32_rsp(4, uint32_t(next_orig >> 32));
			if (i.kind == insn_kind::call_rel) {
				e.jmp(i.target);
				break;
			}
			uint8_t b[15];
			memcpy(b, i.bytes, i.length);
			b[i.modrm_offset] = uint8_t((b[i.modrm_offset] & ~0x38) |
						    (4 << 3));
			if (status s = emit_copy(b, i, e); !s)
				return s;
			break;
		}
		case insn_kind::xbegin: {
			uint8_t b[15];
			memcpy(b, i.bytes, i.length);
			status s = set_rel32(b, i, e, i.imm_offset, i.target,
					     "target");
			if (!s)
				return s;
			e.raw(b, i.length);
			break;
		}
		case insn_kind::plain:
		case insn_kind::jmp_indirect:
		case insn_kind::ret:
		case insn_kind::stop: {
			uint8_t b[15];
			memcpy(b, i.bytes, i.length);
			if (status s = emit_copy(b, i, e); !s)
				return s;
			break;
		}
		}
		if (!e.ok())
			return fail(EINVAL, "'" + i.text +
						    "': target out of reach of "
						    "the trampoline");
	}
	// Back to the original code (dead after a ret or jmp, harmless).
	e.jmp(hi);
	if (!e.ok())
		return fail(EINVAL, "the trampoline is out of reach of " +
					    hex(hi));
	return {};
}

std::string find_branch_into(uint64_t from, const uint8_t *code, size_t len,
			     uint64_t lo, uint64_t hi, uint64_t fn_start)
{
	size_t off = 0;
	while (off < len) {
		ZydisDecodedInstruction in;
		ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
		if (!ZYAN_SUCCESS(ZydisDecoderDecodeFull(&z().decoder,
							 code + off, len - off,
							 &in, ops)))
			break;
		if (in.attributes & ZYDIS_ATTRIB_IS_RELATIVE) {
			for (int k = 0; k < in.operand_count; k++) {
				if (ops[k].type != ZYDIS_OPERAND_TYPE_IMMEDIATE ||
				    !ops[k].imm.is_relative)
					continue;
				ZyanU64 t = 0;
				if (ZYAN_SUCCESS(ZydisCalcAbsoluteAddress(
					    &in, &ops[k], from + off, &t)) &&
				    t > lo && t < hi) {
					char b[160];
					char text[96] = "?";
					ZydisFormatterFormatInstruction(
						&z().formatter, &in, ops,
						in.operand_count_visible, text,
						sizeof(text), from + off,
						nullptr);
					snprintf(b, sizeof(b),
						 "'%s' at +0x%" PRIx64
						 " jumps to +0x%" PRIx64,
						 text, from + off - fn_start,
						 t - fn_start);
					return b;
				}
			}
		}
		off += in.length;
	}
	return {};
}

} // namespace bpftime::attach::detail
