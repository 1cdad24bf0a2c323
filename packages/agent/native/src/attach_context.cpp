// attach_context.cpp: see attach_context.hpp.
#include <bpftime/agent/attach_context.hpp>
#include <bpftime/agent/log.hpp>
#include <bpftime/attach/attach.hpp>
#include <bpftime/handlers/bpf_defs.hpp>
#include <bpftime/handlers/helpers.hpp>
#include <bpftime/handlers/program.hpp>
#include <bpftime/handlers/registry.hpp>
#include <bpftime/maps_userspace/maps_userspace.hpp>
#include <bpftime/shm/segment.hpp>
#include <bpftime/vm/verifier.hpp>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <atomic>
#include <map>
#include <mutex>
#include <unistd.h>
#include <unordered_map>

namespace bpftime::agent {
namespace {


// What an override hook's program asked for, per thread. initial-exec: the
// agent is loaded at startup (LD_PRELOAD), so the variable sits in the
// static TLS block and reading it is one instruction, with no
// __tls_get_addr call (which may allocate) inside a hook.
struct override_request {
	bool requested;
	uint64_t value;
};
thread_local override_request t_override
	__attribute__((tls_model("initial-exec"))) = { false, 0 };

// bpf_override_return(regs, rc): the probed function is skipped and returns
// rc. Only meaningful in a program attached as an override probe, where the
// hook reads the request back; elsewhere the request is ignored (the kernel
// refuses such programs at attach time, bpftime attaches every uprobe
// program that calls the helper as an override probe instead).
uint64_t helper_override_return(uint64_t, uint64_t rc, uint64_t, uint64_t,
				uint64_t)
{
	t_override.requested = true;
	t_override.value = rc;
	return 0;
}

// The kernel's bpf_override_return_proto: the context is read (the hook, not
// the helper, changes the probed function's return).
constexpr vm::helper_proto override_return_proto{
	.id = vm::BPF_FUNC_override_return,
	.name = "override_return",
	.ret = vm::RET_INTEGER,
	.args = { vm::ARG_PTR_TO_CTX, vm::ARG_ANYTHING },
	.fn = helper_override_return,
};

std::string hex(uint64_t v)
{
	char buf[24];
	snprintf(buf, sizeof buf, "0x%" PRIx64, v);
	return buf;
}

enum class hook_kind { entry, ret, override };

const char *hook_name(hook_kind k)
{
	switch (k) {
	case hook_kind::entry:
		return "uprobe";
	case hook_kind::ret:
		return "uretprobe";
	case hook_kind::override:
		return "override";
	}
	return "?";
}

// What a hook's callback gets as `user`: immutable once the hook is
// installed, read by the target's threads without a lock.
struct binding {
	std::shared_ptr<handlers::program_instance> owner;
	const handlers::program_instance *prog = nullptr;
	vm::runner run; // prog's, fetched once
	uint64_t cookie = 0;
	uint64_t func_ip = 0; // the probed address, for uretprobes
	// The program provably never writes its context (vm::may_write_context),
	// so it runs on the hook's pt_regs itself rather than on a copy.
	bool in_place = false;
	// Hits that did not run the program (see t_running).
	mutable std::atomic<uint64_t> missed{ 0 };
};

// Whether this thread is running a program now, as the kernel's
// bpf_prog_active (kernel/trace/bpf_trace.c, trace_call_bpf()): a probe hit
// while the thread already runs a program (a probed function that a helper
// calls, a signal handler that interrupted the program and calls a probed
// function) does not run its program and counts as missed. Programs thus
// never recurse without end, and never wait for a map lock that their own
// thread holds. initial-exec, like t_override.
thread_local bool t_running __attribute__((tls_model("initial-exec"))) =
	false;

// Enter/leave the program section of a hook. The signal fences keep the
// compiler from moving the flag's stores across the run, so a signal
// handler on this thread sees the flag set for the whole of it.
bool enter(const binding *b)
{
	if (t_running) {
		b->missed.fetch_add(1, std::memory_order_relaxed);
		return false;
	}
	t_running = true;
	std::atomic_signal_fence(std::memory_order_seq_cst);
	return true;
}

void leave()
{
	std::atomic_signal_fence(std::memory_order_seq_cst);
	t_running = false;
}

// The program's own copy of the registers: the kernel's uprobe programs
// cannot write their context, and here a store into it must not reach the
// target's registers. Copied a word at a time, because the trampoline has
// just pushed these words one by one: a wider load spanning two stores
// still in flight cannot take its data from them and waits for both to
// reach the cache. (volatile keeps the compiler from widening the loads.)
void copy_regs(attach::pt_regs &dst, const attach::pt_regs &src)
{
	const auto *s = reinterpret_cast<const volatile uint64_t *>(&src);
	auto *d = reinterpret_cast<uint64_t *>(&dst);
#pragma GCC unroll 32
	for (size_t i = 0; i < sizeof dst / sizeof *d; i++)
		d[i] = s[i];
}

// Runs b's program on regs, or on a copy of them when it may write its
// context. Errors (a bounds-check fault) end the run and are dropped, as a
// probe has no one to report to. Inlined into each hook's callback: it is
// most of what a hit runs.
[[gnu::always_inline]] inline void
run_program(const binding *b, const attach::pt_regs *regs, uint64_t func_ip)
{
	const handlers::run_context rc{ .cookie = b->cookie, .func_ip = func_ip };
	handlers::scoped_run_context scope(rc);
	int err;
	if (b->in_place) [[likely]] {
		// Never written through: see binding::in_place.
		(void)b->run(const_cast<attach::pt_regs *>(regs), sizeof *regs,
			     &err);
		return;
	}
	attach::pt_regs copy;
	copy_regs(copy, *regs);
	(void)b->run(&copy, sizeof copy, &err);
}

// The hooks' callbacks. They run on the target's threads, inside whatever
// function was probed (malloc, for one): they neither allocate nor lock nor
// log, and runners never throw.
void on_entry(const attach::pt_regs *regs, void *user)
{
	const binding *b = static_cast<const binding *>(user);
	if (!enter(b))
		return;
	run_program(b, regs, regs->ip);
	leave();
}

void on_return(const attach::pt_regs *regs, void *user)
{
	const binding *b = static_cast<const binding *>(user);
	if (!enter(b))
		return;
	run_program(b, regs, b->func_ip);
	leave();
}

bool on_override(attach::pt_regs *regs, void *user, uint64_t *ret)
{
	const binding *b = static_cast<const binding *>(user);
	if (!enter(b))
		return false;
	t_override = { false, 0 };
	run_program(b, regs, regs->ip);
	override_request mine = t_override;
	leave();
	if (!mine.requested)
		return false;
	*ret = mine.value;
	return true;
}

bool calls_helper(const handlers::prog_spec &p, uint32_t helper)
{
	for (const vm::insn &i : p.insns)
		if (i.code == (vm::BPF_JMP | vm::BPF_CALL) && i.src_reg == 0 &&
		    uint32_t(i.imm) == helper)
			return true;
	return false;
}

struct entry {
	link_status st;
	bool has_probe = false;
	uint64_t probe_id = 0;
	std::unique_ptr<binding> b;
};

} // namespace

const char *to_string(link_state s) noexcept
{
	switch (s) {
	case link_state::attached:
		return "attached";
	case link_state::pending:
		return "pending";
	case link_state::skipped:
		return "skipped";
	case link_state::failed:
		return "failed";
	}
	return "?";
}

// Member order matters for destruction: the probes go first (no new call
// reaches a binding), then the bindings and program instances, then the
// registry and its segment mapping.
struct attach_context::state {
	mutable std::mutex mu;
	std::unique_ptr<handlers::registry> reg;
	std::vector<std::unique_ptr<binding>> retired;
	std::map<uint32_t, entry> entries;
	attach::attach_manager probes;

