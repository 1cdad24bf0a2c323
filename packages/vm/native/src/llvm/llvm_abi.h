/* llvm_abi.h: the C interface between the vm core and its LLVM plugin,
 * libbpftime_vm_llvm.so (native/llvm/).
 *
 * The plugin is the only piece of bpftime that links LLVM. The core dlopen()s
 * it when a program is loaded on the `llvm` backend (or compiled ahead of
 * time), so that the vm addon, the agent and the syscall-server load on a
 * machine without LLVM; there the backend is simply absent (ENOTSUP).
 * Plain C types only: the two sides are built separately and must agree on
 * nothing but this file. Each struct carries its size first, so that an older
 * plugin refuses a newer request instead of reading past it.
 *
 * Code the plugin generates, JIT or AOT, has one calling convention for
 * every eBPF function (the main program at pc 0, each sub-program and
 * callback at its start):
 *
 *   uint64_t bpf_fn_<pc>(uint64_t r1, r2, r3, r4, r5, void *run);
 *
 * returning r0. `run` is the core's per-run state (llvm_executor.cpp), of
 * which generated code knows three fields:
 *   offset 0, uint32_t: the run's state, 0 while it runs, non-zero once it
 *     has ended (a tail call finished it, a check or a callback failed it);
 *     generated code reads it after every call that may end the run and then
 *     returns at once;
 *   offset 4, uint32_t: local calls in progress (frames - 1); a call that
 *     would make MAX_CALL_FRAMES (8) frames ends the run with ELOOP instead;
 *   offset 8, uint64_t: bounds-check mode only: the top of the next frame.
 *     The run's 8 frames of 512 bytes are one area, as in the interpreter, so
 *     that the checks accept exactly what the interpreter's accept; without
 *     bounds checks each function's frame is its own stack slot.
 * Everything else about a run is the core's, reached through the runtime
 * functions below.
 */
#ifndef BPFTIME_VM_LLVM_ABI_H
#define BPFTIME_VM_LLVM_ABI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BPFTIME_LLVM_ABI_VERSION 1

/* Runtime functions of the core that generated code calls, by index. */
enum bpftime_llvm_rt {
	/* uint64_t (void *run, uint64_t r1, uint64_t r2, uint64_t r3):
	 * bpf_tail_call; returns r0 when it falls through, else ends the run. */
	BPFTIME_LLVM_RT_TAIL_CALL = 0,
	/* int (void *run, uint64_t addr, uint64_t size, uint64_t pc_store):
	 * bounds-check mode; pc_store = pc << 1 | is_store; 0 ends the run. */
	BPFTIME_LLVM_RT_CHECK = 1,
	/* uint64_t (void *run, uint64_t id, uint64_t pc, r1, r2, r3, r4, r5):
	 * callx; an unregistered id ends the run with EINVAL. */
	BPFTIME_LLVM_RT_CALLX = 2,
	/* void (void *run, uint64_t pc, uint64_t frames): ends the run with
	 * ELOOP, local calls nested too deep. */
	BPFTIME_LLVM_RT_TOO_DEEP = 3,
	BPFTIME_LLVM_RT_COUNT = 4
};

enum bpftime_llvm_flags {
	/* Check every load, store and atomic through BPFTIME_LLVM_RT_CHECK. */
	BPFTIME_LLVM_BOUNDS_CHECK = 1u << 0,
	/* Ahead-of-time: addresses are not known. Helper, kfunc and runtime
	 * calls and lddw pseudo values (src_reg != 0 in `insns`) go through
	 * the object's import table, filled by the loader (see below). */
	BPFTIME_LLVM_AOT = 1u << 1,
};

struct bpftime_llvm_request {
	uint32_t size; /* sizeof(struct bpftime_llvm_request) */
	uint32_t flags;
	/* 8-byte eBPF instructions, verified. JIT: every lddw resolved (src_reg
	 * 0); AOT: as loaded, pseudo lddw kept. */
	const void *insns;
	uint32_t insn_count;
	uint32_t function_count;
	const uint32_t *function_starts; /* sorted, [0] == 0 */
	/* JIT: helper addresses by id (0: absent), kfunc addresses by BTF id,
	 * runtime functions by bpftime_llvm_rt. AOT: only which exist. */
	const uint64_t *helper_addrs;
	uint32_t helper_count;
	uint32_t kfunc_count;
	const uint32_t *kfunc_ids;
	const uint64_t *kfunc_addrs;
	const uint64_t *runtime_addrs;
	uint32_t opt_level; /* 0..3, as -O */
	uint32_t reserved;
	/* AOT: the target CPU (llc's -mcpu, "x86-64" when null). */
	const char *cpu;
};

/* A JIT-compiled program. Owned by the plugin; free with
 * bpftime_llvm_release(). */
struct bpftime_llvm_jit_result {
	uint32_t size; /* sizeof(struct bpftime_llvm_jit_result) */
	uint32_t reserved;
	void *handle;
	/* Address of bpf_fn_<function_starts[i]>, function_count entries,
	 * allocated by the caller. */
	uint64_t *fn_addrs;
	/* [code_lo, code_hi): the executable memory of the program. */
	uint64_t code_lo, code_hi;
};

/* Version of this interface the plugin speaks. */
typedef uint32_t (*bpftime_llvm_abi_version_fn)(void);
#define BPFTIME_LLVM_SYM_ABI_VERSION "bpftime_llvm_abi_version"

/* Compiles and links in this process. 0, or -errno with a message in
 * err[errlen]. */
typedef int (*bpftime_llvm_jit_fn)(const struct bpftime_llvm_request *req,
				   struct bpftime_llvm_jit_result *out,
				   char *err, size_t errlen);
#define BPFTIME_LLVM_SYM_JIT "bpftime_llvm_jit"

typedef void (*bpftime_llvm_release_fn)(void *handle);
#define BPFTIME_LLVM_SYM_RELEASE "bpftime_llvm_release"

/* Compiles to an x86-64 ELF relocatable object in *obj (malloc'd, the
 * caller free()s it). The object defines bpf_fn_<pc> for every function,
 * the array BPFTIME_LLVM_AOT_IMPORTS (uint64_t[n]) that the loader fills
 * before running it, and the section BPFTIME_LLVM_AOT_IMPORT_SECTION
 * describing each slot in order, one line each: "h <id>" helper, "k <btf id>"
 * kfunc, "r <index>" runtime function, "l <pc>" the resolved value of the
 * lddw at pc; a first line "f <flags>", which takes no slot, says whether
 * the code checks its accesses (1: BPFTIME_LLVM_BOUNDS_CHECK). */
typedef int (*bpftime_llvm_aot_fn)(const struct bpftime_llvm_request *req,
				   void **obj, size_t *obj_len, char *err,
				   size_t errlen);
#define BPFTIME_LLVM_SYM_AOT "bpftime_llvm_aot"

#define BPFTIME_LLVM_AOT_IMPORTS "bpftime_aot_imports"
#define BPFTIME_LLVM_AOT_IMPORT_SECTION ".bpftime.imports"
/* The instructions the object was compiled from, as loaded (pseudo lddw
 * kept): a loader verifies and resolves these, and refuses an object whose
 * instructions differ from the program it is asked to run. */
#define BPFTIME_LLVM_AOT_INSN_SECTION ".bpftime.insns"
#define BPFTIME_LLVM_FN_PREFIX "bpf_fn_"

#ifdef __cplusplus
}
#endif

#endif
