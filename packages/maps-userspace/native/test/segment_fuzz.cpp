// segment_fuzz: damaged copies of a populated segment, read the way the CLI
// and the API read one (issue 17, item 3).
//
//   bpftime-segment-fuzz <seed> <mutants> [keep_dir] [regions]
//
// regions: a comma-separated list of region names (their first word or
// words: "segment header,slot table"); all regions when absent or empty.
// Builds a 2 MiB segment with a registry of 64 ids holding hash maps (with
// and without preallocation), arrays, programs using them, uprobe perf
// events and links, with entries. For each mutant: copies the file to a new
// segment, changes 1 to 8 bytes in one region drawn from the seed (the
// segment header, the allocator's header, the registry object, the slot
// table, a handler object, a map state, anywhere), and reads the copy in a
// child process: open the segment, open the registry without rolling
// anything back, list it, and for each map walk its keys (bounded) and look
// each up (`bpftime map list` and `map dump`). The child has 3 s.
//
// Outcomes: works (everything read), refused (an error naming what is
// wrong: the open, the list or one map), crashed (a signal), hung (the
// 3 s ran out), and, apart, whether the reader wrote the file. Prints one
// line per crash, hang or write (the region, offset and bytes), and
//   mutants <n> works <w> refused <r> crashed <c> hung <h> wrote <x>
// Exit status 0 when nothing crashed, hung or wrote. A failing mutant's file
// is copied into keep_dir when given.
#include <bpftime/handlers/bpf_defs.hpp>
#include <bpftime/handlers/handler.hpp>
#include <bpftime/handlers/registry.hpp>
#include <bpftime/maps_userspace/maps_userspace.hpp>
#include <bpftime/shm/segment.hpp>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <algorithm>
#include <random>
#include <string>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

using namespace bpftime;
using namespace bpftime::handlers;

