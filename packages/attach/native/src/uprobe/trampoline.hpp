// trampoline.hpp: the machine code a probed address jumps (or a breakpoint
// sends the thread) to.
//
// Entry trampoline of a site at address A, displaced instructions R:
//
//   lea rsp, [rsp-128]                 step over the red zone (leaf code
//                                      may keep data below rsp)
//   push ss, sp, flags, cs, ip,        a struct pt_regs, built by pushes in
//        orig_ax, rdi ... r15          the kernel's order (flags before any
//                                      instruction that changes them)
//   fix up regs->sp and regs->ip
//   mov rbx, rsp; and rsp, -32         rbx (saved above) keeps regs
//   save the vector registers          (see below)
//   call bpftime_attach_on_entry(regs, site)
//   restore vectors; mov rsp, rbx
//   test al, al; jnz special
//   pop r15 ... rdi; popfq             registers from regs
//   lea rsp, [rsp+16+128]              back to the original rsp
// relocated:
//   R relocated, jmp A+len(R)
// special:
//   cmp al, entry_skip; je skip
//   (entry_call_through: a uretprobe moved the return address to the
//   thread's shadow stack)
//   restore as above; lea rsp, [rsp+8]  drop the return address
//   call relocated                     the function returns here, and both
//                                      its ret and ours below go where the
//                                      CPU's return stack predicts
//   lea rsp, [rsp-8]                   the slot of the real return address
//   push a pt_regs, call bpftime_attach_on_return(regs)
//   store its result (the real return address) in the slot
//   pop r15 ... rdi; lea rsp, [rsp+48]; ret
// skip:                                an override chose to skip: return
//   pop r15 ... rdi                    to the caller with regs->ax
//   lea rsp, [rsp+48+128]; ret
//
// Every one of xmm/ymm 0-15 is saved and restored around each callback, at
// a function's entry and after its return too: the SysV ABI makes them all
// caller-saved, but a caller built with -fipa-ra (gcc's default at -O2)
// keeps values in those its callee is known not to touch, and the kernel's
// uprobes and uretprobes preserve every register. The flags are saved
// inside a function; at an entry they are dead and DF is clear. ymm where
// the CPU and OS have AVX, xmm
// otherwise; AVX-512 state (zmm upper halves, zmm16-31, k0-7) is not saved,
// our callbacks being built without AVX-512.
//
// Control plane only.
#pragma once

#include "relocator.hpp"

#include <bpftime/common/result.hpp>

#include <cstdint>
#include <utility>
#include <vector>

namespace bpftime::attach::detail {

struct site;

struct entry_code {
	std::vector<uint8_t> bytes;
	// Where the relocated copy of R starts, relative to the trampoline,
	// and the (original offset, relocated offset) of each instruction:
	// a thread stopped inside R while the jump is installed is moved to
	// the same instruction in the copy.
	uint32_t relocated_at = 0;
	uint32_t return_point_at = 0; // after the call-through's call
	std::vector<std::pair<uint32_t, uint32_t>> boundaries;
};

// Largest entry trampoline: its fixed part plus the worst-case expansion
// of a region (a few instructions, each at most ~30 bytes relocated).
inline constexpr uint32_t max_entry_code = 1024;

// Whether ymm registers are saved (AVX usable), decided once.
bool save_ymm() noexcept;

// Builds the entry trampoline for `s` to run at `base`, saving vector
// registers as ymm or xmm. EINVAL when a relocated instruction cannot
// reach its target from `base`.
result<entry_code> build_entry(uint64_t base, const region &r, site *s,
			       bool at_function_entry, bool ymm = save_ymm());

} // namespace bpftime::attach::detail
