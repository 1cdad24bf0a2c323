// attach_driver.cpp: the native half of the attach tests. Linked at test
// time with the fixture programs (fixtures/prologues.S, targets.c, the
// shared library libattach_fixture.so), as a PIE and as a non-PIE
// executable; `attach-driver <scenario>` probes the fixtures in its own
// process and prints one line per check ("ok ..." or "FAIL ...: why") and
// a last line "N passed, M failed". test/attach.test.ts runs each scenario.
#include <bpftime/attach/attach.hpp>
#include <bpftime/attach/syscall.hpp>

#include "log.hpp"

#include "uprobe/probe_site.hpp"
#include "uprobe/relocator.hpp"
#include "uprobe/trampoline.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <csetjmp>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <csignal>
#include <string>
#include <chrono>
#include <thread>
#include <vector>

using namespace bpftime::attach;

extern "C" {
long p_endbr64(long, long, long, long, long, long);
long p_push_rbp(long, long, long, long, long, long);
long p_sub_rsp(long, long, long, long, long, long);
long p_rip_lea(long, long, long, long, long, long);
long p_rip_mov(long, long, long, long, long, long);
long p_rip_cmp(long, long, long, long, long, long);
long p_short(long, long, long, long, long, long);
long p_ret_only(long, long, long, long, long, long);
long p_leaf_redzone(long, long, long, long, long, long);
long p_jump_back(long, long, long, long, long, long);
long p_call_first(long, long, long, long, long, long);
long p_jcc_first(long, long, long, long, long, long);
long p_jmp_first(long, long, long, long, long, long);
long p_flags(long, long, long, long, long, long);
void p_trap();
void p_bad();
long t_fact(long);
long t_work(long);
long t_effect(long);
double t_fsum(double, double, double, double, double, double, double, double);
long t_jumper(jmp_buf *, int);
long t_raise(int);
extern long t_side_effects;
long lib_add(long, long);
}

// Allocation counter: the driver's malloc family wraps glibc's, so the
// `allocations` scenario sees every allocation the hot path would make.
std::atomic<bool> g_count_allocs{ false };
std::atomic<uint64_t> g_allocs{ 0 };
extern "C" void *__libc_malloc(size_t);
extern "C" void *__libc_calloc(size_t, size_t);
extern "C" void *__libc_realloc(void *, size_t);
extern "C" void *malloc(size_t n)
{
	if (g_count_allocs.load(std::memory_order_relaxed))
		g_allocs.fetch_add(1, std::memory_order_relaxed);
	return __libc_malloc(n);
}
extern "C" void *calloc(size_t a, size_t b)
{
	if (g_count_allocs.load(std::memory_order_relaxed))
		g_allocs.fetch_add(1, std::memory_order_relaxed);
	return __libc_calloc(a, b);
}
extern "C" void *realloc(void *p, size_t n)
{
	if (g_count_allocs.load(std::memory_order_relaxed))
		g_allocs.fetch_add(1, std::memory_order_relaxed);
	return __libc_realloc(p, n);
}

