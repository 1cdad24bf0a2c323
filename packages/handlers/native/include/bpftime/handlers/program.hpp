// program.hpp: a program of the registry, ready to run in this process.
//
// Instances are per process and never in shared memory: the JIT's code and
// the resolved map addresses are only valid here.
//
//   bpftime::handlers::instance_options o;           // the JIT
//   auto inst = reg->instantiate(prog_id, o);
//   bpftime::handlers::run_context rc{ .cookie = link.cookie };
//   auto r0 = (*inst)->run(&regs, sizeof(regs), rc);
//
// Instantiation (registry::instantiate, control plane, any thread):
//   1. copies the instructions out of the registry under its mutex;
//   2. refuses, by name, any helper this process does not provide
//      ("prog 'x': insn 7: calls bpf_get_current_task (#35), not provided by
//      bpftime");
//   3. resolves lddw pseudo values: BPF_PSEUDO_MAP_FD / _MAP_IDX become the
//      address of this process's map_instance (helpers dispatch on it with no
//      table lookup), BPF_PSEUDO_MAP_VALUE / _IDX_VALUE the address of the
//      value in an array map (direct value access);
//   4. builds a bpftime::vm::vm of the configured backend, binds the helper
//      table, verifies, and compiles when the backend is the JIT.
//
// run() may be called from any number of threads at once; it allocates
// nothing, takes no lock, and never throws.
#pragma once

#include <bpftime/common/result.hpp>
#include <bpftime/handlers/cpu_slot.hpp>
#include <bpftime/handlers/registry.hpp>
#include <bpftime/vm/vm.hpp>

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace bpftime::handlers {

struct instance_options {
	// Unset: the JIT. Nothing here reads the environment: an edge (the
	// agent, the binding, a tool) passes backend_from_env() when the user
	// chooses the backend that way.
	std::optional<vm::backend> backend;
	// Check every load and store against the stack, the context and the
	// maps (slower; vm_options::bounds_check).
	bool bounds_check = false;
};

// BPFTIME_DISABLE_JIT=1 forces the interpreter; otherwise BPFTIME_VM_NAME
// ("interpreter", "jit", "llvm"), default "jit". EINVAL for an unknown name,
// ENOTSUP for a backend that is not built.
result<vm::backend> backend_from_env();

// What helpers need to know about the current run, set by whoever runs the
// program (the agent's hook, a test) on the running thread.
struct run_context {
	uint64_t cookie = 0;  // bpf_get_attach_cookie()
	uint64_t func_ip = 0; // bpf_get_func_ip()
};

// The run context of the calling thread; a zeroed one when none is set.
const run_context &current_run_context() noexcept;

namespace detail {
// The calling thread's run context, or nullptr. __thread rather than
// thread_local: no wrapper function on access, as there is no dynamic
// initialisation. Visible so that a probe hit sets it inline.
extern __thread const run_context *t_run_context;
} // namespace detail

// Sets the calling thread's run context for its lifetime (nests).
class scoped_run_context {
    public:
	explicit scoped_run_context(const run_context &rc) noexcept
		: prev_(detail::t_run_context)
	{
		detail::t_run_context = &rc;
	}
	~scoped_run_context()
	{
		detail::t_run_context = prev_;
	}
	scoped_run_context(const scoped_run_context &) = delete;
	scoped_run_context &operator=(const scoped_run_context &) = delete;

    private:
	const run_context *prev_;
};

class program_instance {
    public:
	~program_instance();

	// r1 = ctx, r2 = ctx_len; r0 at exit. EFAULT on a bounds violation in
	// bounds-check mode.
	result<uint64_t> run(void *ctx, uint64_t ctx_len) const noexcept;
	result<uint64_t> run(void *ctx, uint64_t ctx_len,
			     const run_context &rc) const noexcept;

	handle prog() const noexcept;
	const std::string &name() const noexcept;
	vm::backend backend() const noexcept;
	uint64_t compile_time_ns() const noexcept;
	const vm::vm &machine() const noexcept;
	// The CPU slots a run of this program owns one of (the program uses a
	// per-CPU map), or nullptr. run() claims one; whoever runs machine()
	// directly (the agent's hooks) holds a cpu_slot_guard on it.
	const cpu_slot_table *cpu_slots() const noexcept;

	struct impl;
	explicit program_instance(std::unique_ptr<impl> i);

    private:
	std::unique_ptr<impl> impl_;
	friend class registry;
};

} // namespace bpftime::handlers
