// exec_memory.cpp: see exec_memory.hpp.
#include "exec_memory.hpp"

#include "../log.hpp"
#include "../symbols/proc_maps.hpp"

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstring>
#include <mutex>
#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <vector>

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

namespace bpftime::attach::detail {
namespace {

constexpr uint64_t CHUNK = 64 * 1024;
constexpr uint64_t PAGE = 4096;
// Lowest address we map at (above the usual vm.mmap_min_addr) and the top of
// the 47-bit user address space.
constexpr uint64_t LOW = 1ULL << 20;
constexpr uint64_t HIGH = (1ULL << 47) - PAGE;

struct chunk {
	uint64_t base;	// the executable view
	uint64_t used;
	uint8_t *write; // the writable view (== base without a memfd)
	bool dual;	// two views of a memfd
};

// Never destroyed (probes may be detached from static destructors).
struct pool {
	std::mutex lock;
	std::vector<chunk> chunks;
	size_t mapped = 0;
};

pool &g_pool()
{
	static pool *p = new pool();
	return *p;
}

uint64_t round_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

uint64_t distance(uint64_t a, uint64_t b)
{
	return a > b ? a - b : b - a;
}

// A chunk-sized free range inside [lo, hi] close to `near`, avoiding the
// growth areas of the brk heap and the main stack. 0 when none.
uint64_t find_gap(const std::vector<mapping> &maps, uint64_t lo, uint64_t hi,
		  uint64_t near)
{
	uint64_t best = 0, best_dist = UINT64_MAX;
	uint64_t prev_end = LOW;
	const mapping *prev = nullptr;
	for (size_t i = 0; i <= maps.size(); i++) {
		const mapping *next = i < maps.size() ? &maps[i] : nullptr;
		uint64_t g0 = std::max(prev_end, LOW);
		uint64_t g1 = next ? next->start : HIGH;
		// Leave room for the heap to grow up and the stack down.
		if (prev && prev->path == "[heap]")
			g0 += 64ULL << 20;
		if (next && next->path == "[stack]")
			g1 = g1 > (64ULL << 20) ? g1 - (64ULL << 20) : 0;
		g0 = std::max(round_up(g0, PAGE), round_up(lo, PAGE));
		g1 = std::min(g1, hi) & ~(PAGE - 1);
		if (g1 > g0 && g1 - g0 >= CHUNK) {
			// The candidate nearest `near` in [g0, g1 - CHUNK];
			// below `near` first, so that space above a program's
			// brk heap stays free.
			uint64_t c;
			if (near >= g1)
				c = g1 - CHUNK;
			else if (near <= g0)
				c = g0;
			else
				c = (near - CHUNK) & ~(PAGE - 1);
			if (c < g0)
				c = g0;
			uint64_t d = distance(c, near) + (c > near ? 1 : 0);
			if (d < best_dist) {
				best = c;
				best_dist = d;
			}
		}
		if (next) {
			prev_end = std::max(prev_end, next->end);
			prev = next;
		}
	}
	return best;
}

} // namespace

namespace {

// Maps a chunk at `at`: a memfd mapped twice, read-execute there and
// read-write elsewhere, so that no page is writable and executable at once
// (and policies that refuse such pages, SELinux's execmem, let it be).
// Where memfds are refused, one anonymous read-write-execute mapping.
// Returns the write view, nullptr (errno set) when `at` cannot be mapped.
uint8_t *map_chunk(uint64_t at, bool &dual)
{
	int fd = int(syscall(SYS_memfd_create, "bpftime-trampolines", MFD_CLOEXEC));
	if (fd >= 0 && ftruncate(fd, CHUNK) == 0) {
		void *x = mmap(reinterpret_cast<void *>(at), CHUNK, PROT_READ | PROT_EXEC,
			       MAP_SHARED | MAP_FIXED_NOREPLACE, fd, 0);
		if (x != MAP_FAILED && reinterpret_cast<uint64_t>(x) != at) {
			munmap(x, CHUNK);
			close(fd);
			errno = EEXIST;
			return nullptr;
		}
		if (x != MAP_FAILED) {
			void *w = mmap(nullptr, CHUNK, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
			close(fd);
			if (w != MAP_FAILED) {
				dual = true;
				return static_cast<uint8_t *>(w);
			}
			munmap(x, CHUNK);
		} else if (errno == EEXIST) {
			close(fd);
			return nullptr;
		} else {
			close(fd);
		}
	} else if (fd >= 0) {
		close(fd);
	}
	void *p = mmap(reinterpret_cast<void *>(at), CHUNK, PROT_READ | PROT_WRITE | PROT_EXEC,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (p == MAP_FAILED)
		return nullptr;
	if (reinterpret_cast<uint64_t>(p) != at) {
		// A kernel without MAP_FIXED_NOREPLACE took it as a hint.
		munmap(p, CHUNK);
		errno = EEXIST;
		return nullptr;
	}
	dual = false;
	return static_cast<uint8_t *>(p);
}

// A forked child shares the memfd pages of its parent: it must never
// write into them again, or it would change the parent's trampolines.
// Its later trampolines go into chunks of its own.
void after_fork_in_child() noexcept
{
	for (chunk &c : g_pool().chunks)
		if (c.dual)
			c.used = CHUNK;
}

} // namespace

result<exec_block> allocate_exec(size_t size, uint64_t lo, uint64_t hi, uint64_t near)
{
	size = round_up(size, 64);
	if (size > CHUNK)
		return fail(EINVAL, "trampoline of " + std::to_string(size) +
					    " bytes is larger than a chunk");
	std::lock_guard<std::mutex> guard(g_pool().lock);
	static bool atfork = pthread_atfork(nullptr, nullptr, after_fork_in_child) == 0;
	(void)atfork;
	for (chunk &c : g_pool().chunks) {
		uint64_t a = c.base + c.used;
		if (c.used + size <= CHUNK && a >= lo && a + size <= hi) {
			exec_block b{ reinterpret_cast<uint8_t *>(a), c.write + c.used };
			c.used += size;
			return b;
		}
	}
	for (int attempt = 0; attempt < 8; attempt++) {
		auto maps = read_maps();
		if (!maps)
			return std::move(maps).error();
		uint64_t at = find_gap(*maps, lo, hi, near);
		if (!at)
			break;
		bool dual = false;
		uint8_t *w = map_chunk(at, dual);
		if (!w) {
			if (errno == EEXIST)
				continue; // another thread mapped it meanwhile
			int e = errno;
			return fail(e, std::string("trampoline memory: mmap: ") + strerror(e));
		}
		g_pool().mapped += CHUNK;
		g_pool().chunks.push_back({ at, size, w, dual });
		log(attach_log, log_level::debug,
		    "trampoline chunk at 0x%" PRIx64 " (for code near 0x%" PRIx64 ")%s", at, near,
		    dual ? "" : ", read-write-execute (no memfd)");
		return exec_block{ reinterpret_cast<uint8_t *>(at), w };
	}
	char b[160];
	snprintf(b, sizeof(b),
		 "no free address range for a trampoline within reach of "
		 "0x%" PRIx64 " (window 0x%" PRIx64 "-0x%" PRIx64 ")",
		 near, lo, hi);
	return fail(ENOMEM, b);
}

size_t exec_memory_mapped() noexcept
{
	std::lock_guard<std::mutex> guard(g_pool().lock);
	return g_pool().mapped;
}

} // namespace bpftime::attach::detail
