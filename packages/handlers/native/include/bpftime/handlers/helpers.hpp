// helpers.hpp: the helper functions programs call, with the kernel's ids and
// semantics, acting on registry objects.
//
// A helper is its prototype (vm::helper_proto: id, kernel name, return and
// argument kinds, function), registered together; the vm's verifier checks
// every call against the kinds. The standard set (one table in helpers.cpp)
// covers maps, memory probes, time, randomness, the current task,
// trace_printk and snprintf, string conversion, bpf_loop, the attach cookie
// and function ip; bpf_tail_call is the vm's own (vm::tail_call_proto). Map
// packages and the agent add theirs (ringbuf, perf output, override_return
// ...) with register_helper() before programs are instantiated; a program
// calling a helper nobody provides is refused at instantiation, by the
// helper's kernel name.
//
// Every helper runs on a program's hot path, on whatever thread runs the
// program: no allocation, no lock held across the call, no exception, and a
// bad pointer from the program (probe_read of an unmapped address) returns an
// error instead of crashing the process.
#pragma once

#include <bpftime/common/result.hpp>
#include <bpftime/vm/vm.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace bpftime::handlers {

// The helpers of this process: the standard set, then those registered.
// find_helper's pointer stays valid for the life of the process.
std::vector<vm::helper_proto> available_helpers();
const vm::helper_proto *find_helper(uint32_t id) noexcept;
// The prototype calls of helper id are checked against: find_helper's, or
// vm::tail_call_proto for bpf_tail_call; nullopt when nobody provides it.
std::optional<vm::helper_proto> helper_proto_of(uint32_t id) noexcept;

// Adds a helper with its prototype to this process (before instantiating
// programs that call it); the name is copied. EINVAL naming the helper for
// a null function or a prototype without kinds (ret RET_UNSPEC), EEXIST
// when the id is taken.
status register_helper(const vm::helper_proto &proto);

// The argument registers (bit n for rn) through which helper `id` may write
// memory or hand it on (to a callback, to the program a tail call continues
// with): vm::written_args of its prototype (bit 1 for probe_read's
// destination, none for map_lookup_elem or get_current_pid_tgid), all of
// r1-r5 for an id without one. For vm::may_write_context; called by the
// agent when it binds a program to a probe.
uint16_t helper_written_args(uint32_t id) noexcept;

// Where bpf_trace_printk output goes: one call per line, from the thread
// running the program. Set before programs run; not synchronised with them.
using trace_sink = void (*)(const char *line, size_t len, void *user);
void set_trace_printk_sink(trace_sink sink, void *user) noexcept;
// From BPFTIME_TRACE_PRINTK_SINK: "stderr" (default), "stdout", "off", or a
// file path that lines are appended to. EINVAL/errno of open() on failure.
status trace_printk_sink_from_env();

// The formatting engine of bpf_snprintf and bpf_trace_printk (the kernel's
// bpf_bprintf_prepare): %d %i %u %x %X %o %c %s %p %px %pK %%, with flags,
// width, precision and the l/ll/h/hh length modifiers. args are the
// program's u64 values; %s arguments are read with probe_read_str. Writes at
// most out_len bytes including the NUL; returns the length the whole string
// would have (without NUL), or a negative errno (-EINVAL for a bad format,
// -E2BIG for more specifiers than args).
int64_t bpf_format(char *out, size_t out_len, const char *fmt, size_t fmt_len,
		   const uint64_t *args, size_t nargs) noexcept;

// Reads len bytes at addr of this process into dst without faulting:
// -EFAULT (and dst zeroed) when any of it is unmapped.
int64_t safe_read(void *dst, uint64_t addr, size_t len) noexcept;

} // namespace bpftime::handlers
