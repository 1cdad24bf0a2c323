// maps_kernel_bench: the baseline of bench/suites/maps.mjs, the Linux
// kernel's own map behind the bpf(2) system call, on the same map shape as
// the bpftime variant it is compared with.
//
//   maps_kernel_bench <array|hash> <max_entries> <value_size> <ops>
//
// Creates the map (BPF_MAP_CREATE), fills keys 0 .. max_entries-1, then
// times `ops` BPF_MAP_LOOKUP_ELEM and `ops` BPF_MAP_UPDATE_ELEM (BPF_ANY on
// existing keys, spread over the map the way the bpftime program spreads
// them), and one BPF_MAP_LOOKUP_BATCH walk of the whole map (per entry).
// Each timing is the median of 7 rounds. Then, for reference, the same
// operations from a kernel program (kernel_prog_ns). Prints one JSON line:
//   {"lookup_ns":…, "update_ns":…, "batch_entry_ns":…, "prog_lookup_ns":…,
//    "prog_update_ns":…}
// or, when bpf() is refused (EPERM without CAP_BPF, a seccomp filter, a
// kernel without BPF_SYSCALL), {"skip":"<reason>"} and exits 0.
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

template <class F> double median_ns_per_op(F &&round, uint64_t ops)
{
	std::vector<double> samples;
	round(); // warm-up
	for (int i = 0; i < 7; i++) {
		double t0 = now_ns();
		round();
		samples.push_back((now_ns() - t0) / double(ops));
	}
	std::sort(samples.begin(), samples.end());
	return samples[samples.size() / 2];
}

// The key of operation i: the walk the bpftime program makes, k += an odd
// constant modulo n (n a power of two), so successive operations touch
// unrelated entries and every entry is visited.
uint32_t key_of(uint64_t i, uint32_t n)
{
	return uint32_t((i * 1540483477ULL) & (n - 1));
}

// A kernel program doing what the bpftime program does, 256 operations a
// run from a random start of the same key walk, timed by
// BPF_PROG_TEST_RUN: the kernel's own in-program cost, for reference. The
// bounded loop (constant trip count) is what the kernel's verifier takes.
// Returns ns per operation, or a negative errno.
constexpr int32_t WALK_STEP = 1540483477;
constexpr int PROG_OPS = 256;

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

