// prog_tag.hpp: a program's tag as the kernel computes it
// (bpf_prog_calc_tag() in kernel/bpf/core.c): the first 8 bytes of the digest
// of its instructions with the immediates of map-fd and map-value lddw
// zeroed, since those are descriptors, unstable from one load to the next.
// bpftool prints it and tools compare it across loads. The digest is
// SHA-256, as the kernels of today compute it (6.18, which the tests
// compare with); older kernels used SHA-1, so their tags differ.
#pragma once

#include <bpftime/vm/insn.hpp>

#include <array>
#include <cstdint>
#include <span>

namespace bpftime::syscall_server {

std::array<uint8_t, 8> prog_tag(std::span<const vm::insn> insns);

} // namespace bpftime::syscall_server
