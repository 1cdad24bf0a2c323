// probe_site.hpp: what a patched address holds at run time, and the two
// functions the trampolines call.
//
// A site is one probed address. Its trampoline (see trampoline.hpp) saves
// the registers into a pt_regs and calls on_entry(regs, site), and, when a
// uretprobe asked for it, calls the function itself and on_return(regs)
// after it. Both run on the
// thread that hit the probe, in its normal context, with no lock held:
// they read the site's current handler list through one atomic pointer to
// an immutable snapshot that the control plane replaces on every attach or
// detach. Old snapshots, handlers and sites are never freed, because a
// thread may still be reading them (see exec_memory.hpp for the same
// reasoning about trampolines); the memory is bounded by the number of
// attach operations.
#pragma once

#include <bpftime/attach/attach.hpp>

#include <atomic>
#include <cstdint>
#include <vector>

namespace bpftime::attach::detail {

struct handler {
	uint64_t id = 0;
	probe_kind kind = probe_kind::uprobe;
	probe_callback cb = nullptr;	    // uprobe, uretprobe
	override_callback ocb = nullptr;    // override
	void *user = nullptr;
	std::atomic<uint64_t> missed{ 0 }; // uretprobe: returns not reported
};

struct snapshot {
	std::vector<handler *> handlers; // in attach order
	bool has_return = false;	 // some handler is a uretprobe
	bool has_entry = false;		 // some handler is a uprobe or override
	// The only handler, when it is a uprobe (uretprobe): the common cases,
	// which on_entry (on_return) runs without walking the list.
	const handler *sole_uprobe = nullptr;
	const handler *sole_uretprobe = nullptr;
};

struct site {
	uint64_t address = 0;
	// Where the function returns to in a call-through (the instruction
	// after the trampoline's call): the return address a tail call from
	// this function hands on.
	uint64_t return_point = 0;
	std::atomic<const snapshot *> current{ nullptr };
};

// What on_entry asks the trampoline to do next.
inline constexpr uint8_t entry_continue = 0;	 // run the function
inline constexpr uint8_t entry_skip = 1;	 // return regs->ax at once
inline constexpr uint8_t entry_call_through = 2; // call it, then on_return

// Called by a site's trampoline with the registers as they were at the
// probed instruction. Runs the entry and override handlers. Returns
// entry_skip when an override chose to skip the function (regs->ax holds
// the value to return); entry_call_through when a uretprobe is attached:
// the return address at regs->sp is then on the thread's shadow stack.
extern "C" uint64_t bpftime_attach_on_entry(pt_regs *regs, site *s) noexcept;

// Called by the trampoline after a call-through; regs->sp is the stack slot
// the return address was in. Pops the thread's shadow stack (dropping
// frames that a longjmp abandoned), runs the uretprobe handlers of the site
// with regs->ip and regs->sp as after a normal return, and returns the real
// return address.
extern "C" uint64_t bpftime_attach_on_return(pt_regs *regs) noexcept;

// How deep the shadow stack of one thread goes, as the kernel's
// MAX_URETPROBE_DEPTH bounds its return instances (64 there): deeper
// calls run without their return reported and count as missed.
inline constexpr uint32_t shadow_stack_depth = 256;

} // namespace bpftime::attach::detail
