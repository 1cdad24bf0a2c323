// hooks/syscall.cpp: the syscall family: syscall_tracepoint and
// raw_syscall_tracepoint links become system call hooks of @bpftime/attach
// (its syscall/ mechanism) in this process.
//
//   - tracepoint syscalls/sys_enter_<name> (the event's syscall_id, enter):
//     the program's context is the kernel's trace record of the event, as
//     /sys/kernel/tracing/events/syscalls/sys_enter_<name>/format lays it
//     out and struct trace_event_raw_sys_enter declares it: the common
//     fields (type, flags, preempt_count, pid), __syscall_nr at 8, the six
//     arguments from 16;
//   - tracepoint syscalls/sys_exit_<name>: common fields, __syscall_nr at 8,
//     ret at 16 (struct trace_event_raw_sys_exit);
//   - raw_tracepoint sys_enter / sys_exit (syscall_id -1): the context is
//     the two u64 arguments of the kernel's raw tracepoint
//     (struct bpf_raw_tracepoint_args): a struct pt_regs * and the number
//     (sys_enter) or the return value (sys_exit). The pt_regs is the
//     kernel's layout (orig_ax the number); programs read it with
//     bpf_probe_read_kernel() as they do in the kernel.
//
// The number filter is attach's (the hook sees only its system call); the
// pid filter is attach_context's, before the link gets here. common_type is
// the event's id in tracefs when tracefs is readable at attach time, else
// 0; common_flags and common_preempt_count are 0.
#include "hooks/binding.hpp"
#include "hooks/hooks.hpp"

#include <bpftime/agent/log.hpp>
#include <bpftime/attach/syscall.hpp>
#include <bpftime/handlers/syscalls_x86_64.hpp>

#include <cstdio>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace bpftime::agent::hooks {
namespace {

// struct trace_entry (include/linux/trace_events.h).
struct trace_entry {
	uint16_t type;
	uint8_t flags;
	uint8_t preempt_count;
	int32_t pid;
};

struct sys_enter_record {
	trace_entry ent;
	int64_t id; // __syscall_nr is its low int
	uint64_t args[6];
};
static_assert(sizeof(sys_enter_record) == 64);

struct sys_exit_record {
	trace_entry ent;
	int64_t id;
	int64_t ret;
};
static_assert(sizeof(sys_exit_record) == 24);

// What the hook's callbacks get as `user`.
struct sys_binding {
	std::unique_ptr<binding> b;
	uint16_t type = 0;
};

// The thread id for common_pid, cached per thread: gettid is a system call,
// which would be hooked again. Reset in a forked child, whose thread
// inherits the parent's value; pthread_create's threads start with 0.
constinit thread_local int32_t t_tid __attribute__((tls_model("initial-exec"))) = 0;

void reset_tid() noexcept
{
	t_tid = 0;
}

int32_t tid() noexcept
{
	if (t_tid == 0) [[unlikely]]
		t_tid = int32_t(::syscall(SYS_gettid));
	return t_tid;
}

// The callbacks run on the target's threads inside a system call's hook:
// no allocation, no lock, no log. The program runs on the record (its own
// copy: a tracepoint program cannot write its context, and nothing it
// writes reaches the call).
template <typename Ctx>
[[gnu::always_inline]] inline void run(const binding *b, Ctx *ctx, uint64_t ip)
{
	const handlers::run_context rc{ .cookie = b->cookie, .func_ip = ip };
	handlers::scoped_run_context scope(rc);
	int err;
	(void)b->run(ctx, sizeof *ctx, &err);
}

bool on_tp_enter(attach::pt_regs *regs, void *user, uint64_t *)
{
	const auto *sb = static_cast<const sys_binding *>(user);
	if (!enter(sb->b.get()))
		return false;
	sys_enter_record rec{ .ent = { sb->type, 0, 0, tid() },
			      .id = int64_t(regs->orig_ax),
			      .args = { regs->di, regs->si, regs->dx, regs->r10,
					regs->r8, regs->r9 } };
	run(sb->b.get(), &rec, regs->ip);
	leave();
	return false;
}

void on_tp_exit(const attach::pt_regs *regs, void *user)
{
	const auto *sb = static_cast<const sys_binding *>(user);
	if (!enter(sb->b.get()))
		return;
	sys_exit_record rec{ .ent = { sb->type, 0, 0, tid() },
			     .id = int64_t(regs->orig_ax),
			     .ret = int64_t(regs->ax) };
	run(sb->b.get(), &rec, regs->ip);
	leave();
}

bool on_raw_enter(attach::pt_regs *regs, void *user, uint64_t *)
{
	const auto *sb = static_cast<const sys_binding *>(user);
	if (!enter(sb->b.get()))
		return false;
	uint64_t args[2] = { reinterpret_cast<uint64_t>(regs), regs->orig_ax };
	run(sb->b.get(), &args, regs->ip);
	leave();
	return false;
}

void on_raw_exit(const attach::pt_regs *regs, void *user)
{
	const auto *sb = static_cast<const sys_binding *>(user);
	if (!enter(sb->b.get()))
		return;
	uint64_t args[2] = { reinterpret_cast<uint64_t>(regs), regs->ax };
	run(sb->b.get(), &args, regs->ip);
	leave();
}

// The process's system call hooks: never destroyed (a hook may be detached
// from a static destructor at exit).
attach::syscall_hooks &hooks_of_process()
{
	static attach::syscall_hooks *h = [] {
		pthread_atfork(nullptr, nullptr, reset_tid);
		return new attach::syscall_hooks();
	}();
	return *h;
}

const char *name_of(int32_t nr)
{
	for (const auto &e : handlers::SYSCALLS_X86_64)
		if (e.nr == nr)
			return e.name;
	return nullptr;
}

// The event's id in tracefs (the kernel's common_type), or 0.
uint16_t event_type(const char *event)
{
	for (const char *root : { "/sys/kernel/tracing", "/sys/kernel/debug/tracing" }) {
		char path[160];
		snprintf(path, sizeof path, "%s/events/syscalls/%s/id", root, event);
		if (FILE *f = fopen(path, "re")) {
			unsigned v = 0;
			int n = fscanf(f, "%u", &v);
			fclose(f);
			if (n == 1)
				return uint16_t(v);
		}
	}
	return 0;
}

class syscall_hook final : public hook {
    public:
	syscall_hook(uint64_t id, std::unique_ptr<sys_binding> b)
		: id_(id), b_(std::move(b))
	{
	}
	~syscall_hook() override
	{
		if (attached_)
			(void)hooks_of_process().detach(id_);
	}

