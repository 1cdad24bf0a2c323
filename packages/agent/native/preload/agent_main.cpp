// agent_main.cpp: libbpftime-agent.so, the library a target process is
// started with (LD_PRELOAD). It has no API: its constructor attaches the
// registry's programs before the target's main() runs, and a watcher thread
// attaches the links added later.
//
// Contract with the target:
//   - it never crashes, exits or blocks the target: every failure (no
//     segment, a foreign segment, a program the verifier refuses, a hook
//     that cannot be placed) is logged and skipped; no exception leaves this
//     library (every entry point catches everything);
//   - it exports no symbol but sigaction() and the signal() family
//     (version script agent.map, preload/signals.cpp), so nothing else of
//     it (or of the static libraries in it, libstdc++ included) can
//     interpose on or clash with the target's own symbols;
//   - a SIGSEGV or SIGBUS inside a program's run ends that run, and any
//     other goes to the target's own handler (bpftime/agent/fault_guard.hpp);
//   - the watcher thread blocks the standard asynchronous signals (SIGINT,
//     SIGTERM, SIGCHLD, SIGALRM ...), so the target's handlers for them
//     never run on it and they go to the target's threads; it leaves the
//     synchronous ones (SIGTRAP, which breakpoint probes use, SIGSEGV,
//     SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGSYS) and the real-time signals
//     (bpftime::attach stops threads with one) deliverable;
//   - at exit, the watcher is stopped (waiting at most half a second for a
//     sync in progress) and nothing is torn down: hooks stay valid while
//     libc runs its exit handlers, and the mapping goes with the process.
//
// fork(): the child keeps the hooks (its memory is a copy of the parent's)
// and the segment mapping (MAP_SHARED survives fork), so its calls are
// counted under its own pid (handlers resets its cached pid at fork); a new
// watcher thread is started in the child, so links added later attach there
// too. exec(): the new program image starts without any of this, but
// LD_PRELOAD is inherited through the environment, so an exec'ed program
// loads the agent afresh and attaches what matches it. Unset LD_PRELOAD in
// the target before exec to keep a child free of the agent.
//
// Environment: see the package README (BPFTIME_GLOBAL_SHM_NAME,
// BPFTIME_AGENT_POLL_MS, BPFTIME_AGENT_MAX_FAULTS, BPFTIME_VM_NAME,
// BPFTIME_DISABLE_JIT, BPFTIME_TRACE_PRINTK_SINK, SPDLOG_LEVEL,
// BPFTIME_LOG_OUTPUT). This file is
// the agent's edge: it reads all of them, once, in the constructor (the
// printk sink when the registry opens) and passes them to the cores as
// options; the cores (attach_context, attach, the log) read none.
#include <bpftime/agent/attach_context.hpp>
#include <bpftime/agent/fault_guard.hpp>
#include <bpftime/agent/log.hpp>
#include <bpftime/handlers/helpers.hpp>
#include <bpftime/handlers/program.hpp>
#include <bpftime/shm/segment.hpp>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <mutex>
#include <new>
#include <pthread.h>
#include <signal.h>
#include <string>

namespace {

using namespace bpftime::agent;

constexpr unsigned DEFAULT_POLL_MS = 100;

struct agent_state {
	attach_context ctx;
	std::string segment;
	// BPFTIME_VM_NAME / BPFTIME_DISABLE_JIT, or why they name no backend.
	bpftime::result<bpftime::vm::backend> backend =
		bpftime::vm::backend::jit_x64;
	unsigned poll_ms = DEFAULT_POLL_MS;
	uint64_t seen_counter = 0;
	bool reported_missing = false;
	// The segment's file was truncated, removed or replaced: every hook is
	// gone and the watcher looks no more (under busy).
	bool segment_lost = false;
	// Held by the watcher for each look at the registry, by fork()'s
	// prepare handler (so a child never inherits it locked by a thread
	// that does not exist there) and, for good, by the exit handler.
	std::timed_mutex busy;
	std::atomic<bool> stopping{ false };
	// Injected agents (bpftime attach) only: bumped by each detach, so
	// the watcher of an earlier attach ends instead of syncing again.
	std::atomic<unsigned> watcher_gen{ 0 };
	bool detached = false; // under busy
};

// Never freed: hooks may run until the very last instruction of the
// process, from exit handlers and from threads the target did not join.
agent_state *g_agent = nullptr;

const char *errno_name(int e)
{
	const char *n = strerrorname_np(e);
	return n ? n : "errno";
}

// BPFTIME_VM_NAME / BPFTIME_DISABLE_JIT. `llvm` where its plugin cannot be
// loaded (LLVM absent on this machine) falls back to our JIT, saying so
// once: the programs still run, as they would have without the variable.
bpftime::result<bpftime::vm::backend> backend_from_env_with_fallback()
{
	auto b = bpftime::handlers::backend_from_env();
	if (!b || *b != bpftime::vm::backend::llvm)
		return b;
	if (auto st = bpftime::vm::backend_available(*b); !st) {
		log(agent_log, log_level::warn,
		    "BPFTIME_VM_NAME=llvm: %s; programs run on the jit instead",
		    st.error().message.c_str());
		return bpftime::vm::backend::jit_x64;
	}
	return b;
}

// BPFTIME_AGENT_MAX_FAULTS: a count in [0, 2^32); 0 never disables a link.
uint32_t max_faults_from_env()
{
	const char *s = getenv("BPFTIME_AGENT_MAX_FAULTS");
	if (!s || !*s)
		return DEFAULT_MAX_FAULTS;
	char *end = nullptr;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end || *s == '-' || v > UINT32_MAX) {
		log(agent_log, log_level::warn,
		    "BPFTIME_AGENT_MAX_FAULTS='%s': expected a number of faults in [0, 4294967295]; using %u",
		    s, DEFAULT_MAX_FAULTS);
		return DEFAULT_MAX_FAULTS;
	}
	return uint32_t(v);
}

