/* bench.h: lets one C file be both a BPF socket filter and a native function
 * with the same computation, for bench/suites/vm.mjs.
 *
 * Built three ways from one source:
 *   clang-19 -target bpf -mcpu=v4 -O2 -g   the object that both the kernel
 *                                          (libbpf, BPF_PROG_TYPE_SOCKET_FILTER)
 *                                          and bpftime's vm run (its "socket"
 *                                          section, global data relocated to a
 *                                          buffer the driver owns)
 *   gcc -O2 -fno-tree-vectorize -fno-tree-loop-distribute-patterns -shared
 *                                          the fair native baseline (eBPF has
 *                                          no vector instructions and cannot
 *                                          call memset/memcpy)
 *   gcc -O2 -shared                        plain -O2, for reference
 *
 * Contract with bench/native/vm_bench.cpp:
 *   - the program is BENCH_PROGRAM, named bench_run: the only function of
 *     the "socket" section in BPF (everything else is inlined), an exported
 *     `unsigned int bench_run(void *ctx)` natively; ctx is ignored (r1 is an
 *     skb in the kernel, the data buffer in bpftime, NULL natively);
 *   - its input is the global `bench_input` (BENCH_INPUT_SIZE bytes), which
 *     the driver fills with the same bytes in every variant before the first
 *     run; in BPF all globals live in .bss, the array map that libbpf
 *     creates for it (the kernel) or a buffer (bpftime);
 *   - the result is 32 bits, because BPF_PROG_TEST_RUN reports a u32 retval.
 */
#ifndef BPFTIME_BENCH_H
#define BPFTIME_BENCH_H

#define BENCH_INPUT_SIZE 4096

#ifdef __bpf__
/* The kernel's helper 7; bpftime's driver registers the same generator
 * (lib/random32.c, prandom_u32_state) under the same id. */
static unsigned int (*bench_get_prandom_u32)(void) = (void *)7;
#define BENCH_PROGRAM                                                          \
	char _license[] __attribute__((section("license"), used)) = "GPL";      \
	__attribute__((section("socket"), used)) unsigned int bench_run(       \
		void *ctx)
#else
/* Provided by vm_bench (exported from the executable); the call goes through
 * the PLT as a helper call goes through a pointer in the JIT. */
unsigned int bench_get_prandom_u32(void);
#define BENCH_PROGRAM                                                          \
	__attribute__((visibility("default"))) unsigned int bench_run(void *ctx)
#endif

#endif
