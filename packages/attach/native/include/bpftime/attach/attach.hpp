// attach.hpp: function hooks inside the current process by rewriting its
// machine code (x86-64 Linux). A probe calls a C callback with the registers
// laid out as the kernel's `struct pt_regs`:
//
//   uprobe      on entry to the instruction (usually a function's first)
//   uretprobe   when the function returns; regs->ax is the return value
//   override    on entry; when the callback returns true the function is
//               skipped and returns the value the callback chose
//
//   static void on_malloc(const bpftime::attach::pt_regs *r, void *user)
//   {
//       static_cast<std::atomic<uint64_t> *>(user)->fetch_add(1);   // r->di is the size
//   }
//   bpftime::attach::attach_manager probes;
//   std::atomic<uint64_t> calls{0};
//   auto id = probes.attach_uprobe({ .module = "libc.so.6", .symbol = "malloc" },
//                                  on_malloc, &calls);
//   if (!id) fprintf(stderr, "%s\n", id.error().message.c_str());
//   ...
//   (void)probes.detach(*id);     // the original bytes are back
//
// Mechanisms (probe_info::mech):
//
//   inline_jump   the first instructions (>= 5 bytes) are moved into a
//                 trampoline and replaced by a 5-byte jump to it: a hit costs
//                 a few nanoseconds
//   breakpoint    the first byte becomes int3; a SIGTRAP handler sends the
//                 thread to the same trampoline (a few us per hit). Used
//                 where a jump cannot be placed safely: the function is
//                 shorter than 5 bytes, ends (ret/jmp) before 5 bytes, code
//                 jumps back into the bytes the jump would cover, the bytes
//                 overlap another probe, or attach_options::force_breakpoint
//
// Callbacks run on the thread that called the function, in the normal
// context of that thread (never inside a signal handler). Every register
// the probed code may still use is preserved around them: all
// general-purpose registers; at a function's first instruction the
// argument vector registers (ymm0-7, xmm0-7 without AVX), elsewhere all of
// ymm0-15 and the flags; after a return (uretprobe) ymm0-1. A callback must
// not throw, must not unwind or longjmp out, and must not change AVX-512
// state (zmm upper halves, zmm16-31, k0-7) or the x87 stack: those are not
// saved. It may call hooked functions (they are probed again) and may
// attach or detach probes.
//
// uretprobe: the entry moves the return address to a per-thread shadow
// stack (256 frames; deeper calls are counted in probe_info::missed) and
// the trampoline calls the function itself. Frames that longjmp leaves are
// dropped and counted as missed; a C++ exception cannot unwind through a
// uretprobe'd frame (as with the kernel's uretprobes).
//
// Thread safety: an attach_manager may be used from any thread; the probes of
// all managers of a process share one set of patched sites. detach() returns
// once no new call can reach the callback; a call that had already entered it
// on another thread finishes normally, so keep `user` valid until such calls
// are done (the kernel's uprobe_unregister() waits for them with SRCU; a user
// space hook cannot see into other threads' stacks cheaply).
#pragma once

#include <bpftime/attach/pt_regs.hpp>
#include <bpftime/attach/symbols.hpp>
#include <bpftime/common/result.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace bpftime::attach {

// Entry and return probes. `regs` is valid for the duration of the call.
using probe_callback = void (*)(const pt_regs *regs, void *user);
// Override probes: return true to skip the function; it then returns *ret
// (in rax) to its caller. `regs` may be modified: the caller-saved registers
// (ax, cx, dx, si, di, r8-r11) and bx are restored from it, so a callback may
// change the arguments of a call it lets through; changes to bp, r12-r15, sp,
// ip and flags are not applied.
using override_callback = bool (*)(pt_regs *regs, void *user, uint64_t *ret);

// Which trampoline behaviour a probe gets: this mechanism's own parameter.
// What a registry link becomes (uprobe, uretprobe, override, usdt, syscall
// tracepoints ...) is the attach vocabulary of @bpftime/handlers
// (attach_kinds.hpp), which this package does not depend on; the agent's
// uprobe hook family maps those kinds onto these three.
enum class probe_kind : uint8_t { uprobe, uretprobe, override };

enum class mechanism : uint8_t {
	none,	     // not installed (pending or failed)
	inline_jump, // 5-byte jump to a trampoline
	breakpoint,  // int3 and a SIGTRAP handler
};

enum class probe_state : uint8_t {
	active,	 // installed: the callback runs on every hit
	pending, // the module is not loaded yet; attaches when it is dlopen'ed
	failed,	 // could not be installed; probe_info::reason says why
};

struct attach_options {
	// Use the int3 breakpoint even where an inline jump fits (for tests
	// and comparisons; it is much slower).
	bool force_breakpoint = false;
};

struct probe_info {
	uint64_t id = 0;
	probe_kind kind = probe_kind::uprobe;
	probe_state state = probe_state::pending;
	mechanism mech = mechanism::none;
	uint64_t address = 0;	     // 0 unless active
	uint32_t patched_bytes = 0;  // original bytes moved into the trampoline
	bool at_function_entry = false;
	std::string where;	     // "libc.so.6:malloc+0x0" or "0x401136"
	std::string reason;	     // why this mechanism / why pending or failed
	int error = 0;		     // errno of a failed probe
	uint64_t missed = 0;	     // uretprobe: returns not reported
};

const char *to_string(probe_kind k) noexcept;
const char *to_string(mechanism m) noexcept;
const char *to_string(probe_state s) noexcept;

class attach_manager {
    public:
	attach_manager();
	// Detaches every probe this manager attached.
	~attach_manager();
	attach_manager(const attach_manager &) = delete;
	attach_manager &operator=(const attach_manager &) = delete;

	// By address. EINVAL: null callback or the address is not the start
	// of an instruction we can decode; EFAULT: not in an executable
	// mapping of a loaded module; EBUSY: the byte is already an int3 that
	// is not ours (a debugger, a kernel uprobe) or a thread of the process
	// blocks SIGTRAP (a breakpoint would kill it); ENOMEM: no trampoline
	// memory within reach; EACCES/EPERM: the code page may not be made
	// writable (mprotect).
	result<uint64_t> attach_uprobe(uint64_t address, probe_callback cb,
				       void *user,
				       const attach_options &opts = {});
	result<uint64_t> attach_uretprobe(uint64_t address, probe_callback cb,
					  void *user,
					  const attach_options &opts = {});
	result<uint64_t> attach_override(uint64_t address,
					 override_callback cb, void *user,
					 const attach_options &opts = {});

	// By module and symbol or file offset. A module that is not loaded
	// yet leaves the probe pending (ok result, probe_state::pending) and
	// it is attached when a dlopen() maps the module; a path that names
	// no file is ENOENT. Errors otherwise as resolve() and the above.
	result<uint64_t> attach_uprobe(const probe_target &target,
				       probe_callback cb, void *user,
				       const attach_options &opts = {});
	result<uint64_t> attach_uretprobe(const probe_target &target,
					  probe_callback cb, void *user,
					  const attach_options &opts = {});
	result<uint64_t> attach_override(const probe_target &target,
					 override_callback cb, void *user,
					 const attach_options &opts = {});

	// Removes a probe. When it was the last on its address the original
	// bytes are written back exactly. ENOENT: no such probe of this
	// manager.
	status detach(uint64_t id);

	// ENOENT: no such probe of this manager.
	result<probe_info> info(uint64_t id) const;
	std::vector<probe_info> probes() const;

    private:
	struct state;
	std::unique_ptr<state> state_;
};

} // namespace bpftime::attach
