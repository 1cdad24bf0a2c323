// kill_worker: processes killed at random moments while they change the
// registry, and what the survivors find (the kill loop of issue 17).
//
//   bpftime-kill-worker <segment> <seed> <kills> [max_delay_us]
//
// The segment must hold a registry; a missing one is created (16 MiB). For each kill: fork a child
// that creates maps (hash, hash without preallocation, array), programs
// using them, uprobe perf events and links, updates and deletes keys, and
// releases them, forever, in an order drawn from the seed; SIGKILL it after a
// random delay; then, in this process, take the registry mutex (recovering
// what the child left), check that every object left is whole (each map
// answers a lookup, each handler describes itself), release everything, and
// compare the segment's free space with what it was before the first child.
// Half of the children start by recovering after their predecessor
// themselves, so kills also land inside recovery.
//
// Prints one line per finding and a summary:
//   kills <n> leaked_kills <k> leaked_bytes <b> bad <x>
// Exit status: 0 when nothing leaked and nothing was bad, 1 otherwise, 2 for
// a usage or setup error. A crash of this process is a crash of an opener.
#include <bpftime/handlers/bpf_defs.hpp>
#include <bpftime/handlers/registry.hpp>
#include <bpftime/maps_userspace/maps_userspace.hpp>
#include <bpftime/shm/segment.hpp>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <vector>

using namespace bpftime;
using namespace bpftime::handlers;

