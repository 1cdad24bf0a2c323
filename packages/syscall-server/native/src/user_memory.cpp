#include "user_memory.hpp"

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace bpftime::syscall_server {
namespace {

std::atomic<uint64_t> g_generation{ 1 };

struct area {
	uint64_t start = 0, end = 0;
	bool readable = false, writable = false;
};

constexpr int CACHE = 8;
struct thread_cache {
	uint64_t generation = 0;
	area areas[CACHE];
	unsigned next = 0;
	unsigned last = 0;
};
thread_local thread_cache t_cache;

// Raw system calls: this runs inside interposed libc entries, and must not
// re-enter them (close() and open() are interposed).
long raw_open(const char *path)
{
	return syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
}

uint64_t parse_hex(const char *&s, const char *end)
{
	uint64_t v = 0;
	for (; s < end; s++) {
		char c = *s;
		int d;
		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else
			break;
		v = v << 4 | uint64_t(d);
	}
	return v;
}

// The area of /proc/self/maps that holds p, or one with start == end.
area find_area(uint64_t p)
{
	area found;
	long fd = raw_open("/proc/self/maps");
	if (fd < 0)
		return found;
	// Lines are read in chunks; a line cut by the chunk's end is carried
	// to the next chunk.
	char buf[8192];
	size_t have = 0;
	bool done = false;
	while (!done) {
		long n = syscall(SYS_read, fd, buf + have, sizeof(buf) - have);
		if (n <= 0)
			break;
		have += size_t(n);
		size_t pos = 0;
		for (;;) {
			char *nl = static_cast<char *>(
				memchr(buf + pos, '\n', have - pos));
			if (!nl)
				break;
			const char *s = buf + pos, *e = nl;
			uint64_t start = parse_hex(s, e);
			if (s < e && *s == '-')
				s++;
			uint64_t end = parse_hex(s, e);
			if (s + 3 < e && *s == ' ' && p >= start && p < end) {
				found.start = start;
				found.end = end;
				found.readable = s[1] == 'r';
				found.writable = s[2] == 'w';
				done = true;
				break;
			}
			pos = size_t(nl - buf) + 1;
		}
		memmove(buf, buf + pos, have - pos);
		have -= pos;
		if (have == sizeof(buf))
			break; // a line longer than the buffer: not a maps line
	}
	syscall(SYS_close, fd);
	return found;
}

bool check(uint64_t p, size_t n, bool write) noexcept
{
	if (n == 0)
		return true;
	if (p < 4096 || p + n < p || p + n > 0x800000000000ull)
		return false;
	thread_cache &c = t_cache;
	uint64_t gen = g_generation.load(std::memory_order_acquire);
	if (c.generation != gen) {
		c = thread_cache{};
		c.generation = gen;
	}
	uint64_t at = p, end = p + n;
	while (at < end) {
		// The area of the last hit first: a tool's attrs, keys and
		// values are mostly on its stack.
		const area *hit = nullptr;
		const area &last = c.areas[c.last];
		if (at >= last.start && at < last.end)
			hit = &last;
		for (unsigned i = 0; !hit && i < CACHE; i++)
			if (at >= c.areas[i].start && at < c.areas[i].end) {
				hit = &c.areas[i];
				c.last = i;
			}
		area fresh;
		if (!hit) {
			fresh = find_area(at);
			if (fresh.start == fresh.end)
				return false;
			c.last = c.next++ % CACHE;
			c.areas[c.last] = fresh;
			hit = &fresh;
		}
		if (!hit->readable || (write && !hit->writable))
			return false;
		at = hit->end;
	}
	return true;
}

} // namespace

bool user_readable(uint64_t p, size_t n) noexcept
{
	return check(p, n, false);
}

bool user_writable(uint64_t p, size_t n) noexcept
{
	return check(p, n, true);
}

int copy_from_user(void *dst, uint64_t src, size_t n) noexcept
{
	if (!check(src, n, false))
		return -EFAULT;
	if (n)
		memcpy(dst, reinterpret_cast<const void *>(src), n);
	return 0;
}

int copy_to_user(uint64_t dst, const void *src, size_t n) noexcept
{
	if (!check(dst, n, true))
		return -EFAULT;
	if (n)
		memcpy(reinterpret_cast<void *>(dst), src, n);
	return 0;
}

long string_from_user(char *dst, uint64_t src, size_t max) noexcept
{
	// Byte by byte through the area check: the string may end just
	// before an unmapped page.
	for (size_t i = 0; i < max; i++) {
		if (!check(src + i, 1, false))
			return -EFAULT;
		dst[i] = *reinterpret_cast<const char *>(src + i);
		if (!dst[i])
			return long(i);
	}
	return -E2BIG;
}

void user_memory_changed() noexcept
{
	g_generation.fetch_add(1, std::memory_order_acq_rel);
}

} // namespace bpftime::syscall_server
