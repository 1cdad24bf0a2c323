// pt_regs.hpp: the register file a probe callback sees, laid out exactly as
// the Linux kernel's x86-64 `struct pt_regs` (arch/x86/include/asm/ptrace.h),
// so eBPF programs written for kernel uprobes read it unchanged:
// PT_REGS_PARM1..6 are di, si, dx, cx, r8, r9; PT_REGS_RC is ax; PT_REGS_IP
// is ip; PT_REGS_SP is sp.
//
// What the fields hold, as the kernel's uprobes fill them:
//
//   entry probe (uprobe, override)   ip = the probed address, sp = the stack
//                                    pointer at that instruction (at a
//                                    function entry [sp] is the return
//                                    address), every other register as it was
//   return probe (uretprobe)         ip = the address the function returns to,
//                                    sp = the stack pointer after the return,
//                                    ax (and dx) the return value
//
// cs and ss hold the user-mode selectors (0x33, 0x2b) and orig_ax is -1, as
// for a trap that did not come from a system call. flags holds the CPU's
// flags for a probe inside a function; at a function's first instruction
// and after a return, where the ABI leaves them undefined, it holds 0x202
// (IF and the reserved bit) without reading them.
#pragma once

#include <cstddef>
#include <cstdint>

namespace bpftime::attach {

struct pt_regs {
	uint64_t r15;
	uint64_t r14;
	uint64_t r13;
	uint64_t r12;
	uint64_t bp;
	uint64_t bx;
	uint64_t r11;
	uint64_t r10;
	uint64_t r9;
	uint64_t r8;
	uint64_t ax;
	uint64_t cx;
	uint64_t dx;
	uint64_t si;
	uint64_t di;
	uint64_t orig_ax;
	uint64_t ip;
	uint64_t cs;
	uint64_t flags;
	uint64_t sp;
	uint64_t ss;
};

// The kernel's layout, field by field (offsets from asm/ptrace.h and the
// PT_REGS_* macros of libbpf's bpf_tracing.h for x86-64).
static_assert(sizeof(pt_regs) == 168);
static_assert(offsetof(pt_regs, r15) == 0);
static_assert(offsetof(pt_regs, bp) == 32);
static_assert(offsetof(pt_regs, bx) == 40);
static_assert(offsetof(pt_regs, r9) == 64);
static_assert(offsetof(pt_regs, r8) == 72);
static_assert(offsetof(pt_regs, ax) == 80);
static_assert(offsetof(pt_regs, cx) == 88);
static_assert(offsetof(pt_regs, dx) == 96);
static_assert(offsetof(pt_regs, si) == 104);
static_assert(offsetof(pt_regs, di) == 112);
static_assert(offsetof(pt_regs, orig_ax) == 120);
static_assert(offsetof(pt_regs, ip) == 128);
static_assert(offsetof(pt_regs, cs) == 136);
static_assert(offsetof(pt_regs, flags) == 144);
static_assert(offsetof(pt_regs, sp) == 152);
static_assert(offsetof(pt_regs, ss) == 160);

// Selectors of 64-bit user mode (arch/x86/include/asm/segment.h:
// __USER_CS, __USER_DS).
inline constexpr uint64_t USER_CS = 0x33;
inline constexpr uint64_t USER_DS = 0x2b;

} // namespace bpftime::attach
