// vm_bench: one (program, variant) of the VM benchmark, in its own process,
// for bench/suites/vm.mjs.
//
//   vm_bench <stem> <variant> [--rounds N] [--round-ms MS] [--cpu N]
//            [--dump-code FILE]
//
//   <stem>.bpf.o   the program for BPF (clang -target bpf, bench/programs),
//                  loaded by libbpf for the kernel column
//   <stem>.bpf.txt the same object as @bpftime/loader reads it, written by
//                  bench/suites/vm.mjs (format: bench_object.hpp); what
//                  bpftime's variants run
//   <stem>.so      the same C, native, -O2 -fno-tree-vectorize
//                  -fno-tree-loop-distribute-patterns   (variant native)
//   <stem>.O2.so   the same C, native, plain -O2        (variant native-O2)
//
// Variants:
//   native, native-O2   bench_run() of the shared object, called directly
//   interpreter         bpftime::vm, backend::interpreter
//   jit                 bpftime::vm, backend::jit_x64
//   jit-bounds          jit with vm_options::bounds_check; the data buffer is
//                       also the run's ctx, so accesses take the JIT's inline
//                       stack/ctx checks
//   jit-bounds-region   jit with bounds_check; the data buffer is only a
//                       registered memory region (what a map value is), so
//                       accesses take the out-of-line region check
//   llvm-jit            bpftime::vm, backend::llvm (LLVM 19 ORC LLJIT, O3)
//   llvm-aot            vm::compile_aot() once, then vm::load_aot() of the
//                       object (compile_ns: the AOT compile)
//   kernel              the kernel's JIT: libbpf load as a socket filter,
//                       BPF_PROG_TEST_RUN with `repeat`
//
// Prints one JSON line on stdout:
//   {"variant":..., "ns": median ns per execution, "p25", "p75": quartiles,
//    "rounds", "batch": executions per round, "r0": result of a run from the
//    seeded state, "insns": eBPF instructions one run executes (vm variants,
//    counted by the interpreter, vm_options::insn_counter), "compile_ns": median JIT compile time over 21
//    loads (jit variants), "load_ns": median vm::load() time (verify + resolve
//    + compile), "paired_ratio" (jit and llvm-*): the JIT's rounds alternated with
//    those of <stem>.so in this process, the median of the per-round
//    ratios, "paired_jit_ratio" (llvm-*): the same against the jit variant,
//    ...}
// or {"variant":..., "skipped": "why"} (exit 0) when the kernel column cannot
// run here. Errors (a program that fails to load into bpftime, results that
// disagree) go to stderr with exit status 1.
//
// Timing: each round runs `batch` executions back to back (batch chosen so a
// round lasts --round-ms) and yields ns per execution; the median over the
// rounds is reported, the quartiles say how noisy the machine was. For the
// kernel the per-round figure is BPF_PROG_TEST_RUN's own `duration`.
#include "bench_object.hpp"
#include "kernel_peer.hpp"

#include <bpftime/vm/vm.hpp>

#include <dlfcn.h>
#include <sched.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace {

// The kernel's bpf_get_prandom_u32 (helper 7): prandom_u32_state() of
// lib/random32.c, a Tausworthe generator over four words. The kernel keeps
// one state per CPU; here one state is enough (one thread), and it is
// reseeded before every run whose result is compared, so that bpftime and
// the native build see the same sequence.
struct rnd_state {
	uint32_t s1, s2, s3, s4;
};
rnd_state rnd;

void seed_rnd()
{
	// prandom_seed_state() requires s1 >= 2, s2 >= 8, s3 >= 16, s4 >= 128.
	rnd = { 0x9e3779b9u, 0x7f4a7c15u, 0xf39cc060u, 0x5ced1b6du };
}

uint32_t prandom_u32()
{
#define TAUSWORTHE(s, a, b, c, d) ((((s) & (c)) << (d)) ^ ((((s) << (a)) ^ (s)) >> (b)))
	rnd.s1 = TAUSWORTHE(rnd.s1, 6U, 13U, 4294967294U, 18U);
	rnd.s2 = TAUSWORTHE(rnd.s2, 2U, 27U, 4294967288U, 2U);
	rnd.s3 = TAUSWORTHE(rnd.s3, 13U, 21U, 4294967280U, 7U);
	rnd.s4 = TAUSWORTHE(rnd.s4, 3U, 12U, 4294967168U, 13U);
#undef TAUSWORTHE
	return rnd.s1 ^ rnd.s2 ^ rnd.s3 ^ rnd.s4;
}

