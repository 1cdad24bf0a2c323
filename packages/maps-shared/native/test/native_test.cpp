// native_test.cpp: what the Node tests of @bpftime/maps-shared cannot see.
// Run by test/native.test.ts; prints one "ok"/"not ok" line per case and a
// closing "N passed, N failed" line, exits non-zero on any failure. Where
// bpf() is refused it prints "skip: <why>" and "0 passed, 0 failed".
//
//   - lookups and updates through the ops (what a program's helpers call)
//     allocate nothing once the thread has made its first lookup (operator
//     new is counted), on the bpf(2) path and on the mmap path;
//   - the lookup buffers: the last BUFFER_SLOTS lookups of a thread keep
//     their values, and threads looking up at once never see another
//     thread's value.
#include <bpftime/handlers/bpf_defs.hpp>
#include <bpftime/handlers/registry.hpp>
#include <bpftime/maps_shared/maps_shared.hpp>

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <thread>
#include <vector>

namespace {
std::atomic<uint64_t> g_allocations{ 0 };
}

void *operator new(size_t n)
{
	g_allocations.fetch_add(1, std::memory_order_relaxed);
	if (void *p = malloc(n ? n : 1))
		return p;
	throw std::bad_alloc();
}
void *operator new[](size_t n)
{
	return operator new(n);
}
void operator delete(void *p) noexcept
{
	free(p);
}
void operator delete[](void *p) noexcept
{
	free(p);
}
void operator delete(void *p, size_t) noexcept
{
	free(p);
}
void operator delete[](void *p, size_t) noexcept
{
	free(p);
}

namespace {

using namespace bpftime;
using namespace bpftime::handlers;

int passed = 0;
int failed = 0;

#define CHECK(cond)                                                            \
	do {                                                                   \
		if (!(cond)) {                                                 \
			printf("# %s:%d: %s\n", __FILE__, __LINE__, #cond);    \
			ok = false;                                            \
		}                                                              \
	} while (0)

void report(const char *name, bool ok)
{
	printf("%s - %s\n", ok ? "ok" : "not ok", name);
	(ok ? passed : failed)++;
}

template <class T> T need(result<T> r, const char *what)
{
	if (!r) {
		printf("# %s: %s\n", what, r.error().message.c_str());
		exit(2);
	}
	return std::move(*r);
}

struct fixture {
	std::string name;
	std::unique_ptr<registry> reg;
	explicit fixture(const char *tag)
		: name("bpftime_maps_shared_native_" + std::string(tag) + "_" +
		       std::to_string(getpid()))
	{
		(void)shm::segment::remove(name);
		shm::segment_options o;
		o.name = name;
		o.size = 8 << 20;
		reg = need(registry::create(need(shm::segment::create(o),
						  "segment")),
			   "registry");
	}
	~fixture()
	{
		// Releasing the maps runs their destroy, which removes the pins.
		for (uint32_t id : ids)
			(void)reg->release(id);
		reg.reset();
		(void)shm::segment::remove(name);
	}
	std::shared_ptr<map_instance> map(uint32_t type, uint32_t max,
					  uint32_t flags)
	{
		map_spec s;
		s.type = type;
		s.name = "m";
		s.key_size = 4;
		s.value_size = 8;
		s.max_entries = max;
		s.flags = flags;
		auto h = need(reg->create_map(s), "create_map");
		ids.push_back(h.id);
		return need(reg->map(h.id), "map");
	}
	std::vector<uint32_t> ids;
};

void test_no_allocation(const char *name, uint32_t type, uint32_t flags)
{
	bool ok = true;
	fixture f("alloc");
	auto m = f.map(type, 64, flags);
	for (uint32_t k = 0; k < 64; k++) {
		uint64_t v = k * 10;
		CHECK(m->ops->update(m->state, &k, &v, BPF_ANY) == 0);
	}
	uint32_t k0 = 0;
	CHECK(m->ops->lookup(m->state, &k0) != nullptr); // the thread's first
	uint64_t before = g_allocations.load();
	for (uint32_t i = 0; i < 2000; i++) {
		uint32_t k = i % 64;
		auto *p = static_cast<uint64_t *>(m->ops->lookup(m->state, &k));
		CHECK(p && *p == k * 10);
		uint64_t v = k * 10;
		CHECK(m->ops->update(m->state, &k, &v, BPF_EXIST) == 0);
		uint32_t miss = 5000;
		CHECK(m->ops->lookup(m->state, &miss) == nullptr);
	}
	CHECK(g_allocations.load() == before);
	report(name, ok);
}

void test_buffers()
{
	bool ok = true;
	fixture f("buffers");
	auto m = f.map(maps_shared::KERNEL_USER_HASH, 64, 0);
	for (uint32_t k = 0; k < 64; k++) {
		uint64_t v = k * 10;
		CHECK(m->ops->update(m->state, &k, &v, BPF_ANY) == 0);
	}
	// The last 4 lookups of a thread keep their values.
	uint64_t *p[4];
	for (uint32_t k = 0; k < 4; k++)
		p[k] = static_cast<uint64_t *>(m->ops->lookup(m->state, &k));
	for (uint32_t k = 0; k < 4; k++)
		CHECK(p[k] && *p[k] == k * 10);
	// Threads at once: each sees only its own keys' values.
	std::atomic<int> wrong{ 0 };
	std::vector<std::thread> ts;
	for (uint32_t t = 0; t < 8; t++)
		ts.emplace_back([&, t] {
			for (uint32_t i = 0; i < 3000; i++) {
				uint32_t k = (t * 8 + i) % 64;
				auto *v = static_cast<uint64_t *>(
					m->ops->lookup(m->state, &k));
				if (!v || *v != k * 10)
					wrong++;
			}
		});
	for (auto &t : ts)
		t.join();
	CHECK(wrong.load() == 0);
	report("lookup buffers: 4 per thread kept, threads apart", ok);
}

} // namespace

int main()
{
	if (auto r = maps_shared::register_all(); !r) {
		printf("# register_all: %s\n", r.error().message.c_str());
		return 2;
	}
	maps_shared::kernel_map_desc d{};
	char err[256];
	int r = maps_shared::kernel_map_describe(0, nullptr, &d, err,
						 sizeof(err));
	if (r != -ENOENT) {
		printf("skip: bpf() is refused here: %s\n", err);
		printf("0 passed, 0 failed\n");
		return 0;
	}
	test_no_allocation("no allocation: kernel hash, bpf(2) path",
			   maps_shared::KERNEL_USER_HASH, 0);
	test_no_allocation("no allocation: kernel array, bpf(2) path",
			   maps_shared::KERNEL_USER_ARRAY, 0);
	test_no_allocation("no allocation: kernel array, mmap path",
			   maps_shared::KERNEL_USER_ARRAY, BPF_F_MMAPABLE);
	test_buffers();
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
