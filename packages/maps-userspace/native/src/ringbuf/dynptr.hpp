// ringbuf/dynptr.hpp: the kernel's struct bpf_dynptr_kern, which programs see
// as the opaque 16-byte struct bpf_dynptr: the ring buffer dynptr helpers
// (bpf_ringbuf_reserve_dynptr ...) make them, bpf_user_ringbuf_drain hands
// them to its callback, bpf_dynptr_read/_write/_data use them.
#pragma once

#include <cstdint>

namespace bpftime::maps_userspace::ringbuf {

struct dynptr {
	uint8_t *data;
	uint32_t size; // low 24 bits; the type and read-only bits above
	uint32_t offset;
};
static_assert(sizeof(dynptr) == 16);

// include/linux/bpf.h: DYNPTR_MAX_SIZE is the size mask; the type sits at
// bit 28 (DYNPTR_TYPE_SHIFT), read-only at bit 31.
inline constexpr uint32_t DYNPTR_SIZE_MASK = 0xffffff;
inline constexpr uint32_t DYNPTR_TYPE_LOCAL = 1u << 28;   // BPF_DYNPTR_TYPE_LOCAL
inline constexpr uint32_t DYNPTR_TYPE_RINGBUF = 2u << 28; // BPF_DYNPTR_TYPE_RINGBUF
inline constexpr uint32_t DYNPTR_RDONLY_BIT = 1u << 31;

// bpf_dynptr_set_null.
inline void dynptr_set_null(dynptr *d) noexcept
{
	d->data = nullptr;
	d->size = 0;
	d->offset = 0;
}

} // namespace bpftime::maps_userspace::ringbuf
