// vm.hpp: one eBPF virtual machine instance, on the backend of your choice.
//
// A vm holds one program (a main function and its sub-programs), the helpers
// it may call, and the memory policy it runs under. It knows nothing of
// shared memory or of maps: lddw pseudo-instructions are resolved at load time
// by a callback from the loader, helpers are plain function pointers.
//
//   bpftime::vm::vm v(bpftime::vm::backend::jit_x64);
//   v.register_helper({ .id = 5, .name = "identity",
//                       .ret = bpftime::vm::RET_INTEGER,
//                       .args = { bpftime::vm::ARG_ANYTHING },
//                       .fn = +[](uint64_t a, uint64_t, uint64_t, uint64_t,
//                                 uint64_t) { return a; } });
//   if (auto st = v.load(insns, n); !st) die(st.error().message);
//   auto r = v.exec(ctx, ctx_len);          // r1 = ctx, r2 = ctx_len
//   if (r) use(*r);                          // r0 at exit
//
// Threading: load/register/compile happen once, on one thread, before any
// exec. After that exec() may run concurrently on any number of threads (each
// call has its own stack); nothing on the exec path allocates or throws.
#pragma once

#include <bpftime/common/result.hpp>
#include <bpftime/vm/helper_proto.hpp>
#include <bpftime/vm/insn.hpp>
#include <bpftime/vm/verifier.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace bpftime::vm {

enum class backend {
	interpreter,
	jit_x64,
	// LLVM 19 through ORC LLJIT, in libbpftime_vm_llvm.so, which the vm
	// loads when a program is loaded on it (backend_available()).
	llvm,
};

// Names as accepted by BPFTIME_VM_NAME ("interpreter", "jit", "llvm").
std::string_view backend_name(backend b) noexcept;
result<backend> parse_backend(std::string_view name);
// Whether programs can be loaded on b in this process: the llvm backend
// needs its plugin, found next to the module that links the vm, in
// @bpftime/vm's build folder, or at BPFTIME_VM_LLVM_LIB; ENOTSUP listing
// every path tried when it is not there.
status backend_available(backend b) noexcept;

// A lddw whose src_reg is not 0 asks the loader for its 64-bit value.
struct lddw_request {
	uint32_t pc;       // index of the first slot of the lddw
	uint8_t kind;      // BPF_PSEUDO_MAP_FD, _MAP_VALUE, _BTF_ID, _MAP_IDX ...
	int32_t imm;       // first slot's imm: fd, index or BTF id
	int32_t next_imm;  // second slot's imm: offset into the map value
};
using lddw_resolver = std::function<result<uint64_t>(const lddw_request &)>;

// A bpf_tail_call(ctx, prog_array, index) asks the runtime which program to
// continue with; nullptr means "no program there" and the call falls through
// as in the kernel.
class vm;

// A loaded program as a plain function and its argument, for callers that
// run it on every hit of a hot path (a probe) and only want r0: no result<>
// to build and destroy, no virtual dispatch. runner(ctx, ctx_len, &err)
// returns r0 with err = 0, or 0 with err = the errno exec() would have
// failed with (its message is not kept). Valid while the vm stays loaded.
struct runner {
	using fn_type = uint64_t (*)(const void *self, void *ctx,
				     uint64_t ctx_len, int *err) noexcept;
	fn_type fn = nullptr;
	const void *self = nullptr;

	uint64_t operator()(void *ctx, uint64_t ctx_len, int *err) const noexcept
	{
		return fn(self, ctx, ctx_len, err);
	}
	explicit operator bool() const noexcept
	{
		return fn != nullptr;
	}
};

using tail_call_resolver = const vm *(*)(void *user, uint64_t prog_array,
					 uint64_t index);

