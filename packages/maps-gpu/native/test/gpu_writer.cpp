// gpu_writer.cpp: the GPU test's writer process. Opens the registry in the
// segment it is given, opens three GPU maps another process made (through
// their CUDA IPC handles), runs the test kernel on them
// (gpu_writer_kernels.cu) and exits. Prints one line:
//   ok threads=N wrong=W ring_failures=F     the kernel ran
//   skip: <why>                              no device here
//   error: <what>                            anything else (exit 1)
//
//   bpftime-maps-gpu-writer <segment> <array id> <per-thread id> <ringbuf id> <blocks> <threads per block>
#include <bpftime/handlers/registry.hpp>
#include <bpftime/maps_gpu/maps_gpu.hpp>
#include <bpftime/shm/segment.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>

extern "C" int bpftime_test_run_writer(bpftime_gpu_map arr, bpftime_gpu_map pta,
				       bpftime_gpu_map rb, unsigned blocks,
				       unsigned threads_per_block,
				       unsigned long long *wrong,
				       unsigned long long *failed, char *err,
				       size_t err_len);

namespace {

int fail(const std::string &what)
{
	printf("error: %s\n", what.c_str());
	return 1;
}

} // namespace

int main(int argc, char **argv)
{
	using namespace bpftime;
	if (argc != 7)
		return fail("usage: bpftime-maps-gpu-writer <segment> <array id> "
			    "<per-thread id> <ringbuf id> <blocks> <threads>");
	maps_gpu::availability a = maps_gpu::probe();
	if (a.code) {
		printf("skip: %s\n", a.detail.c_str());
		return 0;
	}
	if (auto r = maps_gpu::register_all(); !r)
		return fail(r.error().message);
	auto seg = shm::segment::open(argv[1]);
	if (!seg)
		return fail(seg.error().message);
	auto reg = handlers::registry::open(std::move(*seg));
	if (!reg)
		return fail(reg.error().message);
	bpftime_gpu_map dev[3];
	for (int i = 0; i < 3; i++) {
		auto m = (*reg)->map(uint32_t(strtoul(argv[2 + i], nullptr, 10)));
		if (!m)
			return fail(m.error().message);
		if (maps_gpu::device_map(**m, &dev[i]) != 0)
			return fail((*m)->describe() + " is not a GPU map");
	}
	unsigned blocks = unsigned(strtoul(argv[5], nullptr, 10));
	unsigned per_block = unsigned(strtoul(argv[6], nullptr, 10));
	unsigned long long wrong = 0, failed = 0;
	char err[256] = "";
	if (bpftime_test_run_writer(dev[0], dev[1], dev[2], blocks, per_block,
				    &wrong, &failed, err, sizeof(err)) != 0)
		return fail(err);
	printf("ok threads=%u wrong=%llu ring_failures=%llu\n",
	       blocks * per_block, wrong, failed);
	return 0;
}
