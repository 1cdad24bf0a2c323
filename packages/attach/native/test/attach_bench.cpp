// attach_bench.cpp: the native half of bench/suites/attach.mjs. Calls
// bench_empty (bench_target.S) in a loop with one kind of probe on it and
// prints one JSON line: {"mode", "ns" (median ns per call over the rounds),
// "p10", "p25", "p75", "calls" (per round), "mechanism"}.
//
//   bpftime-attach-bench <mode> [--rounds N] [--calls N] [--cpu N]
//
// modes: native, uprobe, uprobe-2 (two callbacks), uretprobe,
// uprobe+uretprobe, breakpoint (forced int3), kernel-uprobe,
// kernel-uretprobe (perf_event_open on the uprobe PMU with an empty
// BPF_PROG_TYPE_KPROBE program attached, as libbpf attaches one).
// Where the kernel refuses, the line is {"mode", "skipped": "<why>"}.
#include <bpftime/attach/attach.hpp>

#include "log.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <linux/bpf.h>
#include <linux/perf_event.h>
#include <sched.h>
#include <string>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <vector>

extern "C" void bench_empty();

namespace {

using namespace bpftime::attach;

void empty_cb(const pt_regs *, void *)
{
}

uint64_t now_ns()
{
	timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return uint64_t(t.tv_sec) * 1000000000ull + uint64_t(t.tv_nsec);
}

// The loop under test: an indirect call the compiler cannot remove.
__attribute__((noinline)) void call_n(void (*volatile *fn)(), long n)
{
	for (long i = 0; i < n; i++)
		(*fn)();
}

[[noreturn]] void skip(const std::string &mode, const std::string &why)
{
	std::string w;
	for (char c : why)
		w += c == '"' ? '\'' : c;
	printf("{\"mode\":\"%s\",\"skipped\":\"%s\"}\n", mode.c_str(), w.c_str());
	exit(0);
}

int read_int(const char *path, const char *prefix)
{
	std::ifstream f(path);
	std::string s;
	if (!(f >> s))
		return -1;
	if (prefix && s.rfind(prefix, 0) == 0)
		s = s.substr(strlen(prefix));
	return atoi(s.c_str());
}

// An empty kprobe-type program (r0 = 0; exit) on a uprobe perf event of
// bench_empty: the kernel's path for the same work.
void kernel_probe(const std::string &mode, bool ret)
{
	int type = read_int("/sys/bus/event_source/devices/uprobe/type", nullptr);
	if (type < 0)
		skip(mode, "no uprobe PMU (/sys/bus/event_source/devices/uprobe/type)");
	auto loc = resolve({ "", "bench_empty", 0 });
	if (!loc)
		skip(mode, loc.error().message);
	perf_event_attr attr = {};
	attr.size = sizeof(attr);
	attr.type = uint32_t(type);
	if (ret) {
		int bit = read_int("/sys/bus/event_source/devices/uprobe/format/retprobe", "config:");
		attr.config = 1ull << (bit < 0 ? 0 : bit);
	}
	static std::string path;
	path = loc->module.path;
	attr.config1 = reinterpret_cast<uint64_t>(path.c_str()); // uprobe_path
	// Past bench_empty's 4-byte endbr64, on its push %rbp: the kernel
	// single-steps an uprobe on endbr64 (about 20x slower) and emulates
	// push %rbp, its ordinary path, the baseline to measure against.
	attr.config2 = loc->file_offset + 4; // probe_offset
	int pfd = int(syscall(SYS_perf_event_open, &attr, 0, -1, -1, PERF_FLAG_FD_CLOEXEC));
	if (pfd < 0)
		skip(mode, std::string("perf_event_open(uprobe): ") + strerror(errno));
	bpf_insn insns[2] = {};
	insns[0].code = BPF_ALU64 | BPF_MOV | BPF_K; // r0 = 0
	insns[1].code = BPF_JMP | BPF_EXIT;
	union bpf_attr a = {};
	a.prog_type = BPF_PROG_TYPE_KPROBE;
	a.insns = reinterpret_cast<uint64_t>(insns);
	a.insn_cnt = 2;
	a.license = reinterpret_cast<uint64_t>("GPL");
	int prog = int(syscall(SYS_bpf, BPF_PROG_LOAD, &a, sizeof(a)));
	if (prog < 0)
		skip(mode, std::string("bpf(BPF_PROG_LOAD): ") + strerror(errno));
	if (ioctl(pfd, PERF_EVENT_IOC_SET_BPF, prog) != 0)
		skip(mode, std::string("PERF_EVENT_IOC_SET_BPF: ") + strerror(errno));
	if (ioctl(pfd, PERF_EVENT_IOC_ENABLE, 0) != 0)
		skip(mode, std::string("PERF_EVENT_IOC_ENABLE: ") + strerror(errno));
}

} // namespace