	void refresh(link_status &) override
	{
	}

	void detach(link_status &st) override
	{
		if (!attached_)
			return;
		attached_ = false;
		if (auto r = hooks_of_process().detach(id_); !r)
			log(agent_log, log_level::warn, "link %u: detach: %s", st.link_id,
			    r.error().message.c_str());
		else
			log(agent_log, log_level::info, "link %u: detached from %s", st.link_id,
			    st.where.c_str());
	}

	uint64_t missed() const noexcept override
	{
		return b_->b->missed.load(std::memory_order_relaxed);
	}
	uint64_t faults() const noexcept override
	{
		return b_->b->faults.load(std::memory_order_relaxed);
	}
	bool disabled() const noexcept override
	{
		return link_disabled(*b_->b);
	}

    private:
	uint64_t id_;
	bool attached_ = true;
	std::unique_ptr<sys_binding> b_;
};

std::string describe(const handlers::perf_event_spec &pe)
{
	const char *dir = pe.syscall_exit ? "exit" : "enter";
	if (pe.syscall_id == -1)
		return std::string("raw_tracepoint sys_") + dir;
	const char *name = name_of(pe.syscall_id);
	return std::string("tracepoint syscalls/sys_") + dir + "_" +
	       (name ? name : std::to_string(pe.syscall_id));
}

std::unique_ptr<hook> attach_link(const services &s, const link_request &r, link_status &st)
{
	const bool raw = r.kind == handlers::attach_kind::raw_syscall_tracepoint;
	const bool exit = r.event.syscall_exit;
	st.hook = raw ? "raw_syscall" : "syscall_tracepoint";
	auto sb = std::make_unique<sys_binding>();
	sb->b = bind_program(s, r, st);
	if (!sb->b)
		return nullptr;
	if (!raw) {
		const char *name = name_of(r.event.syscall_id);
		if (!name) {
			fail_link(st, ENOENT, st.where + ": no system call " +
						      std::to_string(r.event.syscall_id) + " on x86-64");
			return nullptr;
		}
		sb->type = event_type((std::string(exit ? "sys_exit_" : "sys_enter_") + name).c_str());
	}
	auto &h = hooks_of_process();
	const int32_t nr = raw ? attach::ALL_SYSCALLS : r.event.syscall_id;
	result<uint64_t> id = exit ? h.attach_exit(nr, raw ? on_raw_exit : on_tp_exit, sb.get())
				   : h.attach_enter(nr, raw ? on_raw_enter : on_tp_enter, sb.get());
	if (!id) {
		fail_link(st, id.error().code, st.where + ": " + id.error().message);
		return nullptr;
	}
	st.state = link_state::attached;
	const auto stats = attach::syscall_hooks::stats();
	std::string backend(vm::backend_name(sb->b->prog->backend()));
	log(agent_log, log_level::info,
	    "link %u: %s attached (%s; %u system call sites rewritten, %u left as they were, in %u modules; last scan %.2f ms)",
	    st.link_id, st.where.c_str(), backend.c_str(), stats.rewritten, stats.not_rewritten,
	    stats.modules, stats.scan_ms);
	static uint32_t warned_left = 0;
	if (stats.not_rewritten > warned_left) {
		warned_left = stats.not_rewritten;
		if (stats.user_dispatch)
			log(agent_log, log_level::warn,
			    "%u system call sites left as they were: their calls are reported through "
			    "syscall user dispatch (SIGSYS, slower; SPDLOG_LEVEL=debug names them and why)",
			    stats.not_rewritten);
		else
			log(agent_log, log_level::warn,
			    "%u system call sites left as they were: their calls are not reported "
			    "(SPDLOG_LEVEL=debug names them and why)",
			    stats.not_rewritten);
	}
	return std::make_unique<syscall_hook>(*id, std::move(sb));
}

} // namespace

const family syscall_family{ .id = handlers::hook_family::syscall,
			     .describe = describe,
			     .attach = attach_link };

} // namespace bpftime::agent::hooks