namespace {

vm::insn I(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm)
{
	return vm::insn{ code, dst, src, off, imm };
}

// r0 = 0 after looking key 0 up in the map.
std::vector<vm::insn> lookup_prog(uint32_t map_id)
{
	return {
		I(0x62, 10, 0, -4, 0),	  // *(u32 *)(r10 - 4) = 0
		I(0xbf, 2, 10, 0, 0),	  // r2 = r10
		I(0x07, 2, 0, 0, -4),	  // r2 += -4
		I(0x18, 1, vm::BPF_PSEUDO_MAP_FD, 0, int32_t(map_id)),
		I(0, 0, 0, 0, 0),	  // lddw r1, map
		I(0x85, 0, 0, 0, 1),	  // call bpf_map_lookup_elem
		I(0xb7, 0, 0, 0, 0),	  // r0 = 0
		I(0x95, 0, 0, 0, 0),	  // exit
	};
}

[[noreturn]] void churn(registry &reg, uint64_t seed)
{
	std::mt19937_64 rng(seed);
	auto pick = [&](uint64_t n) { return n ? rng() % n : 0; };
	std::vector<uint32_t> maps, others;
	for (uint64_t round = 0;; round++) {
		uint64_t what = pick(12);
		std::string name = "k" + std::to_string(round % 100000);
		if (what < 4 || maps.empty()) {
			map_spec s;
			uint64_t t = pick(3);
			s.type = t == 2 ? BPF_MAP_TYPE_ARRAY : BPF_MAP_TYPE_HASH;
			s.flags = t == 1 ? BPF_F_NO_PREALLOC : 0;
			s.key_size = 4;
			s.value_size = 8 + 8 * uint32_t(pick(4));
			s.max_entries = 1 + uint32_t(pick(t == 2 ? 400 : 3000));
			s.name = name;
			if (auto h = reg.create_map(s))
				maps.push_back(h->id);
		} else if (what < 7) {
			auto m = reg.map(maps[pick(maps.size())]);
			if (m) {
				uint64_t v[4] = { round, 0, 0, 0 };
				for (int i = 0; i < 30; i++) {
					uint32_t k = uint32_t(pick(3000));
					(void)(*m)->update(&k, v, BPF_ANY);
					if (pick(2))
						(void)(*m)->remove(&k);
				}
			}
		} else if (what < 9) {
			prog_spec ps;
			ps.type = BPF_PROG_TYPE_KPROBE;
			ps.name = name;
			ps.license = "GPL";
			ps.insns = lookup_prog(maps[pick(maps.size())]);
			auto p = reg.create_prog(ps);
			perf_event_spec pe;
			pe.path = "/proc/self/exe";
			pe.symbol = "main_with_a_long_symbol_name_" + name;
			pe.offset = pick(64);
			auto e = reg.create_perf_event(pe);
			if (p && e) {
				link_spec ls;
				ls.prog_id = p->id;
				ls.target_id = e->id;
				if (auto l = reg.create_link(ls))
					others.push_back(l->id);
			}
			if (p)
				others.push_back(p->id);
			if (e)
				others.push_back(e->id);
		} else if (what < 10 && !others.empty()) {
			// Links, then programs and events, as they refer.
			for (uint32_t id : others)
				(void)reg.release(id);
			for (uint32_t id : others)
				(void)reg.release(id);
			others.clear();
		} else {
			size_t i = pick(maps.size());
			if (reg.release(maps[i]))
				maps.erase(maps.begin() + long(i));
		}
	}
}

// Releases every handler, users before what they use; false when one stays.
bool release_all(registry &reg)
{
	for (int pass = 0; pass < 4; pass++) {
		for (const handler_info &d : reg.list())
			(void)reg.release(d.h.id);
		if (reg.size() == 0)
			return true;
	}
	return false;
}

// Every object left is whole: each map answers a lookup.
int check_whole(registry &reg)
{
	int bad = 0;
	for (const handler_info &d : reg.list()) {
		if (d.kind != handler_kind::map)
			continue;
		auto m = reg.map(d.h.id);
		if (!m) {
			printf("bad: map id %u: %s\n", d.h.id,
			       m.error().message.c_str());
			bad++;
			continue;
		}
		uint32_t k = 0;
		uint64_t v[4];
		auto r = (*m)->lookup(&k, v);
		if (!r && r.error().code != ENOENT) {
			printf("bad: map id %u: lookup: %s\n", d.h.id,
			       r.error().message.c_str());
			bad++;
		}
	}
	return bad;
}

void sleep_us(uint64_t us)
{
	timespec ts{ time_t(us / 1000000), long(us % 1000000) * 1000 };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
	}
}

} // namespace

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: %s <segment> <seed> <kills> [max_delay_us]\n",
			argv[0]);
		return 2;
	}
	const std::string name = argv[1];
	const uint64_t seed = strtoull(argv[2], nullptr, 0);
	const long kills = strtol(argv[3], nullptr, 0);
	const uint64_t max_delay = argc > 4 ? strtoull(argv[4], nullptr, 0) : 3000;
	if (auto st = maps_userspace::register_all(); !st) {
		fprintf(stderr, "register: %s\n", st.error().message.c_str());
		return 2;
	}
	auto seg = shm::segment::open(name);
	if (!seg && seg.error().code == ENOENT) {
		// A segment of its own, with a registry (removed by the caller).
		shm::segment_options o;
		o.name = name;
		o.size = 16 << 20;
		if (auto made = shm::segment::create(o); made) {
			if (auto r = registry::create(std::move(*made)); !r) {
				fprintf(stderr, "%s\n", r.error().message.c_str());
				return 2;
			}
			seg = shm::segment::open(name);
		}
	}
	if (!seg) {
		fprintf(stderr, "%s\n", seg.error().message.c_str());
		return 2;
	}
	auto opened = registry::open(std::move(*seg));
	if (!opened) {
		fprintf(stderr, "%s\n", opened.error().message.c_str());
		return 2;
	}
	auto &reg = **opened;
	if (!release_all(reg)) {
		fprintf(stderr, "the registry holds objects that cannot be released\n");
		return 2;
	}
	const uint64_t baseline = reg.segment().stats().free;
	std::mt19937_64 rng(seed);
	long leaked_kills = 0, bad = 0;
	uint64_t leaked_bytes = 0, last_free = baseline;
	for (long k = 0; k < kills; k++) {
		uint64_t child_seed = rng();
		uint64_t delay = rng() % (max_delay + 1);
		bool child_recovers = rng() % 2;
		if (!child_recovers)
			(void)reg.list(); // takes the mutex: recovers here
		fflush(stdout);
		pid_t pid = fork();
		if (pid < 0) {
			perror("fork");
			return 2;
		}
		if (pid == 0) {
			// Another process's view: its own mapping and registry.
			auto s = shm::segment::open(name);
			if (!s)
				_exit(20);
			auto r = registry::open(std::move(*s));
			if (!r)
				_exit(21);
			churn(**r, child_seed);
		}
		sleep_us(delay);
		kill(pid, SIGKILL);
		int status = 0;
		waitpid(pid, &status, 0);
		if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL) {
			printf("bad: kill %ld: the child ended by itself (status 0x%x)\n",
			       k, status);
			// What broke it is in the segment as it is now.
			printf("kills %ld leaked_kills %ld leaked_bytes %llu bad %ld\n",
			       k + 1, leaked_kills, (unsigned long long)leaked_bytes,
			       bad + 1);
			return 1;
		}
		// Every other kill, the next child recovers; here, check and
		// clean up only after kills this process recovers itself, so
		// that the child of the next round finds the dead one's record.
		if (child_recovers && k + 1 < kills)
			continue;
		bad += check_whole(reg);
		if (!release_all(reg)) {
			printf("bad: kill %ld: objects that cannot be released\n", k);
			bad++;
		}
		uint64_t free_now = reg.segment().stats().free;
		if (free_now != last_free) {
			leaked_kills++;
			if (free_now < last_free)
				leaked_bytes += last_free - free_now;
			printf("leak: kill %ld: free %llu, was %llu\n", k,
			       (unsigned long long)free_now,
			       (unsigned long long)last_free);
			last_free = free_now;
		}
	}
	printf("kills %ld leaked_kills %ld leaked_bytes %llu bad %ld baseline %llu\n",
	       kills, leaked_kills, (unsigned long long)leaked_bytes, bad,
	       (unsigned long long)baseline);
	return leaked_kills == 0 && bad == 0 ? 0 : 1;
}
