// helpers.cpp: the standard helpers (helpers.hpp) with the kernel's ids and
// semantics (kernel/bpf/helpers.c, kernel/trace/bpf_trace.c), acting on
// registry objects and on the calling process.
//
// Each helper is called by a program (JIT or interpreter) on the thread that
// runs it: no allocation, no exception, no lock held across the call. Memory
// a program names by address is read and written through process_vm_readv /
// process_vm_writev on this very process, which report an unmapped address as
// EFAULT instead of delivering SIGSEGV to the target.
#include "registry/registry_impl.hpp"

#include <bpftime/handlers/helpers.hpp>
#include <bpftime/handlers/program.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <deque>
#include <fcntl.h>
#include <mutex>
#include <optional>
#include <span>
#include <pthread.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

namespace bpftime::handlers {

// --- run context -------------------------------------------------------------

__thread const run_context *detail::t_run_context = nullptr;

namespace {
const run_context empty_run_context{};
} // namespace

const run_context &current_run_context() noexcept
{
	const run_context *rc = detail::t_run_context;
	return rc ? *rc : empty_run_context;
}

// --- process identity, cached ------------------------------------------------

namespace {

// getpid() and gettid() are system calls; bpf_get_current_pid_tgid is called
// on every hit of a probe. The pid is cached per process (reset in a forked
// child), the tid per thread (refreshed when the pid changes).
std::atomic<int> g_pid{ 0 };
thread_local int t_tid = 0;
thread_local int t_tid_pid = 0;

void reset_pid_after_fork()
{
	g_pid.store(0, std::memory_order_relaxed);
}

int current_pid() noexcept
{
	static const bool registered = [] {
		pthread_atfork(nullptr, nullptr, reset_pid_after_fork);
		return true;
	}();
	(void)registered;
	int pid = g_pid.load(std::memory_order_relaxed);
	if (pid == 0) {
		pid = int(getpid());
		g_pid.store(pid, std::memory_order_relaxed);
	}
	return pid;
}

int current_tid(int pid) noexcept
{
	if (t_tid_pid != pid) {
		t_tid = int(syscall(SYS_gettid));
		t_tid_pid = pid;
	}
	return t_tid;
}

uint64_t clock_ns(clockid_t c) noexcept
{
	timespec ts;
	clock_gettime(c, &ts);
	return uint64_t(ts.tv_sec) * 1000000000ULL + uint64_t(ts.tv_nsec);
}

constexpr uint64_t err(int e)
{
	return uint64_t(-int64_t(e));
}

} // namespace

// --- safe memory access ------------------------------------------------------

namespace {

// Zeroes len bytes at dst where they are writable, without faulting when
// they are not (dst comes from the program): what the kernel's probe
// helpers leave in their buffer on failure.
void safe_zero(void *dst, size_t len) noexcept
{
	static const char zeros[4096] = {};
	auto *p = static_cast<char *>(dst);
	while (len) {
		size_t chunk = std::min(len, sizeof(zeros));
		iovec local{ const_cast<char *>(zeros), chunk };
		iovec remote{ p, chunk };
		if (process_vm_writev(current_pid(), &local, 1, &remote, 1, 0) !=
		    ssize_t(chunk))
			return;
		p += chunk;
		len -= chunk;
	}
}

} // namespace

int64_t safe_read(void *dst, uint64_t addr, size_t len) noexcept
{
	if (len == 0)
		return 0;
	iovec local{ dst, len };
	iovec remote{ reinterpret_cast<void *>(addr), len };
	ssize_t n = process_vm_readv(current_pid(), &local, 1, &remote, 1, 0);
	if (n == ssize_t(len))
		return 0;
	safe_zero(dst, len);
	return -EFAULT;
}

namespace {

int64_t safe_write(uint64_t addr, const void *src, size_t len) noexcept
{
	if (len == 0)
		return 0;
	iovec local{ const_cast<void *>(src), len };
	iovec remote{ reinterpret_cast<void *>(addr), len };
	ssize_t n = process_vm_writev(current_pid(), &local, 1, &remote, 1, 0);
	return n == ssize_t(len) ? 0 : -EFAULT;
}

// Copies a NUL-terminated string of at most size-1 bytes plus its NUL
// (the kernel's strncpy_from_user_nofault). Reads page by page so that a
// string ending just before an unmapped page is still read. Returns the
// length including the NUL, or -EFAULT with dst zeroed.
int64_t safe_read_str(char *dst, uint64_t addr, size_t size) noexcept
{
	if (size == 0)
		return 0;
	size_t done = 0;
	const size_t page = 4096;
	while (done < size - 1) {
		uint64_t a = addr + done;
		size_t chunk = std::min(size - 1 - done, size_t(page - (a % page)));
		if (safe_read(dst + done, a, chunk) != 0) {
			safe_zero(dst, size);
			return -EFAULT;
		}
		if (void *nul = memchr(dst + done, 0, chunk))
			return static_cast<char *>(nul) - dst + 1;
		done += chunk;
	}
	dst[size - 1] = 0;
	return int64_t(size);
}

} // namespace

// --- formatting --------------------------------------------------------------

// The kernel's bpf_bprintf_prepare accepts this subset of printf and nothing
// else; a format outside it is -EINVAL, as there.
int64_t bpf_format(char *out, size_t out_len, const char *fmt, size_t fmt_len,
		   const uint64_t *args, size_t nargs) noexcept
{
	size_t total = 0;
	auto put = [&](const char *s, size_t n) {
		if (out_len && total < out_len - 1) {
			size_t room = out_len - 1 - total;
			memcpy(out + total, s, std::min(room, n));
		}
		total += n;
	};
	size_t argi = 0;
	size_t i = 0;
	char piece[600];
	while (i < fmt_len && fmt[i]) {
		if (fmt[i] != '%') {
			size_t j = i;
			while (j < fmt_len && fmt[j] && fmt[j] != '%')
				j++;
			put(fmt + i, j - i);
			i = j;
			continue;
		}
		if (i + 1 < fmt_len && fmt[i + 1] == '%') {
			put("%", 1);
			i += 2;
			continue;
		}
		// %[flags][width][.precision][length]conversion
		char spec[32];
		size_t sl = 0;
		spec[sl++] = '%';
		size_t j = i + 1;
		while (j < fmt_len && strchr("-+ #0", fmt[j]) && fmt[j] && sl < 8)
			spec[sl++] = fmt[j++];
		unsigned width = 0, prec = 0;
		while (j < fmt_len && fmt[j] >= '0' && fmt[j] <= '9' && sl < 14) {
			width = width * 10 + unsigned(fmt[j] - '0');
			spec[sl++] = fmt[j++];
		}
		if (j < fmt_len && fmt[j] == '.') {
			spec[sl++] = fmt[j++];
			while (j < fmt_len && fmt[j] >= '0' && fmt[j] <= '9' &&
			       sl < 20) {
				prec = prec * 10 + unsigned(fmt[j] - '0');
				spec[sl++] = fmt[j++];
			}
		}
		if (width > 512 || prec > 512)
			return -EINVAL;
		int len = 0; // 0 int, 1 long/long long, -1 short, -2 char
		if (j < fmt_len && fmt[j] == 'l') {
			len = 1;
			j++;
			if (j < fmt_len && fmt[j] == 'l')
				j++;
		} else if (j < fmt_len && fmt[j] == 'h') {
			len = -1;
			j++;
			if (j < fmt_len && fmt[j] == 'h') {
				len = -2;
				j++;
			}
		}
		if (j >= fmt_len || !fmt[j])
			return -EINVAL;
		char conv = fmt[j++];
		if (!strchr("diouxXcsp", conv))
			return -EINVAL;
		if (argi >= nargs)
			return -E2BIG;
		uint64_t a = args[argi++];
		int n = 0;
		if (conv == 'p') {
			// %p, %px, %pK: the address itself (user space has
			// no pointer hashing to undo).
			if (j < fmt_len && (fmt[j] == 'x' || fmt[j] == 'K'))
				j++;
			else if (j < fmt_len && fmt[j] &&
				 strchr("iIsSbBdhMmrRfgUa", fmt[j]))
				return -EINVAL;
			char body[24];
			snprintf(body, sizeof(body), "0x%016llx",
				 (unsigned long long)a);
			// Flags and width apply to the whole "0x..." text.
			spec[sl++] = 's';
			spec[sl] = 0;
			n = snprintf(piece, sizeof(piece), spec, body);
		} else if (conv == 's') {
			char str[256];
			if (a == 0 || safe_read_str(str, a, sizeof(str)) < 0)
				str[0] = 0;
			spec[sl++] = 's';
			spec[sl] = 0;
			n = snprintf(piece, sizeof(piece), spec, str);
		} else if (conv == 'c') {
			spec[sl++] = 'c';
			spec[sl] = 0;
			n = snprintf(piece, sizeof(piece), spec, int(char(a)));
		} else {
			bool is_signed = conv == 'd' || conv == 'i';
			spec[sl++] = 'l';
			spec[sl++] = 'l';
			spec[sl++] = conv;
			spec[sl] = 0;
			long long sv;
			unsigned long long uv;
			switch (len) {
			case 1:
				sv = (long long)a;
				uv = a;
				break;
			case -1:
				sv = (short)a;
				uv = (unsigned short)a;
				break;
			case -2:
				sv = (signed char)a;
				uv = (unsigned char)a;
				break;
			default:
				sv = (int)a;
				uv = (unsigned int)a;
				break;
			}
			n = is_signed ? snprintf(piece, sizeof(piece), spec, sv) :
					snprintf(piece, sizeof(piece), spec, uv);
		}
		if (n < 0)
			return -EINVAL;
		put(piece, std::min(size_t(n), sizeof(piece) - 1));
		i = j;
	}
	if (out_len)
		out[std::min(total, out_len - 1)] = 0;
	return int64_t(total);
}

// --- trace_printk sink -------------------------------------------------------

namespace {

void fd_sink(const char *line, size_t len, void *user)
{
	int fd = int(reinterpret_cast<intptr_t>(user));
	while (len > 0) {
		ssize_t n = write(fd, line, len);
		if (n <= 0)
			return;
		line += n;
		len -= size_t(n);
	}
}

std::atomic<trace_sink> g_sink{ fd_sink };
std::atomic<void *> g_sink_user{ reinterpret_cast<void *>(intptr_t(2)) };

} // namespace

void set_trace_printk_sink(trace_sink sink, void *user) noexcept
{
	g_sink_user.store(user, std::memory_order_relaxed);
	g_sink.store(sink, std::memory_order_release);
}

status trace_printk_sink_from_env()
{
	const char *v = getenv("BPFTIME_TRACE_PRINTK_SINK");
	std::string s = v ? v : "";
	if (s.empty() || s == "stderr") {
		set_trace_printk_sink(fd_sink, reinterpret_cast<void *>(intptr_t(2)));
	} else if (s == "stdout") {
		set_trace_printk_sink(fd_sink, reinterpret_cast<void *>(intptr_t(1)));
	} else if (s == "off") {
		set_trace_printk_sink(nullptr, nullptr);
	} else if (s[0] == '/') {
		int fd = open(s.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
			      0644);
		if (fd < 0) {
			int e = errno;
			return fail(e, "BPFTIME_TRACE_PRINTK_SINK='" + s +
					       "': open: " + strerror(e));
		}
		set_trace_printk_sink(fd_sink, reinterpret_cast<void *>(intptr_t(fd)));
	} else {
		return fail(EINVAL, "BPFTIME_TRACE_PRINTK_SINK='" + s +
					    "' is not stderr, stdout, off or an "
					    "absolute file path");
	}
	return {};
}

// --- the helpers -------------------------------------------------------------

namespace {

using u64 = uint64_t;

// A map-in-map's value is the id of the inner map (map_ops::fd_kind ==
// MAP_FD_MAP); a program gets the inner map itself, which it hands to the
// next map helper (the kernel's array_of_map_lookup_elem returns the
// struct bpf_map *).
[[gnu::noinline]] u64 inner_map_of(const map_instance *m, const void *v)
{
	if (!v)
		return 0;
	uint32_t id;
	memcpy(&id, v, sizeof(id));
	if (id == NO_ID || !m->owner)
		return 0;
	return reinterpret_cast<u64>(m->owner->cached_map(id));
}

u64 h_map_lookup_elem(u64 map, u64 key, u64, u64, u64)
{
	auto *m = reinterpret_cast<const map_instance *>(map);
	void *v = m->ops->lookup(m->state, reinterpret_cast<const void *>(key));
	if (m->fd_kind == MAP_FD_MAP) [[unlikely]]
		return inner_map_of(m, v);
	return reinterpret_cast<u64>(v);
}

// The values of an fd-valued map are ids that only user space stores,
// through the registry's checks (the kernel's verifier refuses these calls
// on prog arrays and maps of maps).
constexpr bool program_may_write(const map_instance *m)
{
	return m->fd_kind == MAP_FD_NONE;
}

u64 h_map_update_elem(u64 map, u64 key, u64 value, u64 flags, u64)
{
	auto *m = reinterpret_cast<const map_instance *>(map);
	if (m->map_flags & BPF_F_RDONLY_PROG)
		return err(EPERM);
	if (!program_may_write(m)) [[unlikely]]
		return err(EINVAL);
	return u64(int64_t(m->ops->prog_update(m->state,
					  reinterpret_cast<const void *>(key),
					  reinterpret_cast<const void *>(value),
					  flags)));
}

u64 h_map_delete_elem(u64 map, u64 key, u64, u64, u64)
{
	auto *m = reinterpret_cast<const map_instance *>(map);
	if (m->map_flags & BPF_F_RDONLY_PROG)
		return err(EPERM);
	if (!program_may_write(m)) [[unlikely]]
		return err(EINVAL);
	return u64(int64_t(m->ops->delete_elem(
		m->state, reinterpret_cast<const void *>(key))));
}

// bpf_probe_read(dst, size, unsafe_ptr) and its _user/_kernel forms: in user
// space there is only user memory.
u64 h_probe_read(u64 dst, u64 size, u64 src, u64, u64)
{
	return u64(safe_read(reinterpret_cast<void *>(dst), src, size_t(uint32_t(size))));
}

u64 h_probe_read_str(u64 dst, u64 size, u64 src, u64, u64)
{
	return u64(safe_read_str(reinterpret_cast<char *>(dst), src,
				 size_t(uint32_t(size))));
}

u64 h_probe_write_user(u64 dst, u64 src, u64 len, u64, u64)
{
	return u64(safe_write(dst, reinterpret_cast<const void *>(src),
			      size_t(uint32_t(len))));
}

u64 h_ktime_get_ns(u64, u64, u64, u64, u64)
{
	return clock_ns(CLOCK_MONOTONIC);
}

u64 h_ktime_get_boot_ns(u64, u64, u64, u64, u64)
{
	return clock_ns(CLOCK_BOOTTIME);
}

u64 h_ktime_get_coarse_ns(u64, u64, u64, u64, u64)
{
	return clock_ns(CLOCK_MONOTONIC_COARSE);
}

// bpf_trace_printk(fmt, fmt_size, arg1, arg2, arg3): the format must be
// NUL-terminated within fmt_size; the kernel's 512-byte buffer bounds a line.
u64 h_trace_printk(u64 fmt, u64 fmt_size, u64 a1, u64 a2, u64 a3)
{
	size_t fs = size_t(uint32_t(fmt_size));
	// The format is copied first: it comes from the program and may point
	// anywhere. A line holds 512 bytes, so a longer format is no use.
	char f[512];
	if (fmt == 0 || fs == 0 || fs > sizeof(f))
		return err(EINVAL);
	if (safe_read(f, fmt, fs) != 0)
		return err(EFAULT);
	if (!memchr(f, 0, fs))
		return err(EINVAL);
	const uint64_t args[3] = { a1, a2, a3 };
	char line[512];
	int64_t n = bpf_format(line, sizeof(line), f, fs, args, 3);
	if (n < 0)
		return u64(n);
	size_t len = std::min(size_t(n), sizeof(line) - 1);
	if (trace_sink s = g_sink.load(std::memory_order_acquire))
		s(line, len, g_sink_user.load(std::memory_order_relaxed));
	return u64(len);
}

// xorshift64* per thread, seeded from getrandom(): bpf_get_prandom_u32 is
// not cryptographic in the kernel either.
thread_local uint64_t t_rand = 0;

u64 h_get_prandom_u32(u64, u64, u64, u64, u64)
{
	if (t_rand == 0) {
		uint64_t seed = 0;
		if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != sizeof(seed))
			seed = clock_ns(CLOCK_MONOTONIC) ^
			       (uint64_t(current_tid(current_pid())) << 32);
		t_rand = seed | 1;
	}
	t_rand ^= t_rand >> 12;
	t_rand ^= t_rand << 25;
	t_rand ^= t_rand >> 27;
	return uint32_t((t_rand * 0x2545F4914F6CDD1DULL) >> 32);
}

u64 h_get_smp_processor_id(u64, u64, u64, u64, u64)
{
	// The slot a run of a program with per-CPU maps owns is the CPU whose
	// values it sees (cpu_slot.hpp); so is the id it reads here.
	if (t_cpu_slot >= 0)
		return u64(t_cpu_slot);
	int cpu = sched_getcpu();
	return cpu < 0 ? 0 : u64(cpu);
}

u64 h_get_current_pid_tgid(u64, u64, u64, u64, u64)
{
	int pid = current_pid();
	return uint64_t(uint32_t(pid)) << 32 | uint32_t(current_tid(pid));
}

u64 h_get_current_uid_gid(u64, u64, u64, u64, u64)
{
	return uint64_t(getgid()) << 32 | uint32_t(getuid());
}

// bpf_get_current_comm(buf, size): the thread's name, NUL-padded.
u64 h_get_current_comm(u64 buf, u64 size, u64, u64, u64)
{
	size_t n = size_t(uint32_t(size));
	if (buf == 0 || n == 0)
		return err(EINVAL);
	char comm[16] = {};
	if (prctl(PR_GET_NAME, comm) != 0) {
		safe_zero(reinterpret_cast<void *>(buf), n);
		return err(EFAULT);
	}
	size_t len = std::min(strnlen(comm, sizeof(comm)), n - 1);
	if (safe_write(buf, comm, len) != 0)
		return err(EFAULT);
	safe_zero(reinterpret_cast<char *>(buf) + len, n - len);
	return 0;
}

u64 h_get_func_ip(u64, u64, u64, u64, u64)
{
	return current_run_context().func_ip;
}

u64 h_get_attach_cookie(u64, u64, u64, u64, u64)
{
	return current_run_context().cookie;
}

// bpf_loop(nr_loops, callback_fn, callback_ctx, flags): at most 1 << 23
// iterations (BPF_MAX_LOOPS); a callback returning 1 stops early. Returns
// the number of iterations done.
u64 h_loop(u64 nr_loops, u64 fn, u64 ctx, u64 flags, u64)
{
	if (flags != 0)
		return err(EINVAL);
	uint32_t nr = uint32_t(nr_loops);
	if (nr > (1u << 23))
		return err(E2BIG);
	for (uint32_t i = 0; i < nr; i++)
		if (vm::invoke_callback(fn, i, ctx, 0, 0, 0))
			return i + 1;
	return nr;
}

// bpf_for_each_map_elem(map, callback_fn, callback_ctx, flags): the
// kernel's bpf_for_each_map_elem. callback_fn(map, key, value, ctx) runs for
// each element until it returns non-zero (the kernel: 1); the result is the
// number of elements it ran for. Through the type's map_ops::for_each; a
// type without one is EINVAL (the kernel's verifier refuses the call for
// types without map_for_each_callback).
struct for_each_ctx {
	u64 map, fn, ctx;
};
uint64_t for_each_step(void *c, const void *key, void *value)
{
	auto *f = static_cast<const for_each_ctx *>(c);
	return vm::invoke_callback(f->fn, f->map, reinterpret_cast<u64>(key),
				   reinterpret_cast<u64>(value), f->ctx, 0);
}

u64 h_for_each_map_elem(u64 map, u64 fn, u64 ctx, u64 flags, u64)
{
	auto *m = reinterpret_cast<const map_instance *>(map);
	if (flags != 0)
		return err(EINVAL);
	if (!m->ops->for_each)
		return err(EINVAL);
	for_each_ctx c{ map, fn, ctx };
	return u64(m->ops->for_each(m->state, for_each_step, &c));
}

// The kernel's __bpf_strtoull: optional leading white space, '-' (noted),
// an optional radix prefix when base is 0 or 16, then digits. At most 63
// characters after the sign are looked at.
int64_t parse_ull(const char *buf, size_t buf_len, uint64_t flags,
		  unsigned long long *res, bool *negative)
{
	unsigned base = unsigned(flags & 0x1f);
	if (!buf || buf_len == 0)
		return -EINVAL;
	if (flags & ~uint64_t(0x1f))
		return -EINVAL;
	if (base != 0 && base != 8 && base != 10 && base != 16)
		return -EINVAL;
	size_t i = 0;
	while (i < buf_len && (buf[i] == ' ' || (buf[i] >= '\t' && buf[i] <= '\r')))
		i++;
	*negative = i < buf_len && buf[i] == '-';
	if (*negative)
		i++;
	if (i >= buf_len)
		return -EINVAL;
	char str[64];
	size_t len = std::min(buf_len - i, sizeof(str) - 1);
	memcpy(str, buf + i, len);
	str[len] = 0;
	const char *s = str;
	auto lower = [](char c) { return char(c | 0x20); };
	auto is_hex = [&](char c) {
		return (c >= '0' && c <= '9') || (lower(c) >= 'a' && lower(c) <= 'f');
	};
	if (base == 0) {
		if (s[0] == '0') {
			base = (lower(s[1]) == 'x' && is_hex(s[2])) ? 16 : 8;
		} else {
			base = 10;
		}
	}
	if (base == 16 && s[0] == '0' && lower(s[1]) == 'x')
		s += 2;
	unsigned long long v = 0;
	bool overflow = false;
	const char *d = s;
	for (; *d; d++) {
		unsigned digit;
		if (*d >= '0' && *d <= '9')
			digit = unsigned(*d - '0');
		else if (lower(*d) >= 'a' && lower(*d) <= 'f')
			digit = unsigned(lower(*d) - 'a' + 10);
		else
			break;
		if (digit >= base)
			break;
		if (v > (ULLONG_MAX - digit) / base)
			overflow = true;
		v = v * base + digit;
	}
	if (overflow)
		return -ERANGE;
	if (d == s)
		return -EINVAL;
	*res = v;
	return int64_t(i + size_t(d - str));
}

// The first bytes of the program's string, copied so that parsing cannot
// fault: parse_ull looks at no more than leading blanks, a sign and 63
// characters, so 256 bytes hold every string it can accept.
struct str_copy {
	char data[256];
	size_t len = 0;
	int error = 0;
	str_copy(u64 buf, u64 buf_len) noexcept
	{
		len = std::min(size_t(uint32_t(buf_len)), sizeof(data));
		if (buf == 0 || len == 0)
			error = EINVAL;
		else if (safe_read(data, buf, len) != 0)
			error = EFAULT;
	}
};

u64 h_strtol(u64 buf, u64 buf_len, u64 flags, u64 res, u64)
{
	unsigned long long v = 0;
	bool neg = false;
	str_copy str(buf, buf_len);
	if (str.error)
		return err(str.error);
	int64_t n = parse_ull(str.data, str.len, flags, &v, &neg);
	if (n < 0)
		return u64(n);
	long long out;
	if (neg) {
		if ((long long)(0ULL - v) > 0)
			return err(ERANGE);
		out = (long long)(0ULL - v);
	} else {
		if ((long long)v < 0)
			return err(ERANGE);
		out = (long long)v;
	}
	if (safe_write(res, &out, sizeof(out)) != 0)
		return err(EFAULT);
	return u64(n);
}

u64 h_strtoul(u64 buf, u64 buf_len, u64 flags, u64 res, u64)
{
	unsigned long long v = 0;
	bool neg = false;
	str_copy str(buf, buf_len);
	if (str.error)
		return err(str.error);
	int64_t n = parse_ull(str.data, str.len, flags, &v, &neg);
	if (n < 0)
		return u64(n);
	if (neg)
		return err(EINVAL);
	if (safe_write(res, &v, sizeof(v)) != 0)
		return err(EFAULT);
	return u64(n);
}

// bpf_snprintf(str, str_size, fmt, data, data_len): data holds up to 12
// u64 arguments (MAX_BPRINTF_VARARGS); returns the length including the NUL.
u64 h_snprintf(u64 str, u64 str_size, u64 fmt, u64 data, u64 data_len)
{
	uint32_t dl = uint32_t(data_len);
	if (dl % 8 != 0 || dl > 12 * 8 || (dl && !data))
		return err(EINVAL);
	if (fmt == 0)
		return err(EINVAL);
	// Format, arguments and output go through copies: the program's
	// pointers may point anywhere. The output copy holds 4 KiB; a longer
	// str_size gets at most that much written (the length returned is
	// the whole string's). It lives on the stack, not in thread-local
	// storage: 4 KiB of initial-exec TLS would not fit glibc's static TLS
	// surplus, and `bpftime attach` loads the agent with dlopen().
	char out[4096];
	char f[512];
	uint64_t args[12];
	if (safe_read_str(f, fmt, sizeof(f)) < 0)
		return err(EFAULT);
	if (dl && safe_read(args, data, dl) != 0)
		return err(EFAULT);
	size_t size = size_t(uint32_t(str_size));
	size_t room = std::min(size, sizeof(out));
	int64_t n = bpf_format(out, room, f, sizeof(f), args, dl / 8);
	if (n < 0)
		return u64(n);
	if (room) {
		size_t written = std::min(size_t(n) + 1, room);
		if (safe_write(str, out, written) != 0)
			return err(EFAULT);
	}
	return u64(n + 1);
}

// The standard helper set: each helper's id, kernel name, argument and return
// kinds (the kernel's bpf_func_proto for it: kernel/bpf/helpers.c,
// kernel/trace/bpf_trace.c) and function, written once. The verifier checks
// every call against the kinds; helper_written_args() derives from them.
#define KERNEL_HELPER(n) .id = vm::BPF_FUNC_##n, .name = #n

std::span<const vm::helper_proto> standard_helpers() noexcept
{
	using namespace bpftime::vm;
	static constexpr bpf_arg_type RDONLY_MEM = ARG_PTR_TO_MEM | MEM_RDONLY;
	static constexpr bpf_arg_type PROBE_READ[] = { ARG_PTR_TO_UNINIT_MEM,
						ARG_CONST_SIZE_OR_ZERO,
						ARG_ANYTHING };
	static constexpr helper_proto table[] = {
		{ KERNEL_HELPER(map_lookup_elem),
		  .ret = RET_PTR_TO_MAP_VALUE_OR_NULL,
		  .args = { ARG_CONST_MAP_PTR, ARG_PTR_TO_MAP_KEY },
		  .fn = h_map_lookup_elem },
		{ KERNEL_HELPER(map_update_elem),
		  .ret = RET_INTEGER,
		  .args = { ARG_CONST_MAP_PTR, ARG_PTR_TO_MAP_KEY,
			    ARG_PTR_TO_MAP_VALUE, ARG_ANYTHING },
		  .fn = h_map_update_elem },
		{ KERNEL_HELPER(map_delete_elem),
		  .ret = RET_INTEGER,
		  .args = { ARG_CONST_MAP_PTR, ARG_PTR_TO_MAP_KEY },
		  .fn = h_map_delete_elem },
		{ KERNEL_HELPER(probe_read),
		  .ret = RET_INTEGER,
		  .args = { PROBE_READ[0], PROBE_READ[1], PROBE_READ[2] },
		  .fn = h_probe_read },
		{ KERNEL_HELPER(ktime_get_ns), .ret = RET_INTEGER,
		  .fn = h_ktime_get_ns },
		// The kernel declares the format only; r3-r5 are its values.
		{ KERNEL_HELPER(trace_printk),
		  .ret = RET_INTEGER,
		  .args = { RDONLY_MEM, ARG_CONST_SIZE },
		  .fn = h_trace_printk },
		{ KERNEL_HELPER(get_prandom_u32), .ret = RET_INTEGER,
		  .fn = h_get_prandom_u32 },
		{ KERNEL_HELPER(get_smp_processor_id), .ret = RET_INTEGER,
		  .fn = h_get_smp_processor_id },
		{ KERNEL_HELPER(get_current_pid_tgid), .ret = RET_INTEGER,
		  .fn = h_get_current_pid_tgid },
		{ KERNEL_HELPER(get_current_uid_gid), .ret = RET_INTEGER,
		  .fn = h_get_current_uid_gid },
		{ KERNEL_HELPER(get_current_comm),
		  .ret = RET_INTEGER,
		  .args = { ARG_PTR_TO_UNINIT_MEM, ARG_CONST_SIZE },
		  .fn = h_get_current_comm },
		// r1 is any address of this process (the kernel: ARG_ANYTHING),
		// written through.
		{ KERNEL_HELPER(probe_write_user),
		  .ret = RET_INTEGER,
		  .args = { ARG_ANYTHING | MEM_WRITE, RDONLY_MEM,
			    ARG_CONST_SIZE },
		  .fn = h_probe_write_user },
		{ KERNEL_HELPER(probe_read_str),
		  .ret = RET_INTEGER,
		  .args = { PROBE_READ[0], PROBE_READ[1], PROBE_READ[2] },
		  .fn = h_probe_read_str },
		{ KERNEL_HELPER(strtol),
		  .ret = RET_INTEGER,
		  .args = { RDONLY_MEM, ARG_CONST_SIZE, ARG_ANYTHING,
			    ARG_PTR_TO_LONG },
		  .fn = h_strtol },
		{ KERNEL_HELPER(strtoul),
		  .ret = RET_INTEGER,
		  .args = { RDONLY_MEM, ARG_CONST_SIZE, ARG_ANYTHING,
			    ARG_PTR_TO_LONG },
		  .fn = h_strtoul },
		{ KERNEL_HELPER(probe_read_user),
		  .ret = RET_INTEGER,
		  .args = { PROBE_READ[0], PROBE_READ[1], PROBE_READ[2] },
		  .fn = h_probe_read },
		{ KERNEL_HELPER(probe_read_kernel),
		  .ret = RET_INTEGER,
		  .args = { PROBE_READ[0], PROBE_READ[1], PROBE_READ[2] },
		  .fn = h_probe_read },
		{ KERNEL_HELPER(probe_read_user_str),
		  .ret = RET_INTEGER,
		  .args = { PROBE_READ[0], PROBE_READ[1], PROBE_READ[2] },
		  .fn = h_probe_read_str },
		{ KERNEL_HELPER(probe_read_kernel_str),
		  .ret = RET_INTEGER,
		  .args = { PROBE_READ[0], PROBE_READ[1], PROBE_READ[2] },
		  .fn = h_probe_read_str },
		{ KERNEL_HELPER(ktime_get_boot_ns), .ret = RET_INTEGER,
		  .fn = h_ktime_get_boot_ns },
		{ KERNEL_HELPER(ktime_get_coarse_ns), .ret = RET_INTEGER,
		  .fn = h_ktime_get_coarse_ns },
		{ KERNEL_HELPER(snprintf),
		  .ret = RET_INTEGER,
		  .args = { ARG_PTR_TO_MEM_OR_NULL, ARG_CONST_SIZE_OR_ZERO,
			    ARG_PTR_TO_CONST_STR,
			    RDONLY_MEM | PTR_MAYBE_NULL,
			    ARG_CONST_SIZE_OR_ZERO },
		  .fn = h_snprintf },
		{ KERNEL_HELPER(get_func_ip),
		  .ret = RET_INTEGER,
		  .args = { ARG_PTR_TO_CTX },
		  .fn = h_get_func_ip },
		{ KERNEL_HELPER(get_attach_cookie),
		  .ret = RET_INTEGER,
		  .args = { ARG_PTR_TO_CTX },
		  .fn = h_get_attach_cookie },
		{ KERNEL_HELPER(loop),
		  .ret = RET_INTEGER,
		  .args = { ARG_ANYTHING, ARG_PTR_TO_FUNC,
			    ARG_PTR_TO_STACK_OR_NULL, ARG_ANYTHING },
		  .fn = h_loop },
		{ KERNEL_HELPER(for_each_map_elem),
		  .ret = RET_INTEGER,
		  .args = { ARG_CONST_MAP_PTR, ARG_PTR_TO_FUNC,
			    ARG_PTR_TO_STACK_OR_NULL, ARG_ANYTHING },
		  .fn = h_for_each_map_elem },
	};
	return table;
}

#undef KERNEL_HELPER

// Helpers registered at run time (map packages, the agent). A deque of
// entries that own their names: find_helper() hands out pointers that must
// survive later registrations.
struct registered_helper {
	std::string name;
	vm::helper_proto proto; // proto.name points at `name`
};

struct extra_helpers {
	std::mutex mu;
	std::deque<registered_helper> defs;
};

extra_helpers &extras()
{
	static extra_helpers *e = new extra_helpers();
	return *e;
}

} // namespace