unsigned poll_ms_from_env()
{
	const char *s = getenv("BPFTIME_AGENT_POLL_MS");
	if (!s || !*s)
		return DEFAULT_POLL_MS;
	char *end = nullptr;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || *end || v > 60000) {
		log(agent_log, log_level::warn,
		    "BPFTIME_AGENT_POLL_MS='%s': expected milliseconds in [0, 60000]; using %u",
		    s, DEFAULT_POLL_MS);
		return DEFAULT_POLL_MS;
	}
	return unsigned(v);
}

void report_sync(agent_state &a, const bpftime::result<sync_summary> &r)
{
	if (!r) {
		log(agent_log, log_level::error, "sync: %s", r.error().message.c_str());
		return;
	}
	a.seen_counter = r->change_counter;
	if (r->attached || r->detached || r->failed)
		log(agent_log, log_level::info,
		    "registry '%s' (change %" PRIu64 "): %u attached, %u detached, %u failed",
		    a.segment.c_str(), r->change_counter, r->attached,
		    r->detached, r->failed);
}

// One look at the registry: open it when it was missing, sync when its
// change counter moved. Caller holds a.busy.
void poll_once(agent_state &a)
{
	if (!a.ctx.is_open()) {
		auto r = a.ctx.open({ .segment_name = a.segment,
				      .backend = a.backend });
		if (!r) {
			if (!a.reported_missing)
				log(agent_log, r.error().code == ENOENT ? log_level::info
							     : log_level::warn,
				    "no registry: %s: %s; %s",
				    errno_name(r.error().code),
				    r.error().message.c_str(),
				    a.poll_ms ? "watching for it"
					      : "nothing to attach");
			a.reported_missing = true;
			return;
		}
		if (auto t = bpftime::handlers::trace_printk_sink_from_env(); !t)
			log(agent_log, log_level::warn,
			    "%s; bpf_trace_printk lines go to stderr",
			    t.error().message.c_str());
		log(agent_log, log_level::info, "registry '%s' opened",
		    a.segment.c_str());
		report_sync(a, a.ctx.sync());
		return;
	}
	if (a.segment_lost)
		return;
	// Before anything of the segment is read: past the end of a truncated
	// file its pages raise SIGBUS, in this thread, outside any program.
	// Removed or replaced, the memory stays readable, but it is no longer
	// what other processes see: the programs stop all the same.
	if (auto st = a.ctx.check_segment(); !st) {
		auto n = a.ctx.detach_all();
		a.segment_lost = true;
		log(agent_log, log_level::warn,
		    "%s: %u link(s) detached; the target runs on without programs",
		    st.error().message.c_str(), n ? *n : 0u);
		return;
	}
	if (a.ctx.change_counter() != a.seen_counter)
		report_sync(a, a.ctx.sync());
	a.ctx.publish_faults();
	recheck_fault_guard();
}

