// run_bench_tool.cpp: what a program run costs around its map work, for
// bench/suites/percpu.mjs (a run owning a CPU slot, handlers' cpu_slot.hpp)
// and bench/suites/tailcall.mjs (bpf_tail_call through a PROG_ARRAY).
//
//   runs <array|percpu_array|percpu_hash> <threads> <runs per thread>
//       runs of a JIT program doing one bpf_map_lookup_elem and a
//       non-atomic `*v += 1` on key 0, from <threads> threads of this
//       process; prints one JSON line: ns per run (wall time of the
//       threads / runs each), the sum of the values against the runs, and
//       the runs that waited for a slot.
//   kernel <array|percpu_array|percpu_hash>
//       the same program in the kernel on a map of the type
//       (BPF_PROG_TEST_RUN, repeat): ns per run, the kernel's test-run loop
//       included; {"skip": why} where bpf() is refused.
//   tailcall <runs>
//       ns per run of a JIT program that bpf_tail_calls, through a
//       PROG_ARRAY, into one returning 42, and of that one run alone (the
//       difference is the tail call); the kernel's two, the same way
//       (BPF_PROG_TEST_RUN), as kernel_* fields ({"kernel_skip": why}).
#include <bpftime/handlers/program.hpp>
#include <bpftime/handlers/registry.hpp>
#include <bpftime/maps_userspace/maps_userspace.hpp>

#include <linux/bpf.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace handlers = bpftime::handlers;
namespace shm = bpftime::shm;
using bpftime::vm::insn;

