// trampoline.cpp: see trampoline.hpp.
#include "trampoline.hpp"

#include "probe_site.hpp"

#include <bpftime/attach/pt_regs.hpp>

#include <cerrno>
#include <cstddef>

namespace bpftime::attach::detail {
namespace {

constexpr int32_t red_zone = 128;
constexpr int32_t regs_size = sizeof(pt_regs);

// The general-purpose registers in push order (the reverse of pt_regs).
constexpr reg gpr_push_order[] = { rdi, rsi, rdx, rcx, rax, r8,	 r9, r10,
				   r11, rbx, rbp, r12, r13, r14, r15 };

// What pt_regs::flags holds where the ABI leaves the flags undefined (at a
// function's first instruction and after a return): IF and the reserved
// bit 1, as user code always runs with. pushfq costs a few ns there for a
// value no code may depend on.
constexpr int32_t dead_flags = 0x202;

// Pushes a pt_regs below rsp: ss, sp (placeholder), flags, cs, ip
// (placeholder), orig_ax, then the general-purpose registers. Changes no
// flag before pushfq.
void push_regs(emitter &e, bool live_flags)
{
	e.push_imm32(int32_t(USER_DS));
	e.push_imm32(0);
	if (live_flags)
		e.pushfq();
	else
		e.push_imm32(dead_flags);
	e.push_imm32(int32_t(USER_CS));
	e.push_imm32(0);
	e.push_imm32(-1);
	for (reg r : gpr_push_order)
		e.push(r);
}

// Pops the registers the probed code may need back from the pt_regs at
// rsp: every caller-saved one and rbx (the trampoline's own). r15, r14,
// r13, r12 and rbp are skipped: the callee-saved registers come back from
// the callback unchanged by the ABI.
void pop_gprs(emitter &e)
{
	e.lea(rsp, rsp, 5 * 8);
	for (int i = int(std::size(gpr_push_order)) - 6; i >= 0; i--)
		e.pop(gpr_push_order[i]);
}

// Aligns rsp, saves vector registers [0, n) below it, calls fn(rdi=regs,
// rsi=arg) and restores them; rbx holds regs across the call.
void call_with_vectors(emitter &e, int n, uint64_t fn, bool with_arg,
		       uint64_t arg, bool ymm)
{
	const int32_t width = ymm ? 32 : 16;
	e.mov_reg(rbx, rsp);
	e.and_rsp(-32);
	if (n > 0)
		e.lea(rsp, rsp, -width * n);
	for (int i = 0; i < n; i++)
		e.store_vec(i, rsp, width * i, ymm);
	if (ymm) {
		// vzeroupper: the callback may use legacy SSE encodings,
		// which stall while the upper halves are dirty; they are
		// restored from the save area below.
		e.byte(0xc5);
		e.byte(0xf8);
		e.byte(0x77);
	}
	e.mov_reg(rdi, rbx);
	if (with_arg)
		e.mov_imm64(rsi, arg);
	e.mov_imm64(rax, fn);
	e.call_reg(rax);
	for (int i = 0; i < n; i++)
		e.load_vec(i, rsp, width * i, ymm);
	e.mov_reg(rsp, rbx);
}

bool detect_ymm() noexcept
{
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx");
}


// Back from pt_regs to the probed context: registers, then the stack
// pointer of the probed instruction.
void restore_probed(emitter &e, bool at_function_entry)
{
	pop_gprs(e);
	e.lea(rsp, rsp, 3 * 8); // orig_ax, ip, cs
	if (at_function_entry)
		e.lea(rsp, rsp, 8); // flags are dead at a call boundary
	else
		e.popfq();
	e.lea(rsp, rsp, 2 * 8 + red_zone); // sp, ss, red zone
}

} // namespace

bool save_ymm() noexcept
{
	static const bool v = detect_ymm();
	return v;
}

result<entry_code> build_entry(uint64_t base, const region &r, site *s,
			       bool at_function_entry, bool ymm)
{
	emitter e(base);
	e.lea(rsp, rsp, -red_zone);
	push_regs(e, !at_function_entry);
	if (!at_function_entry)
		e.byte(0xfc); // cld: callbacks are C code, DF must be clear
	// regs->sp: the rsp of the probed instruction.
	e.lea(rax, rsp, regs_size + red_zone);
	e.store(rsp, offsetof(pt_regs, sp), rax);
	e.mov_imm64(rax, r.address);
	e.store(rsp, offsetof(pt_regs, ip), rax);
	// Every vector register, at a function entry too: a caller compiled
	// with interprocedural register allocation (gcc -fipa-ra, the default
	// at -O2) keeps values in the registers it knows its callee leaves
	// alone, across the call, as the kernel's uprobes allow.
	call_with_vectors(e, 16,
			  reinterpret_cast<uint64_t>(&bpftime_attach_on_entry),
			  true, reinterpret_cast<uint64_t>(s), ymm);
	e.test_al();
	size_t to_special = e.jcc_forward(cc_nz);
	restore_probed(e, at_function_entry);
	entry_code out;
	out.relocated_at = uint32_t(e.size());
	const uint64_t relocated = e.here();
	BPFTIME_TRY(emit_relocated(r, e, out.boundaries));

	e.bind(to_special);
	e.byte(0x3c); // cmp al, entry_skip
	e.byte(entry_skip);
	size_t to_skip = e.jcc_forward(cc_z);

	// entry_call_through: the real return address is on the shadow stack;
	// call the function from here, so that its ret and ours are the
	// returns the CPU's return stack predicts.
	restore_probed(e, at_function_entry);
	e.lea(rsp, rsp, 8);
	e.byte(0xe8);
	e.u32(uint32_t(relocated - (e.here() + 4)));
	out.return_point_at = uint32_t(e.size());
	// The function returned: rsp is one slot above the one its return
	// address was popped from, which becomes the real return address's.
	e.lea(rsp, rsp, -8);
	push_regs(e, false);
	e.lea(rax, rsp, regs_size);
	e.store(rsp, offsetof(pt_regs, sp), rax);
	// Every register comes back as the function left it, not only the
	// return values: a caller built with -fipa-ra keeps values across the
	// call in the caller-saved registers it knows the callee does not
	// touch, and the kernel's uretprobes preserve them all.
	call_with_vectors(e, 16, reinterpret_cast<uint64_t>(&bpftime_attach_on_return),
			  false, 0, ymm);
	e.store(rsp, regs_size, rax);
	pop_gprs(e);
	e.lea(rsp, rsp, 6 * 8); // orig_ax ... ss
	e.ret();

	// entry_skip: an override chose the return value.
	e.bind(to_skip);
	pop_gprs(e);
	e.lea(rsp, rsp, 6 * 8 + red_zone); // orig_ax ... ss, red zone
	e.ret();
	if (!e.ok())
		return fail(EINVAL, "trampoline out of reach of its targets");
	if (e.size() > max_entry_code)
		return fail(EINVAL, "trampoline too large");
	out.bytes = e.bytes();
	return out;
}

} // namespace bpftime::attach::detail
