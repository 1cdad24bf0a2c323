// map_types_kernel_bench: the kernel baseline of the "map types" part of
// bench/suites/maps.mjs: the Linux kernel's per-CPU, LRU, queue, stack,
// bloom filter and LPM trie maps, from a kernel program (BPF_PROG_TEST_RUN
// with repeat) and from user space (one bpf(2) call per operation), on the
// shapes and with the operation loops the bpftime variants use.
//
//   map_types_kernel_bench <type> <max_entries>
//
// type: array, hash, percpu_array, percpu_hash, lru_hash, lru_percpu_hash
// (lookup of 4-byte keys walked as the bpftime program walks them, 8-byte
// values, the map full), queue, stack (a push and a pop per operation, 8-byte
// values), bloom (a peek of a pushed value; 8-byte values, 3 hash
// functions), lpm (a lookup of a /32 address among max_entries /32
// prefixes, 4 data bytes). Prints one JSON line {"prog_ns":…, "sys_ns":…},
// or {"skip":"<reason>"} when bpf() is refused.
#include <linux/bpf.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

constexpr int32_t WALK_STEP = 1540483477;
constexpr int PROG_OPS = 256;

long sys_bpf(int cmd, bpf_attr *attr)
{
	return syscall(__NR_bpf, cmd, attr, sizeof(*attr));
}

double now_ns()
{
	return double(std::chrono::duration_cast<std::chrono::nanoseconds>(
			      std::chrono::steady_clock::now().time_since_epoch())
			      .count());
}

bpf_insn insn(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm)
{
	bpf_insn i;
	memset(&i, 0, sizeof(i));
	i.code = code;
	i.dst_reg = dst & 0xf;
	i.src_reg = src & 0xf;
	i.off = off;
	i.imm = imm;
	return i;
}

struct kind {
	uint32_t map_type;
	uint32_t key_size;
	uint32_t flags;
	uint64_t extra;
	enum { LOOKUP, PUSH_POP, PEEK, LPM } op;
};

bool kind_of(const std::string &t, kind &k)
{
	if (t == "array")
		k = { BPF_MAP_TYPE_ARRAY, 4, 0, 0, kind::LOOKUP };
	else if (t == "hash")
		k = { BPF_MAP_TYPE_HASH, 4, 0, 0, kind::LOOKUP };
	else if (t == "percpu_array")
		k = { BPF_MAP_TYPE_PERCPU_ARRAY, 4, 0, 0, kind::LOOKUP };
	else if (t == "percpu_hash")
		k = { BPF_MAP_TYPE_PERCPU_HASH, 4, 0, 0, kind::LOOKUP };
	else if (t == "lru_hash")
		k = { BPF_MAP_TYPE_LRU_HASH, 4, 0, 0, kind::LOOKUP };
	else if (t == "lru_percpu_hash")
		k = { BPF_MAP_TYPE_LRU_PERCPU_HASH, 4, 0, 0, kind::LOOKUP };
	else if (t == "queue")
		k = { BPF_MAP_TYPE_QUEUE, 0, 0, 0, kind::PUSH_POP };
	else if (t == "stack")
		k = { BPF_MAP_TYPE_STACK, 0, 0, 0, kind::PUSH_POP };
	else if (t == "bloom")
		k = { BPF_MAP_TYPE_BLOOM_FILTER, 0, 0, 3, kind::PEEK };
	else if (t == "lpm")
		k = { BPF_MAP_TYPE_LPM_TRIE, 8, BPF_F_NO_PREALLOC, 0, kind::LPM };
	else
		return false;
	return true;
}

