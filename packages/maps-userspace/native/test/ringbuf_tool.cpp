// ringbuf_tool.cpp: ring buffer producers and consumers in processes of
// their own, for test/ringbuf.test.ts and bench/suites/ringbuf.mjs.
//
//   produce <segment> <map id> <records> [base]
//       runs a JIT program that writes records (u64 sequence numbers base,
//       base + 1, ...) with bpf_ringbuf_reserve/submit into the ring map, waiting
//       (sched_yield) while the ring is full, until all are written; prints
//       "produced N".
//   perf-produce <segment> <map id> <records> [base]
//       the same into slot 0 of a perf event array with
//       bpf_perf_event_output, retrying a sample the full buffer refused.
//   perf-output <records>
//       ns per bpf_perf_event_output of 8 bytes in a JIT program.
//   xproc <bpftime|kernel|mmap> <records> <ring bytes>
//       a consumer process (forked) and a producer (this one) on one ring:
//       bpftime's (a program run by the JIT, 256 records a run) or the
//       kernel's (the same program, BPF_PROG_TEST_RUN with repeat, consumed
//       through mmap + epoll as libbpf's ring_buffer__poll does; mmap:
//       bpftime's ring read by that same consumer code through an mmap of
//       the segment file in the kernel's layout). Prints one
//       JSON line: records, ns from the producer's start to the consumer's
//       last record, the consumer's sleeps, records lost (kernel: reserve
//       failed with the ring full) and whether every record came in order.
//   reserve <records> [ring bytes]
//       ns per bpf_ringbuf_reserve + store + bpf_ringbuf_submit in a JIT
//       program (a loop of <records> in one run, the ring (16 MiB by
//       default) drained between rounds; median of 9), and the kernel's
//       in-program cost of the same loop on a 16 MiB ring
//       (BPF_PROG_TEST_RUN duration), one JSON line.
#include <bpftime/handlers/program.hpp>
#include <bpftime/handlers/registry.hpp>
#include <bpftime/maps_userspace/maps_userspace.hpp>
#include <bpftime/maps_userspace/perf_consumer.hpp>
#include <bpftime/maps_userspace/ring_consumer.hpp>

#include <linux/bpf.h>
#include <sched.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <bpftime/common/log.hpp>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

using bpftime::result;
using bpftime::status;
using bpftime::handlers::instance_options;
using bpftime::handlers::map_spec;
using bpftime::handlers::prog_spec;
using bpftime::handlers::registry;
namespace shm = bpftime::shm;
namespace maps_userspace = bpftime::maps_userspace;
using bpftime::maps_userspace::ring_consumer;
using bpftime::vm::insn;