void *watcher_main(void *arg) noexcept
{
	agent_state &a = *g_agent;
	const unsigned gen = unsigned(reinterpret_cast<uintptr_t>(arg));
	try {
		while (!a.stopping.load(std::memory_order_acquire) &&
		       a.watcher_gen.load(std::memory_order_acquire) == gen) {
			timespec ts{ time_t(a.poll_ms / 1000),
				     long(a.poll_ms % 1000) * 1000000L };
			while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
			}
			if (a.stopping.load(std::memory_order_acquire))
				break;
			std::unique_lock g(a.busy);
			if (a.stopping.load(std::memory_order_acquire) ||
			    a.watcher_gen.load(std::memory_order_acquire) != gen)
				break;
			poll_once(a);
		}
	} catch (...) {
		log(agent_log, log_level::error, "watcher: unexpected exception; stopped");
	}
	return nullptr;
}

void start_watcher() noexcept
{
	if (!g_agent || g_agent->poll_ms == 0)
		return;
	// The standard asynchronous signals are blocked; the synchronous ones
	// stay deliverable, and so do the real-time signals: bpftime::attach
	// interrupts every thread with one of them (SIGRTMAX - 2) to place a
	// jump where no thread is executing, and falls back to a breakpoint
	// after a timeout when a thread does not answer.
	sigset_t blocked, old;
	sigemptyset(&blocked);
	for (int s = 1; s < SIGRTMIN; s++)
		sigaddset(&blocked, s);
	for (int s : { SIGTRAP, SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGSYS })
		sigdelset(&blocked, s);
	pthread_sigmask(SIG_BLOCK, &blocked, &old);
	pthread_t t;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	int rc = pthread_create(
		&t, &attr, watcher_main,
		reinterpret_cast<void *>(uintptr_t(
			g_agent->watcher_gen.load(std::memory_order_acquire))));
	pthread_attr_destroy(&attr);
	pthread_sigmask(SIG_SETMASK, &old, nullptr);
	if (rc != 0) {
		log(agent_log, log_level::warn,
		    "watcher thread: pthread_create: %s; links added later will not attach",
		    strerror(rc));
		return;
	}
	pthread_setname_np(t, "bpftime-agent");
}

void before_fork() noexcept
{
	if (g_agent)
		g_agent->busy.lock();
}

void after_fork_parent() noexcept
{
	if (g_agent)
		g_agent->busy.unlock();
}

void after_fork_child() noexcept
{
	if (!g_agent)
		return;
	g_agent->busy.unlock();
	if (!g_agent->stopping.load(std::memory_order_acquire) &&
	    !g_agent->detached)
		start_watcher();
}

void at_exit() noexcept
{
	if (!g_agent)
		return;
	g_agent->stopping.store(true, std::memory_order_release);
	// Keep it for good when we get it: no sync may start while libc
	// tears the process down. A sync stuck for longer than this (a
	// registry lock held by a hung loader) is left to the exit.
	if (!g_agent->busy.try_lock_for(std::chrono::milliseconds(500)))
		return;
	// Not into a file that lost its pages since the last poll.
	if (!g_agent->segment_lost && g_agent->ctx.check_segment())
		g_agent->ctx.publish_faults();
	// What a program never saw, said once: hits skipped because their
	// thread was already running a program (see attach_context.hpp).
	try {
		for (const link_status &l : g_agent->ctx.links()) {
			if (l.missed)
				log(agent_log, log_level::info,
				    "link %u: %" PRIu64
				    " hits skipped: the thread was already running a program",
				    l.link_id, l.missed);
			if (l.faults)
				log(agent_log, log_level::info,
				    "link %u: %" PRIu64
				    " runs ended by a fault%s",
				    l.link_id, l.faults,
				    l.disabled ? "; disabled in this process" : "");
		}
	} catch (...) {
	}
}

// True when this library was loaded at start-up through LD_PRELOAD; false
// when `bpftime attach` dlopen()ed it into a running process, which then
// calls bpftime_agent_inject with the options the environment of the target
// cannot carry.
bool preloaded() noexcept
{
	const char *p = getenv("LD_PRELOAD");
	return p && strstr(p, "libbpftime-agent.so");
}

__attribute__((constructor)) void agent_init() noexcept
{
	if (!preloaded())
		return;
	try {
		bpftime::log_configure(bpftime::log_options_from_env(),
				       agent_log);
		auto env = bpftime::shm::options_from_env();
		if (!env) {
			log(agent_log, log_level::error, "%s; the agent stays idle",
			    env.error().message.c_str());
			return;
		}
		g_agent = new (std::nothrow) agent_state();
		if (!g_agent) {
			log(agent_log, log_level::error, "out of memory; the agent stays idle");
			return;
		}
		// Before any link is attached: a program may fault on its
		// first hit.
		if (auto st = install_fault_guard({ .max_faults = max_faults_from_env() });
		    !st)
			log(agent_log, log_level::warn,
			    "%s; a program that faults will crash the process",
			    st.error().message.c_str());
		g_agent->segment = env->name;
		g_agent->poll_ms = poll_ms_from_env();
		g_agent->backend = backend_from_env_with_fallback();
		{
			std::unique_lock g(g_agent->busy);
			poll_once(*g_agent);
		}
		pthread_atfork(before_fork, after_fork_parent,
			       after_fork_child);
		atexit(at_exit);
		start_watcher();
	} catch (...) {
		log(agent_log, log_level::error,
		    "initialisation: unexpected exception; the agent stays idle");
	}
}

} // namespace