double kernel_prog_ns(int map_fd, uint32_t n, bool update, std::string &why)
{
	std::vector<bpf_insn> p;
	auto add = [&](bpf_insn i) { p.push_back(i); };
	add(insn(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_get_prandom_u32));
	add(insn(BPF_ALU64 | BPF_MOV | BPF_X, 7, 0, 0, 0)); // r7 = base
	add(insn(BPF_ALU64 | BPF_MOV | BPF_K, 6, 0, 0, 0)); // r6 = i
	add(insn(BPF_ALU64 | BPF_MOV | BPF_K, 8, 0, 0, 0)); // r8 = sum
	size_t loop = p.size();
	add(insn(BPF_ALU64 | BPF_MOV | BPF_X, 1, 6, 0, 0));
	add(insn(BPF_ALU64 | BPF_MUL | BPF_K, 1, 0, 0, WALK_STEP));
	add(insn(BPF_ALU64 | BPF_ADD | BPF_X, 1, 7, 0, 0));
	add(insn(BPF_ALU64 | BPF_AND | BPF_K, 1, 0, 0, int32_t(n - 1)));
	add(insn(BPF_STX | BPF_MEM | BPF_W, 10, 1, -4, 0));
	if (update)
		add(insn(BPF_STX | BPF_MEM | BPF_DW, 10, 1, -16, 0));
	add(insn(BPF_LD | BPF_IMM | BPF_DW, 1, BPF_PSEUDO_MAP_FD, 0, map_fd));
	add(insn(0, 0, 0, 0, 0));
	add(insn(BPF_ALU64 | BPF_MOV | BPF_X, 2, 10, 0, 0));
	add(insn(BPF_ALU64 | BPF_ADD | BPF_K, 2, 0, 0, -4));
	if (update) {
		add(insn(BPF_ALU64 | BPF_MOV | BPF_X, 3, 10, 0, 0));
		add(insn(BPF_ALU64 | BPF_ADD | BPF_K, 3, 0, 0, -16));
		add(insn(BPF_ALU64 | BPF_MOV | BPF_K, 4, 0, 0, BPF_ANY));
		add(insn(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_map_update_elem));
		add(insn(BPF_ALU64 | BPF_ADD | BPF_X, 8, 0, 0, 0));
	} else {
		add(insn(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_map_lookup_elem));
		add(insn(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, 2, 0));
		add(insn(BPF_LDX | BPF_MEM | BPF_DW, 1, 0, 0, 0));
		add(insn(BPF_ALU64 | BPF_ADD | BPF_X, 8, 1, 0, 0));
	}
	add(insn(BPF_ALU64 | BPF_ADD | BPF_K, 6, 0, 0, 1));
	add(insn(BPF_JMP | BPF_JLT | BPF_K, 6, 0,
		 int16_t(int64_t(loop) - int64_t(p.size()) - 1), PROG_OPS));
	add(insn(BPF_ALU64 | BPF_MOV | BPF_X, 0, 8, 0, 0));
	add(insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0));

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
		return -errno;
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
			return -errno;
		}
		if (update && t.test.retval != 0) {
			why = "the kernel program's updates failed";
			close(prog);
			return -EINVAL;
		}
		if (r > 0) // the first run warms up
			samples.push_back(double(t.test.duration) / PROG_OPS);
	}
	close(prog);
	std::sort(samples.begin(), samples.end());
	return samples[samples.size() / 2];
}

} // namespace

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr,
			"usage: %s <array|hash> <max_entries> <value_size> <ops>\n",
			argv[0]);
		return 2;
	}
	std::string type = argv[1];
	uint32_t n = uint32_t(strtoul(argv[2], nullptr, 10));
	uint32_t value_size = uint32_t(strtoul(argv[3], nullptr, 10));
	uint64_t ops = strtoull(argv[4], nullptr, 10);
	if (n == 0 || (n & (n - 1)) != 0) {
		fprintf(stderr, "max_entries must be a power of two\n");
		return 2;
	}

	bpf_attr attr;
	memset(&attr, 0, sizeof(attr));
	attr.map_type = type == "array" ? BPF_MAP_TYPE_ARRAY : BPF_MAP_TYPE_HASH;
	attr.key_size = 4;
	attr.value_size = value_size;
	attr.max_entries = n;
	strncpy(attr.map_name, "bench", sizeof(attr.map_name) - 1);
	int fd = int(sys_bpf(BPF_MAP_CREATE, &attr));
	if (fd < 0) {
		printf("{\"skip\":\"bpf(BPF_MAP_CREATE) refused: %s\"}\n",
		       strerrorname_np(errno) ? strerrorname_np(errno) :
						strerror(errno));
		return 0;
	}

	std::vector<uint8_t> value(value_size, 0);
	auto elem = [&](int cmd, uint32_t key, uint64_t flags) {
		bpf_attr a;
		memset(&a, 0, sizeof(a));
		a.map_fd = uint32_t(fd);
		a.key = uint64_t(uintptr_t(&key));
		a.value = uint64_t(uintptr_t(value.data()));
		a.flags = flags;
		return sys_bpf(cmd, &a);
	};
	for (uint32_t k = 0; k < n; k++) {
		memcpy(value.data(), &k, std::min<size_t>(4, value_size));
		if (elem(BPF_MAP_UPDATE_ELEM, k, BPF_ANY) != 0) {
			printf("{\"skip\":\"filling the kernel map failed: %s\"}\n",
			       strerror(errno));
			return 0;
		}
	}

	uint64_t failures = 0;
	double lookup = median_ns_per_op(
		[&] {
			for (uint64_t i = 0; i < ops; i++)
				failures += elem(BPF_MAP_LOOKUP_ELEM, key_of(i, n), 0) != 0;
		},
		ops);
	double update = median_ns_per_op(
		[&] {
			for (uint64_t i = 0; i < ops; i++)
				failures += elem(BPF_MAP_UPDATE_ELEM, key_of(i, n), BPF_ANY) != 0;
		},
		ops);

	// BPF_MAP_LOOKUP_BATCH over every entry, 65536 per call (the batch
	// size of the Node bulk read it is compared with).
	const uint32_t chunk = 65536;
	std::vector<uint8_t> keys(size_t(chunk) * 4), values(size_t(chunk) * value_size);
	uint64_t batch_read = 0;
	double batch = median_ns_per_op(
		[&] {
			uint32_t in_batch = 0, out_batch = 0;
			bool first = true;
			batch_read = 0;
			for (;;) {
				bpf_attr a;
				memset(&a, 0, sizeof(a));
				a.batch.map_fd = uint32_t(fd);
				a.batch.in_batch = first ? 0 : uint64_t(uintptr_t(&in_batch));
				a.batch.out_batch = uint64_t(uintptr_t(&out_batch));
				a.batch.keys = uint64_t(uintptr_t(keys.data()));
				a.batch.values = uint64_t(uintptr_t(values.data()));
				a.batch.count = chunk;
				long rc = sys_bpf(BPF_MAP_LOOKUP_BATCH, &a);
				batch_read += a.batch.count;
				if (rc != 0)
					break; // ENOENT: the walk is done
				in_batch = out_batch;
				first = false;
			}
		},
		n);
	std::string why_lookup, why_update;
	double prog_lookup = kernel_prog_ns(fd, n, false, why_lookup);
	double prog_update = kernel_prog_ns(fd, n, true, why_update);
	close(fd);
	if (failures) {
		printf("{\"skip\":\"%llu kernel map operations failed\"}\n",
		       (unsigned long long)failures);
		return 0;
	}
	printf("{\"lookup_ns\":%.2f,\"update_ns\":%.2f,\"batch_entry_ns\":%.2f,"
	       "\"batch_entries\":%llu",
	       lookup, update, batch, (unsigned long long)batch_read);
	if (prog_lookup >= 0)
		printf(",\"prog_lookup_ns\":%.2f", prog_lookup);
	else
		printf(",\"prog_skip\":\"%s\"", why_lookup.c_str());
	if (prog_update >= 0)
		printf(",\"prog_update_ns\":%.2f", prog_update);
	else
		printf(",\"prog_update_skip\":\"%s\"", why_update.c_str());
	printf("}\n");
	return 0;
}