std::vector<vm::helper_proto> available_helpers()
{
	std::span<const vm::helper_proto> standard = standard_helpers();
	std::vector<vm::helper_proto> out(standard.begin(), standard.end());
	extra_helpers &e = extras();
	std::lock_guard g(e.mu);
	for (const registered_helper &h : e.defs)
		out.push_back(h.proto);
	return out;
}

const vm::helper_proto *find_helper(uint32_t id) noexcept
{
	for (const vm::helper_proto &h : standard_helpers())
		if (h.id == id)
			return &h;
	extra_helpers &e = extras();
	std::lock_guard g(e.mu);
	for (const registered_helper &h : e.defs)
		if (h.proto.id == id)
			return &h.proto;
	return nullptr;
}

std::optional<vm::helper_proto> helper_proto_of(uint32_t id) noexcept
{
	if (id == vm::BPF_FUNC_tail_call)
		return vm::tail_call_proto;
	if (const vm::helper_proto *p = find_helper(id))
		return *p;
	return std::nullopt;
}

uint16_t helper_written_args(uint32_t id) noexcept
{
	if (auto p = helper_proto_of(id))
		return vm::written_args(*p);
	return vm::ALL_ARGS_WRITTEN;
}

status register_helper(const vm::helper_proto &proto)
{
	const std::string name(proto.name);
	if (!proto.fn)
		return fail(EINVAL, "register helper '" + name +
					    "': null function");
	if (proto.ret == vm::RET_UNSPEC)
		return fail(EINVAL, "register helper '" + name + "' (#" +
					    std::to_string(proto.id) +
					    "): no prototype (return and "
					    "argument kinds)");
	if (proto.id == vm::BPF_FUNC_tail_call)
		return fail(EEXIST, "register helper '" + name +
					    "': #12 is bpf_tail_call, which the "
					    "vm implements");
	if (const vm::helper_proto *h = find_helper(proto.id))
		return fail(EEXIST, "register helper '" + name + "': #" +
					    std::to_string(proto.id) +
					    " is already provided as '" +
					    std::string(h->name) + "'");
	extra_helpers &e = extras();
	std::lock_guard g(e.mu);
	registered_helper &r = e.defs.emplace_back(
		registered_helper{ name, proto });
	r.proto.name = r.name;
	return {};
}

} // namespace bpftime::handlers