// The entry points of `bpftime attach` / `bpftime detach` (the injector,
// packages/agent/native/inject, calls them on a thread of the target that it
// stopped with ptrace outside libc and ld.so, while the other threads run).
// The only symbols the library exports (agent.map).

// Opens the registry in `segment` (the rest of the options come from the
// target's environment, as for a preloaded agent), attaches its links and
// starts the watcher. Returns the number of links attached or pending, or a
// negative errno: EEXIST when the agent is already attached (preloaded, or
// injected and not detached), ENOENT/EBADMSG/EPROTONOSUPPORT when the
// segment cannot be opened, ENOMEM.
extern "C" __attribute__((visibility("default"))) int
bpftime_agent_inject(const char *segment) noexcept
{
	try {
		if (g_agent) {
			std::unique_lock g(g_agent->busy);
			if (!g_agent->detached)
				return -EEXIST;
			// Detached earlier: the hooks are gone, the context
			// (its retired program instances) stays; attach again.
			g_agent->detached = false;
			g_agent->segment = segment ? segment : g_agent->segment;
			auto r = g_agent->ctx.sync();
			report_sync(*g_agent, r);
			if (!r)
				return -r.error().code;
			g_agent->watcher_gen.fetch_add(1, std::memory_order_acq_rel);
			g.unlock();
			start_watcher();
			return int(r->attached);
		}
		bpftime::log_configure(bpftime::log_options_from_env(),
				       agent_log);
		auto env = bpftime::shm::options_from_env();
		g_agent = new (std::nothrow) agent_state();
		if (!g_agent)
			return -ENOMEM;
		g_agent->segment = segment && *segment
					   ? segment
					   : (env ? env->name : "bpftime_maps_shm");
		g_agent->poll_ms = poll_ms_from_env();
		g_agent->backend = backend_from_env_with_fallback();
		int attached = 0;
		{
			std::unique_lock g(g_agent->busy);
			auto r = g_agent->ctx.open({ .segment_name = g_agent->segment,
						     .backend = g_agent->backend });
			if (!r) {
				log(agent_log, log_level::error,
				    "bpftime attach: registry '%s': %s: %s",
				    g_agent->segment.c_str(),
				    errno_name(r.error().code),
				    r.error().message.c_str());
				// Nothing attached: the next attach starts over.
				int code = r.error().code;
				g.unlock();
				delete g_agent;
				g_agent = nullptr;
				return -code;
			}
			if (auto t = bpftime::handlers::trace_printk_sink_from_env(); !t)
				log(agent_log, log_level::warn,
				    "%s; bpf_trace_printk lines go to stderr",
				    t.error().message.c_str());
			auto s = g_agent->ctx.sync();
			report_sync(*g_agent, s);
			if (s)
				attached = int(s->attached);
		}
		pthread_atfork(before_fork, after_fork_parent, after_fork_child);
		atexit(at_exit);
		start_watcher();
		return attached;
	} catch (...) {
		log(agent_log, log_level::error, "bpftime attach: unexpected exception");
		return -EFAULT;
	}
}

// Removes every hook (the original bytes come back) and stops the watcher.
// The library stays loaded and inert: a thread may still be returning
// through a trampoline or running a program it entered just before, so
// neither its code nor the program instances may go away. Returns the number
// of hooks removed, or -ENOENT when the agent is not attached.
extern "C" __attribute__((visibility("default"))) int
bpftime_agent_detach() noexcept
{
	try {
		if (!g_agent)
			return -ENOENT;
		std::unique_lock g(g_agent->busy);
		if (g_agent->detached || !g_agent->ctx.is_open())
			return -ENOENT;
		g_agent->watcher_gen.fetch_add(1, std::memory_order_acq_rel);
		g_agent->detached = true;
		auto r = g_agent->ctx.detach_all();
		if (!r)
			return -r.error().code;
		log(agent_log, log_level::info, "bpftime detach: %u hooks removed",
		    *r);
		return int(*r);
	} catch (...) {
		return -EFAULT;
	}
}