namespace {

template <class T> T need(result<T> r, const char *what)
{
	if (!r) {
		fprintf(stderr, "%s: %s\n", what, r.error().message.c_str());
		exit(2);
	}
	return std::move(*r);
}

void need(status s, const char *what)
{
	if (!s) {
		fprintf(stderr, "%s: %s\n", what, s.error().message.c_str());
		exit(2);
	}
}

uint64_t now_ns()
{
	timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}

insn I(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm)
{
	return insn{ code, dst, src, off, imm };
}

// ctx = { u64 base, u64 count }: writes base, base+1, ... base+count-1, one
// 8-byte record each; returns how many it wrote (fewer when the ring is
// full).
std::vector<insn> producer_prog(uint32_t map_id)
{
	std::vector<insn> p;
	p.push_back(I(0x79, 6, 1, 0, 0));  // r6 = *(u64 *)(r1 + 0)
	p.push_back(I(0x79, 7, 1, 8, 0));  // r7 = *(u64 *)(r1 + 8)
	p.push_back(I(0xb7, 8, 0, 0, 0));  // r8 = 0
	// loop (3):
	p.push_back(I(0x3d, 8, 7, 14, 0)); // if r8 >= r7 goto out
	p.push_back(I(0x18, 1, 1, 0, int32_t(map_id))); // r1 = map
	p.push_back(I(0, 0, 0, 0, 0));
	p.push_back(I(0xb7, 2, 0, 0, 8));   // r2 = 8
	p.push_back(I(0xb7, 3, 0, 0, 0));   // r3 = 0
	p.push_back(I(0x85, 0, 0, 0, 131)); // call bpf_ringbuf_reserve
	p.push_back(I(0x15, 0, 0, 8, 0));   // if r0 == 0 goto out
	p.push_back(I(0xbf, 1, 6, 0, 0));   // r1 = r6
	p.push_back(I(0x0f, 1, 8, 0, 0));   // r1 += r8
	p.push_back(I(0x7b, 0, 1, 0, 0));   // *(u64 *)(r0 + 0) = r1
	p.push_back(I(0xbf, 1, 0, 0, 0));   // r1 = r0
	p.push_back(I(0xb7, 2, 0, 0, 0));   // r2 = 0
	p.push_back(I(0x85, 0, 0, 0, 132)); // call bpf_ringbuf_submit
	p.push_back(I(0x07, 8, 0, 0, 1));   // r8 += 1
	p.push_back(I(0x05, 0, 0, -15, 0)); // goto loop
	// out:
	p.push_back(I(0xbf, 0, 8, 0, 0)); // r0 = r8
	p.push_back(I(0x95, 0, 0, 0, 0)); // exit
	return p;
}

// ctx = { u64 base, u64 count }: bpf_perf_event_output(ctx, map, 0, &seq,
// 8) for seq = base ... base+count-1 into slot 0; returns how many it
// wrote (fewer when the buffer is full: that sample is counted lost).
std::vector<insn> perf_producer_prog(uint32_t map_id)
{
	std::vector<insn> p;
	p.push_back(I(0xbf, 9, 1, 0, 0));   // r9 = r1
	p.push_back(I(0x79, 6, 9, 0, 0));   // r6 = *(u64 *)(r9 + 0)
	p.push_back(I(0x79, 7, 9, 8, 0));   // r7 = *(u64 *)(r9 + 8)
	p.push_back(I(0xb7, 8, 0, 0, 0));   // r8 = 0
	p.push_back(I(0x3d, 8, 7, 14, 0));  // loop: if r8 >= r7 goto out
	p.push_back(I(0xbf, 1, 6, 0, 0));   // r1 = r6
	p.push_back(I(0x0f, 1, 8, 0, 0));   // r1 += r8
	p.push_back(I(0x7b, 10, 1, -8, 0)); // *(u64 *)(r10 - 8) = r1
	p.push_back(I(0xbf, 1, 9, 0, 0));   // r1 = r9
	p.push_back(I(0x18, 2, 1, 0, int32_t(map_id))); // r2 = map
	p.push_back(I(0, 0, 0, 0, 0));
	p.push_back(I(0xb7, 3, 0, 0, 0));   // r3 = 0 (slot 0)
	p.push_back(I(0xbf, 4, 10, 0, 0));  // r4 = r10
	p.push_back(I(0x07, 4, 0, 0, -8));  // r4 += -8
	p.push_back(I(0xb7, 5, 0, 0, 8));   // r5 = 8
	p.push_back(I(0x85, 0, 0, 0, 25));  // call bpf_perf_event_output
	p.push_back(I(0x55, 0, 0, 2, 0));   // if r0 != 0 goto out
	p.push_back(I(0x07, 8, 0, 0, 1));   // r8 += 1
	p.push_back(I(0x05, 0, 0, -15, 0)); // goto loop
	p.push_back(I(0xbf, 0, 8, 0, 0));   // out: r0 = r8
	p.push_back(I(0x95, 0, 0, 0, 0));   // exit
	return p;
}

struct bpftime_ring {
	std::string name;
	std::unique_ptr<registry> reg;
	uint32_t map_id = 0, prog_id = 0;
};

std::unique_ptr<registry> open_registry(const std::string &name)
{
	need(maps_userspace::register_all(), "register map types");
	auto seg = need(shm::segment::open(name), "segment");
	return need(registry::open(std::move(seg)), "registry");
}

uint32_t make_producer(registry &reg, uint32_t map_id, bool perf = false)
{
	prog_spec ps;
	ps.type = BPF_PROG_TYPE_KPROBE;
	ps.name = perf ? "perf_produce" : "rb_produce";
	ps.license = "GPL";
	ps.insns = perf ? perf_producer_prog(map_id) : producer_prog(map_id);
	return need(reg.create_prog(ps), "producer program").id;
}

// Runs the producer program until `records` records are written.
uint64_t produce(registry &reg, uint32_t prog_id, uint64_t records,
		 uint64_t chunk, uint64_t base = 0)
{
	instance_options io;
	auto inst = need(reg.instantiate(prog_id, io), "instance");
	uint64_t done = 0, full = 0;
	while (done < records) {
		uint64_t ctx[2] = { base + done, std::min(chunk, records - done) };
		uint64_t n = need(inst->run(ctx, sizeof ctx), "run");
		done += n;
		if (n < ctx[1]) {
			full++;
			sched_yield();
		}
	}
	return full;
}

struct check {
	uint64_t next = 0, bad = 0;
	static int fn(void *c, const void *data, uint64_t size)
	{
		auto *k = static_cast<check *>(c);
		uint64_t v = ~0ull;
		if (size == 8)
			memcpy(&v, data, 8);
		if (v != k->next)
			k->bad++;
		k->next++;
		return 0;
	}
};

struct consumer_report {
	uint64_t end_ns, received, bad, sleeps;
};

// The child of xproc: opens the registry and consumes until `records`.
consumer_report consume_bpftime(const std::string &name, uint32_t map_id,
				uint64_t records, int ready_fd)
{
	auto reg = open_registry(name);
	auto m = need(reg->map(map_id), "map");
	auto region = need(m->mmap_region(), "mmap region");
	auto c = need(ring_consumer::attach(region.data(), region.size()),
		      "consumer");
	char one = 1;
	(void)!write(ready_fd, &one, 1);
	check k;
	while (k.next < records)
		c->poll(-1, UINT64_MAX, check::fn, &k);
	return { now_ns(), k.next, k.bad, c->sleeps() };
}

long sys_bpf(int cmd, bpf_attr *attr)
{
	return syscall(__NR_bpf, cmd, attr, sizeof(*attr));
}

bpf_insn K(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm)
{
	bpf_insn i;
	memset(&i, 0, sizeof i);
	i.code = code;
	i.dst_reg = dst & 0xf;
	i.src_reg = src & 0xf;
	i.off = off;
	i.imm = imm;
	return i;
}

constexpr int KERNEL_PER_RUN = 256;

// The producer loop for the kernel: KERNEL_PER_RUN records a run, each the
// loop index (the kernel cannot wait for room: a full ring loses records,
// which the consumer counts). A socket filter, for BPF_PROG_TEST_RUN.
int kernel_producer(int map_fd, std::string &why)
{
	std::vector<bpf_insn> p;
	auto add = [&](bpf_insn i) { p.push_back(i); };
	add(K(BPF_ALU64 | BPF_MOV | BPF_K, 6, 0, 0, 0)); // r6 = 0
	size_t loop = p.size();
	add(K(BPF_LD | BPF_IMM | BPF_DW, 1, BPF_PSEUDO_MAP_FD, 0, map_fd));
	add(K(0, 0, 0, 0, 0));
	add(K(BPF_ALU64 | BPF_MOV | BPF_K, 2, 0, 0, 8));
	add(K(BPF_ALU64 | BPF_MOV | BPF_K, 3, 0, 0, 0));
	add(K(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_ringbuf_reserve));
	add(K(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, 4, 0));
	add(K(BPF_STX | BPF_MEM | BPF_DW, 0, 6, 0, 0));
	add(K(BPF_ALU64 | BPF_MOV | BPF_X, 1, 0, 0, 0));
	add(K(BPF_ALU64 | BPF_MOV | BPF_K, 2, 0, 0, 0));
	add(K(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_ringbuf_submit));
	add(K(BPF_ALU64 | BPF_ADD | BPF_K, 6, 0, 0, 1));
	add(K(BPF_JMP | BPF_JLT | BPF_K, 6, 0,
	      int16_t(int64_t(loop) - int64_t(p.size()) - 1), KERNEL_PER_RUN));
	add(K(BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, 0));
	add(K(BPF_JMP | BPF_EXIT, 0, 0, 0, 0));
	static char log[1 << 16];
	const char license[] = "GPL";
	bpf_attr a;
	memset(&a, 0, sizeof a);
	a.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
	a.insns = uint64_t(uintptr_t(p.data()));
	a.insn_cnt = uint32_t(p.size());
	a.license = uint64_t(uintptr_t(license));
	int fd = int(sys_bpf(BPF_PROG_LOAD, &a));
	if (fd < 0) {
		// Again with the verifier's log, for the reason.
		a.log_buf = uint64_t(uintptr_t(log));
		a.log_size = sizeof log;
		a.log_level = 1;
		(void)sys_bpf(BPF_PROG_LOAD, &a);
		std::string l = log;
		why = std::string("BPF_PROG_LOAD: ") + strerror(errno) + ": " +
		      l.substr(l.size() > 300 ? l.size() - 300 : 0);
	}
	return fd;
}

int kernel_test_run(int prog, uint32_t repeat, uint32_t *duration)
{
	uint8_t packet[64] = {};
	bpf_attr t;
	memset(&t, 0, sizeof t);
	t.test.prog_fd = uint32_t(prog);
	t.test.data_in = uint64_t(uintptr_t(packet));
	t.test.data_size_in = sizeof packet;
	t.test.repeat = repeat;
	if (sys_bpf(BPF_PROG_TEST_RUN, &t) != 0)
		return -errno;
	if (duration)
		*duration = t.test.duration;
	return 0;
}

int kernel_ring(uint32_t size, std::string &why)
{
	bpf_attr a;
	memset(&a, 0, sizeof a);
	a.map_type = BPF_MAP_TYPE_RINGBUF;
	a.max_entries = size;
	int fd = int(sys_bpf(BPF_MAP_CREATE, &a));
	if (fd < 0)
		why = std::string("BPF_MAP_CREATE: ") + strerror(errno);
	return fd;
}

// libbpf's ring_buffer__poll on the kernel's mmap layout: the consumer page
// read-write, the producer page and the data (twice) read-only, epoll on
// the map fd for wake-ups.
//
// seg_fd >= 0: instead of the kernel's map, bpftime's ring as the
// syscall-server would map it for libbpf: the segment file at the ring's
// region offset, the consumer page read-write, then the producer page and
// the data read-only, the data mapped a second time right after; records
// are exact sequence numbers, and an empty ring is polled (no epoll).
consumer_report consume_kernel(int map_fd, uint32_t size, uint64_t records,
			       int ready_fd, int seg_fd = -1,
			       uint64_t seg_off = 0)
{
	long page = sysconf(_SC_PAGESIZE);
	std::atomic<uint64_t> *cons;
	uint8_t *prod_page;
	if (seg_fd >= 0) {
		cons = static_cast<std::atomic<uint64_t> *>(
			mmap(nullptr, size_t(page), PROT_READ | PROT_WRITE,
			     MAP_SHARED, seg_fd, off_t(seg_off)));
		size_t len = size_t(page) + 2 * size_t(size);
		prod_page = static_cast<uint8_t *>(mmap(
			nullptr, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS,
			-1, 0));
		if (prod_page != MAP_FAILED &&
		    (mmap(prod_page, size_t(page) + size, PROT_READ,
			  MAP_SHARED | MAP_FIXED, seg_fd,
			  off_t(seg_off + page)) == MAP_FAILED ||
		     mmap(prod_page + page + size, size, PROT_READ,
			  MAP_SHARED | MAP_FIXED, seg_fd,
			  off_t(seg_off + 2 * page)) == MAP_FAILED))
			prod_page = static_cast<uint8_t *>(MAP_FAILED);
	} else {
		cons = static_cast<std::atomic<uint64_t> *>(
			mmap(nullptr, size_t(page), PROT_READ | PROT_WRITE,
			     MAP_SHARED, map_fd, 0));
		prod_page = static_cast<uint8_t *>(
			mmap(nullptr, size_t(page) + 2 * size_t(size),
			     PROT_READ, MAP_SHARED, map_fd, page));
	}
	if (cons == MAP_FAILED || prod_page == MAP_FAILED) {
		perror("mmap of the ring");
		_exit(3);
	}
	auto *prod = reinterpret_cast<std::atomic<uint64_t> *>(prod_page);
	uint8_t *data = prod_page + page;
	int ep = epoll_create1(0);
	epoll_event ev{};
	ev.events = EPOLLIN;
	if (seg_fd < 0)
		epoll_ctl(ep, EPOLL_CTL_ADD, map_fd, &ev);
	char one = 1;
	(void)!write(ready_fd, &one, 1);
	check k;
	uint64_t sleeps = 0, mask = size - 1;
	while (k.next < records) {
		uint64_t c = cons->load(std::memory_order_acquire);
		bool got = false;
		for (;;) {
			uint64_t p = prod->load(std::memory_order_acquire);
			if (c >= p)
				break;
			uint8_t *hdr = data + (c & mask);
			uint32_t len =
				reinterpret_cast<std::atomic<uint32_t> *>(hdr)
					->load(std::memory_order_acquire);
			if (len & BPF_RINGBUF_BUSY_BIT)
				break;
			c += ((len & ~(BPF_RINGBUF_BUSY_BIT |
				       BPF_RINGBUF_DISCARD_BIT)) +
			      BPF_RINGBUF_HDR_SZ + 7) &
			     ~7u;
			if (!(len & BPF_RINGBUF_DISCARD_BIT)) {
				// The kernel's payload is the loop index of its
				// run; bpftime's the sequence number.
				uint64_t v;
				memcpy(&v, hdr + BPF_RINGBUF_HDR_SZ, 8);
				if (v != (seg_fd >= 0 ? k.next :
							k.next % KERNEL_PER_RUN))
					k.bad++;
				k.next++;
			}
			cons->store(c, std::memory_order_release);
			got = true;
		}
		if (!got && k.next < records && seg_fd >= 0) {
			sched_yield();
			sleeps++;
		} else if (!got && k.next < records) {
			epoll_event out;
			// Wakes when records arrive, or a lost record made
			// the producer stop: then the total never comes.
			int n = epoll_wait(ep, &out, 1, 2000);
			sleeps++;
			if (n == 0)
				break;
		}
	}
	return { now_ns(), k.next, k.bad, sleeps };
}

int xproc(const char *kind, uint64_t records, uint32_t size)
{
	bool kernel = strcmp(kind, "kernel") == 0;
	bool mapped = strcmp(kind, "mmap") == 0;
	uint64_t region_off = 0;
	std::string why;
	bpftime_ring r;
	int kmap = -1, kprog = -1;
	if (kernel) {
		kmap = kernel_ring(size, why);
		if (kmap >= 0)
			kprog = kernel_producer(kmap, why);
		if (kmap < 0 || kprog < 0) {
			printf("{\"skip\":\"%s\"}\n", why.c_str());
			return 0;
		}
	} else {
		need(maps_userspace::register_all(), "register");
		r.name = "bpftime_rbtool_" + std::to_string(getpid());
		(void)shm::segment::remove(r.name);
		shm::segment_options o;
		o.name = r.name;
		o.size = (uint64_t(size) + (16 << 20));
		auto seg = need(shm::segment::create(o), "segment");
		auto *base = static_cast<uint8_t *>(seg.base());
		r.reg = need(registry::create(std::move(seg)), "registry");
		map_spec s;
		s.type = BPF_MAP_TYPE_RINGBUF;
		s.name = "rb";
		s.max_entries = size;
		r.map_id = need(r.reg->create_map(s), "ring map").id;
		r.prog_id = make_producer(*r.reg, r.map_id);
		// Where the ring's region lies in the segment file.
		auto m = need(r.reg->map(r.map_id), "map");
		region_off = uint64_t(need(m->mmap_region(), "region").data() - base);
	}
	int ready[2], report[2];
	if (pipe(ready) || pipe(report))
		return 2;
	pid_t child = fork();
	if (child == 0) {
		consumer_report rep;
		if (kernel) {
			rep = consume_kernel(kmap, size, records, ready[1]);
		} else if (mapped) {
			int fd = shm_open(("/" + r.name).c_str(), O_RDWR, 0);
			if (fd < 0) {
				perror("shm_open of the segment");
				_exit(3);
			}
			rep = consume_kernel(-1, size, records, ready[1], fd,
					     region_off);
		} else {
			rep = consume_bpftime(r.name, r.map_id, records,
					      ready[1]);
		}
		(void)!write(report[1], &rep, sizeof rep);
		_exit(0);
	}
	char c;
	if (read(ready[0], &c, 1) != 1)
		return 2;
	uint64_t t0 = now_ns();
	uint64_t full = 0;
	if (kernel) {
		for (uint64_t done = 0; done < records;) {
			uint64_t runs = std::min<uint64_t>(
				(records - done) / KERNEL_PER_RUN, 4096);
			if (runs == 0)
				break;
			if (int e = kernel_test_run(kprog, uint32_t(runs),
						    nullptr)) {
				printf("{\"skip\":\"BPF_PROG_TEST_RUN: %s\"}\n",
				       strerror(-e));
				kill(child, SIGKILL);
				return 0;
			}
			done += runs * KERNEL_PER_RUN;
		}
	} else {
		full = produce(*r.reg, r.prog_id, records, KERNEL_PER_RUN);
	}
	uint64_t produced_ns = now_ns() - t0;
	consumer_report rep{};
	if (read(report[0], &rep, sizeof rep) != sizeof rep)
		return 2;
	waitpid(child, nullptr, 0);
	if (!kernel) {
		r.reg.reset();
		(void)shm::segment::remove(r.name);
	}
	printf("{\"kind\":\"%s\",\"records\":%llu,\"received\":%llu,"
	       "\"ns\":%llu,\"produce_ns\":%llu,\"sleeps\":%llu,"
	       "\"producer_full\":%llu,\"lost\":%llu,\"in_order\":%s}\n",
	       kind, (unsigned long long)records,
	       (unsigned long long)rep.received,
	       (unsigned long long)(rep.end_ns - t0),
	       (unsigned long long)produced_ns,
	       (unsigned long long)rep.sleeps, (unsigned long long)full,
	       (unsigned long long)(records - rep.received),
	       rep.bad == 0 && rep.received == records ? "true" : "false");
	return 0;
}

int count_only(void *c, const void *, uint64_t)
{
	++*static_cast<uint64_t *>(c);
	return 0;
}

int reserve_bench(uint64_t records, uint32_t size)
{
	need(maps_userspace::register_all(), "register");
	std::string name = "bpftime_rbtool_" + std::to_string(getpid());
	(void)shm::segment::remove(name);
	if (records * 16 > size / 2)
		records = size / 32;
	shm::segment_options o;
	o.name = name;
	o.size = uint64_t(size) + (16 << 20);
	auto reg = need(registry::create(need(shm::segment::create(o),
					      "segment")),
			"registry");
	map_spec s;
	s.type = BPF_MAP_TYPE_RINGBUF;
	s.name = "rb";
	s.max_entries = size;
	uint32_t map_id = need(reg->create_map(s), "ring map").id;
	uint32_t prog_id = make_producer(*reg, map_id);
	instance_options io;
	auto inst = need(reg->instantiate(prog_id, io), "instance");
	auto m = need(reg->map(map_id), "map");
	auto region = need(m->mmap_region(), "mmap region");
	auto c = need(ring_consumer::attach(region.data(), region.size()),
		      "consumer");
	std::vector<double> samples;
	// Rounds enough to wrap the ring twice before measuring (page faults
	// and cold lines), then 9 measured.
	int warm = int(std::max<uint64_t>(3, 2 * size / (records * 16)));
	for (int round = 0; round < warm + 9; round++) {
		uint64_t ctx[2] = { 0, records };
		uint64_t t0 = now_ns();
		uint64_t n = need(inst->run(ctx, sizeof ctx), "run");
		uint64_t t1 = now_ns();
		if (n != records) {
			fprintf(stderr, "wrote %llu of %llu\n",
				(unsigned long long)n,
				(unsigned long long)records);
			return 2;
		}
		uint64_t got = 0;
		while (got < records)
			c->poll(0, UINT64_MAX, count_only, &got);
		if (round >= warm)
			samples.push_back(double(t1 - t0) / double(records));
	}
	std::sort(samples.begin(), samples.end());
	double ours = samples[samples.size() / 2];
	c.reset();
	m.reset();
	inst.reset();
	reg.reset();
	(void)shm::segment::remove(name);

	std::string why;
	double kernel_ns = -1;
	// The kernel: the same loop (256 records a run) on a ring of the same
	// size, `records` a round, the consumer position moved to the
	// producer's between rounds through the ring's mmap (what a consumer
	// does), the same warm-up.
	int kmap = kernel_ring(size, why);
	int kprog = kmap >= 0 ? kernel_producer(kmap, why) : -1;
	if (kprog >= 0) {
		long page = sysconf(_SC_PAGESIZE);
		auto *kcons = static_cast<std::atomic<uint64_t> *>(
			mmap(nullptr, size_t(page), PROT_READ | PROT_WRITE,
			     MAP_SHARED, kmap, 0));
		auto *kprod = static_cast<std::atomic<uint64_t> *>(
			mmap(nullptr, size_t(page), PROT_READ, MAP_SHARED, kmap,
			     page));
		uint32_t runs = uint32_t(std::max<uint64_t>(1, records / KERNEL_PER_RUN));
		std::vector<double> ks;
		int warm = int(std::max<uint64_t>(3, 2 * size / (uint64_t(runs) * KERNEL_PER_RUN * 16)));
		for (int round = 0; kcons != MAP_FAILED && kprod != MAP_FAILED &&
				    round < warm + 9;
		     round++) {
			uint32_t d = 0;
			if (kernel_test_run(kprog, runs, &d) != 0)
				break;
			kcons->store(kprod->load());
			if (round >= warm)
				ks.push_back(double(d) / KERNEL_PER_RUN);
		}
		if (!ks.empty()) {
			std::sort(ks.begin(), ks.end());
			kernel_ns = ks[ks.size() / 2];
		}
	}
	if (kernel_ns < 0)
		printf("{\"reserve_submit_ns\":%.2f,\"kernel_skip\":\"%s\"}\n",
		       ours, why.c_str());
	else
		printf("{\"reserve_submit_ns\":%.2f,\"kernel_reserve_submit_ns\":%.2f}\n",
		       ours, kernel_ns);
	return 0;
}

void ignore_sample(void *, uint32_t, const void *, uint32_t)
{
}
void ignore_lost(void *, uint32_t, uint64_t)
{
}

// ns per bpf_perf_event_output of 8 bytes from a JIT program (a loop of
// `records` in one run, into a buffer big enough for them; drained between
// rounds; median of 9).
int perf_output_bench(uint64_t records)
{
	need(maps_userspace::register_all(), "register");
	std::string name = "bpftime_rbtool_" + std::to_string(getpid());
	(void)shm::segment::remove(name);
	// 4096 pages of 4 KiB: 16 MiB, 24-byte records.
	setenv("BPFTIME_PERF_BUFFER_PAGES", "4096", 1);
	if (records * 24 > (16u << 20) / 2)
		records = (16u << 20) / 48;
	shm::segment_options o;
	o.name = name;
	o.size = 64 << 20;
	auto reg = need(registry::create(need(shm::segment::create(o),
					      "segment")),
			"registry");
	map_spec s;
	s.type = BPF_MAP_TYPE_PERF_EVENT_ARRAY;
	s.name = "perf";
	s.key_size = 4;
	s.value_size = 4;
	s.max_entries = 1;
	uint32_t map_id = need(reg->create_map(s), "perf map").id;
	bpftime::handlers::perf_event_spec pe;
	pe.type = bpftime::handlers::perf_event_type::custom;
	pe.custom_name = "bpf_output";
	pe.custom_config = 10; // PERF_COUNT_SW_BPF_OUTPUT
	uint32_t ev = need(reg->create_perf_event(pe), "perf event").id;
	auto m = need(reg->map(map_id), "map");
	uint32_t key = 0;
	need(m->update(&key, &ev, 0), "slot 0");
	uint32_t prog_id = make_producer(*reg, map_id, true);
	instance_options io;
	auto inst = need(reg->instantiate(prog_id, io), "instance");
	auto region = need(m->mmap_region(), "mmap region");
	auto c = need(bpftime::maps_userspace::perf_consumer::attach(
			      region.data(), region.size()),
		      "consumer");
	std::vector<double> samples;
	for (int round = 0; round < 12; round++) {
		uint64_t ctx[2] = { 0, records };
		uint64_t t0 = now_ns();
		uint64_t n = need(inst->run(ctx, sizeof ctx), "run");
		uint64_t t1 = now_ns();
		if (n != records) {
			fprintf(stderr, "wrote %llu of %llu\n",
				(unsigned long long)n,
				(unsigned long long)records);
			return 2;
		}
		c->poll(0, ignore_sample, ignore_lost, nullptr);
		if (round > 2)
			samples.push_back(double(t1 - t0) / double(records));
	}
	std::sort(samples.begin(), samples.end());
	printf("{\"perf_output_ns\":%.2f}\n", samples[samples.size() / 2]);
	c.reset();
	m.reset();
	inst.reset();
	reg.reset();
	(void)shm::segment::remove(name);
	return 0;
}

} // namespace