namespace {

template <class T> T need(bpftime::result<T> r, const char *what)
{
	if (!r) {
		fprintf(stderr, "%s: %s\n", what, r.error().message.c_str());
		exit(2);
	}
	return std::move(*r);
}

uint32_t type_of(const std::string &t)
{
	if (t == "array")
		return BPF_MAP_TYPE_ARRAY;
	if (t == "percpu_array")
		return BPF_MAP_TYPE_PERCPU_ARRAY;
	if (t == "percpu_hash")
		return BPF_MAP_TYPE_PERCPU_HASH;
	fprintf(stderr, "unknown map type %s\n", t.c_str());
	exit(2);
}

double now_ns()
{
	timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return double(ts.tv_sec) * 1e9 + double(ts.tv_nsec);
}

// r2 = &(u32)0; r0 = lookup(map, r2); if (r0) *(u64 *)r0 += 1 (load, add,
// store); return 0. map_insn: the lddw of the map, two slots.
std::vector<insn> increment(insn lddw0, insn lddw1)
{
	return {
		insn{ 0x62, 10, 0, -4, 0 }, // *(u32 *)(r10 - 4) = 0
		lddw0,
		lddw1,
		insn{ 0xbf, 2, 10, 0, 0 }, // r2 = r10
		insn{ 0x07, 2, 0, 0, -4 }, // r2 += -4
		insn{ 0x85, 0, 0, 0, 1 },  // call bpf_map_lookup_elem
		insn{ 0x15, 0, 0, 3, 0 },  // if r0 == 0 goto +3
		insn{ 0x79, 1, 0, 0, 0 },  // r1 = *(u64 *)(r0 + 0)
		insn{ 0x07, 1, 0, 0, 1 },  // r1 += 1
		insn{ 0x7b, 0, 1, 0, 0 },  // *(u64 *)(r0 + 0) = r1
		insn{ 0xb7, 0, 0, 0, 0 },  // r0 = 0
		insn{ 0x95, 0, 0, 0, 0 },  // exit
	};
}

int runs(uint32_t type, int threads, uint64_t per_thread)
{
	if (auto st = bpftime::maps_userspace::register_all(); !st) {
		fprintf(stderr, "register: %s\n", st.error().message.c_str());
		return 2;
	}
	const std::string name = "bpftime_percpu_tool_" + std::to_string(getpid());
	(void)shm::segment::remove(name);
	shm::segment_options o;
	o.name = name;
	o.size = 16 << 20;
	auto reg = need(handlers::registry::create(need(shm::segment::create(o), "segment")),
			"registry");
	handlers::map_spec ms;
	ms.type = type;
	ms.name = "c";
	ms.key_size = 4;
	ms.value_size = 8;
	ms.max_entries = 1;
	auto h = need(reg->create_map(ms), "map");
	auto m = need(reg->map(h.id), "map instance");
	std::vector<uint8_t> zero(m->user_value_size);
	uint32_t k0 = 0;
	if (!m->update(&k0, zero.data(), BPF_ANY)) {
		fprintf(stderr, "update failed\n");
		return 2;
	}
	handlers::prog_spec ps;
	ps.type = BPF_PROG_TYPE_KPROBE;
	ps.name = "inc";
	ps.insns = increment(insn{ 0x18, 1, 1, 0, int32_t(h.id) }, insn{ 0, 0, 0, 0, 0 });
	auto p = need(reg->create_prog(ps), "prog");
	auto inst = need(reg->instantiate(p.id, handlers::instance_options{}), "instance");
	const auto before = handlers::cpu_slot_counters();
	std::vector<std::thread> ts;
	const double t0 = now_ns();
	for (int t = 0; t < threads; t++)
		ts.emplace_back([&] {
			uint64_t ctx[2] = {};
			for (uint64_t i = 0; i < per_thread; i++)
				(void)inst->run(ctx, sizeof ctx);
		});
	for (auto &t : ts)
		t.join();
	const double ns = (now_ns() - t0) / double(per_thread);
	const auto after = handlers::cpu_slot_counters();
	std::vector<uint64_t> all(m->user_value_size / 8);
	if (!m->lookup(&k0, all.data())) {
		fprintf(stderr, "lookup failed\n");
		return 2;
	}
	uint64_t sum = 0;
	for (uint64_t v : all)
		sum += v;
	printf("{\"ns_per_run\":%.2f,\"counted\":%llu,\"runs\":%llu,\"waits\":%llu,"
	       "\"unowned\":%llu}\n",
	       ns, (unsigned long long)sum,
	       (unsigned long long)(per_thread * uint64_t(threads)),
	       (unsigned long long)(after.waits - before.waits),
	       (unsigned long long)(after.unowned - before.unowned));
	inst.reset();
	m.reset();
	reg.reset();
	(void)shm::segment::remove(name);
	return 0;
}

long sys_bpf(int cmd, bpf_attr *attr)
{
	return syscall(__NR_bpf, cmd, attr, sizeof(*attr));
}

int kernel(uint32_t type)
{
	bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.map_type = type;
	a.key_size = 4;
	a.value_size = 8;
	a.max_entries = 1;
	int map = int(sys_bpf(BPF_MAP_CREATE, &a));
	if (map < 0) {
		printf("{\"skip\":\"BPF_MAP_CREATE: %s\"}\n", strerror(errno));
		return 0;
	}
	if (type == BPF_MAP_TYPE_PERCPU_HASH) {
		std::vector<uint64_t> zero(256);
		uint32_t k = 0;
		memset(&a, 0, sizeof(a));
		a.map_fd = uint32_t(map);
		a.key = uint64_t(uintptr_t(&k));
		a.value = uint64_t(uintptr_t(zero.data()));
		(void)sys_bpf(BPF_MAP_UPDATE_ELEM, &a);
	}
	std::vector<insn> p = increment(insn{ 0x18, 1, BPF_PSEUDO_MAP_FD, 0, map },
					insn{ 0, 0, 0, 0, 0 });
	const char license[] = "GPL";
	memset(&a, 0, sizeof(a));
	a.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
	a.insns = uint64_t(uintptr_t(p.data()));
	a.insn_cnt = uint32_t(p.size());
	a.license = uint64_t(uintptr_t(license));
	int prog = int(sys_bpf(BPF_PROG_LOAD, &a));
	if (prog < 0) {
		printf("{\"skip\":\"BPF_PROG_LOAD: %s\"}\n", strerror(errno));
		return 0;
	}
	uint8_t packet[64] = {};
	std::vector<double> samples;
	for (int r = 0; r < 9; r++) {
		bpf_attr t;
		memset(&t, 0, sizeof(t));
		t.test.prog_fd = uint32_t(prog);
		t.test.data_in = uint64_t(uintptr_t(packet));
		t.test.data_size_in = sizeof(packet);
		t.test.repeat = 100000;
		if (sys_bpf(BPF_PROG_TEST_RUN, &t) != 0) {
			printf("{\"skip\":\"BPF_PROG_TEST_RUN: %s\"}\n", strerror(errno));
			return 0;
		}
		samples.push_back(double(t.test.duration));
	}
	std::sort(samples.begin(), samples.end());
	printf("{\"ns_per_run\":%.2f}\n", samples[samples.size() / 2]);
	close(prog);
	close(map);
	return 0;
}

// caller: r2 = prog array, r3 = 0, bpf_tail_call(r1, r2, r3); return 1.
// The prog array's lddw is lddw0, lddw1.
std::vector<insn> tail_caller(insn lddw0, insn lddw1)
{
	return { lddw0,
		 lddw1,
		 insn{ 0xb7, 3, 0, 0, 0 },  // r3 = 0
		 insn{ 0x85, 0, 0, 0, 12 }, // call bpf_tail_call
		 insn{ 0xb7, 0, 0, 0, 1 },  // r0 = 1
		 insn{ 0x95, 0, 0, 0, 0 } };
}
const std::vector<insn> answer = { insn{ 0xb7, 0, 0, 0, 42 },
				   insn{ 0x95, 0, 0, 0, 0 } };

double median_ns(std::vector<double> v)
{
	std::sort(v.begin(), v.end());
	return v[v.size() / 2];
}

// The kernel's pair: ns per run of the caller and of the target alone, or
// a reason.
std::string kernel_tailcall()
{
	bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.map_type = BPF_MAP_TYPE_PROG_ARRAY;
	a.key_size = 4;
	a.value_size = 4;
	a.max_entries = 1;
	int map = int(sys_bpf(BPF_MAP_CREATE, &a));
	if (map < 0)
		return std::string("\"kernel_skip\":\"BPF_MAP_CREATE: ") +
		       strerror(errno) + "\"";
	const char license[] = "GPL";
	auto load = [&](const std::vector<insn> &p) {
		bpf_attr l;
		memset(&l, 0, sizeof(l));
		l.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
		l.insns = uint64_t(uintptr_t(p.data()));
		l.insn_cnt = uint32_t(p.size());
		l.license = uint64_t(uintptr_t(license));
		return int(sys_bpf(BPF_PROG_LOAD, &l));
	};
	int target = load(answer);
	int caller = load(tail_caller(insn{ 0x18, 2, BPF_PSEUDO_MAP_FD, 0, map },
				      insn{ 0, 0, 0, 0, 0 }));
	if (target < 0 || caller < 0)
		return std::string("\"kernel_skip\":\"BPF_PROG_LOAD: ") +
		       strerror(errno) + "\"";
	uint32_t k = 0;
	memset(&a, 0, sizeof(a));
	a.map_fd = uint32_t(map);
	a.key = uint64_t(uintptr_t(&k));
	a.value = uint64_t(uintptr_t(&target));
	if (sys_bpf(BPF_MAP_UPDATE_ELEM, &a) != 0)
		return std::string("\"kernel_skip\":\"BPF_MAP_UPDATE_ELEM: ") +
		       strerror(errno) + "\"";
	auto per_run = [&](int prog, uint32_t *ret) {
		uint8_t packet[64] = {};
		std::vector<double> samples;
		for (int r = 0; r < 9; r++) {
			bpf_attr t;
			memset(&t, 0, sizeof(t));
			t.test.prog_fd = uint32_t(prog);
			t.test.data_in = uint64_t(uintptr_t(packet));
			t.test.data_size_in = sizeof(packet);
			t.test.repeat = 100000;
			if (sys_bpf(BPF_PROG_TEST_RUN, &t) != 0)
				return -1.0;
			*ret = t.test.retval;
			samples.push_back(double(t.test.duration));
		}
		return median_ns(samples);
	};
	uint32_t r1 = 0, r2 = 0;
	const double with = per_run(caller, &r1), alone = per_run(target, &r2);
	close(caller);
	close(target);
	close(map);
	if (with < 0 || alone < 0 || r1 != 42 || r2 != 42)
		return "\"kernel_skip\":\"BPF_PROG_TEST_RUN failed or the tail call did not land\"";
	char buf[128];
	snprintf(buf, sizeof buf, "\"kernel_tail_ns\":%.2f,\"kernel_alone_ns\":%.2f",
		 with, alone);
	return buf;
}

int tailcall(uint64_t runs)
{
	if (auto st = bpftime::maps_userspace::register_all(); !st) {
		fprintf(stderr, "register: %s\n", st.error().message.c_str());
		return 2;
	}
	const std::string name = "bpftime_tail_tool_" + std::to_string(getpid());
	(void)shm::segment::remove(name);
	shm::segment_options o;
	o.name = name;
	o.size = 16 << 20;
	auto reg = need(handlers::registry::create(need(shm::segment::create(o), "segment")),
			"registry");
	handlers::map_spec ms;
	ms.type = BPF_MAP_TYPE_PROG_ARRAY;
	ms.name = "jmp";
	ms.key_size = 4;
	ms.value_size = 4;
	ms.max_entries = 1;
	auto jmp = need(reg->create_map(ms), "prog array");
	handlers::prog_spec ps;
	ps.type = BPF_PROG_TYPE_KPROBE;
	ps.name = "answer";
	ps.insns = answer;
	auto target = need(reg->create_prog(ps), "target");
	ps.name = "caller";
	ps.insns = tail_caller(insn{ 0x18, 2, 1, 0, int32_t(jmp.id) }, insn{ 0, 0, 0, 0, 0 });
	auto caller = need(reg->create_prog(ps), "caller");
	auto jm = need(reg->map(jmp.id), "prog array instance");
	uint32_t k = 0, v = target.id;
	if (!jm->update(&k, &v, BPF_ANY)) {
		fprintf(stderr, "prog array update failed\n");
		return 2;
	}
	auto ci = need(reg->instantiate(caller.id, handlers::instance_options{}), "caller");
	auto ti = need(reg->instantiate(target.id, handlers::instance_options{}), "target");
	uint64_t ctx[2] = {};
	auto per_run = [&](const handlers::program_instance &p) {
		std::vector<double> samples;
		for (int r = 0; r < 9; r++) {
			const double t0 = now_ns();
			for (uint64_t i = 0; i < runs; i++)
				(void)p.run(ctx, sizeof ctx);
			samples.push_back((now_ns() - t0) / double(runs));
		}
		return median_ns(samples);
	};
	auto r = ci->run(ctx, sizeof ctx);
	if (!r || *r != 42) {
		fprintf(stderr, "the tail call did not land (r0 %llu)\n",
			(unsigned long long)(r ? *r : 0));
		return 2;
	}
	const double with = per_run(*ci), alone = per_run(*ti);
	printf("{\"tail_ns\":%.2f,\"alone_ns\":%.2f,%s}\n", with, alone,
	       kernel_tailcall().c_str());
	ci.reset();
	ti.reset();
	jm.reset();
	reg.reset();
	(void)shm::segment::remove(name);
	return 0;
}

} // namespace

int main(int argc, char **argv)
{
	const std::string mode = argc > 1 ? argv[1] : "";
	if (mode == "runs" && argc == 5)
		return runs(type_of(argv[2]), atoi(argv[3]), strtoull(argv[4], nullptr, 0));
	if (mode == "kernel" && argc == 3)
		return kernel(type_of(argv[2]));
	if (mode == "tailcall" && argc == 3)
		return tailcall(strtoull(argv[2], nullptr, 0));
	fprintf(stderr, "usage: %s runs <array|percpu_array|percpu_hash> <threads> <runs>\n"
			"       %s kernel <array|percpu_array|percpu_hash>\n"
			"       %s tailcall <runs>\n",
		argv[0], argv[0], argv[0]);
	return 2;
}
