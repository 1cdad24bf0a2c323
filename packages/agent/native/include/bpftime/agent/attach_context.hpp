// attach_context.hpp: the registry's uprobe links, turned into hooks in the
// current process.
//
//   bpftime::agent::attach_context ctx;              // nothing attached yet
//   if (auto r = ctx.open({ .segment_name = "bpftime_maps_shm" }); !r)
//       log(r.error().message);                      // ENOENT: no registry
//   auto s = ctx.sync();                             // attach what matches
//   // later, from any thread, when registry().change_counter() moved:
//   s = ctx.sync();                                  // new links attach, released ones detach
//
// What a link becomes. For every link of the registry whose target is a
// perf_event handler, handlers' attach vocabulary decides the attach kind
// (bpftime/handlers/attach_kinds.hpp, attach_kind_of: uprobe, uretprobe,
// override, usdt, syscall_tracepoint, ...) and the kind's hook family; the
// agent hands the link to its family (src/hooks/<family>.cpp), or skips it
// when it has none (today: only the uprobe family, hooks/uprobe.cpp, which
// says what each of its kinds becomes):
//   - the pid filter must be -1 or this process's pid, else the link is
//     skipped (it is for another process);
//   - the program is instantiated on context_options::backend;
//   - the hook is installed through bpftime::attach.
// A module that is not loaded yet leaves the probe pending; it attaches when
// the module is dlopen'ed (bpftime::attach tracks dlopen).
//
// Programs do not nest on a thread: a hit while the thread already runs a
// program (from a helper's callee or a signal handler) skips its program and
// is counted in link_status::missed, as the kernel's bpf_prog_active does.
//
// Each uprobe hit runs the program with the kernel-layout pt_regs as its
// context (r1 = &regs, r2 = sizeof regs; a copy when the program may write
// it) and the link's cookie for bpf_get_attach_cookie(); a program cannot
// change the registers of the function it probes except through
// bpf_override_return.
//
// Failures are per link: a link whose program fails to instantiate (verifier,
// missing helper, missing map type) or whose hook fails to install is
// recorded with the error and skipped, and is not retried until the link is
// replaced (another generation of its id). Nothing here throws.
//
// Threads: every method may be called from any thread; sync() calls are
// serialised by an internal mutex. Hooks call programs on the target's
// threads without any lock.
//
// Lifetime: a detached link's program instance and binding are kept until
// the context is destroyed, because a call that entered the hook on another
// thread just before the detach may still be running it (see
// attach_manager::detach). The agent never destroys its context.
#pragma once

#include <bpftime/common/result.hpp>
#include <bpftime/vm/vm.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace bpftime::handlers {
class registry;
}

namespace bpftime::agent {

// Read from the environment by the caller (the agent's constructor), never
// by the context.
struct context_options {
	// The segment that holds the registry (BPFTIME_GLOBAL_SHM_NAME).
	std::string segment_name;
	// The backend every link's program runs on (the agent passes
	// handlers::backend_from_env(): BPFTIME_VM_NAME, BPFTIME_DISABLE_JIT).
	// An error here fails each link with it, as an unknown
	// BPFTIME_VM_NAME does.
	result<vm::backend> backend = vm::backend::jit_x64;
};

enum class link_state : uint8_t {
	attached, // hook installed, the program runs on every hit
	pending,  // the module is not loaded yet
	skipped,  // not for this process (pid filter), or no hook family here
	failed,	  // error says why
};

const char *to_string(link_state s) noexcept;

// What sync() made of one link.
struct link_status {
	uint32_t link_id = 0;
	uint64_t generation = 0;
	uint32_t prog_id = 0;
	std::string where; // "uprobe /usr/lib/x86_64-linux-gnu/libc.so.6+0xa0f0"
	std::string hook;  // the probe installed: "uprobe", "uretprobe", "override"
	link_state state = link_state::skipped;
	error err;	   // state == failed
	// Hits that did not run the program because the thread was already
	// running one (a probed function called from a helper or from a
	// signal handler), as the kernel counts them for kprobes.
	uint64_t missed = 0;
	// Runs in this process that a SIGSEGV or SIGBUS inside the program (its
	// generated code, the interpreter or a helper) ended, as if it had
	// returned 0; and whether the link was disabled in this process for
	// reaching the fault limit (fault_guard.hpp).
	uint64_t faults = 0;
	bool disabled = false;
};

struct sync_summary {
	uint32_t attached = 0; // newly attached (or pending) by this call
	uint32_t detached = 0; // removed because their link was released
	uint32_t failed = 0;   // newly failed by this call
	uint64_t change_counter = 0; // the registry's counter this call saw
};

class attach_context {
    public:
	attach_context();
	// Detaches every hook (see Lifetime above for what stays alive until
	// here).
	~attach_context();
	attach_context(const attach_context &) = delete;
	attach_context &operator=(const attach_context &) = delete;

	// Opens the segment and its registry and registers, in this process,
	// the map types of @bpftime/maps-userspace and the helpers the agent
	// provides (bpf_trace_printk's output is the caller's to choose:
	// handlers::set_trace_printk_sink). ENOENT: no such segment or no registry in it; EBADMSG /
	// EPROTONOSUPPORT: a foreign segment or another layout version;
	// EALREADY: already open.
	status open(const context_options &opts) noexcept;
	bool is_open() const noexcept;

	// The registry's change counter, or 0 when not open. Lock-free: the
	// watcher polls it.
	uint64_t change_counter() const noexcept;

	// Whether the segment's file is still the one mapped here, whole
	// (shm::segment::check_file): the watcher asks before each look at the
	// registry, whose pages would raise SIGBUS past a truncated file's
	// end. EBADF when not open.
	status check_segment() const noexcept;

	// Brings the hooks in line with the registry: attaches the links that
	// appeared, detaches those that were released. EBADF when not open;
	// per-link failures do not fail the call (see links()).
	result<sync_summary> sync() noexcept;

	// Every link the last sync() saw, by id.
	std::vector<link_status> links() const;

	// Removes every hook (their original bytes come back) and forgets the
	// links, keeping their program instances (see Lifetime). A later
	// sync() attaches the registry's links again. Returns the number of
	// hooks removed; EBADF when not open. For `bpftime detach`.
	result<uint32_t> detach_all() noexcept;

	// Adds the faults counted in this process since the last call to each
	// link's count in the registry (handlers::link_spec::faults), where
	// every process's agent adds its own. The watcher calls it on each
	// poll, and the exit handler once more.
	void publish_faults() noexcept;

	handlers::registry *registry() noexcept;

	struct state;

    private:
	std::unique_ptr<state> state_;
};

} // namespace bpftime::agent
