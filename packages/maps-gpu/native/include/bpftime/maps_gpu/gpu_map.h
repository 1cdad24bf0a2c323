/* gpu_map.h: what a CUDA kernel needs to reach one GPU map of
 * @bpftime/maps-gpu, and the numbers both sides agree on. Plain C, so that
 * the host core (C++, g++) and device code (nvcc) read the same layout; the
 * device functions are in device.cuh.
 *
 * A host process fills a struct bpftime_gpu_map from the registry
 * (bpftime::maps_gpu::device_map()) and passes it to its kernels by value or
 * in constant memory; `data` is a device address valid in that process's
 * CUDA context (the primary context of the map's device).
 */
#ifndef BPFTIME_MAPS_GPU_GPU_MAP_H
#define BPFTIME_MAPS_GPU_GPU_MAP_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The map types, numbered as bpftime names them (its BPF_MAP_TYPE_* in the
 * 1500 range, clear of the kernel's and of the kernel-backed 1001/1002). */
#define BPFTIME_MAP_TYPE_PERGPUTD_ARRAY 1502 /* a value slot per GPU thread */
#define BPFTIME_MAP_TYPE_GPU_ARRAY 1503      /* one copy, in device memory */
#define BPFTIME_MAP_TYPE_GPU_RINGBUF 1527    /* device producers, host consumer */

/* Device layout of a GPU ring buffer: the kernel's mmap layout of a
 * BPF_MAP_TYPE_RINGBUF without the second mapping of the data. */
#define BPFTIME_GPU_RB_CONSUMER_OFF 0       /* u64 consumer_pos */
#define BPFTIME_GPU_RB_PRODUCER_OFF 4096    /* u64 producer_pos */
#define BPFTIME_GPU_RB_DROPPED_OFF 4104     /* u64 records refused (full) */
#define BPFTIME_GPU_RB_DATA_OFF 8192        /* max_entries bytes of records */

/* The record header of the kernel's ring buffer (include/uapi/linux/bpf.h). */
#define BPFTIME_GPU_RB_BUSY_BIT (1u << 31)
#define BPFTIME_GPU_RB_DISCARD_BIT (1u << 30)
#define BPFTIME_GPU_RB_HDR_SZ 8
/* The header's second word (the kernel's pg_off, which no consumer reads)
 * holds the producer's thread index with this bit set, so that a written
 * header is never all zero: the host consumer zeroes what it consumed and
 * reads a zero header as "reserved, not yet written". */
#define BPFTIME_GPU_RB_WRITTEN_BIT (1u << 31)

struct bpftime_gpu_map {
	uint64_t data;        /* device address of the map's memory */
	uint32_t map_type;    /* BPFTIME_MAP_TYPE_* */
	uint32_t key_size;
	uint32_t value_size;
	uint32_t max_entries; /* ring buffers: the data size, a power of two */
	uint32_t stride;      /* bytes between values: round_up(value_size, 8) */
	uint32_t threads;     /* per-thread arrays: GPU threads with a slot */
};

#ifdef __cplusplus
}
#endif

#endif
