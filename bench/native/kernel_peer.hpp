// kernel_peer.hpp: the same bench object, run by the Linux kernel's own JIT.
//
// The object is loaded with libbpf as a BPF_PROG_TYPE_SOCKET_FILTER program
// (its "socket" section), its .bss/.data maps are given the bytes of the
// driver's data_image (so the kernel computes on the same input), and it is
// timed with BPF_PROG_TEST_RUN: `repeat` runs in the kernel, which reports
// the average ns per run in `duration`.
//
// Every failure is a reason to skip the kernel column, not an error of the
// benchmark: bpf() refused (EPERM without CAP_BPF, a seccomp filter, a kernel
// without BPF_SYSCALL), the verifier rejecting the program (the reason then
// quotes the end of its log), or BPF_PROG_TEST_RUN refused for this type.
#pragma once

#include "bench_object.hpp"

#include <bpftime/common/result.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

struct bpf_object;

namespace bench {

class kernel_peer {
    public:
	// Whether this driver was built with libbpf at all.
	static bool available() noexcept;
	// Loads obj.path into the kernel and copies img's writable sections into
	// its global-data maps. EINVAL etc. with a message fit to print as the
	// reason for skipping.
	[[nodiscard]] static bpftime::result<std::unique_ptr<kernel_peer>>
	load(const bench_object &obj, const data_image &img);
	~kernel_peer();
	kernel_peer(const kernel_peer &) = delete;
	kernel_peer &operator=(const kernel_peer &) = delete;

	struct run_result {
		uint32_t retval = 0;     // r0 of the last run (u32, the kernel's field)
		uint32_t duration = 0;   // the kernel's average ns per run, truncated
		double wall_ns = 0;      // syscall wall time / repeat, for comparison
	};
	// BPF_PROG_TEST_RUN with `repeat` runs on a 64-byte packet.
	[[nodiscard]] bpftime::result<run_result> run(uint32_t repeat) const;

	// The kernel's JIT output and the verifier's instruction count, from
	// BPF_OBJ_GET_INFO_BY_FD (empty if the kernel does not give them).
	std::vector<uint8_t> jited_code() const;
	uint32_t xlated_insns() const;

    private:
	kernel_peer() = default;
	bpf_object *obj_ = nullptr;
	int prog_fd_ = -1;
};

} // namespace bench