namespace {

constexpr uint64_t SEGMENT_BYTES = 2 << 20;
constexpr unsigned READER_SECONDS = 3;

vm::insn I(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm)
{
	return vm::insn{ code, dst, src, off, imm };
}

// Looks key 0 up in map_id; r0 = 0.
std::vector<vm::insn> lookup_prog(uint32_t map_id)
{
	return {
		I(0x62, 10, 0, -4, 0),
		I(0xbf, 2, 10, 0, 0),
		I(0x07, 2, 0, 0, -4),
		I(0x18, 1, vm::BPF_PSEUDO_MAP_FD, 0, int32_t(map_id)),
		I(0, 0, 0, 0, 0),
		I(0x85, 0, 0, 0, 1),
		I(0xb7, 0, 0, 0, 0),
		I(0x95, 0, 0, 0, 0),
	};
}

struct region {
	std::string name;
	uint64_t start, len; // file offsets
};

bool populate(registry &reg)
{
	std::vector<uint32_t> maps;
	for (int i = 0; i < 6; i++) {
		map_spec s;
		s.type = i % 3 == 2 ? BPF_MAP_TYPE_ARRAY : BPF_MAP_TYPE_HASH;
		s.flags = i % 3 == 1 ? BPF_F_NO_PREALLOC : 0;
		s.key_size = 4;
		s.value_size = 8 + 8 * uint32_t(i % 2);
		s.max_entries = 16 + 8 * uint32_t(i);
		s.name = "fuzz" + std::to_string(i);
		auto h = reg.create_map(s);
		if (!h) {
			fprintf(stderr, "create map: %s\n", h.error().message.c_str());
			return false;
		}
		maps.push_back(h->id);
		auto m = reg.map(h->id);
		if (!m)
			return false;
		for (uint32_t k = 0; k < 12; k++) {
			uint64_t v[2] = { k * 7 + 1, k };
			(void)(*m)->update(&k, v, BPF_ANY);
		}
	}
	for (int i = 0; i < 3; i++) {
		prog_spec ps;
		ps.type = BPF_PROG_TYPE_KPROBE;
		ps.name = "fuzz" + std::to_string(i);
		ps.license = "GPL";
		ps.insns = lookup_prog(maps[size_t(i)]);
		auto p = reg.create_prog(ps);
		perf_event_spec pe;
		pe.path = "/proc/self/exe";
		pe.symbol = "main";
		pe.offset = uint64_t(i);
		auto e = reg.create_perf_event(pe);
		if (!p || !e) {
			fprintf(stderr, "create prog or perf event: %s\n",
				(!p ? p.error() : e.error()).message.c_str());
			return false;
		}
		link_spec ls;
		ls.prog_id = p->id;
		ls.target_id = e->id;
		if (!reg.create_link(ls))
			return false;
	}
	return true;
}

// The regions of the file, from the registry's own records.
std::vector<region> regions_of(registry &reg)
{
	std::vector<region> out;
	shm::segment &seg = reg.segment();
	auto *base = static_cast<const char *>(seg.base());
	const char *mgr = reinterpret_cast<const char *>(seg.manager());
	out.push_back({ "segment header", 0, shm::HEADER_SIZE });
	out.push_back({ "allocator header", shm::HEADER_SIZE, 256 });
	auto *rs = seg.find<registry_shared>(REGISTRY_OBJECT_NAME);
	out.push_back({ "registry object", uint64_t(reinterpret_cast<const char *>(rs) - base),
			sizeof(registry_shared) });
	uint64_t slots = uint64_t(mgr - base) + uint64_t(rs->slots_offset);
	out.push_back({ "slot table", slots, uint64_t(rs->capacity) * sizeof(slot) });
	auto *sl = reinterpret_cast<const slot *>(base + slots);
	for (uint32_t i = 0; i < rs->capacity; i++) {
		if (word_kind(sl[i].word.load()) == handler_kind::empty)
			continue;
		int64_t obj = sl[i].object.load();
		uint64_t at = uint64_t(mgr - base) + uint64_t(obj);
		out.push_back({ "handler object " + std::to_string(i), at, sizeof(handler_object) });
		auto *o = reinterpret_cast<const handler_object *>(base + at);
		if (auto *m = std::get_if<map_handler>(&o->value))
			out.push_back({ "map state " + std::to_string(i),
					uint64_t(mgr - base) + uint64_t(m->state_offset), 152 });
	}
	out.push_back({ "anywhere", 0, SEGMENT_BYTES });
	return out;
}

bool write_file(const std::string &path, const std::vector<char> &bytes)
{
	int fd = open(path.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
	if (fd < 0)
		return false;
	size_t done = 0;
	while (done < bytes.size()) {
		ssize_t n = write(fd, bytes.data() + done, bytes.size() - done);
		if (n <= 0) {
			close(fd);
			return false;
		}
		done += size_t(n);
	}
	close(fd);
	return true;
}

bool read_file(const std::string &path, std::vector<char> &bytes)
{
	int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	bytes.assign(SEGMENT_BYTES, 0);
	size_t done = 0;
	while (done < bytes.size()) {
		ssize_t n = read(fd, bytes.data() + done, bytes.size() - done);
		if (n <= 0)
			break;
		done += size_t(n);
	}
	close(fd);
	return done == bytes.size();
}

// In the child: what `bpftime map list` and `map dump` do. 0 when all was
// read, 3 when something was refused.
void read_as_cli_body(const std::string &name)
{
	auto s = shm::segment::open(name);
	if (!s)
		_exit(3);
	auto r = registry::open(std::move(*s), false);
	if (!r)
		_exit(3);
	registry &reg = **r;
	int refused = 0;
	for (const handler_info &d : reg.list()) {
		if (d.kind != handler_kind::map)
			continue;
		auto m = reg.map(d.h.id);
		if (!m) {
			refused = 1;
			continue;
		}
		const map_instance &mi = **m;
		std::vector<uint8_t> key(mi.key_size), next(mi.key_size),
			value(std::max<uint32_t>(mi.user_value_size, 1));
		const void *at = nullptr;
		// One past max_entries: a walk that does not end is refused,
		// not followed.
		for (uint32_t n = 0; n <= std::min<uint32_t>(mi.max_entries, 1u << 16); n++) {
			auto st = mi.next_key(at, next.data());
			if (!st)
				break;
			key = next;
			at = key.data();
			(void)mi.lookup(key.data(), value.data());
		}
	}
	if (refused)
		_exit(3);
}

[[noreturn]] void read_as_cli(const std::string &name)
{
	alarm(READER_SECONDS);
	// The binding turns an exception into an error for the caller.
	try {
		read_as_cli_body(name);
	} catch (const std::exception &) {
		_exit(3);
	}
	_exit(0);
}

} // namespace

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s <seed> <mutants> [keep_dir]\n", argv[0]);
		return 2;
	}
	const uint64_t seed = strtoull(argv[1], nullptr, 0);
	const long mutants = strtol(argv[2], nullptr, 0);
	const char *keep = argc > 3 && *argv[3] ? argv[3] : nullptr;
	const std::string only = argc > 4 ? argv[4] : "";
	// Readers give up on a damaged lock word in a moment, not 10 s.
	setenv("BPFTIME_LOCK_TIMEOUT_MS", "300", 1);
	if (auto st = maps_userspace::register_all(); !st) {
		fprintf(stderr, "register: %s\n", st.error().message.c_str());
		return 2;
	}
	const std::string name = "bpftime_fuzz_" + std::to_string(getpid());
	const std::string copy = name + "_m";
	(void)shm::segment::remove(name);
	shm::segment_options o;
	o.name = name;
	o.size = SEGMENT_BYTES;
	auto seg = shm::segment::create(o);
	if (!seg) {
		fprintf(stderr, "%s\n", seg.error().message.c_str());
		return 2;
	}
	registry_options ro;
	ro.capacity = 64;
	auto made = registry::create(std::move(*seg), ro);
	if (!made || !populate(**made)) {
		(void)shm::segment::remove(name);
		return 2;
	}
	std::vector<region> regions;
	for (region &rg : regions_of(**made)) {
		bool wanted = only.empty();
		for (size_t at = 0; !wanted && at <= only.size();) {
			size_t end = only.find(',', at);
			if (end == std::string::npos)
				end = only.size();
			std::string w = only.substr(at, end - at);
			wanted = !w.empty() && rg.name.compare(0, w.size(), w) == 0;
			at = end + 1;
		}
		if (wanted)
			regions.push_back(rg);
	}
	if (regions.empty()) {
		fprintf(stderr, "no region matches '%s'\n", only.c_str());
		return 2;
	}
	std::vector<char> original;
	bool ok = read_file("/dev/shm/" + name, original);
	made->reset();
	(void)shm::segment::remove(name);
	if (!ok) {
		fprintf(stderr, "cannot read the segment back\n");
		return 2;
	}

	std::mt19937_64 rng(seed);
	long works = 0, refused = 0, crashed = 0, hung = 0, wrote = 0;
	std::vector<char> mutant, after;
	for (long i = 0; i < mutants; i++) {
		const region &rg = regions[rng() % regions.size()];
		mutant = original;
		uint64_t len = 1 + rng() % 8;
		uint64_t span = rg.len > len ? rg.len - len : 1;
		uint64_t at = rg.start + rng() % span;
		if (at + len > mutant.size())
			at = mutant.size() - len;
		uint64_t how = rng() % 4;
		uint64_t word = how == 0 ? 0 : how == 1 ? ~uint64_t(0) : rng();
		for (uint64_t b = 0; b < len; b++)
			mutant[at + b] = how == 3 ? char(mutant[at + b] ^ char(1u << (rng() % 8)))
						   : char(word >> (8 * (b % 8)));
		if (!write_file("/dev/shm/" + copy, mutant)) {
			fprintf(stderr, "cannot write the mutant\n");
			return 2;
		}
		fflush(stdout);
		pid_t pid = fork();
		if (pid == 0) {
			int devnull = open("/dev/null", O_WRONLY);
			dup2(devnull, 1);
			dup2(devnull, 2);
			read_as_cli(copy);
		}
		int status = 0;
		waitpid(pid, &status, 0);
		const char *bad = nullptr;
		if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
			works++;
		else if (WIFEXITED(status) && WEXITSTATUS(status) == 3)
			refused++;
		else if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM) {
			hung++;
			bad = "hung";
		} else {
			crashed++;
			bad = "crashed";
		}
		if (read_file("/dev/shm/" + copy, after) && after != mutant) {
			wrote++;
			if (!bad)
				bad = "wrote";
		}
		if (bad) {
			printf("%s: mutant %ld: %s +%llu, %llu bytes (status 0x%x)\n", bad, i,
			       rg.name.c_str(), (unsigned long long)(at - rg.start),
			       (unsigned long long)len, status);
			if (keep) {
				std::string dst = std::string(keep) + "/mutant_" + std::to_string(i);
				(void)write_file(dst, mutant);
			}
		}
		(void)shm::segment::remove(copy);
	}
	printf("mutants %ld works %ld refused %ld crashed %ld hung %ld wrote %ld\n", mutants,
	       works, refused, crashed, hung, wrote);
	return crashed == 0 && hung == 0 && wrote == 0 ? 0 : 1;
}
