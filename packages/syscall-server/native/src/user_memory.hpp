// user_memory.hpp: copy_from_user / copy_to_user for a library that lives in
// the caller's own process.
//
// The kernel answers a bad pointer in bpf() with EFAULT; in process, touching
// it would crash the tool. Each thread keeps the last few memory areas it
// found in /proc/self/maps (start, end, permissions); a pointer inside one of
// them is used directly, so the hot map commands cost no system call. The
// cache is dropped whenever the memory map changes through munmap,
// mprotect, mremap or brk calls that go through the preloaded library.
// What it cannot see: memory libc unmaps internally (a free() of a large
// block): a pointer into such freed memory, a use after free in the tool, may
// still be trusted until the next change is seen.
#pragma once

#include <cstddef>
#include <cstdint>

namespace bpftime::syscall_server {

// Whether [p, p + n) is mapped readable (writable) in this process; n == 0
// is always fine (the kernel copies nothing).
bool user_readable(uint64_t p, size_t n) noexcept;
bool user_writable(uint64_t p, size_t n) noexcept;
// 0 or -EFAULT.
int copy_from_user(void *dst, uint64_t src, size_t n) noexcept;
int copy_to_user(uint64_t dst, const void *src, size_t n) noexcept;
// strncpy_from_user: the string at src, at most max bytes with its NUL.
// Its length, -EFAULT, or -E2BIG when no NUL within max.
long string_from_user(char *dst, uint64_t src, size_t max) noexcept;
void user_memory_changed() noexcept;

} // namespace bpftime::syscall_server