uint64_t helper_get_prandom_u32(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t)
{
	return prandom_u32();
}

// The one helper the bench programs call.
constexpr bpftime::vm::helper_proto get_prandom_u32_proto{
	.id = bpftime::vm::BPF_FUNC_get_prandom_u32,
	.name = "get_prandom_u32",
	.ret = bpftime::vm::RET_INTEGER,
	.fn = helper_get_prandom_u32,
};
constexpr size_t INPUT_SIZE = 4096; // bench.h's BENCH_INPUT_SIZE

// The input every variant gets: xorshift64* bytes from a fixed seed.
std::vector<uint8_t> make_input()
{
	std::vector<uint8_t> out(INPUT_SIZE);
	uint64_t x = 0x9e3779b97f4a7c15ull;
	for (uint8_t &b : out) {
		x ^= x >> 12;
		x ^= x << 25;
		x ^= x >> 27;
		b = static_cast<uint8_t>((x * 0x2545f4914f6cdd1dull) >> 56);
	}
	return out;
}

volatile uint64_t sink; // keeps the timed results alive

struct options {
	std::string stem, variant, dump_code;
	int rounds = 41;
	double round_ms = 5;
	int cpu = -1;
};

struct stats {
	double median = 0, p25 = 0, p75 = 0;
	uint64_t batch = 0;
	int rounds = 0;
};

using timed_fn = std::function<double(uint64_t)>;

// The executions per round of `run`. Calibration doubles as the warm-up:
// caches, branch predictors, pages.
uint64_t calibrate(const timed_fn &run, const options &o)
{
	const double round_ns = o.round_ms * 1e6;
	uint64_t n = 1;
	for (;;) {
		const double per = run(n);
		if (per * double(n) >= round_ns / 4 || n >= (uint64_t(1) << 40)) {
			n = std::max<uint64_t>(1, uint64_t(round_ns / std::max(per, 0.01)));
			break;
		}
		n *= 4;
	}
	return std::min<uint64_t>(n, INT32_MAX); // BPF_PROG_TEST_RUN's repeat is an int
}

// `run(n)` executes the program n times and returns ns per execution.
stats measure(const timed_fn &run, const options &o)
{
	const uint64_t n = calibrate(run, o);
	std::vector<double> s;
	for (int i = 0; i < o.rounds; i++)
		s.push_back(run(n));
	std::sort(s.begin(), s.end());
	auto q = [&](double f) { return s[size_t(f * double(s.size() - 1) + 0.5)]; };
	return { q(0.5), q(0.25), q(0.75), n, o.rounds };
}

double ns_since(std::chrono::steady_clock::time_point t0)
{
	return double(std::chrono::duration_cast<std::chrono::nanoseconds>(
			      std::chrono::steady_clock::now() - t0)
			      .count());
}

std::string json_string(const std::string &s)
{
	std::string out = "\"";
	for (char c : s) {
		if (c == '"' || c == '\\') {
			out += '\\';
			out += c;
		} else if (static_cast<unsigned char>(c) < 0x20) {
			char buf[8];
			std::snprintf(buf, sizeof buf, "\\u%04x", c);
			out += buf;
		} else {
			out += c;
		}
	}
	return out + "\"";
}

// Accumulates the fields of the one JSON line.
class json_line {
    public:
	json_line &str(const char *k, const std::string &v)
	{
		add(k, json_string(v));
		return *this;
	}
	json_line &num(const char *k, double v)
	{
		char buf[64];
		std::snprintf(buf, sizeof buf, "%.3f", v);
		add(k, buf);
		return *this;
	}
	json_line &u64(const char *k, uint64_t v)
	{
		add(k, std::to_string(v));
		return *this;
	}
	json_line &stats_of(const stats &s)
	{
		return num("ns", s.median).num("p25", s.p25).num("p75", s.p75).u64("rounds", uint64_t(s.rounds)).u64("batch", s.batch);
	}
	void print() const
	{
		std::printf("{%s}\n", body_.c_str());
		std::fflush(stdout);
	}

    private:
	void add(const char *k, const std::string &v)
	{
		if (!body_.empty())
			body_ += ",";
		body_ += json_string(k) + ":" + v;
	}
	std::string body_;
};

[[noreturn]] void die(const std::string &msg)
{
	std::fprintf(stderr, "vm_bench: %s\n", msg.c_str());
	std::exit(1);
}

