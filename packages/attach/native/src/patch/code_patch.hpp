// code_patch.hpp: writing into the code of a running process without any
// thread executing a half-written instruction, and the SIGTRAP handler of
// breakpoint probes.
//
// An inline jump is installed the way the kernel's text_poke_bp() replaces
// an instruction on live CPUs, plus one step for the instructions after the
// first (the jump covers several):
//
//   1. int3 on the first byte; serialise every CPU (membarrier SYNC_CORE).
//      From here a thread reaching the address traps and our handler sends
//      it to the trampoline.
//   2. Signal every other thread; each one's handler looks at where it was
//      interrupted, and a thread that is between the first and last byte
//      of the region (preempted after the first instruction, say) is moved
//      to the same instruction in the trampoline's relocated copy. When a
//      thread does not answer (it blocks the signal), the jump is not
//      installed and the probe stays a breakpoint.
//   3. The jump's last four bytes, serialise, its first byte, serialise.
//
// Removing a jump is the same without step 2: no thread can be inside a
// single jmp instruction.
//
// Thread safety: callers hold the attach lock. The signal handlers are
// async-signal-safe and lock-free.
#pragma once

#include <bpftime/common/result.hpp>

#include <cstdint>
#include <utility>
#include <vector>

namespace bpftime::attach::detail {

// Makes [addr, addr+len) writable (keeping execute) for its lifetime and
// restores the original protection after. EACCES/EPERM from mprotect.
class code_writer {
    public:
	static result<code_writer> open(uint64_t addr, size_t len);
	code_writer(code_writer &&o) noexcept;
	code_writer &operator=(code_writer &&) = delete;
	~code_writer();
	void write(uint64_t addr, const uint8_t *bytes, size_t n) noexcept;

    private:
	code_writer() = default;
	struct range {
		uint64_t start, end;
		int prot;
	};
	std::vector<range> ranges_;
};

// Every CPU running this process executes a serialising instruction before
// it returns (MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE; a signal round
// trip to every thread where the kernel lacks it).
void sync_cores() noexcept;

// Installs the SIGTRAP handler (once; later calls check it is still ours).
// EBUSY when another handler replaced it.
status ensure_sigtrap_handler();

// Where a thread that traps on the int3 at `address` goes: the trampoline
// while the probe is installed; the address itself (the original byte is
// back) after removal. Table of 4096 sites; ENOSPC when full.
status breakpoint_publish(uint64_t address, uint64_t target);
void breakpoint_retire(uint64_t address) noexcept;

// Step 2 above: moves every other thread out of (lo, hi) into the
// relocated copy at `reloc` (boundaries: original offset -> copy offset).
// false when some thread did not answer within the timeout.
bool move_threads_out(uint64_t lo, uint64_t hi, uint64_t reloc,
		      const std::vector<std::pair<uint32_t, uint32_t>> &b);

// The tid of a thread of this process that blocks SIGTRAP (a breakpoint
// hit on it would kill the process), or 0.
int thread_blocking_sigtrap();

} // namespace bpftime::attach::detail
