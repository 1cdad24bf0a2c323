// native_test.cpp: what the Node tests of @bpftime/maps-gpu cannot see, in a
// process without Node (as the agent and the syscall-server are). Run by
// test/native.test.ts; prints one "ok"/"not ok" line per case and a closing
// "N passed, N failed" line, exits non-zero on any failure.
//
//   - the host's reading of GPU ring records (ring_format.hpp) on byte
//     buffers laid out as device producers write them, every value written
//     from the kernel's record format;
//   - without a driver or device: probe() says why, every GPU map type's
//     creation through the registry is ENODEV naming it, and the registry
//     keeps nothing of it (skipped, saying so, where a device is present).
#include <bpftime/handlers/registry.hpp>
#include <bpftime/maps_gpu/maps_gpu.hpp>
#include <bpftime/shm/segment.hpp>

#include "ring_format.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace {

int passed = 0, failed = 0;

void check(bool ok, const std::string &name)
{
	printf("%s - %s\n", ok ? "ok" : "not ok", name.c_str());
	(ok ? passed : failed)++;
}

// Appends a record as a producer leaves it: header (len word, then the
// written bit and a thread index), the sample, padding to 8.
void put(std::vector<uint8_t> &ring, uint32_t len_word, uint32_t size,
	 uint8_t fill, uint32_t thread = 5)
{
	uint32_t who = BPFTIME_GPU_RB_WRITTEN_BIT | thread;
	size_t at = ring.size();
	ring.resize(at + ((size + 8 + 7) & ~size_t(7)), 0);
	memcpy(&ring[at], &len_word, 4);
	memcpy(&ring[at + 4], &who, 4);
	memset(&ring[at + 8], fill, size);
}

void ring_format_cases()
{
	using namespace bpftime::maps_gpu::ring;
	check(record_len(0) == 8 && record_len(1) == 16 && record_len(8) == 16 &&
		      record_len(9) == 24 &&
		      record_len(16 | BPFTIME_GPU_RB_BUSY_BIT) == 24 &&
		      record_len(16 | BPFTIME_GPU_RB_DISCARD_BIT) == 24,
	      "record length: header plus sample, rounded up to 8; flag bits ignored");

	std::vector<uint8_t> r;
	check(committed_prefix(r.data(), 0) == 0, "an empty range holds no record");
	put(r, 16, 16, 0xaa);
	put(r, 3 | BPFTIME_GPU_RB_DISCARD_BIT, 3, 0xbb);
	put(r, 0, 0, 0);
	check(committed_prefix(r.data(), r.size()) == 24 + 16 + 8,
	      "committed, discarded and empty records all count");
	size_t before_busy = r.size();
	put(r, 8 | BPFTIME_GPU_RB_BUSY_BIT, 8, 0xcc);
	put(r, 8, 8, 0xdd);
	check(committed_prefix(r.data(), r.size()) == before_busy,
	      "stops at a busy record, even with committed ones after it");

	std::vector<uint8_t> z;
	put(z, 4, 4, 0x11);
	size_t before_zero = z.size();
	z.resize(z.size() + 16, 0); // reserved, header not yet written
	put(z, 4, 4, 0x22);
	check(committed_prefix(z.data(), z.size()) == before_zero,
	      "stops at an all-zero header (reserved, not yet written)");

	std::vector<uint8_t> t;
	put(t, 40, 40, 0x33);
	check(committed_prefix(t.data(), 30) == 0,
	      "a record that runs past the copied range is not taken");

	spans a = split(4096 + 100, 50, 4096);
	spans b = split(4096 * 3 + 4000, 200, 4096);
	spans c = split(4096 - 8, 8, 4096);
	check(a.first_off == 100 && a.first_len == 50 && a.second_len == 0 &&
		      b.first_off == 4000 && b.first_len == 96 &&
		      b.second_len == 104 && c.first_off == 4088 &&
		      c.first_len == 8 && c.second_len == 0,
	      "a range of the ring splits where it wraps, positions taken modulo the size");
}

void no_device_cases()
{
	using namespace bpftime;
	maps_gpu::availability a = maps_gpu::probe();
	if (a.code == 0) {
		printf("skip: a device is present (%s): the no-device cases do not apply\n",
		       a.detail.c_str());
		return;
	}
	check(a.code == ENODEV && !a.detail.empty(),
	      "probe() is ENODEV with a reason: " + a.detail);
	check(bool(maps_gpu::register_all()), "the GPU map types register");
	std::string name = "bpftime_gpu_native_" + std::to_string(getpid());
	shm::segment_options so;
	so.name = name;
	so.size = 4ull << 20;
	auto seg = shm::segment::create(so);
	if (!seg) {
		check(false, "segment: " + seg.error().message);
		return;
	}
	auto reg = handlers::registry::create(std::move(*seg));
	if (!reg) {
		check(false, "registry: " + reg.error().message);
		(void)shm::segment::remove(name);
		return;
	}
	struct spec {
		uint32_t type, key, value, entries;
		uint64_t extra;
	} specs[] = {
		{ maps_gpu::GPU_ARRAY, 4, 8, 16, 0 },
		{ maps_gpu::PERGPUTD_ARRAY, 4, 8, 2, 32 },
		{ maps_gpu::GPU_RINGBUF, 0, 0, 1 << 16, 0 },
	};
	for (const spec &s : specs) {
		handlers::map_spec m;
		m.type = s.type;
		m.key_size = s.key;
		m.value_size = s.value;
		m.max_entries = s.entries;
		m.map_extra = s.extra;
		m.name = "gpu";
		auto h = (*reg)->create_map(m);
		bool ok = !h && h.error().code == ENODEV &&
			  h.error().message.find("'gpu'") != std::string::npos &&
			  (*reg)->size() == 0 && (*reg)->list().empty();
		check(ok, "creating map type " + std::to_string(s.type) +
				  " is ENODEV and leaves nothing: " +
				  (h ? std::string("created") : h.error().message));
	}
	reg->reset();
	(void)shm::segment::remove(name);
}

} // namespace

int main()
{
	ring_format_cases();
	no_device_cases();
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
