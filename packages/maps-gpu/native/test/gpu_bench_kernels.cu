// gpu_bench_kernels.cu: the benchmark's kernels (gpu_bench.cpp) and its
// baseline, a plain cudaMemcpy of the same bytes.
#include <bpftime/maps_gpu/device.cuh>

#include <cuda_runtime.h>

#include <chrono>

namespace {

__device__ unsigned long long ring_failures;

__global__ void fill(bpftime_gpu_map arr)
{
	uint64_t t = bpftime_gpu_thread_index();
	uint32_t k = uint32_t(t);
	auto *v = static_cast<uint64_t *>(bpftime_gpu_map_lookup(&arr, &k));
	if (v)
		*v = t * 7;
}

__global__ void produce(bpftime_gpu_map rb, uint32_t per_thread)
{
	uint64_t t = bpftime_gpu_thread_index();
	for (uint32_t i = 0; i < per_thread; i++) {
		uint64_t rec[2] = { t, i };
		if (bpftime_gpu_ringbuf_output(&rb, rec, sizeof(rec), 0) != 0)
			atomicAdd(&ring_failures, 1ull);
	}
}

double now_ns()
{
	return double(std::chrono::duration_cast<std::chrono::nanoseconds>(
			      std::chrono::steady_clock::now().time_since_epoch())
			      .count());
}

} // namespace

extern "C" int bpftime_bench_fill(bpftime_gpu_map arr)
{
	unsigned threads = 256, blocks = (arr.max_entries + threads - 1) / threads;
	fill<<<blocks, threads>>>(arr);
	return cudaDeviceSynchronize() == cudaSuccess ? 0 : -1;
}

// Fills the ring with blocks x threads x per_thread 16-byte records; returns
// the kernel's time in ns (negative on error), *failed the records refused.
extern "C" double bpftime_bench_produce(bpftime_gpu_map rb, unsigned blocks,
					unsigned threads, unsigned per_thread,
					unsigned long long *failed)
{
	unsigned long long zero = 0;
	if (cudaMemcpyToSymbol(ring_failures, &zero, sizeof(zero)) != cudaSuccess)
		return -1;
	double t0 = now_ns();
	produce<<<blocks, threads>>>(rb, per_thread);
	if (cudaDeviceSynchronize() != cudaSuccess)
		return -1;
	double t1 = now_ns();
	if (cudaMemcpyFromSymbol(failed, ring_failures, sizeof(*failed)) !=
	    cudaSuccess)
		return -1;
	return t1 - t0;
}

// The baseline: one cudaMemcpy of `bytes` from device memory to the
// (pageable) host buffer, as a host reader without bpftime would do it; ns.
extern "C" double bpftime_bench_memcpy(uint64_t src, void *dst, uint64_t bytes)
{
	double t0 = now_ns();
	if (cudaMemcpy(dst, reinterpret_cast<void *>(src), bytes,
		       cudaMemcpyDeviceToHost) != cudaSuccess)
		return -1;
	return now_ns() - t0;
}