// A helper call that the JIT may emit inline instead of calling the helper
// (the kernel's map_gen_lookup for bpf_map_lookup_elem): what the call would
// compute, for one value of r1 known at load time.
struct inline_helper {
	enum kind_t : uint32_t {
		// r0 = *(u32 *)r2 < max_entries ?
		//      base + *(u32 *)r2 * stride : 0
		array_lookup = 1,
		// array_lookup + cpu * cpu_stride, cpu being the CPU the thread
		// runs on as glibc's rseq area has it (what sched_getcpu()
		// returns); emitted only where glibc registered rseq
		// (__rseq_size > 0), else the helper is called.
		percpu_array_lookup = 2,
	};
	kind_t kind = array_lookup;
	uint64_t base = 0;
	uint32_t stride = 0;
	uint32_t max_entries = 0;
	uint32_t cpu_stride = 0;
	// percpu_array_lookup: when non-zero, cpu is first the int32 at this
	// offset from the thread pointer (an initial-exec thread-local of the
	// runtime: the CPU slot the run owns), and the rseq CPU only where
	// that is negative.
	int64_t cpu_tls_offset = 0;
};
// Asked by load() (JIT only) for each call of helper `helper_id` whose r1
// holds, on every path to the call, the value of one lddw (after the lddw
// resolver): `r1`. nullopt keeps the call. Called on the loading thread,
// during load() only.
using inline_resolver =
	std::function<std::optional<inline_helper>(uint32_t helper_id, uint64_t r1)>;

struct memory_region {
	uint64_t start;
	uint64_t size;
	bool writable;
};

struct vm_options {
	// Check every load and store against the stack, the context and the
	// registered regions; a violation ends exec() with EFAULT.
	bool bounds_check = false;
	// Let the verifier reject programs that read an uninitialised register.
	bool strict_verifier = true;
	// Interpreter only (load() on another backend fails with ENOTSUP): when
	// set, every exec() adds to *insn_counter the eBPF instructions it
	// executed: a lddw counts once, a pair the interpreter fuses counts
	// twice, callbacks run from helpers count, tail-called programs count
	// in their own vm. Plain `+=`, not atomic: one exec at a time. The
	// counter must outlive the vm's runs. Null (the default) selects the
	// interpreter's uncounted loop, which pays nothing for this.
	uint64_t *insn_counter = nullptr;
	// Run the verifier's type discipline (verify_options::types): every
	// load and store proven inside its object, NULL checks, references,
	// helper arguments against their prototypes. Callers turn it off only
	// for BPFTIME_VERIFIER=off (see the README).
	bool type_check = true;
	// Bytes of context the program may read and write through r1
	// (verify_options::ctx_size); 0: none.
	uint32_t ctx_size = 0;
	// Whether the program may store into its context
	// (verify_options::ctx_writable).
	bool ctx_writable = true;
};

class vm {
    public:
	explicit vm(backend b = backend::interpreter,
		    vm_options opts = {}) noexcept;
	~vm();
	vm(vm &&) noexcept;
	vm &operator=(vm &&) noexcept;
	vm(const vm &) = delete;
	vm &operator=(const vm &) = delete;

	backend get_backend() const noexcept;

	// A helper with its prototype (helper_proto.hpp), by kernel id
	// (bpf_map_lookup_elem is 1 ...). Must precede load(): the verifier
	// refuses calls to unknown ids by number and checks every call's
	// arguments against the prototype's kinds. EINVAL naming the helper for
	// a null function or a prototype without kinds (ret RET_UNSPEC), EEXIST
	// for a registered id, E2BIG above 65535, EBUSY while loaded.
	status register_helper(const helper_proto &proto);
	// External functions reached by BPF_PSEUDO_KFUNC_CALL with a BTF id in
	// imm (bpftime's ufuncs).
	status register_kfunc(uint32_t btf_id, std::string name, helper_fn fn);
	void set_lddw_resolver(lddw_resolver r);
	// What the verifier knows of the map each lddw names
	// (verify_options::map_of); unset, lddw'd maps are opaque to it.
	void set_map_describer(
		std::function<std::optional<map_desc>(uint8_t kind, int32_t imm)> d);
	void set_tail_call_resolver(tail_call_resolver r, void *user);
	// Helper calls the JIT may emit inline (inline_helper); the other
	// backends call the helper. Must precede load().
	void set_inline_resolver(inline_resolver r);
	// Extra memory the program may touch in bounds-check mode.
	void add_memory_region(memory_region r);

