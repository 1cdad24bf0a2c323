// gpu_writer_kernels.cu: the GPU test's kernel. Each thread t of the grid
//   - adds 1 to GPU array index t % max_entries (atomicAdd through lookup),
//   - writes t * 3 + 1 to its slot of per-thread array index 0 (update) and
//     t + 100 to its slot of index 1 (through lookup),
//   - pushes one ring buffer record { u32 t, u32 0xb0f7, u64 t * t },
// and checks the error answers of the device API (each wrong answer counts).
#include <bpftime/maps_gpu/device.cuh>

#include <cuda_runtime.h>

#include <cstdio>

namespace {

__device__ unsigned long long wrong_answers;
__device__ unsigned long long ring_failures;

struct record {
	uint32_t thread;
	uint32_t magic;
	uint64_t square;
};

__global__ void writer(bpftime_gpu_map arr, bpftime_gpu_map pta,
		       bpftime_gpu_map rb)
{
	uint64_t t = bpftime_gpu_thread_index();
	uint32_t k = uint32_t(t % arr.max_entries);
	auto *v = static_cast<unsigned long long *>(
		bpftime_gpu_map_lookup(&arr, &k));
	if (v)
		atomicAdd(v, 1ull);
	else
		atomicAdd(&wrong_answers, 1ull);

	uint32_t k0 = 0, k1 = 1, past = pta.max_entries;
	uint64_t mine = t * 3 + 1;
	if (bpftime_gpu_map_update(&pta, &k0, &mine, 0) != 0)
		atomicAdd(&wrong_answers, 1ull);
	auto *slot = static_cast<uint64_t *>(bpftime_gpu_map_lookup(&pta, &k1));
	if (slot)
		*slot = t + 100;
	else
		atomicAdd(&wrong_answers, 1ull);

	// The kernel's answers: BPF_NOEXIST on an array EEXIST, an index past
	// the end E2BIG and no value, unknown flags EINVAL, a ring has no
	// values and an array takes no records.
	if (bpftime_gpu_map_update(&pta, &k0, &mine, 1) != -17)
		atomicAdd(&wrong_answers, 1ull);
	if (bpftime_gpu_map_update(&pta, &past, &mine, 0) != -7)
		atomicAdd(&wrong_answers, 1ull);
	uint32_t arr_past = arr.max_entries;
	if (bpftime_gpu_map_lookup(&arr, &arr_past) != nullptr)
		atomicAdd(&wrong_answers, 1ull);
	if (bpftime_gpu_map_update(&arr, &k0, &mine, 4 /* BPF_F_LOCK */) != -22)
		atomicAdd(&wrong_answers, 1ull);
	if (bpftime_gpu_map_lookup(&rb, &k0) != nullptr)
		atomicAdd(&wrong_answers, 1ull);
	if (bpftime_gpu_ringbuf_output(&arr, &mine, 8, 0) != -22)
		atomicAdd(&wrong_answers, 1ull);
	if (bpftime_gpu_ringbuf_output(&rb, &mine, 8, 4) != -22)
		atomicAdd(&wrong_answers, 1ull);

	record r{ uint32_t(t), 0xb0f7u, t * t };
	if (bpftime_gpu_ringbuf_output(&rb, &r, sizeof(r), 0) != 0)
		atomicAdd(&ring_failures, 1ull);
}

} // namespace

// Runs the kernel on blocks x threads_per_block threads and waits: 0, or the
// CUDA error's name in err. wrong and failed get the counters.
extern "C" int bpftime_test_run_writer(bpftime_gpu_map arr, bpftime_gpu_map pta,
				       bpftime_gpu_map rb, unsigned blocks,
				       unsigned threads_per_block,
				       unsigned long long *wrong,
				       unsigned long long *failed, char *err,
				       size_t err_len)
{
	unsigned long long zero = 0;
	cudaError_t e = cudaMemcpyToSymbol(wrong_answers, &zero, sizeof(zero));
	if (e == cudaSuccess)
		e = cudaMemcpyToSymbol(ring_failures, &zero, sizeof(zero));
	if (e == cudaSuccess) {
		writer<<<blocks, threads_per_block>>>(arr, pta, rb);
		e = cudaGetLastError();
	}
	if (e == cudaSuccess)
		e = cudaDeviceSynchronize();
	if (e == cudaSuccess)
		e = cudaMemcpyFromSymbol(wrong, wrong_answers, sizeof(*wrong));
	if (e == cudaSuccess)
		e = cudaMemcpyFromSymbol(failed, ring_failures, sizeof(*failed));
	if (e != cudaSuccess) {
		snprintf(err, err_len, "%s: %s", cudaGetErrorName(e),
			 cudaGetErrorString(e));
		return -1;
	}
	return 0;
}