// The program: PROG_OPS operations from a random start of the key walk,
// the sum of what they found in r0. The same loop as the bpftime variant's.
std::vector<bpf_insn> program(const kind &k, int map_fd, uint32_t n)
{
	std::vector<bpf_insn> p;
	auto add = [&](bpf_insn i) { p.push_back(i); };
	auto map = [&](uint8_t reg) {
		add(insn(BPF_LD | BPF_IMM | BPF_DW, reg, BPF_PSEUDO_MAP_FD, 0, map_fd));
		add(insn(0, 0, 0, 0, 0));
	};
	auto stack_ptr = [&](uint8_t reg, int16_t off) {
		add(insn(BPF_ALU64 | BPF_MOV | BPF_X, reg, 10, 0, 0));
		add(insn(BPF_ALU64 | BPF_ADD | BPF_K, reg, 0, 0, off));
	};
	add(insn(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_get_prandom_u32));
	add(insn(BPF_ALU64 | BPF_MOV | BPF_X, 7, 0, 0, 0)); // r7 = base
	add(insn(BPF_ALU64 | BPF_MOV | BPF_K, 6, 0, 0, 0)); // r6 = i
	add(insn(BPF_ALU64 | BPF_MOV | BPF_K, 8, 0, 0, 0)); // r8 = sum
	size_t loop = p.size();
	add(insn(BPF_ALU64 | BPF_MOV | BPF_X, 1, 6, 0, 0));
	add(insn(BPF_ALU64 | BPF_MUL | BPF_K, 1, 0, 0, WALK_STEP));
	add(insn(BPF_ALU64 | BPF_ADD | BPF_X, 1, 7, 0, 0));
	add(insn(BPF_ALU64 | BPF_AND | BPF_K, 1, 0, 0, int32_t(n - 1)));
	switch (k.op) {
	case kind::LOOKUP:
	case kind::LPM:
		if (k.op == kind::LPM) {
			add(insn(BPF_ST | BPF_MEM | BPF_W, 10, 0, -8, 32));
		}
		add(insn(BPF_STX | BPF_MEM | BPF_W, 10, 1, -4, 0));
		map(1);
		stack_ptr(2, k.op == kind::LPM ? -8 : -4);
		add(insn(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_map_lookup_elem));
		add(insn(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, 2, 0));
		add(insn(BPF_LDX | BPF_MEM | BPF_DW, 1, 0, 0, 0));
		add(insn(BPF_ALU64 | BPF_ADD | BPF_X, 8, 1, 0, 0));
		break;
	case kind::PEEK:
		add(insn(BPF_STX | BPF_MEM | BPF_DW, 10, 1, -16, 0));
		map(1);
		stack_ptr(2, -16);
		add(insn(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_map_peek_elem));
		add(insn(BPF_ALU64 | BPF_ADD | BPF_X, 8, 0, 0, 0));
		break;
	case kind::PUSH_POP:
		add(insn(BPF_STX | BPF_MEM | BPF_DW, 10, 1, -16, 0));
		map(1);
		stack_ptr(2, -16);
		add(insn(BPF_ALU64 | BPF_MOV | BPF_K, 3, 0, 0, 0));
		add(insn(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_map_push_elem));
		add(insn(BPF_ALU64 | BPF_ADD | BPF_X, 8, 0, 0, 0));
		map(1);
		stack_ptr(2, -16);
		add(insn(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_map_pop_elem));
		add(insn(BPF_ALU64 | BPF_ADD | BPF_X, 8, 0, 0, 0));
		break;
	}
	add(insn(BPF_ALU64 | BPF_ADD | BPF_K, 6, 0, 0, 1));
	add(insn(BPF_JMP | BPF_JLT | BPF_K, 6, 0,
		 int16_t(int64_t(loop) - int64_t(p.size()) - 1), PROG_OPS));
	add(insn(BPF_ALU64 | BPF_MOV | BPF_X, 0, 8, 0, 0));
	add(insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0));
	return p;
}

double prog_ns(const kind &k, int fd, uint32_t n, std::string &why)
{
	std::vector<bpf_insn> p = program(k, fd, n);
	const char license[] = "GPL";
	bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
	a.insns = uint64_t(uintptr_t(p.data()));
	a.insn_cnt = uint32_t(p.size());
	a.license = uint64_t(uintptr_t(license));
	int prog = int(sys_bpf(BPF_PROG_LOAD, &a));
	if (prog < 0) {
		why = std::string("BPF_PROG_LOAD: ") + strerror(errno);
		return -1;
	}
	uint8_t packet[64] = {};
	std::vector<double> samples;
	for (int r = 0; r < 8; r++) {
		bpf_attr t;
		memset(&t, 0, sizeof(t));
		t.test.prog_fd = uint32_t(prog);
		t.test.data_in = uint64_t(uintptr_t(packet));
		t.test.data_size_in = sizeof(packet);
		t.test.repeat = 2000;
		if (sys_bpf(BPF_PROG_TEST_RUN, &t) != 0) {
			why = std::string("BPF_PROG_TEST_RUN: ") + strerror(errno);
			close(prog);
			return -1;
		}
		if (r > 0)
			samples.push_back(double(t.test.duration) / PROG_OPS);
	}
	close(prog);
	std::sort(samples.begin(), samples.end());
	return samples[samples.size() / 2];
}

} // namespace