int main(int argc, char **argv)
{
	// The edge of this program: the log follows SPDLOG_LEVEL and
	// BPFTIME_LOG_OUTPUT as in the agent.
	bpftime::log_configure(bpftime::log_options_from_env(),
			       bpftime::attach::detail::attach_log);
	if (argc < 2) {
		fprintf(stderr, "usage: %s <mode> [--rounds N] [--calls N] [--cpu N]\n", argv[0]);
		return 2;
	}
	const std::string mode = argv[1];
	int rounds = 21, cpu = -1;
	long calls = 0;
	for (int i = 2; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--rounds"))
			rounds = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--calls"))
			calls = atol(argv[i + 1]);
		else if (!strcmp(argv[i], "--cpu"))
			cpu = atoi(argv[i + 1]);
	}
	if (cpu >= 0) {
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		sched_setaffinity(0, sizeof(set), &set);
	}
	const bool slow = mode == "breakpoint" || mode.rfind("kernel-", 0) == 0;
	if (!calls)
		calls = slow ? 50000 : 1000000;

	attach_manager m;
	std::string mech = "none";
	auto need = [&](const bpftime::result<uint64_t> &r) {
		if (!r) {
			fprintf(stderr, "attach: %s\n", r.error().message.c_str());
			exit(1);
		}
		mech = to_string(m.info(*r)->mech);
	};
	const probe_target t{ "", "bench_empty", 0 };
	if (mode == "native") {
	} else if (mode == "uprobe") {
		need(m.attach_uprobe(t, empty_cb, nullptr));
	} else if (mode == "uprobe-2") {
		need(m.attach_uprobe(t, empty_cb, nullptr));
		need(m.attach_uprobe(t, empty_cb, nullptr));
	} else if (mode == "uretprobe") {
		need(m.attach_uretprobe(t, empty_cb, nullptr));
	} else if (mode == "uprobe+uretprobe") {
		need(m.attach_uprobe(t, empty_cb, nullptr));
		need(m.attach_uretprobe(t, empty_cb, nullptr));
	} else if (mode == "breakpoint") {
		attach_options o;
		o.force_breakpoint = true;
		need(m.attach_uprobe(t, empty_cb, nullptr, o));
	} else if (mode == "kernel-uprobe") {
		kernel_probe(mode, false);
		mech = "kernel";
	} else if (mode == "kernel-uretprobe") {
		kernel_probe(mode, true);
		mech = "kernel";
	} else {
		fprintf(stderr, "unknown mode %s\n", mode.c_str());
		return 2;
	}

	void (*volatile fn)() = bench_empty;
	call_n(&fn, calls / 10); // warm-up: caches, branch predictors, page faults
	std::vector<double> ns;
	for (int r = 0; r < rounds; r++) {
		uint64_t t0 = now_ns();
		call_n(&fn, calls);
		ns.push_back(double(now_ns() - t0) / double(calls));
	}
	std::sort(ns.begin(), ns.end());
	auto q = [&](double p) { return ns[size_t(p * double(ns.size() - 1) + 0.5)]; };
	printf("{\"mode\":\"%s\",\"ns\":%.3f,\"p10\":%.3f,\"p25\":%.3f,\"p75\":%.3f,\"calls\":%ld,"
	       "\"mechanism\":\"%s\"}\n",
	       mode.c_str(), q(0.5), q(0.1), q(0.25), q(0.75), calls, mech.c_str());
	return 0;
}