namespace {

int g_passed = 0, g_failed = 0;

__attribute__((format(printf, 2, 3))) void check(bool ok, const char *fmt, ...)
{
	char b[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(b, sizeof(b), fmt, ap);
	va_end(ap);
	printf("%s %s\n", ok ? "ok" : "FAIL", b);
	fflush(stdout);
	(ok ? g_passed : g_failed)++;
}

struct recorder {
	std::atomic<uint64_t> hits{ 0 };
	pt_regs last{};
	uint64_t ret_slot = 0; // *(u64 *)sp at entry: the return address
};

void on_entry(const pt_regs *r, void *u)
{
	auto *rec = static_cast<recorder *>(u);
	rec->last = *r;
	rec->ret_slot = *reinterpret_cast<const uint64_t *>(r->sp);
	rec->hits.fetch_add(1, std::memory_order_relaxed);
}

void on_count(const pt_regs *, void *u)
{
	static_cast<std::atomic<uint64_t> *>(u)->fetch_add(1, std::memory_order_relaxed);
}

// Clobbers every argument vector register: a trampoline that does not
// save them would change the probed function's floating-point arguments.
void on_clobber_vectors(const pt_regs *, void *u)
{
	asm volatile("pxor %%xmm0, %%xmm0\n\tpxor %%xmm1, %%xmm1\n\t"
		     "pxor %%xmm2, %%xmm2\n\tpxor %%xmm3, %%xmm3\n\t"
		     "pxor %%xmm4, %%xmm4\n\tpxor %%xmm5, %%xmm5\n\t"
		     "pxor %%xmm6, %%xmm6\n\tpxor %%xmm7, %%xmm7\n\t"
		     "pxor %%xmm8, %%xmm8\n\tpxor %%xmm15, %%xmm15" ::
			     : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7",
			       "xmm8", "xmm15");
	static_cast<std::atomic<uint64_t> *>(u)->fetch_add(1);
}

using fn6 = long (*)(long, long, long, long, long, long);

struct shape {
	const char *name;
	fn6 fn;
	mechanism expect;
	long (*expected)(long, long, long, long, long, long);
};

long sum6(long a, long b, long c, long d, long e, long f)
{
	return a + b + c + d + e + f;
}

const shape shapes[] = {
	{ "p_endbr64", p_endbr64, mechanism::inline_jump, sum6 },
	{ "p_push_rbp", p_push_rbp, mechanism::inline_jump, sum6 },
	{ "p_sub_rsp", p_sub_rsp, mechanism::inline_jump,
	  [](long a, long, long, long, long, long f) { return a * 2 + f; } },
	{ "p_rip_lea", p_rip_lea, mechanism::inline_jump,
	  [](long a, long, long, long, long, long) { return 1000 + a; } },
	{ "p_rip_mov", p_rip_mov, mechanism::inline_jump,
	  [](long, long b, long, long, long, long) { return 2000 + b; } },
	{ "p_rip_cmp", p_rip_cmp, mechanism::inline_jump,
	  [](long, long, long, long, long, long) { return 3L; } },
	{ "p_short", p_short, mechanism::breakpoint,
	  [](long a, long, long, long, long, long) { return (long)(int)(a + 1); } },
	{ "p_ret_only", p_ret_only, mechanism::breakpoint, nullptr },
	{ "p_leaf_redzone", p_leaf_redzone, mechanism::inline_jump,
	  [](long a, long b, long, long, long, long) { return a + b; } },
	{ "p_jump_back", p_jump_back, mechanism::breakpoint,
	  [](long a, long b, long, long, long, long) { return a * b; } },
	{ "p_call_first", p_call_first, mechanism::inline_jump,
	  [](long a, long, long, long, long, long) { return 100 + a; } },
	{ "p_jcc_first", p_jcc_first, mechanism::inline_jump,
	  [](long a, long, long, long, long, long) { return a ? a + 1 : 7; } },
	{ "p_jmp_first", p_jmp_first, mechanism::inline_jump, sum6 },
};

uint64_t addr_of(const void *f)
{
	return reinterpret_cast<uint64_t>(f);
}

void snapshot_bytes(const void *f, uint8_t out[16])
{
	memcpy(out, f, 16);
}

// One function, one way of attaching: entry and return probe by symbol,
// one call with six distinct arguments, every register checked, then
// detach and the bytes compared.
void probe_shape(const shape &s, bool force_bp)
{
	attach_manager m;
	attach_options opts;
	opts.force_breakpoint = force_bp;
	const char *how = force_bp ? " (forced breakpoint)" : "";
	uint8_t before[16], after[16];
	snapshot_bytes(reinterpret_cast<const void *>(s.fn), before);
	recorder in, out;
	auto a = m.attach_uprobe({ "", s.name, 0 }, on_entry, &in, opts);
	auto b = m.attach_uretprobe({ "", s.name, 0 }, on_entry, &out, opts);
	if (!a || !b) {
		check(false, "%s%s: attach: %s", s.name, how,
		      (!a ? a.error() : b.error()).message.c_str());
		return;
	}
	auto info = m.info(*a);
	const mechanism want = force_bp ? mechanism::breakpoint : s.expect;
	check(info->mech == want, "%s%s: mechanism %s (want %s): %s", s.name, how,
	      to_string(info->mech), to_string(want), info->reason.c_str());
	check(info->at_function_entry && info->address == addr_of((void *)s.fn),
	      "%s%s: resolved to the function's address, at its entry", s.name, how);
	volatile fn6 call = s.fn;
	const long args[6] = { 11, 22, 33, 44, 55, 66 };
	long got = call(args[0], args[1], args[2], args[3], args[4], args[5]);
	if (s.expected)
		check(got == s.expected(11, 22, 33, 44, 55, 66), "%s%s: result %ld unchanged",
		      s.name, how, got);
	const pt_regs &r = in.last;
	check(in.hits == 1 && out.hits == 1, "%s%s: one entry hit (%" PRIu64 "), one return hit (%" PRIu64 ")",
	      s.name, how, in.hits.load(), out.hits.load());
	check(r.di == 11 && r.si == 22 && r.dx == 33 && r.cx == 44 && r.r8 == 55 && r.r9 == 66,
	      "%s%s: PARM1..6 = %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64,
	      s.name, how, r.di, r.si, r.dx, r.cx, r.r8, r.r9);
	check(r.ip == addr_of((void *)s.fn) && r.cs == USER_CS && r.ss == USER_DS &&
		      r.orig_ax == UINT64_MAX,
	      "%s%s: entry ip, cs, ss, orig_ax as the kernel's", s.name, how);
	const pt_regs &o = out.last;
	check(o.ip == in.ret_slot && o.sp == r.sp + 8,
	      "%s%s: return ip is the return address [entry sp], sp = entry sp + 8", s.name, how);
	if (s.expected)
		check(o.ax == uint64_t(got), "%s%s: RC = %" PRId64 " (the function returned %ld)",
		      s.name, how, int64_t(o.ax), got);
	check(m.detach(*a).ok() && m.detach(*b).ok(), "%s%s: detach", s.name, how);
	snapshot_bytes(reinterpret_cast<const void *>(s.fn), after);
	check(memcmp(before, after, 16) == 0, "%s%s: original bytes restored exactly", s.name, how);
	got = call(args[0], args[1], args[2], args[3], args[4], args[5]);
	check(in.hits == 1 && (!s.expected || got == s.expected(11, 22, 33, 44, 55, 66)),
	      "%s%s: no hit after detach, result still right", s.name, how);
}

void scenario_prologues()
{
	for (const shape &s : shapes) {
		probe_shape(s, false);
		probe_shape(s, true);
	}
	// Probes in the middle of a function: the red zone of a leaf and
	// live flags must survive.
	attach_manager m;
	recorder rz;
	auto a = m.attach_uprobe({ "", "p_leaf_redzone", 5 }, on_entry, &rz);
	check(a.ok(), "p_leaf_redzone+5: attach: %s", a ? "" : a.error().message.c_str());
	volatile fn6 leaf = p_leaf_redzone;
	long v = leaf(40, 2, 0, 0, 0, 0);
	check(v == 42 && rz.hits == 1 && rz.last.si == 2 && rz.last.ip == addr_of((void *)p_leaf_redzone) + 5,
	      "p_leaf_redzone+5: red zone intact (%ld), probe saw a2 and ip = entry + 5", v);
	auto info = m.info(*a);
	check(!info->at_function_entry, "p_leaf_redzone+5: reported as not at a function entry");
	std::atomic<uint64_t> n{ 0 };
	auto f = m.attach_uprobe({ "", "p_flags", 3 }, on_count, &n);
	volatile fn6 flags = p_flags;
	long lt = flags(1, 2, 0, 0, 0, 0), ge = flags(2, 1, 0, 0, 0, 0);
	check(f.ok() && n == 2 && lt == 1 && ge == 0, "p_flags+3: flags kept across the probe (%ld %ld)", lt, ge);

	// Floating-point arguments survive a callback that zeroes xmm0-15.
	std::atomic<uint64_t> vn{ 0 };
	for (bool bp : { false, true }) {
		attach_options o;
		o.force_breakpoint = bp;
		auto fa = m.attach_uprobe({ "", "t_fsum", 0 }, on_clobber_vectors, &vn, o);
		volatile auto fs = t_fsum;
		double d = fs(1.5, 2.25, 3, 4, 5, 6, 7, 8.125);
		check(fa.ok() && d == 36.875, "t_fsum%s: xmm0-7 arguments intact across the callback (%g)",
		      bp ? " (breakpoint)" : "", d);
		if (fa)
			(void)m.detach(*fa);
	}
	check(vn == 2, "t_fsum: callback ran twice");
}

void scenario_threads()
{
	constexpr int threads = 8;
	constexpr long calls = 200000;
	attach_manager m;
	std::atomic<uint64_t> in{ 0 }, out{ 0 }, bp{ 0 };
	auto a = m.attach_uprobe({ "", "t_work", 0 }, on_count, &in);
	auto b = m.attach_uretprobe({ "", "t_work", 0 }, on_count, &out);
	auto c = m.attach_uprobe({ "", "p_short", 0 }, on_count, &bp);
	check(a && b && c, "attach t_work uprobe + uretprobe, p_short uprobe");
	std::atomic<long> wrong{ 0 };
	std::vector<std::thread> ts;
	for (int t = 0; t < threads; t++)
		ts.emplace_back([&, t] {
			volatile auto w = t_work;
			volatile fn6 s = p_short;
			for (long i = 0; i < calls; i++) {
				if (w(i + t) != (i + t) * 3 + 1)
					wrong++;
				if (i % 10 == 0 && s(i, 0, 0, 0, 0, 0) != (long)(int)(i + 1))
					wrong++;
			}
		});
	for (auto &t : ts)
		t.join();
	check(wrong == 0, "8 threads: every result right");
	check(in == threads * calls, "8 threads: uprobe count exact (%" PRIu64 " of %ld)", in.load(),
	      threads * calls);
	check(out == threads * calls, "8 threads: uretprobe count exact (%" PRIu64 " of %ld)", out.load(),
	      threads * calls);
	check(bp == threads * calls / 10, "8 threads: breakpoint probe count exact (%" PRIu64 " of %ld)",
	      bp.load(), threads * calls / 10);
	check(m.info(*b)->missed == 0, "8 threads: no missed return");
}

struct ret_log {
	std::vector<uint64_t> values;
	std::vector<uint64_t> args;
};

void on_ret_log(const pt_regs *r, void *u)
{
	static_cast<ret_log *>(u)->values.push_back(r->ax);
}

void on_arg_log(const pt_regs *r, void *u)
{
	static_cast<ret_log *>(u)->args.push_back(r->di);
}

void scenario_recursion()
{
	attach_manager m;
	ret_log log;
	auto a = m.attach_uprobe({ "", "t_fact", 0 }, on_arg_log, &log);
	auto b = m.attach_uretprobe({ "", "t_fact", 0 }, on_ret_log, &log);
	check(a && b, "attach t_fact");
	volatile auto f = t_fact;
	long v = f(10);
	check(v == 3628800, "t_fact(10) = %ld", v);
	bool args_ok = log.args.size() == 10, vals_ok = log.values.size() == 10;
	uint64_t fact = 1;
	for (size_t i = 0; i < 10 && args_ok && vals_ok; i++) {
		args_ok = log.args[i] == 10 - i;
		fact *= i + 1;
		vals_ok = log.values[i] == fact;
	}
	check(args_ok, "recursion: entries saw n = 10 .. 1");
	check(vals_ok, "recursion: returns seen innermost first: 1, 2, 6, ... 3628800");

	// A tail call between two functions with uretprobes: the inner one
	// returns to the outer one's trampoline, which returns to the caller.
	recorder outer, inner;
	auto t1 = m.attach_uretprobe({ "", "p_jmp_first", 0 }, on_entry, &outer);
	auto t2 = m.attach_uretprobe({ "", "p_endbr64", 0 }, on_entry, &inner);
	volatile fn6 tail = p_jmp_first;
	long tv = tail(1, 2, 3, 4, 5, 6);
	long tv2 = tail(1, 1, 1, 1, 1, 1);
	check(t1 && t2 && tv == 21 && tv2 == 6 && outer.hits == 2 && inner.hits == 2 && outer.last.ax == 6 &&
		      inner.last.ax == 6 && m.info(*t1)->missed == 0,
	      "tail call: both returns reported (%" PRIu64 ", %" PRIu64 "), results right", outer.hits.load(),
	      inner.hits.load());

	// Threads each recursing: one shadow stack per thread.
	std::atomic<uint64_t> n{ 0 };
	auto c = m.attach_uretprobe({ "", "t_fact", 0 }, on_count, &n);
	(void)m.detach(*b);
	(void)m.detach(*a);
	std::vector<std::thread> ts;
	std::atomic<int> wrong{ 0 };
	for (int t = 0; t < 8; t++)
		ts.emplace_back([&] {
			for (int i = 0; i < 2000; i++)
				if (f(12) != 479001600)
					wrong++;
		});
	for (auto &t : ts)
		t.join();
	check(c && wrong == 0 && n == 8 * 2000 * 12,
	      "recursion on 8 threads: results right, %" PRIu64 " returns reported of %d", n.load(),
	      8 * 2000 * 12);
}

// setjmp, then a longjmp from six probed frames down, then a probed call.
__attribute__((noinline)) long jump_round()
{
	static jmp_buf env;
	volatile auto j = t_jumper;
	volatile auto work = t_work;
	if (setjmp(env) == 0)
		j(&env, 5);
	return work(4);
}

void scenario_longjmp()
{
	attach_manager m;
	std::atomic<uint64_t> n{ 0 }, w{ 0 };
	auto a = m.attach_uretprobe({ "", "t_jumper", 0 }, on_count, &n);
	auto b = m.attach_uretprobe({ "", "t_work", 0 }, on_count, &w);
	check(a && b, "attach t_jumper, t_work uretprobes");
	for (int round = 0; round < 3; round++) {
		long v = jump_round();
		check(v == 13, "after longjmp out of 6 probed frames: a probed call returns right (%ld)", v);
	}
	check(n == 0, "longjmp: the abandoned frames reported no return");
	check(w == 3, "longjmp: later returns reported (%" PRIu64 ")", w.load());
	check(m.info(*a)->missed == 18, "longjmp: 18 abandoned returns counted as missed (%" PRIu64 ")",
	      m.info(*a)->missed);
}

bool on_override_42(pt_regs *, void *u, uint64_t *ret)
{
	static_cast<std::atomic<uint64_t> *>(u)->fetch_add(1);
	*ret = 42;
	return true;
}

bool on_pass_double_arg(pt_regs *r, void *, uint64_t *)
{
	r->di = 100;
	return false;
}

void scenario_override()
{
	volatile auto f = t_effect;
	for (bool bp : { false, true }) {
		const char *how = bp ? " (breakpoint)" : "";
		attach_manager m;
		attach_options o;
		o.force_breakpoint = bp;
		std::atomic<uint64_t> n{ 0 }, entries{ 0 };
		long before = t_side_effects;
		auto e = m.attach_uprobe({ "", "t_effect", 0 }, on_count, &entries, o);
		auto a = m.attach_override({ "", "t_effect", 0 }, on_override_42, &n, o);
		check(e && a, "attach override and uprobe on t_effect%s", how);
		long v = f(5);
		check(v == 42 && t_side_effects == before && n == 1 && entries == 1,
		      "override%s: returns 42, the body did not run, the uprobe ran too", how);
		(void)m.detach(*a);
		v = f(5);
		check(v == 10 && t_side_effects == before + 1, "override%s detached: the function runs again", how);
		auto p = m.attach_override({ "", "t_effect", 0 }, on_pass_double_arg, nullptr, o);
		v = f(5);
		check(p && v == 200, "override%s returning false: the call goes on with the changed argument (%ld)",
		      how, v);
	}
	attach_manager m;
	auto bad = m.attach_override({ "", "p_leaf_redzone", 5 }, on_override_42, nullptr);
	check(!bad && bad.error().code == EINVAL, "override in the middle of a function: EINVAL (%s)",
	      bad ? "" : bad.error().message.c_str());
}

void scenario_shared()
{
	attach_manager m;
	recorder in, out;
	auto a = m.attach_uprobe({ "libattach_fixture.so", "lib_add", 0 }, on_entry, &in);
	auto b = m.attach_uretprobe({ "libattach_fixture.so", "lib_add", 0 }, on_entry, &out);
	check(a && b, "attach lib_add in libattach_fixture.so: %s",
	      a && b ? to_string(m.info(*a)->mech) : (!a ? a.error() : b.error()).message.c_str());
	volatile auto f = lib_add;
	long v = f(1234, 4321);
	check(v == 5555 && in.hits == 1 && in.last.di == 1234 && in.last.si == 4321 && out.last.ax == 5555,
	      "lib_add: arguments and return value seen (%ld)", v);
	check(in.last.ip == addr_of((void *)&lib_add), "lib_add: ip is the library function's address");
	// By file offset, as the kernel's uprobe ABI takes it.
	auto loc = resolve({ "libattach_fixture.so", "lib_add", 0 });
	auto by_off = resolve({ loc->module.path, "", loc->file_offset });
	check(by_off && by_off->address == loc->address && by_off->symbol == "lib_add",
	      "lib_add by path and file offset resolves to the same address");
}

void scenario_dlopen(const char *lib)
{
	attach_manager m;
	recorder in, out;
	auto a = m.attach_uprobe({ "libattach_dl.so", "dl_mul", 0 }, on_entry, &in);
	auto b = m.attach_uretprobe({ "libattach_dl.so", "dl_mul", 0 }, on_entry, &out);
	check(a && b && m.info(*a)->state == probe_state::pending,
	      "a probe on a library not loaded yet is pending: %s", a ? m.info(*a)->reason.c_str() : "");
	void *h = dlopen(lib, RTLD_NOW);
	check(h != nullptr, "dlopen %s", lib);
	if (!h)
		return;
	auto i = m.info(*a);
	check(i->state == probe_state::active, "after dlopen the probe is active (%s, %s)",
	      to_string(i->state), i->reason.c_str());
	auto f = reinterpret_cast<long (*)(long, long)>(dlsym(h, "dl_mul"));
	long v = f(6, 7);
	check(v == 42 && in.hits == 1 && in.last.di == 6 && out.hits == 1 && out.last.ax == 42,
	      "dl_mul(6, 7) seen on entry and return (%ld)", v);

	// Unloaded, the probes wait for the module again; loaded again (at
	// whatever address), they are back.
	check(dlclose(h) == 0, "dlclose");
	i = m.info(*a);
	check(i->state == probe_state::pending && m.info(*b)->state == probe_state::pending,
	      "after dlclose the probes are pending again (%s: %s)", to_string(i->state), i->reason.c_str());
	h = dlopen(lib, RTLD_NOW);
	f = h ? reinterpret_cast<long (*)(long, long)>(dlsym(h, "dl_mul")) : nullptr;
	v = f ? f(3, 5) : 0;
	i = m.info(*a);
	check(i->state == probe_state::active && v == 15 && in.hits == 2 && in.last.di == 3 && out.hits == 2 &&
		      out.last.ax == 15,
	      "loaded again: active, dl_mul(3, 5) seen (%ld)", v);
	check(m.detach(*a).ok() && m.detach(*b).ok() && dlclose(h) == 0, "detach and dlclose");
}

void scenario_errors()
{
	attach_manager m;
	std::atomic<uint64_t> n{ 0 };
	static long data_word = 1;
	auto e1 = m.attach_uprobe(addr_of(&data_word), on_count, &n);
	check(!e1 && e1.error().code == EFAULT, "data address: EFAULT (%s)", e1 ? "" : e1.error().message.c_str());
	auto e2 = m.attach_uprobe({ "", "t_work", 0 }, nullptr, nullptr);
	check(!e2 && e2.error().code == EINVAL, "null callback: EINVAL (%s)", e2 ? "" : e2.error().message.c_str());
	auto e3 = m.attach_uretprobe({ "", "p_leaf_redzone", 5 }, on_count, &n);
	check(!e3 && e3.error().code == EINVAL, "uretprobe inside a function: EINVAL (%s)",
	      e3 ? "" : e3.error().message.c_str());
	auto e4 = m.attach_uprobe({ "", "no_such_function", 0 }, on_count, &n);
	check(!e4 && e4.error().code == ENOENT, "unknown function: ENOENT (%s)", e4 ? "" : e4.error().message.c_str());
	auto e5 = m.attach_uprobe({ "/nonexistent/libnothing.so", "f", 0 }, on_count, &n);
	check(!e5 && e5.error().code == ENOENT, "module path naming no file: ENOENT (%s)",
	      e5 ? "" : e5.error().message.c_str());
	check(m.detach(987654).error().code == ENOENT, "detach of an unknown id: ENOENT");
	auto e6 = m.attach_uprobe(addr_of((void *)p_trap), on_count, &n);
	check(!e6 && e6.error().code == EBUSY, "an int3 already there: EBUSY (%s)", e6 ? "" : e6.error().message.c_str());
	auto e7 = m.attach_uprobe(addr_of((void *)p_bad), on_count, &n);
	check(!e7 && e7.error().code == EINVAL, "undecodable instruction: EINVAL (%s)",
	      e7 ? "" : e7.error().message.c_str());
	auto e8 = m.attach_uprobe({ "", "t_work", 1 << 20 }, on_count, &n);
	check(!e8 && e8.error().code == EINVAL, "offset past the function's end: EINVAL (%s)",
	      e8 ? "" : e8.error().message.c_str());
	auto e9 = m.attach_uprobe({ "", "p_endbr64", 1 }, on_count, &n);
	check(!e9 && e9.error().code == EINVAL, "offset inside an instruction: EINVAL (%s)",
	      e9 ? "" : e9.error().message.c_str());
	check(m.probes().empty(), "failed attaches left no probe behind");
	volatile auto w = t_work;
	check(w(2) == 7 && n == 0, "the process and its functions are unharmed");
}

void scenario_concurrent()
{
	// Attach and detach over and over while threads call the function:
	// no thread may run a half-written instruction, every result stays
	// right, and the bytes end as they began.
	std::atomic<bool> stop{ false };
	std::atomic<long> wrong{ 0 }, calls{ 0 };
	uint8_t before[16], after[16];
	snapshot_bytes((void *)p_push_rbp, before);
	std::vector<std::thread> ts;
	for (int t = 0; t < 4; t++)
		ts.emplace_back([&] {
			volatile fn6 f = p_push_rbp;
			while (!stop.load(std::memory_order_relaxed)) {
				if (f(1, 2, 3, 4, 5, 6) != 21)
					wrong++;
				calls++;
			}
		});
	attach_manager m;
	std::atomic<uint64_t> n{ 0 };
	int inline_count = 0, hit_rounds = 0, rounds = 60;
	for (int i = 0; i < rounds; i++) {
		auto a = m.attach_uprobe({ "", "p_push_rbp", 0 }, on_count, &n);
		auto b = m.attach_uretprobe({ "", "p_push_rbp", 0 }, on_count, &n);
		if (!a || !b) {
			check(false, "attach while threads run: %s", (!a ? a.error() : b.error()).message.c_str());
			break;
		}
		inline_count += m.info(*a)->mech == mechanism::inline_jump;
		// Let the callers run into the probe before taking it away.
		const uint64_t n0 = n.load();
		for (int spin = 0; spin < 2000 && n.load() == n0; spin++)
			std::this_thread::sleep_for(std::chrono::microseconds(500));
		hit_rounds += n.load() != n0;
		(void)m.detach(*a);
		(void)m.detach(*b);
	}
	stop = true;
	for (auto &t : ts)
		t.join();
	snapshot_bytes((void *)p_push_rbp, after);
	check(wrong == 0, "%d attach/detach rounds under 4 calling threads: %ld calls, none wrong", rounds,
	      calls.load());
	check(hit_rounds == rounds, "probes hit in every round (%d of %d, %" PRIu64 " hits)", hit_rounds, rounds, n.load());
	check(inline_count == rounds, "every round used the inline jump (%d of %d)", inline_count, rounds);
	check(memcmp(before, after, 16) == 0, "bytes restored exactly after the last detach");
}

// Several threads attach and detach at once, each on its own function and
// all on a shared one, while others call them: the managers' operations
// serialise, every probe ends detached and every byte restored.
void scenario_parallel_attach()
{
	const fn6 fns[] = { p_endbr64, p_sub_rsp, p_rip_lea, p_call_first };
	const char *names[] = { "p_endbr64", "p_sub_rsp", "p_rip_lea", "p_call_first" };
	uint8_t before[5][16], after[5][16];
	for (int i = 0; i < 4; i++)
		snapshot_bytes((void *)fns[i], before[i]);
	snapshot_bytes((void *)p_push_rbp, before[4]);
	std::atomic<bool> stop{ false };
	std::atomic<long> wrong{ 0 }, failures{ 0 };
	std::vector<std::thread> callers, attachers;
	for (int t = 0; t < 2; t++)
		callers.emplace_back([&] {
			while (!stop.load(std::memory_order_relaxed)) {
				for (int i = 0; i < 4; i++) {
					volatile fn6 f = fns[i];
					long v = f(5, 6, 7, 8, 9, 10);
					long exp = i == 0 ? 45 : i == 1 ? 20 : i == 2 ? 1005 : 105;
					if (v != exp)
						wrong++;
				}
				volatile fn6 g = p_push_rbp;
				if (g(1, 2, 3, 4, 5, 6) != 21)
					wrong++;
			}
		});
	std::atomic<uint64_t> n{ 0 };
	for (int t = 0; t < 4; t++)
		attachers.emplace_back([&, t] {
			attach_manager m;
			for (int r = 0; r < 25; r++) {
				auto a = m.attach_uprobe({ "", names[t], 0 }, on_count, &n);
				auto b = m.attach_uretprobe({ "", "p_push_rbp", 0 }, on_count, &n);
				if (!a || !b)
					failures++;
				if (a)
					(void)m.detach(*a);
				if (b)
					(void)m.detach(*b);
			}
		});
	for (auto &t : attachers)
		t.join();
	stop = true;
	for (auto &t : callers)
		t.join();
	bool restored = true;
	for (int i = 0; i < 4; i++) {
		snapshot_bytes((void *)fns[i], after[i]);
		restored = restored && memcmp(before[i], after[i], 16) == 0;
	}
	snapshot_bytes((void *)p_push_rbp, after[4]);
	restored = restored && memcmp(before[4], after[4], 16) == 0;
	check(failures == 0, "4 threads x 25 rounds of attach/detach: no attach failed (%ld)", failures.load());
	check(wrong == 0, "callers' results all right");
	check(restored, "every function's bytes restored exactly");
}

// The trampolines as machine code, for both vector widths (a machine
// without AVX runs the xmm form, which these tests cannot otherwise reach):
// every byte decodes, and the vector saves and loads are the ones
// trampoline.hpp describes, high registers (REX/VEX.R) included.
void scenario_encodings()
{
	using namespace bpftime::attach::detail;
	const uint64_t at = addr_of((void *)p_push_rbp);
	auto r = plan_region(at, reinterpret_cast<const uint8_t *>(at), 16, 5);
	check(r.ok(), "plan the region of p_push_rbp");
	if (!r)
		return;
	site s;
	for (bool entry : { true, false }) {
		for (bool ymm : { true, false }) {
			const uint64_t base = at + 0x100000;
			auto code = build_entry(base, *r, &s, entry, ymm);
			if (!code) {
				check(false, "build: %s", code.error().message.c_str());
				continue;
			}
			const auto &b = code->bytes;
			size_t off = 0, vec = 0, high = 0, pushf = 0;
			bool decoded = true;
			while (off < b.size()) {
				auto in = decode(base + off, b.data() + off, b.size() - off);
				if (!in) {
					decoded = false;
					break;
				}
				if (in->text.find(ymm ? "vmovdqu" : "movdqu") == 0 &&
				    in->text.find(ymm ? "ymm" : "xmm") != std::string::npos)
					vec++;
				if (in->text.find(ymm ? "ymm15" : "xmm15") != std::string::npos)
					high++;
				if (in->text == "pushfq")
					pushf++;
				off += in->length;
			}
			// Every vector register around the entry callback and
			// around the return callback (-fipa-ra callers).
			const size_t want = 16 * 2 + 16 * 2;
			const char *what = entry ? "at a function entry" : "inside a function";
			check(decoded && off == b.size(), "%s, %s: all %zu bytes decode", ymm ? "ymm" : "xmm", what,
			      b.size());
			check(vec == want, "%s, %s: %zu vector saves and loads (want %zu)", ymm ? "ymm" : "xmm", what, vec,
			      want);
			check(high == 4u, "%s, %s: register 15 saved and loaded %zu times",
			      ymm ? "ymm" : "xmm", what, high);
			check(pushf == (entry ? 0u : 1u), "%s, %s: pushfq only inside a function (%zu)", ymm ? "ymm" : "xmm",
			      what, pushf);
		}
	}
}

// A signal handler on a sigaltstack that lies above the thread's stack
// calls a probed function while the interrupted code is inside another:
// neither frame may be taken for one a longjmp abandoned.
std::atomic<long> g_handler_result{ 0 };

void on_usr1(int)
{
	volatile auto w = t_work;
	g_handler_result = w(10);
}

void scenario_altstack()
{
	attach_manager m;
	std::atomic<uint64_t> raised{ 0 }, worked{ 0 };
	auto a = m.attach_uretprobe({ "", "t_raise", 0 }, on_count, &raised);
	auto b = m.attach_uretprobe({ "", "t_work", 0 }, on_count, &worked);
	check(a && b, "attach t_raise and t_work uretprobes");
	// One 4 MiB mapping: the thread's stack in its first MiB, the signal
	// stack 2 MiB above the top of that.
	const size_t stack_size = 1 << 20;
	auto *region = static_cast<uint8_t *>(
		mmap(nullptr, 4 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
	void *stack = region;
	void *alt = region + (3 << 20);
	struct ctx {
		void *alt;
		long result;
		bool above;
	} c{ alt, 0, false };
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setstack(&attr, stack, stack_size);
	pthread_t t;
	pthread_create(
		&t, &attr,
		[](void *p) -> void * {
			auto *c = static_cast<ctx *>(p);
			stack_t ss = {};
			ss.ss_sp = c->alt;
			ss.ss_size = 1 << 16;
			sigaltstack(&ss, nullptr);
			struct sigaction sa = {};
			sa.sa_handler = on_usr1;
			sa.sa_flags = SA_ONSTACK;
			sigaction(SIGUSR1, &sa, nullptr);
			int here;
			c->above = reinterpret_cast<uintptr_t>(c->alt) > reinterpret_cast<uintptr_t>(&here);
			volatile auto r = t_raise;
			c->result = r(SIGUSR1);
			return nullptr;
		},
		&c);
	pthread_join(t, nullptr);
	pthread_attr_destroy(&attr);
	check(c.above, "the signal stack lies above the thread's stack");
	check(c.result == 7 && g_handler_result == 31, "both functions returned right (%ld, %ld)", c.result,
	      g_handler_result.load());
	check(raised == 1 && worked == 1 && m.info(*a)->missed == 0 && m.info(*b)->missed == 0,
	      "both returns reported, none missed (%" PRIu64 ", %" PRIu64 ")", raised.load(), worked.load());
	munmap(region, 4 << 20);
}

// A forked child keeps the probes (its memory is a copy: patched code,
// trampolines, handler lists and the thread's shadow stack), and the parent
// is unaffected by what the child does.
void scenario_fork()
{
	attach_manager m;
	std::atomic<uint64_t> in{ 0 }, out{ 0 };
	auto a = m.attach_uprobe({ "", "t_work", 0 }, on_count, &in);
	auto b = m.attach_uretprobe({ "", "t_work", 0 }, on_count, &out);
	check(a && b, "attach t_work uprobe + uretprobe");
	volatile auto w = t_work;
	(void)w(1);
	fflush(stdout);
	pid_t child = fork();
	if (child == 0) {
		bool ok = true;
		for (int i = 0; i < 1000; i++)
			ok = ok && w(i) == i * 3 + 1;
		// New trampolines of the child must not land in memory it
		// shares with its parent.
		std::atomic<uint64_t> mine{ 0 };
		attach_manager cm;
		auto c1 = cm.attach_uprobe({ "", "p_endbr64", 0 }, on_count, &mine);
		auto c2 = cm.attach_uprobe({ "", "p_sub_rsp", 0 }, on_count, &mine);
		volatile fn6 e = p_endbr64;
		ok = ok && c1 && c2 && e(1, 1, 1, 1, 1, 1) == 6 && mine == 1;
		_exit(ok && in == 1001 && out == 1001 ? 0 : 1);
	}
	int status = 0;
	waitpid(child, &status, 0);
	check(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	      "the child's calls hit the inherited probes, returns included (status %d)", status);
	check(in == 1 && out == 1, "the parent's counters are its own (%" PRIu64 ", %" PRIu64 ")", in.load(), out.load());
	(void)w(2);
	check(in == 2 && out == 2, "the parent's probes still fire, after the child made trampolines of its own");
	std::atomic<uint64_t> later{ 0 };
	auto c = m.attach_uprobe({ "", "p_sub_rsp", 0 }, on_count, &later);
	volatile fn6 sr = p_sub_rsp;
	check(c && sr(3, 0, 0, 0, 0, 4) == 10 && later == 1 && w(3) == 10 && in == 3,
	      "the parent attaches again and everything still runs");
}

void scenario_allocations()
{
	attach_manager m;
	std::atomic<uint64_t> n{ 0 };
	g_count_allocs = true;
	delete new std::vector<int>(100);
	g_count_allocs = false;
	check(g_allocs >= 2, "the counter sees allocations (%" PRIu64 " for a new vector)", g_allocs.load());
	auto a = m.attach_uprobe({ "", "t_work", 0 }, on_count, &n);
	auto b = m.attach_uretprobe({ "", "t_work", 0 }, on_count, &n);
	auto c = m.attach_override({ "", "t_effect", 0 }, on_override_42, &n);
	auto d = m.attach_uprobe({ "", "p_short", 0 }, on_count, &n);
	check(a && b && c && d, "attach uprobe, uretprobe, override, breakpoint");
	volatile auto w = t_work;
	volatile auto e = t_effect;
	volatile fn6 s = p_short;
	(void)w(1); // first hit of the thread
	g_allocs = 0;
	g_count_allocs = true;
	for (int i = 0; i < 1000; i++) {
		(void)w(i);
		(void)e(i);
		(void)s(i, 0, 0, 0, 0, 0);
	}
	g_count_allocs = false;
	check(n == 1 + 1 + 4000, "4000 hits counted (%" PRIu64 ")", n.load() - 2);
	check(g_allocs == 0, "no allocation on 4000 hits of uprobes, uretprobes, overrides and breakpoints (%" PRIu64 ")",
	      g_allocs.load());
}


// --- system call hooks ---------------------------------------------------

struct sys_counts {
	std::atomic<uint64_t> enter[512];
	std::atomic<uint64_t> exit[512];
	std::atomic<uint64_t> bad_enter{ 0 }; // orig_ax/ax not as the kernel's
	pt_regs last_write_enter{}, last_write_exit{};
};
sys_counts g_sys;

bool sys_on_enter(pt_regs *r, void *, uint64_t *)
{
	if (r->orig_ax < 512)
		g_sys.enter[r->orig_ax].fetch_add(1, std::memory_order_relaxed);
	if (r->ax != uint64_t(-ENOSYS) || r->cx != r->ip)
		g_sys.bad_enter.fetch_add(1, std::memory_order_relaxed);
	if (r->orig_ax == SYS_write && int(r->di) == -1)
		g_sys.last_write_enter = *r;
	return false;
}

void sys_on_exit(const pt_regs *r, void *)
{
	if (r->orig_ax < 512)
		g_sys.exit[r->orig_ax].fetch_add(1, std::memory_order_relaxed);
	if (r->orig_ax == SYS_write && int(r->di) == -1)
		g_sys.last_write_exit = *r;
}

bool sys_skip_getppid(pt_regs *, void *, uint64_t *ret)
{
	*ret = 4242;
	return true;
}

// A `syscall` the driver makes with CF set and reads CF after: the kernel
// keeps the flags across the call (sysret restores them from r11), and so
// must the hook's routine. `mov eax, 39` before it is the 5 bytes a jump
// replaces.
__attribute__((noinline)) int carry_after_getpid()
{
	unsigned char cf;
	long ret;
	asm volatile("stc\n\tmov $39, %%eax\n\tsyscall\n\tsetc %0"
		     : "=q"(cf), "=a"(ret)
		     :
		     : "rcx", "r11", "memory", "cc");
	return ret > 0 && cf;
}

// getpid through a `syscall` no jump can be placed over: a branch targets
// it, the jump before it moves control flow, and a ret and another function
// follow it. Only syscall user dispatch reports its calls.
extern "C" long driver_left_getpid();
extern "C" char driver_left_syscall[];
asm(".text\n.globl driver_left_getpid\n.type driver_left_getpid,@function\n"
    "driver_left_getpid:\n mov $39, %eax\n jmp driver_left_syscall\n"
    ".globl driver_left_syscall\ndriver_left_syscall:\n syscall\n ret\n"
    ".size driver_left_getpid, .-driver_left_getpid\n"
    ".globl driver_left_after\n.type driver_left_after,@function\ndriver_left_after:\n ret\n"
    ".size driver_left_after, .-driver_left_after\n");

void *left_worker(void *)
{
	for (int i = 0; i < 100; i++)
		if (driver_left_getpid() != getpid())
			return (void *)1;
	return nullptr;
}

void *sys_worker(void *)
{
	char c;
	for (int i = 0; i < 1000; i++) {
		if (getpid() <= 0)
			return (void *)1;
		int fd = open("/dev/zero", O_RDONLY);
		if (fd < 0 || read(fd, &c, 1) != 1)
			return (void *)1;
		close(fd);
	}
	return nullptr;
}

void scenario_syscalls(const char *dl_lib)
{
	check(bpftime::attach::syscall_hooks::sites().empty(),
	      "before any syscall hook: no site found, nothing rewritten");
	bpftime::attach::syscall_hooks h;
	check(!h.attach_enter(2000, sys_on_enter, nullptr) &&
		      h.attach_enter(2000, sys_on_enter, nullptr).error().code == EINVAL,
	      "system call number 2000 refused with EINVAL");
	auto a = h.attach_enter(bpftime::attach::ALL_SYSCALLS, sys_on_enter, nullptr);
	auto b = h.attach_exit(bpftime::attach::ALL_SYSCALLS, sys_on_exit, nullptr);
	check(a && b, "attach enter and exit hooks for every system call");
	const auto st = bpftime::attach::syscall_hooks::stats();
	check(st.rewritten > 400 && st.rewritten > 50 * st.not_rewritten,
	      "%u sites rewritten, %u left as they were, in %u modules, %.1f ms", st.rewritten,
	      st.not_rewritten, st.modules, st.scan_ms);
	uint64_t left_reasons = 0;
	for (const auto &site : bpftime::attach::syscall_hooks::sites())
		if (!site.rewritten && site.reason.empty())
			left_reasons++;
	check(left_reasons == 0, "every site left as it was says why");

	auto snap = [](int nr) { return std::pair(g_sys.enter[nr].load(), g_sys.exit[nr].load()); };
	// Single-threaded: glibc's read() takes its single-threaded path here.
	{
		auto r0 = snap(SYS_read);
		int fd = open("/dev/zero", O_RDONLY);
		char c;
		for (int i = 0; i < 100; i++)
			(void)read(fd, &c, 1);
		close(fd);
		auto r1 = snap(SYS_read);
		check(r1.first - r0.first == 100 && r1.second - r0.second == 100,
		      "single-threaded read: 100 enters, 100 exits (%" PRIu64 ", %" PRIu64 ")",
		      r1.first - r0.first, r1.second - r0.second);
	}
	// The registers, as the kernel's pt_regs at entry and at exit.
	{
		static const char msg[] = "bpftime";
		long w = write(-1, msg, 7);
		const pt_regs &e = g_sys.last_write_enter, &x = g_sys.last_write_exit;
		check(w == -1 && errno == EBADF, "write(-1) fails with EBADF as without hooks");
		check(e.orig_ax == SYS_write && int(e.di) == -1 && e.si == uint64_t(msg) && e.dx == 7,
		      "write enter: orig_ax %" PRIu64 ", di %d, si, dx %" PRIu64, e.orig_ax, int(e.di), e.dx);
		check(x.orig_ax == SYS_write && int64_t(x.ax) == -EBADF,
		      "write exit: orig_ax %" PRIu64 ", ax %" PRId64 " (-EBADF)", x.orig_ax, int64_t(x.ax));
		check(g_sys.bad_enter == 0, "every enter saw ax = -ENOSYS and cx = ip");
	}
	check(carry_after_getpid(), "the carry flag set before a hooked syscall is set after it");
	// Threads created after the rewrite; clone3 reports its exit in both.
	{
		auto g0 = snap(SYS_getpid), o0 = snap(SYS_openat), c0 = snap(SYS_clone3);
		pthread_t t[4];
		for (auto &x : t)
			pthread_create(&x, nullptr, sys_worker, nullptr);
		bool ok = true;
		for (auto &x : t) {
			void *rv;
			pthread_join(x, &rv);
			ok = ok && rv == nullptr;
		}
		auto g1 = snap(SYS_getpid), o1 = snap(SYS_openat), c1 = snap(SYS_clone3);
		check(ok, "4 threads: every call succeeded");
		check(g1.first - g0.first == 4000 && g1.second - g0.second == 4000,
		      "4 threads: getpid 4000 enters, 4000 exits (%" PRIu64 ", %" PRIu64 ")",
		      g1.first - g0.first, g1.second - g0.second);
		check(o1.first - o0.first == 4000 && o1.second - o0.second == 4000,
		      "4 threads: openat 4000 enters, 4000 exits");
		check(c1.first - c0.first == 4 && c1.second - c0.second == 8,
		      "clone3: 4 enters, 8 exits (parent and child; %" PRIu64 ", %" PRIu64 ")",
		      c1.first - c0.first, c1.second - c0.second);
	}
	// The site left as it was: its calls reach the hooks through syscall
	// user dispatch, in this thread and in one started after the attach.
	{
		const auto now = bpftime::attach::syscall_hooks::stats();
		bool trapped = false;
		for (const auto &site : bpftime::attach::syscall_hooks::sites())
			if (site.address == uint64_t(driver_left_syscall))
				trapped = !site.rewritten && site.trapped;
		check(now.user_dispatch && trapped,
		      "the unrewritable site is left, and syscall user dispatch covers it");
		auto g0 = snap(SYS_getpid);
		pthread_t t;
		void *rv = (void *)1;
		pthread_create(&t, nullptr, left_worker, nullptr);
		pthread_join(t, &rv);
		bool ok = rv == nullptr && left_worker(nullptr) == nullptr;
		auto g1 = snap(SYS_getpid);
		// left_worker: 100 calls at the left site, 100 of getpid().
		check(ok && g1.first - g0.first == 400 && g1.second - g0.second == 400,
		      "left site: 2 threads x 200 getpid, 400 enters and exits (%" PRIu64 ", %" PRIu64 ")",
		      g1.first - g0.first, g1.second - g0.second);
	}
	// A skip: the call does not happen, it returns what the hook chose.
	{
		auto s = h.attach_enter(SYS_getppid, sys_skip_getppid, nullptr);
		long v = getppid();
		check(s && v == 4242, "skipped getppid returns the hook's 4242 (%ld)", v);
		check(s && h.detach(*s).ok() && getppid() != 4242, "detached: getppid runs again");
	}
	// fork: the child runs the hooks too, on its copy of the counters.
	{
		auto f0 = snap(SYS_getpid);
		pid_t p = fork();
		if (p == 0)
			_exit(g_sys.enter[SYS_getpid].load() - f0.first == 0 && getpid() > 0 &&
				      g_sys.enter[SYS_getpid].load() - f0.first == 1 ?
				      0 :
				      1);
		int status = 0;
		waitpid(p, &status, 0);
		check(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "fork: the child's getpid is hooked in the child (status %d)", status);
		// The trampolines are shared with the child: its hooks must not
		// change what the parent's calls run.
		pid_t q = fork();
		if (q == 0) {
			(void)h.detach(*b);
			_exit(getpid() > 0 ? 0 : 1);
		}
		waitpid(q, &status, 0);
		auto e0 = snap(SYS_getpid);
		(void)getpid();
		auto e1 = snap(SYS_getpid);
		check(e1.first - e0.first == 1 && e1.second - e0.second == 1,
		      "fork: a child that detached its exit hook leaves the parent's exits reported");
	}
	// A library dlopen()ed now: its own syscall is rewritten when it maps.
	if (dl_lib) {
		void *lib = dlopen(dl_lib, RTLD_NOW);
		auto fn = lib ? reinterpret_cast<long (*)()>(dlsym(lib, "dl_raw_getppid")) : nullptr;
		check(fn != nullptr, "dlopen %s", dl_lib);
		if (fn) {
			auto p0 = snap(SYS_getppid);
			long v = fn();
			auto p1 = snap(SYS_getppid);
			check(v == getppid() && p1.first - p0.first == 1 && p1.second - p0.second == 1,
			      "the dlopen()ed library's own syscall is hooked (%ld; %" PRIu64 " enter)", v,
			      p1.first - p0.first);
		}
	}
	check(h.detach(*a).ok() && h.detach(*b).ok(), "detach both");
	check(h.detach(*a).error().code == ENOENT, "a second detach is ENOENT");
	auto g0 = snap(SYS_getpid);
	(void)getpid();
	check(snap(SYS_getpid) == g0, "after detach no hook runs");
	// One number hooked: the sites test that number's byte, glibc's
	// syscall() (whose number is computed) included, and the other calls
	// run alone.
	{
		auto c = h.attach_enter(SYS_getpid, sys_on_enter, nullptr);
		auto g1 = snap(SYS_getpid), p1 = snap(SYS_getppid);
		const bool same = syscall(SYS_getpid) == getpid() && syscall(SYS_getppid) == getppid();
		auto g2 = snap(SYS_getpid), p2 = snap(SYS_getppid);
		check(c && same && g2.first - g1.first == 2 && g2.second == g1.second && p2 == p1,
		      "getpid alone hooked: syscall(SYS_getpid) and getpid() enter (%" PRIu64
		      "), getppid not, no exit",
		      g2.first - g1.first);
		check(c && h.detach(*c).ok(), "detach the getpid hook");
	}
}


// A thread that blocks every signal (a sigwait worker) while the sites are
// rewritten: an int3 would kill it, so only the sites written at once are
// rewritten, and it keeps making system calls through them.
void scenario_syscalls_masked()
{
	std::atomic<bool> stop{ false };
	std::atomic<uint64_t> loops{ 0 };
	pthread_t t;
	struct arg_t {
		std::atomic<bool> *stop;
		std::atomic<uint64_t> *loops;
	} arg{ &stop, &loops };
	pthread_create(
		&t, nullptr,
		[](void *p) -> void * {
			auto *a = static_cast<arg_t *>(p);
			sigset_t all;
			sigfillset(&all);
			pthread_sigmask(SIG_BLOCK, &all, nullptr);
			while (!a->stop->load()) {
				(void)getpid();
				usleep(200);
				a->loops->fetch_add(1);
			}
			return nullptr;
		},
		&arg);
	while (loops.load() < 10)
		usleep(1000);
	bpftime::attach::syscall_hooks h;
	auto a = h.attach_enter(bpftime::attach::ALL_SYSCALLS, sys_on_enter, nullptr);
	check(a.ok(), "attach with a thread that blocks every signal");
	const auto st = bpftime::attach::syscall_hooks::stats();
	bool reasons = true, trapped = true;
	for (const auto &site : bpftime::attach::syscall_hooks::sites()) {
		if (site.rewritten)
			continue;
		trapped = trapped && site.trapped;
		// The driver's own site that no jump fits (driver_left_getpid).
		if (site.address != uint64_t(driver_left_syscall) &&
		    site.reason.find("blocks SIGTRAP") == std::string::npos)
			reasons = false;
	}
	check(st.rewritten > 0 && st.not_rewritten > 0 && reasons,
	      "%u sites written at once, %u left, each saying a thread blocks SIGTRAP", st.rewritten,
	      st.not_rewritten);
	check(st.user_dispatch && trapped && st.user_dispatch_threads_missed >= 1,
	      "the left sites are covered by syscall user dispatch, but for the thread that blocks "
	      "its signal (%u threads without it)",
	      st.user_dispatch_threads_missed);
	const uint64_t l0 = loops.load(), g0 = g_sys.enter[SYS_getpid].load();
	while (loops.load() < l0 + 50)
		usleep(1000);
	check(g_sys.enter[SYS_getpid].load() - g0 >= 50,
	      "the masked thread lives on and its getpid calls are hooked");
	stop = true;
	pthread_join(t, nullptr);
}

} // namespace

int main(int argc, char **argv)
{
	// The edge of this program: the log follows SPDLOG_LEVEL and
	// BPFTIME_LOG_OUTPUT as in the agent.
	bpftime::log_configure(bpftime::log_options_from_env(),
			       bpftime::attach::detail::attach_log);
	if (argc < 2) {
		fprintf(stderr, "usage: %s prologues|threads|recursion|longjmp|override|shared|dlopen <lib>|errors|concurrent|allocations|fork|parallel-attach|encodings|altstack\n",
			argv[0]);
		return 2;
	}
	// The scenarios that take no argument, by name (dlopen takes its library).
	static const struct {
		const char *name;
		void (*run)();
	} scenarios[] = {
		{ "prologues", scenario_prologues },
		{ "threads", scenario_threads },
		{ "syscalls-masked", scenario_syscalls_masked },
		{ "recursion", scenario_recursion },
		{ "longjmp", scenario_longjmp },
		{ "override", scenario_override },
		{ "shared", scenario_shared },
		{ "errors", scenario_errors },
		{ "concurrent", scenario_concurrent },
		{ "allocations", scenario_allocations },
		{ "fork", scenario_fork },
		{ "parallel-attach", scenario_parallel_attach },
		{ "encodings", scenario_encodings },
		{ "altstack", scenario_altstack },
	};
	std::string s = argv[1];
	if (s == "dlopen" && argc > 2) {
		scenario_dlopen(argv[2]);
	} else if (s == "syscalls") {
		scenario_syscalls(argc > 2 ? argv[2] : nullptr);
	} else {
		const auto *sc = std::find_if(
			std::begin(scenarios), std::end(scenarios),
			[&](const auto &c) { return s == c.name; });
		if (sc == std::end(scenarios)) {
			fprintf(stderr, "unknown scenario %s\n", s.c_str());
			return 2;
		}
		sc->run();
	}
	printf("%d passed, %d failed\n", g_passed, g_failed);
	return g_failed ? 1 : 0;
}