int main(int argc, char **argv)
{
	kind k;
	if (argc != 3 || !kind_of(argv[1], k)) {
		fprintf(stderr, "usage: %s <array|hash|percpu_array|percpu_hash|lru_hash|"
				"lru_percpu_hash|queue|stack|bloom|lpm> <max_entries>\n",
			argv[0]);
		return 2;
	}
	uint32_t n = uint32_t(strtoul(argv[2], nullptr, 10));
	if (n == 0 || (n & (n - 1)) != 0) {
		fprintf(stderr, "max_entries must be a power of two\n");
		return 2;
	}
	bpf_attr attr;
	memset(&attr, 0, sizeof(attr));
	attr.map_type = k.map_type;
	attr.key_size = k.key_size;
	attr.value_size = 8;
	attr.max_entries = n;
	attr.map_flags = k.flags;
	attr.map_extra = k.extra;
	strncpy(attr.map_name, "bench", sizeof(attr.map_name) - 1);
	int fd = int(sys_bpf(BPF_MAP_CREATE, &attr));
	if (fd < 0) {
		printf("{\"skip\":\"bpf(BPF_MAP_CREATE) refused: %s\"}\n",
		       strerrorname_np(errno) ? strerrorname_np(errno) : strerror(errno));
		return 0;
	}
	// User values: per-CPU maps take every CPU's.
	long cpus = sysconf(_SC_NPROCESSORS_CONF);
	bool percpu = k.map_type == BPF_MAP_TYPE_PERCPU_ARRAY ||
		      k.map_type == BPF_MAP_TYPE_PERCPU_HASH ||
		      k.map_type == BPF_MAP_TYPE_LRU_PERCPU_HASH;
	std::vector<uint64_t> value(percpu ? size_t(cpus) * 2 : 1, 0);
	auto elem = [&](int cmd, const void *key, uint64_t flags) {
		bpf_attr a;
		memset(&a, 0, sizeof(a));
		a.map_fd = uint32_t(fd);
		a.key = uint64_t(uintptr_t(key));
		a.value = uint64_t(uintptr_t(value.data()));
		a.flags = flags;
		return sys_bpf(cmd, &a);
	};
	struct lpm_key {
		uint32_t prefixlen;
		uint32_t addr;
	};
	// Fill: every key (lookup kinds), every value (bloom), nothing (queue
	// and stack run push + pop on an empty map).
	for (uint32_t i = 0; i < n && k.op != kind::PUSH_POP; i++) {
		value[0] = i;
		long rc;
		if (k.op == kind::LPM) {
			lpm_key key{ 32, i };
			rc = elem(BPF_MAP_UPDATE_ELEM, &key, BPF_ANY);
		} else if (k.op == kind::PEEK) {
			rc = elem(BPF_MAP_UPDATE_ELEM, nullptr, BPF_ANY);
		} else {
			rc = elem(BPF_MAP_UPDATE_ELEM, &i, BPF_ANY);
		}
		if (rc != 0) {
			printf("{\"skip\":\"filling the kernel map failed: %s\"}\n", strerror(errno));
			return 0;
		}
	}
	// From user space: one bpf() call per operation (push + pop: two).
	const uint64_t ops = 200000;
	std::vector<double> samples;
	for (int r = 0; r < 5; r++) {
		double t0 = now_ns();
		for (uint64_t i = 0; i < ops; i++) {
			uint32_t key = uint32_t((i * uint64_t(WALK_STEP)) & (n - 1));
			switch (k.op) {
			case kind::LOOKUP:
				(void)elem(BPF_MAP_LOOKUP_ELEM, &key, 0);
				break;
			case kind::LPM: {
				lpm_key lk{ 32, key };
				(void)elem(BPF_MAP_LOOKUP_ELEM, &lk, 0);
				break;
			}
			case kind::PEEK:
				value[0] = key;
				(void)elem(BPF_MAP_LOOKUP_ELEM, nullptr, 0);
				break;
			case kind::PUSH_POP:
				value[0] = key;
				(void)elem(BPF_MAP_UPDATE_ELEM, nullptr, BPF_ANY);
				(void)elem(BPF_MAP_LOOKUP_AND_DELETE_ELEM, nullptr, 0);
				break;
			}
		}
		samples.push_back((now_ns() - t0) / double(ops));
	}
	std::sort(samples.begin(), samples.end());
	double sys = samples[samples.size() / 2];
	std::string why;
	double prog = prog_ns(k, fd, n, why);
	close(fd);
	printf("{\"sys_ns\":%.2f", sys);
	if (prog >= 0)
		printf(",\"prog_ns\":%.2f}\n", prog);
	else
		printf(",\"prog_skip\":\"%s\"}\n", why.c_str());
	return 0;
}
