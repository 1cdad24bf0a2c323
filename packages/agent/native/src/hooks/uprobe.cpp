// hooks/uprobe.cpp: the uprobe family: uprobe, uretprobe, override and usdt
// links become probes of @bpftime/attach (its uprobe/ mechanism) in this
// process.
//
//   - the event's path names the module (matched by device and inode) and
//     its offset is a file offset in it, or an offset from its symbol when
//     one is named, as the kernel's uprobe_register() takes them;
//   - uretprobe becomes a return probe; override (a uprobe whose program
//     calls bpf_override_return) an override probe, where the function is
//     skipped and returns the value the program chose when the program calls
//     that helper, and runs normally when it does not; uprobe and usdt an
//     entry probe (the USDT semaphore is not incremented);
//   - a module that is not loaded yet leaves the probe pending; it attaches
//     when the module is dlopen'ed (bpftime::attach tracks dlopen).
//
// Each hit runs the program with the kernel-layout pt_regs as its context
// (r1 = &regs, r2 = sizeof regs) and the link's cookie for
// bpf_get_attach_cookie().
#include "hooks/uprobe.hpp"

#include "hooks/binding.hpp"
#include "hooks/hooks.hpp"

#include <bpftime/agent/log.hpp>
#include <bpftime/attach/attach.hpp>
#include <bpftime/handlers/program.hpp>

#include <cinttypes>
#include <cstdio>

namespace bpftime::agent::hooks {

constinit thread_local override_request t_override
	__attribute__((tls_model("initial-exec"))) = { false, 0 };

namespace {

std::string hex(uint64_t v)
{
	char buf[24];
	snprintf(buf, sizeof buf, "0x%" PRIx64, v);
	return buf;
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

// The probe each kind of the family installs.
attach::probe_kind probe_kind_of(handlers::attach_kind k)
{
	switch (k) {
	case handlers::attach_kind::uretprobe:
		return attach::probe_kind::uretprobe;
	case handlers::attach_kind::override:
		return attach::probe_kind::override;
	default:
		return attach::probe_kind::uprobe;
	}
}

class uprobe_hook final : public hook {
    public:
	uprobe_hook(attach::attach_manager &probes, uint64_t id,
		    std::unique_ptr<binding> b)
		: probes_(probes), id_(id), b_(std::move(b))
	{
	}

	void refresh(link_status &st) override
	{
		if (!attached_ || st.state != link_state::pending)
			return;
		auto info = probes_.info(id_);
		if (!info)
			return;
		if (info->state == attach::probe_state::active) {
			st.state = link_state::attached;
			b_->func_ip = info->address;
			std::string backend(vm::backend_name(b_->prog->backend()));
			log(agent_log, log_level::info,
			    "link %u: %s attached at %s (%s, %s%s)", st.link_id,
			    st.hook.c_str(), info->where.c_str(),
			    attach::to_string(info->mech), backend.c_str(),
			    !b_->in_place ? ", on a copy of the registers: the "
					    "program may write its context" :
					    "");
		} else if (info->state == attach::probe_state::failed) {
			st.state = link_state::failed;
			st.err = error{ info->error, info->reason };
			log(agent_log, log_level::warn, "link %u: %s at %s failed: %s",
			    st.link_id, st.hook.c_str(), st.where.c_str(),
			    info->reason.c_str());
		}
	}

	void detach(link_status &st) override
	{
		if (!attached_)
			return;
		attached_ = false;
		if (auto r = probes_.detach(id_); !r)
			log(agent_log, log_level::warn, "link %u: detach: %s",
			    st.link_id, r.error().message.c_str());
		else
			log(agent_log, log_level::info, "link %u: detached from %s",
			    st.link_id, st.where.c_str());
	}

	uint64_t missed() const noexcept override
	{
		return b_->missed.load(std::memory_order_relaxed);
	}
	uint64_t faults() const noexcept override
	{
		return b_->faults.load(std::memory_order_relaxed);
	}
	bool disabled() const noexcept override
	{
		return link_disabled(*b_);
	}

    private:
	attach::attach_manager &probes_;
	uint64_t id_;
	bool attached_ = true;
	std::unique_ptr<binding> b_;
};

std::string describe(const handlers::perf_event_spec &pe)
{
	std::string where = handlers::perf_event_type_name(pe.type);
	where.append(" ").append(pe.path);
	if (!pe.symbol.empty())
		where.append(":").append(pe.symbol);
	where.append("+").append(hex(pe.offset));
	return where;
}

std::unique_ptr<hook> attach_link(const services &s, const link_request &r,
				  link_status &st)
{
	const attach::probe_kind kind = probe_kind_of(r.kind);
	st.hook = attach::to_string(kind);
	std::unique_ptr<binding> b = bind_program(s, r, st);
	if (!b)
		return nullptr;
	attach::probe_target target{ .module = r.event.path,
				     .symbol = r.event.symbol,
				     .offset = r.event.offset };
	result<uint64_t> id = bpftime::fail(EINVAL, "no hook");
	switch (kind) {
	case attach::probe_kind::uprobe:
		id = s.probes.attach_uprobe(target, on_entry, b.get());
		break;
	case attach::probe_kind::uretprobe:
		id = s.probes.attach_uretprobe(target, on_return, b.get());
		break;
	case attach::probe_kind::override:
		id = s.probes.attach_override(target, on_override, b.get());
		break;
	}
	if (!id) {
		fail_link(st, id.error().code,
			    st.where + ": " + id.error().message);
		// Never reachable by a hook: b is freed now.
		return nullptr;
	}
	auto h = std::make_unique<uprobe_hook>(s.probes, *id, std::move(b));
	st.state = link_state::pending;
	auto info = s.probes.info(*id);
	if (info && info->state == attach::probe_state::pending)
		log(agent_log, log_level::info,
		    "link %u: %s: module not loaded; pending until it is",
		    st.link_id, st.where.c_str());
	h->refresh(st);
	return h;
}

} // namespace

const family uprobe_family{ .id = handlers::hook_family::uprobe,
			    .describe = describe,
			    .attach = attach_link };

} // namespace bpftime::agent::hooks