bool write_file(const std::string &path, const uint8_t *p, size_t n)
{
	std::ofstream f(path, std::ios::binary);
	f.write(reinterpret_cast<const char *>(p), std::streamsize(n));
	return bool(f);
}

// Anonymous executable mappings of this process: where the JIT's code lands
// (its code_memory is an mmap, RW then RX). Diffing the list around load()
// finds the program's code without reaching into the vm's internals.
std::vector<std::pair<uint64_t, uint64_t>> anon_exec_mappings()
{
	std::vector<std::pair<uint64_t, uint64_t>> out;
	std::ifstream maps("/proc/self/maps");
	for (std::string line; std::getline(maps, line);) {
		std::istringstream in(line);
		std::string range, perms, offset, dev, path;
		uint64_t inode = 0;
		in >> range >> perms >> offset >> dev >> inode >> path;
		if (perms.size() < 3 || perms[2] != 'x' || inode != 0 || !path.empty())
			continue;
		const auto dash = range.find('-');
		out.emplace_back(std::stoull(range.substr(0, dash), nullptr, 16),
				 std::stoull(range.substr(dash + 1), nullptr, 16));
	}
	return out;
}

template <class T> T median_of(std::vector<T> v)
{
	std::sort(v.begin(), v.end());
	return v[v.size() / 2];
}

using native_entry = unsigned int (*)(void *);

// bench_run of a native build of the program, its bench_input filled.
native_entry open_native(const std::string &path, const std::vector<uint8_t> &input)
{
	void *h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
	if (!h)
		die(std::string("dlopen: ") + dlerror());
	auto fn = reinterpret_cast<native_entry>(dlsym(h, "bench_run"));
	auto *data = static_cast<uint8_t *>(dlsym(h, "bench_input"));
	if (!fn || !data)
		die(path + ": no bench_run or bench_input (see bench/programs/bench.h)");
	std::memcpy(data, input.data(), input.size());
	return fn;
}

timed_fn timed_native(native_entry fn)
{
	return [fn](uint64_t n) {
		const auto t0 = std::chrono::steady_clock::now();
		uint64_t acc = 0;
		for (uint64_t i = 0; i < n; i++)
			acc += fn(nullptr);
		sink = acc;
		return ns_since(t0) / double(n);
	};
}

// Rounds of `run` alternated with rounds of `baseline` in this process; the
// median of the per-round ratios. This machine moves between two speeds
// about 2x apart, for seconds at a time, native code as much as ours, so a
// ratio of two processes measured apart can land on either side; two rounds
// of 5 ms measured back to back almost always share one.
double paired_ratio(const timed_fn &run, const timed_fn &baseline, const options &o)
{
	const uint64_t n = calibrate(run, o), nb = calibrate(baseline, o);
	std::vector<double> r;
	for (int i = 0; i < o.rounds; i++) {
		const double b = baseline(nb);
		r.push_back(run(n) / b);
	}
	return median_of(r);
}

int run_native(const options &o, const std::vector<uint8_t> &input)
{
	const native_entry fn = open_native(o.stem + (o.variant == "native" ? ".so" : ".O2.so"), input);
	seed_rnd();
	const uint64_t r0 = fn(nullptr);
	const stats s = measure(timed_native(fn), o);
	json_line().str("variant", o.variant).stats_of(s).u64("r0", r0).print();
	return 0;
}

int run_kernel(const options &o, const bench::bench_object &obj, const bench::data_image &img)
{
	if (!bench::kernel_peer::available()) {
		json_line().str("variant", o.variant).str("skipped", "vm_bench was built without libbpf").print();
		return 0;
	}
	auto k = bench::kernel_peer::load(obj, img);
	if (!k) {
		json_line().str("variant", o.variant).str("skipped", k.error().message).print();
		return 0;
	}
	auto first = (*k)->run(1);
	if (!first) {
		json_line().str("variant", o.variant).str("skipped", first.error().message).print();
		return 0;
	}
	const stats s = measure(
		[&](uint64_t n) {
			auto r = (*k)->run(static_cast<uint32_t>(n));
			if (!r)
				die(r.error().message);
			sink = r->retval;
			return double(r->duration);
		},
		o);
	// The kernel truncates duration to whole ns; the wall time of one more
	// large batch (syscall included, amortised) is printed beside it.
	auto wall = (*k)->run(static_cast<uint32_t>(s.batch));
	const std::vector<uint8_t> code = (*k)->jited_code();
	if (!o.dump_code.empty() && !code.empty() && !write_file(o.dump_code, code.data(), code.size()))
		die("cannot write " + o.dump_code);
	json_line()
		.str("variant", o.variant)
		.stats_of(s)
		.u64("r0", first->retval)
		.num("wall_ns", wall ? wall->wall_ns : 0)
		.u64("code_bytes", code.size())
		.u64("xlated_insns", (*k)->xlated_insns())
		.print();
	return 0;
}