	void detach(entry &e);
	void attach_link(entry &e, const handlers::handler_info &link,
			 const std::unordered_map<uint32_t,
						  const handlers::handler_info *>
				 &by_id);
	void refresh(entry &e);
};

void attach_context::state::detach(entry &e)
{
	if (e.has_probe) {
		if (auto r = probes.detach(e.probe_id); !r)
			log(log_level::warn, "link %u: detach: %s", e.st.link_id,
			    r.error().message.c_str());
		else
			log(log_level::info, "link %u: detached from %s",
			    e.st.link_id, e.st.where.c_str());
		e.has_probe = false;
	}
	if (e.b)
		retired.push_back(std::move(e.b));
}

void attach_context::state::refresh(entry &e)
{
	if (!e.has_probe || e.st.state != link_state::pending)
		return;
	auto info = probes.info(e.probe_id);
	if (!info)
		return;
	if (info->state == attach::probe_state::active) {
		e.st.state = link_state::attached;
		if (e.b)
			e.b->func_ip = info->address;
		std::string backend =
			e.b ? std::string(vm::backend_name(e.b->prog->backend()))
			    : std::string("?");
		log(log_level::info, "link %u: %s attached at %s (%s, %s%s)",
		    e.st.link_id, e.st.hook.c_str(), info->where.c_str(),
		    attach::to_string(info->mech), backend.c_str(),
		    e.b && !e.b->in_place ?
			    ", on a copy of the registers: the program may "
			    "write its context" :
			    "");
	} else if (info->state == attach::probe_state::failed) {
		e.st.state = link_state::failed;
		e.st.err = error{ info->error, info->reason };
		log(log_level::warn, "link %u: %s at %s failed: %s",
		    e.st.link_id, e.st.hook.c_str(), e.st.where.c_str(),
		    info->reason.c_str());
	}
}

void attach_context::state::attach_link(
	entry &e, const handlers::handler_info &link,
	const std::unordered_map<uint32_t, const handlers::handler_info *> &by_id)
{
	const auto &ls = std::get<handlers::link_spec>(link.spec);
	e.st.link_id = link.h.id;
	e.st.generation = link.h.generation;
	e.st.prog_id = ls.prog_id;
	auto fail_with = [&](int code, std::string msg) {
		e.st.state = link_state::failed;
		e.st.err = error{ code, std::move(msg) };
		log(log_level::warn, "link %u: %s", e.st.link_id,
		    e.st.err.message.c_str());
	};

	auto pe_it = by_id.find(ls.target_id);
	if (ls.target_id == handlers::NO_ID || pe_it == by_id.end() ||
	    pe_it->second->kind != handlers::handler_kind::perf_event) {
		e.st.state = link_state::skipped;
		return;
	}
	const auto &pe =
		std::get<handlers::perf_event_spec>(pe_it->second->spec);
	if (pe.type != handlers::perf_event_type::uprobe &&
	    pe.type != handlers::perf_event_type::uretprobe) {
		e.st.state = link_state::skipped;
		return;
	}
	attach::probe_target target{ .module = pe.path,
				     .symbol = pe.symbol,
				     .offset = pe.offset };
	std::string &where = e.st.where;
	where = pe.type == handlers::perf_event_type::uprobe ? "uprobe "
							     : "uretprobe ";
	where.append(pe.path);
	if (!pe.symbol.empty())
		where.append(":").append(pe.symbol);
	where.append("+").append(hex(pe.offset));
	if (pe.pid != -1 && pe.pid != int32_t(getpid())) {
		e.st.state = link_state::skipped;
		log(log_level::debug, "link %u: %s is for pid %d", e.st.link_id,
		    e.st.where.c_str(), pe.pid);
		return;
	}
	auto prog_it = by_id.find(ls.prog_id);
	if (prog_it == by_id.end() ||
	    prog_it->second->kind != handlers::handler_kind::prog) {
		fail_with(EBADF, "prog " + std::to_string(ls.prog_id) +
					 ": not in the registry");
		return;
	}
	const auto &ps = std::get<handlers::prog_spec>(prog_it->second->spec);
	hook_kind kind = pe.type == handlers::perf_event_type::uretprobe
				 ? hook_kind::ret
			 : calls_helper(ps, override_return_proto.id)
				 ? hook_kind::override
				 : hook_kind::entry;
	e.st.hook = hook_name(kind);

	handlers::instance_options opts;
	auto inst = reg->instantiate(ls.prog_id, opts);
	if (!inst) {
		fail_with(inst.error().code,
			  e.st.where + ": " + inst.error().message);
		return;
	}
	auto b = std::make_unique<binding>();
	b->owner = *inst;
	b->prog = b->owner.get();
	b->run = b->prog->machine().get_runner();
	b->cookie = ls.cookie;
	b->in_place = !vm::may_write_context(b->prog->machine().instructions(),
					     handlers::helper_written_args);

	result<uint64_t> id = fail(EINVAL, "no hook");
	switch (kind) {
	case hook_kind::entry:
		id = probes.attach_uprobe(target, on_entry, b.get());
		break;
	case hook_kind::ret:
		id = probes.attach_uretprobe(target, on_return, b.get());
		break;
	case hook_kind::override:
		id = probes.attach_override(target, on_override, b.get());
		break;
	}
	if (!id) {
		fail_with(id.error().code,
			  e.st.where + ": " + id.error().message);
		// Never reachable by a hook: free now.
		return;
	}
	e.has_probe = true;
	e.probe_id = *id;
	e.b = std::move(b);
	e.st.state = link_state::pending;
	auto info = probes.info(*id);
	if (info && info->state == attach::probe_state::pending)
		log(log_level::info,
		    "link %u: %s: module not loaded; pending until it is",
		    e.st.link_id, e.st.where.c_str());
	refresh(e);
}

attach_context::attach_context() : state_(std::make_unique<state>())
{
}

attach_context::~attach_context() = default;

status attach_context::open(const context_options &opts) noexcept
{
	try {
		std::lock_guard g(state_->mu);
		if (state_->reg)
			return fail(EALREADY, "registry: already open");
		auto seg = shm::segment::open(opts.segment_name);
		if (!seg)
			return std::move(seg).error();
		auto reg = handlers::registry::open(std::move(*seg));
		if (!reg)
			return std::move(reg).error();
		BPFTIME_TRY(maps_userspace::register_all());
		if (auto t = handlers::trace_printk_sink_from_env(); !t)
			log(log_level::warn, "%s; bpf_trace_printk lines go to stderr",
			    t.error().message.c_str());
		const vm::helper_proto *h =
			handlers::find_helper(override_return_proto.id);
		if (!h) {
			BPFTIME_TRY(handlers::register_helper(override_return_proto));
		} else if (h->fn != helper_override_return) {
			log(log_level::warn,
			    "helper override_return (#58) is provided by another component; override probes will not see its requests");
		}
		state_->reg = std::move(*reg);
		return {};
	} catch (const std::exception &e) {
		return fail(ENOMEM, std::string("registry: open: ") + e.what());
	} catch (...) {
		return fail(EFAULT, "registry: open: unknown exception");
	}
}

bool attach_context::is_open() const noexcept
{
	std::lock_guard g(state_->mu);
	return state_->reg != nullptr;
}

uint64_t attach_context::change_counter() const noexcept
{
	// reg is set once, under the mutex, before the watcher starts.
	handlers::registry *r = state_->reg.get();
	return r ? r->change_counter() : 0;
}

handlers::registry *attach_context::registry() noexcept
{
	return state_->reg.get();
}

result<sync_summary> attach_context::sync() noexcept
{
	try {
		std::lock_guard g(state_->mu);
		state &s = *state_;
		if (!s.reg)
			return fail(EBADF, "registry: not open");
		sync_summary sum;
		// Read before listing: a change made while we list bumps it
		// again, and the watcher's next look sees that.
		sum.change_counter = s.reg->change_counter();
		std::vector<handlers::handler_info> all = s.reg->list();
		std::unordered_map<uint32_t, const handlers::handler_info *> by_id;
		for (const auto &i : all)
			by_id.emplace(i.h.id, &i);

		std::vector<uint32_t> live;
		for (const auto &i : all) {
			if (i.kind != handlers::handler_kind::link)
				continue;
			live.push_back(i.h.id);
			auto it = s.entries.find(i.h.id);
			if (it != s.entries.end()) {
				if (it->second.st.generation == i.h.generation) {
					s.refresh(it->second);
					continue;
				}
				s.detach(it->second);
				s.entries.erase(it);
				sum.detached++;
			}
			entry e;
			s.attach_link(e, i, by_id);
			if (e.st.state == link_state::attached ||
			    e.st.state == link_state::pending)
				sum.attached++;
			else if (e.st.state == link_state::failed)
				sum.failed++;
			s.entries.emplace(i.h.id, std::move(e));
		}
		for (auto it = s.entries.begin(); it != s.entries.end();) {
			bool found = false;
			for (uint32_t id : live)
				if (id == it->first) {
					found = true;
					break;
				}
			if (found) {
				++it;
				continue;
			}
			s.detach(it->second);
			it = s.entries.erase(it);
			sum.detached++;
		}
		return sum;
	} catch (const std::exception &e) {
		return fail(ENOMEM, std::string("registry: sync: ") + e.what());
	} catch (...) {
		return fail(EFAULT, "registry: sync: unknown exception");
	}
}

std::vector<link_status> attach_context::links() const
{
	std::lock_guard g(state_->mu);
	std::vector<link_status> out;
	for (auto &[id, e] : state_->entries) {
		out.push_back(e.st);
		if (e.b)
			out.back().missed =
				e.b->missed.load(std::memory_order_relaxed);
	}
	return out;
}

} // namespace bpftime::agent
