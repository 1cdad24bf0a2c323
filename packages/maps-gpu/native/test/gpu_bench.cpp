// gpu_bench.cpp: the GPU maps benchmark (bench/suites/maps-gpu.mjs runs it).
// In one process, on a registry of its own:
//   array    host read of a 1M-entry GPU array (8-byte values) through the
//            registry's batched lookup (one map_ops::lookup_batch), bytes/s
//   ringbuf  records/s from device producers to the host consumer
//            (map_ops::consume) of 1M 16-byte records the kernel wrote
// each against a plain cudaMemcpy of the same bytes, in the same run,
// alternating, `rounds` times; prints one JSON object. Without a device it
// prints {"skip": "<why>"} and exits 0.
#include <bpftime/handlers/registry.hpp>
#include <bpftime/maps_gpu/maps_gpu.hpp>
#include <bpftime/shm/segment.hpp>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

extern "C" int bpftime_bench_fill(bpftime_gpu_map arr);
extern "C" double bpftime_bench_produce(bpftime_gpu_map rb, unsigned blocks,
					unsigned threads, unsigned per_thread,
					unsigned long long *failed);
extern "C" double bpftime_bench_memcpy(uint64_t src, void *dst, uint64_t bytes);

namespace {

double now_ns()
{
	return double(std::chrono::duration_cast<std::chrono::nanoseconds>(
			      std::chrono::steady_clock::now().time_since_epoch())
			      .count());
}

double median(std::vector<double> v)
{
	std::sort(v.begin(), v.end());
	return v[v.size() / 2];
}

int fail(const std::string &what)
{
	printf("{\"error\": \"%s\"}\n", what.c_str());
	return 1;
}

} // namespace

int main(int argc, char **argv)
{
	using namespace bpftime;
	int rounds = argc > 1 ? atoi(argv[1]) : 11;
	maps_gpu::availability a = maps_gpu::probe();
	if (a.code) {
		printf("{\"skip\": \"%s\"}\n", a.detail.c_str());
		return 0;
	}
	if (auto r = maps_gpu::register_all(); !r)
		return fail(r.error().message);
	std::string name = "bpftime_bench_gpu_" + std::to_string(getpid());
	shm::segment_options so;
	so.name = name;
	so.size = 64ull << 20;
	auto seg = shm::segment::create(so);
	if (!seg)
		return fail(seg.error().message);
	struct remover {
		std::string n;
		~remover() { (void)shm::segment::remove(n); }
	} rm{ name };
	auto reg = handlers::registry::create(std::move(*seg));
	if (!reg)
		return fail(reg.error().message);

	constexpr uint32_t ENTRIES = 1u << 20;
	handlers::map_spec as{};
	as.type = maps_gpu::GPU_ARRAY;
	as.key_size = 4;
	as.value_size = 8;
	as.max_entries = ENTRIES;
	as.name = "bench_array";
	auto ah = (*reg)->create_map(as);
	if (!ah)
		return fail(ah.error().message);
	auto am = (*reg)->map(*ah);
	if (!am)
		return fail(am.error().message);
	bpftime_gpu_map adev;
	if (maps_gpu::device_map(**am, &adev) != 0 || bpftime_bench_fill(adev))
		return fail("filling the array");
	std::vector<uint8_t> keys(size_t(ENTRIES) * 4), values(size_t(ENTRIES) * 8),
		plain(size_t(ENTRIES) * 8);
	std::vector<double> t_map, t_copy;
	for (int i = 0; i < rounds; i++) {
		double t0 = now_ns();
		auto n = (*am)->lookup_batch(nullptr, ENTRIES, keys.data(),
					     values.data());
		double t1 = now_ns();
		if (!n || *n != ENTRIES)
			return fail(n ? "short batch" : n.error().message);
		t_map.push_back(t1 - t0);
		double c = bpftime_bench_memcpy(adev.data, plain.data(),
						plain.size());
		if (c < 0)
			return fail("cudaMemcpy");
		t_copy.push_back(c);
	}
	for (uint32_t i = 0; i < ENTRIES; i += 4099) {
		uint64_t v;
		memcpy(&v, values.data() + size_t(i) * 8, 8);
		if (v != uint64_t(i) * 7)
			return fail("array value " + std::to_string(i) + " is " +
				    std::to_string(v));
	}

	// 1M records of 16 bytes: 24 MiB in the ring with their headers.
	constexpr unsigned BLOCKS = 256, THREADS = 256, PER_THREAD = 16;
	constexpr uint64_t RECORDS = uint64_t(BLOCKS) * THREADS * PER_THREAD;
	handlers::map_spec rs{};
	rs.type = maps_gpu::GPU_RINGBUF;
	rs.max_entries = 32u << 20;
	rs.name = "bench_ring";
	auto rh = (*reg)->create_map(rs);
	if (!rh)
		return fail(rh.error().message);
	auto rm2 = (*reg)->map(*rh);
	if (!rm2)
		return fail(rm2.error().message);
	bpftime_gpu_map rdev;
	if (maps_gpu::device_map(**rm2, &rdev) != 0)
		return fail("ring device map");
	std::vector<uint8_t> ring_plain(RECORDS * 24);
	std::vector<double> t_ring, t_ring_copy, t_produce;
	for (int i = 0; i < rounds; i++) {
		unsigned long long failed = 0;
		double p = bpftime_bench_produce(rdev, BLOCKS, THREADS,
						 PER_THREAD, &failed);
		if (p < 0 || failed)
			return fail("producing: " + std::to_string(failed) +
				    " records refused");
		t_produce.push_back(p);
		uint64_t got = 0;
		auto count = [](void *ctx, const void *, uint64_t size) -> int {
			*static_cast<uint64_t *>(ctx) += size == 16;
			return 0;
		};
		double t0 = now_ns();
		while (got < RECORDS) {
			auto n = (*rm2)->consume(count, &got);
			if (!n)
				return fail(n.error().message);
		}
		t_ring.push_back(now_ns() - t0);
		if (got != RECORDS)
			return fail("consumed " + std::to_string(got));
		double c = bpftime_bench_memcpy(rdev.data + BPFTIME_GPU_RB_DATA_OFF,
						ring_plain.data(),
						ring_plain.size());
		if (c < 0)
			return fail("cudaMemcpy");
		t_ring_copy.push_back(c);
	}
	double bytes = double(ENTRIES) * 8, rbytes = double(RECORDS) * 24;
	printf("{\"device\": \"%s\", \"rounds\": %d, "
	       "\"array_entries\": %u, \"array_map_ns\": %.0f, "
	       "\"array_memcpy_ns\": %.0f, \"array_map_bytes_per_s\": %.4g, "
	       "\"array_memcpy_bytes_per_s\": %.4g, "
	       "\"ring_records\": %llu, \"ring_consume_ns\": %.0f, "
	       "\"ring_memcpy_ns\": %.0f, \"ring_records_per_s\": %.4g, "
	       "\"ring_memcpy_bytes_per_s\": %.4g, "
	       "\"ring_produce_records_per_s\": %.4g}\n",
	       a.detail.c_str(), rounds, ENTRIES, median(t_map), median(t_copy),
	       bytes / median(t_map) * 1e9, bytes / median(t_copy) * 1e9,
	       (unsigned long long)RECORDS, median(t_ring),
	       median(t_ring_copy), double(RECORDS) / median(t_ring) * 1e9,
	       rbytes / median(t_ring_copy) * 1e9,
	       double(RECORDS) / median(t_produce) * 1e9);
	return 0;
}