int run_vm(const options &o, const bench::bench_object &obj, const bench::data_image &img,
	   const std::vector<uint8_t> &input)
{
	namespace v = bpftime::vm;
	const bool jit = o.variant != "interpreter";
	v::vm_options vo;
	vo.bounds_check = o.variant == "jit-bounds" || o.variant == "jit-bounds-region";
	const bool as_region = o.variant == "jit-bounds-region";
	const v::memory_region region{ reinterpret_cast<uint64_t>(img.data()), img.size(), true };
	// The timed vm, and the interpreter that counts the instructions of a
	// run (its own vm: counting selects the interpreter's counting loop).
	auto setup = [&](v::vm &m) {
		if (auto st = m.register_helper(get_prandom_u32_proto); !st)
			die(st.error().message);
		if (as_region)
			m.add_memory_region(region);
		m.set_lddw_resolver(img.resolver());
		// The global data sections are what libbpf makes of them: array
		// maps of one value of the section's size, which the verifier
		// proves the programs' accesses against.
		m.set_map_describer([&obj](uint8_t, int32_t imm) -> std::optional<v::map_desc> {
			if (imm < 0 || size_t(imm) >= obj.sections.size())
				return std::nullopt;
			v::map_desc d;
			d.type = 2; // BPF_MAP_TYPE_ARRAY
			d.key_size = 4;
			d.value_size = uint32_t(obj.sections[size_t(imm)].size);
			d.max_entries = 1;
			return d;
		});
	};
	const bool llvm = o.variant == "llvm-jit" || o.variant == "llvm-aot";
	v::vm vm(!jit ? v::backend::interpreter : llvm ? v::backend::llvm : v::backend::jit_x64, vo);
	setup(vm);
	// llvm-aot: the object is compiled once (its compile time is what
	// compile_ns reports); each load then only maps and links it.
	std::vector<uint8_t> aot_object;
	uint64_t aot_compile_ns = 0;
	if (o.variant == "llvm-aot") {
		const auto t0 = std::chrono::steady_clock::now();
		auto obj_bytes = vm.compile_aot(obj.insns);
		if (!obj_bytes)
			die("llvm-aot: compile: " + obj_bytes.error().message);
		aot_compile_ns = uint64_t(ns_since(t0));
		aot_object = std::move(*obj_bytes);
	}
	uint64_t insns = 0;
	v::vm_options co = vo;
	co.insn_counter = &insns;
	v::vm counting(v::backend::interpreter, co);
	setup(counting);
	if (auto st = counting.load(obj.insns); !st)
		die("counting interpreter: load: " + st.error().message);

	// Compile (load) times: the first load, then the median of 20 more.
	const auto before = anon_exec_mappings();
	std::vector<uint64_t> compile_ns, load_ns;
	for (int i = 0; i < 21; i++) {
		const auto t0 = std::chrono::steady_clock::now();
		if (auto st = aot_object.empty() ? vm.load(obj.insns) : vm.load_aot(aot_object); !st)
			die(o.variant + ": load: " + st.error().message);
		load_ns.push_back(uint64_t(ns_since(t0)));
		compile_ns.push_back(aot_object.empty() ? vm.compile_time_ns() : aot_compile_ns);
		// LLVM takes milliseconds: a few loads give the median.
		if (llvm && i >= 4)
			break;
	}
	if (!o.dump_code.empty() && jit) {
		// The mapping of the last load: present now, absent before.
		for (const auto &m : anon_exec_mappings())
			if (std::find(before.begin(), before.end(), m) == before.end())
				if (!write_file(o.dump_code, reinterpret_cast<const uint8_t *>(m.first),
						m.second - m.first))
					die("cannot write " + o.dump_code);
	}

	void *ctx = as_region ? nullptr : img.data();
	const uint64_t ctx_len = as_region ? 0 : img.size();

	// One counted run and one vm run from the same seeded state, on the
	// same data, must agree. The counted run goes first, as any run may:
	// each program computes from its input alone (sieve clears its scratch
	// before use).
	seed_rnd();
	auto counted = counting.exec(ctx, ctx_len);
	if (!counted)
		die("counting interpreter: exec: " + counted.error().message);
	seed_rnd();
	auto first = vm.exec(ctx, ctx_len);
	if (!first)
		die(o.variant + ": exec: " + first.error().message);
	if (*first != *counted)
		die(o.variant + ": r0 " + std::to_string(*first) + " but the counting interpreter got " +
		    std::to_string(*counted));

	const timed_fn timed = [&](uint64_t n) {
		const auto t0 = std::chrono::steady_clock::now();
		uint64_t acc = 0;
		for (uint64_t i = 0; i < n; i++) {
			auto r = vm.exec(ctx, ctx_len);
			acc += r ? *r : 1;
		}
		sink = acc;
		return ns_since(t0) / double(n);
	};
	const stats s = measure(timed, o);
	json_line j;
	j.str("variant", o.variant).stats_of(s).u64("r0", *first).u64("insns", insns);
	if (o.variant == "jit" || llvm)
		j.num("paired_ratio", paired_ratio(timed, timed_native(open_native(o.stem + ".so", input)), o));
	if (llvm) {
		// Against our JIT the same way: its rounds alternated with
		// these in this process.
		v::vm jit_vm(v::backend::jit_x64, vo);
		setup(jit_vm);
		if (auto st = jit_vm.load(obj.insns); !st)
			die("jit: load: " + st.error().message);
		const timed_fn timed_jit = [&](uint64_t n) {
			const auto t0 = std::chrono::steady_clock::now();
			uint64_t acc = 0;
			for (uint64_t i = 0; i < n; i++) {
				auto r = jit_vm.exec(ctx, ctx_len);
				acc += r ? *r : 1;
			}
			sink = acc;
			return ns_since(t0) / double(n);
		};
		j.num("paired_jit_ratio", paired_ratio(timed, timed_jit, o));
	}
	if (jit)
		j.u64("compile_ns", median_of(compile_ns)).u64("compile_ns_first", compile_ns.front());
	j.u64("load_ns", median_of(load_ns)).print();
	return 0;
}