int main(int argc, char **argv)
{
	// The producer programs loop as many times as their context says (up
	// to 1,000,000): no verifier bounds that, the kernel's refuses it too.
	// This tool tests the buffers, so its programs load with the
	// verifier's type discipline off.
	setenv("BPFTIME_VERIFIER", "off", 1);
	// Its callers read its output: keep the verifier's warning out.
	bpftime::log_configure(
		bpftime::log_options{ .level = bpftime::log_level::error,
				      .output = "" },
		bpftime::log_source{ "ringbuf-tool", true });
	if (argc >= 5 && !strcmp(argv[1], "produce")) {
		auto reg = open_registry(argv[2]);
		uint32_t map_id = uint32_t(strtoul(argv[3], nullptr, 10));
		uint64_t records = strtoull(argv[4], nullptr, 10);
		uint64_t base = argc >= 6 ? strtoull(argv[5], nullptr, 10) : 0;
		uint32_t prog = make_producer(*reg, map_id);
		uint64_t full = produce(*reg, prog, records, 256, base);
		(void)reg->release(prog);
		printf("produced %llu (ring full %llu times)\n",
		       (unsigned long long)records, (unsigned long long)full);
		return 0;
	}
	if (argc >= 5 && !strcmp(argv[1], "perf-produce")) {
		auto reg = open_registry(argv[2]);
		uint32_t map_id = uint32_t(strtoul(argv[3], nullptr, 10));
		uint64_t records = strtoull(argv[4], nullptr, 10);
		uint64_t base = argc >= 6 ? strtoull(argv[5], nullptr, 10) : 0;
		uint32_t prog = make_producer(*reg, map_id, true);
		uint64_t full = produce(*reg, prog, records, 256, base);
		(void)reg->release(prog);
		printf("produced %llu (buffer full %llu times)\n",
		       (unsigned long long)records, (unsigned long long)full);
		return 0;
	}
	if (argc >= 3 && !strcmp(argv[1], "perf-output"))
		return perf_output_bench(strtoull(argv[2], nullptr, 10));
	if (argc >= 5 && !strcmp(argv[1], "xproc"))
		return xproc(argv[2], strtoull(argv[3], nullptr, 10),
			     uint32_t(strtoul(argv[4], nullptr, 10)));
	if (argc >= 3 && !strcmp(argv[1], "reserve"))
		return reserve_bench(strtoull(argv[2], nullptr, 10),
				     argc >= 4 ? uint32_t(strtoul(argv[3], nullptr, 10)) :
						 1u << 24);
	fprintf(stderr,
		"usage: %s produce <segment> <map id> <records> [base]\n"
		"       %s perf-produce <segment> <map id> <records> [base]\n"
		"       %s xproc <bpftime|kernel|mmap> <records> <ring bytes>\n"
		"       %s reserve <records> [ring bytes]\n"
		"       %s perf-output <records>\n",
		argv[0], argv[0], argv[0], argv[0], argv[0]);
	return 2;
}
