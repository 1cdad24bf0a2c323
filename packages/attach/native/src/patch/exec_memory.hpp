// exec_memory.hpp: memory for trampolines, placed within rel32 reach
// (+-2 GiB) of the code that jumps to them and of every address their
// relocated instructions refer to.
//
// Each chunk is a memfd mapped twice: read-execute near the code, and
// read-write elsewhere for writing trampolines (an anonymous
// read-write-execute mapping where memfds are refused). Chunks are never
// unmapped or reused: a
// thread may still be running in (or be about to return into) any
// trampoline that was ever published, so freeing one would need a grace
// period that user space cannot observe cheaply. The cost is bounded by the
// number of attach/detach operations (about 1 KiB each).
//
// Thread safety: internally locked; control plane only.
#pragma once

#include <bpftime/common/result.hpp>

#include <cstddef>
#include <cstdint>

namespace bpftime::attach::detail {

struct exec_block {
	uint8_t *exec;	// where the code runs
	uint8_t *write; // where to write it (the same bytes)
};

// `size` bytes, 64-byte aligned, at an address a with lo <= a and
// a + size <= hi, preferably close to `near`. ENOMEM when no free address
// range in [lo, hi] can be mapped. A forked child never writes into its
// parent's chunks (they are shared memory).
result<exec_block> allocate_exec(size_t size, uint64_t lo, uint64_t hi,
				 uint64_t near);

// Bytes of trampoline memory mapped so far (for tests and diagnostics).
size_t exec_memory_mapped() noexcept;

} // namespace bpftime::attach::detail
