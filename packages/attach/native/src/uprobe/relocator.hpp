// relocator.hpp: decodes the instructions a probe displaces (Zydis) and
// re-emits them at another address with the same effect.
//
// What moves and how (everything else is copied byte for byte):
//
//   RIP-relative memory operand   disp32 recomputed for the new address
//   jmp rel8/rel32                jmp rel32 to the same target
//   jcc rel8/rel32                jcc rel32 to the same target
//   jrcxz/jecxz/loop/loopcc rel8  the same opcode over a 2-byte skip:
//                                 "op +2; jmp +5; jmp rel32 target"
//   call rel32                    push the original return address, then jmp
//                                 rel32: the callee returns to the original
//                                 code, and unwinders see the real caller
//   call [mem] / call reg         push the original return address, then the
//                                 same operand as jmp (FF /2 becomes FF /4)
//   xbegin rel32                  rel32 recomputed
//
// Refused (no mechanism can move them): an instruction Zydis cannot decode,
// a call through the stack pointer (its operand moves with the pushed return
// address), a far call, a relative branch with a 16-bit displacement.
//
// Control plane only.
#pragma once

#include "x86_emitter.hpp"

#include <bpftime/common/result.hpp>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace bpftime::attach::detail {

enum class insn_kind : uint8_t {
	plain,	       // position independent (or only RIP-relative data)
	jmp_rel,       // jmp rel8/rel32
	jcc_rel,       // jcc rel8/rel32
	jcxz_loop,     // jrcxz, jecxz, loop, loope, loopne (rel8 only)
	call_rel,      // call rel32
	call_indirect, // call r/m64
	jmp_indirect,  // jmp r/m64, jmp far
	ret,	       // ret, ret imm16, retf, iret
	stop,	       // ud0/ud1/ud2, hlt, int3, int1: execution does not go on
	xbegin,	       // xbegin rel32
};

struct insn {
	uint64_t address = 0;
	uint8_t length = 0;
	uint8_t bytes[15] = {};
	insn_kind kind = insn_kind::plain;
	uint8_t cc = 0;		   // jcc_rel: condition nibble
	uint64_t target = 0;	   // branch target
	bool rip_relative = false; // has a RIP-relative memory operand
	uint64_t rip_target = 0;   // the address it designates
	uint8_t disp_offset = 0;   // where its disp32 starts
	uint8_t imm_offset = 0;	   // xbegin: where its rel32 starts
	uint8_t modrm_offset = 0;  // call_indirect: where ModRM is
	std::string text;	   // Intel syntax, for logs

	// Execution never falls through to the next instruction.
	bool ends_flow() const noexcept
	{
		return kind == insn_kind::jmp_rel ||
		       kind == insn_kind::jmp_indirect ||
		       kind == insn_kind::ret || kind == insn_kind::stop;
	}
	bool is_relative_branch() const noexcept
	{
		return kind == insn_kind::jmp_rel ||
		       kind == insn_kind::jcc_rel ||
		       kind == insn_kind::jcxz_loop ||
		       kind == insn_kind::call_rel || kind == insn_kind::xbegin;
	}
};

// Decodes the instruction at `address`, whose bytes are code[0, avail).
// EINVAL with the reason when it cannot be decoded or cannot be relocated.
result<insn> decode(uint64_t address, const uint8_t *code, size_t avail);

// The instructions that cover at least `min_bytes` from `address`.
struct region {
	uint64_t address = 0;
	uint32_t length = 0;
	std::vector<insn> insns;

	std::string describe() const; // "endbr64; push rbp"
};

// Plans the displaced region of an inline jump (min_bytes 5) or of a
// breakpoint (min_bytes 1: the first instruction only).
//
// EINVAL: an instruction cannot be decoded or relocated (nothing can hook
// here). ERANGE: the region cannot hold a jump because the function's flow
// ends (ret, jmp, ud2 ...) before min_bytes; the message says where. ERANGE
// asks for the breakpoint, EINVAL refuses.
result<region> plan_region(uint64_t address, const uint8_t *code,
			   size_t avail, uint32_t min_bytes);

// Addresses a rel32 or disp32 at the relocated copy must reach: every
// branch target and RIP-relative operand outside the region, and the end of
// the region (the jump back).
std::vector<uint64_t> reach_targets(const region &r);

// A window [lo, hi] of trampoline addresses from which every target is
// within a rel32 (with `slack` bytes of room for the trampoline itself).
// Empty (lo > hi) when the targets are too far apart.
std::pair<uint64_t, uint64_t> reach_window(const std::vector<uint64_t> &targets,
					   uint64_t slack);

// Emits the relocated region at e.here(), then a jmp back to the first byte
// after the region. `boundaries` receives (offset in the original region,
// offset from the start of the emitted code) for each instruction.
// EINVAL when a target is out of reach from where e is placed.
status emit_relocated(const region &r, emitter &e,
		      std::vector<std::pair<uint32_t, uint32_t>> &boundaries);

// The first relative branch in [from, from+len) (decoded linearly) whose
// target lies in the open interval (lo, hi), as "jmp at +0x12 to +0x2";
// empty when there is none. Decoding stops at the first undecodable byte.
std::string find_branch_into(uint64_t from, const uint8_t *code, size_t len,
			     uint64_t lo, uint64_t hi, uint64_t fn_start);

} // namespace bpftime::attach::detail