	// Verifies, resolves lddw, and for the JIT compiles. EINVAL with the
	// verifier's message ("12: invalid opcode 0xff") on rejection.
	status load(std::span<const insn> prog);
	status load(const void *code, size_t len_bytes);
	// Ahead of time (any backend kind; needs the LLVM plugin): verifies
	// prog as load() would, with the helpers, kfuncs and options set so
	// far, and compiles it to an x86-64 ELF relocatable object, without
	// resolving its lddw pseudo values (the object asks for them when it is
	// loaded) or loading it. `cpu` is llc's -mcpu (default "x86-64": any
	// x86-64 machine).
	result<std::vector<uint8_t>> compile_aot(std::span<const insn> prog,
						 const char *cpu = nullptr);
	// Loads an object compile_aot() made: its instructions (kept in the
	// object) are verified and resolved as load() does, then its code is
	// mapped and linked against this vm's helpers, kfuncs and lddw values;
	// no LLVM is needed. ENOEXEC for an object that is not one; `expect`,
	// when not empty, must equal the object's instructions (EINVAL
	// otherwise: the object is of another program).
	status load_aot(std::span<const uint8_t> object,
			std::span<const insn> expect = {});
	void unload() noexcept;

	// Runs the program with r1 = ctx, r2 = ctx_len. EFAULT on a bounds
	// violation (bounds-check mode), ELOOP on too deep calls.
	result<uint64_t> exec(void *ctx, uint64_t ctx_len) const noexcept;
	// exec() as a runner; an empty one when no program is loaded.
	runner get_runner() const noexcept;

	// The loaded instructions after lddw resolution.
	std::span<const insn> instructions() const noexcept;
	// Wall time of the last compile (JIT) in nanoseconds; 0 for the
	// interpreter.
	uint64_t compile_time_ns() const noexcept;

	struct impl;

    private:
	status load_with(std::span<const insn> prog,
			 std::span<const uint8_t> object,
			 std::vector<uint8_t> *aot_out,
			 const char *cpu = nullptr);
	std::unique_ptr<impl> impl_;
};

// Calls a callback that a program passed to a helper (a BPF_PSEUDO_FUNC
// value, such as bpf_loop's callback_fn) with up to five arguments.
uint64_t invoke_callback(uint64_t fn_value, uint64_t a1, uint64_t a2,
			 uint64_t a3, uint64_t a4, uint64_t a5) noexcept;

// Fault containment, for the SIGSEGV and SIGBUS handler of a process that
// runs programs (the agent's): called on the thread that faulted with the
// handler's ucontext_t. When that thread is inside a run started through a
// runner (get_runner()), rewrites the context so that, once the handler
// returns, the run is over: the runner returns 0 with *err = EFAULT, the
// callee-saved registers and the stack are the runner's caller's again, and
// the frames of whatever faulted (generated code, the interpreter, a helper
// and what it called) are abandoned, like a longjmp out of them. Returns
// false, changing nothing, when the thread is in no such run. Whether the
// fault belongs to the run (rather than to a signal handler of the program
// that interrupted it) is the caller's to decide: see in_generated_code().
//
// How each backend ends the run: the JIT unwinds to its entry, as it does
// for its own errors (the run's run_ctx comes from the thread's chain of
// runs, from a thread-local that the probe entry of a program with helper
// calls sets when the vm is built with static TLS, or from r12 when the
// fault is in generated code); the interpreter's runner runs it through a
// guard that saved the callee-saved registers and the stack pointer.
// Async-signal-safe: it reads thread-locals and the faulting context only.
bool end_run_after_fault(void *ucontext) noexcept;

// Whether pc lies in code the JIT generated in this process (a program
// that is loaded now). Async-signal-safe.
bool in_generated_code(uint64_t pc) noexcept;

} // namespace bpftime::vm