options parse_args(int argc, char **argv)
{
	options o;
	std::vector<std::string> pos;
	for (int i = 1; i < argc; i++) {
		const std::string a = argv[i];
		auto value = [&]() -> std::string {
			if (i + 1 >= argc)
				die(a + " needs a value");
			return argv[++i];
		};
		if (a == "--rounds")
			o.rounds = std::max(1, std::atoi(value().c_str()));
		else if (a == "--round-ms")
			o.round_ms = std::max(0.1, std::atof(value().c_str()));
		else if (a == "--cpu")
			o.cpu = std::atoi(value().c_str());
		else if (a == "--dump-code")
			o.dump_code = value();
		else
			pos.push_back(a);
	}
	if (pos.size() != 2)
		die("usage: vm_bench <stem> <native|native-O2|interpreter|jit|jit-bounds|"
		    "jit-bounds-region|llvm-jit|llvm-aot|kernel> [--rounds N] [--round-ms MS] [--cpu N] "
		    "[--dump-code FILE]");
	o.stem = pos[0];
	o.variant = pos[1];
	return o;
}

} // namespace

// Called by the native builds of bench/programs (bench.h), resolved from
// this executable when the shared object is opened.
extern "C" __attribute__((visibility("default"))) unsigned int bench_get_prandom_u32(void)
{
	return prandom_u32();
}

int main(int argc, char **argv)
{
	const options o = parse_args(argc, argv);
	if (o.cpu >= 0) {
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(o.cpu, &set);
		if (sched_setaffinity(0, sizeof set, &set) != 0)
			die("cannot pin to cpu " + std::to_string(o.cpu) + ": " + std::strerror(errno));
	}
	const std::vector<uint8_t> input = make_input();
	if (o.variant == "native" || o.variant == "native-O2")
		return run_native(o, input);

	auto obj = bench::read_bench_object(o.stem);
	if (!obj)
		die(obj.error().message);
	bench::data_image img(*obj);
	if (auto st = img.fill("bench_input", input); !st)
		die(st.error().message);
	if (o.variant == "kernel")
		return run_kernel(o, *obj, img);
	if (o.variant == "interpreter" || o.variant == "jit" || o.variant == "jit-bounds" ||
	    o.variant == "jit-bounds-region" || o.variant == "llvm-jit" || o.variant == "llvm-aot")
		return run_vm(o, *obj, img, input);
	die("unknown variant '" + o.variant + "'");
}
