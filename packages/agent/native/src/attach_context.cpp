// attach_context.cpp: see attach_context.hpp.
#include <bpftime/agent/attach_context.hpp>
#include <bpftime/agent/log.hpp>

#include "hooks/hooks.hpp"
#include "hooks/uprobe.hpp"

#include <bpftime/attach/attach.hpp>
#include <bpftime/handlers/bpf_defs.hpp>
#include <bpftime/handlers/helpers.hpp>
#include <bpftime/handlers/program.hpp>
#include <bpftime/handlers/registry.hpp>
#include <bpftime/maps_shared/maps_shared.hpp>
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

// The override request of this thread: see hooks/uprobe.hpp.
using hooks::t_override;

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
	// The family's hook, null when nothing was installed (skipped,
	// failed).
	std::unique_ptr<hooks::hook> hook;
	// The hook's fault count already added to the link in the registry.
	uint64_t published_faults = 0;
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
// reaches a binding), then the hooks with their bindings and program
// instances, then the registry and its segment mapping.
struct attach_context::state {
	mutable std::mutex mu;
	std::unique_ptr<handlers::registry> reg;
	result<vm::backend> backend = vm::backend::jit_x64;
	std::vector<std::unique_ptr<hooks::hook>> retired;
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
	if (!e.hook)
		return;
	e.hook->detach(e.st);
	retired.push_back(std::move(e.hook));
}

void attach_context::state::refresh(entry &e)
{
	if (e.hook)
		e.hook->refresh(e.st);
}

// The generic part of attaching a link: the event and its kind (handlers'
// attach_kind_of), the family that hooks it, the pid filter, the program;
// the family does the rest (hooks/hooks.hpp).
void attach_context::state::attach_link(
	entry &e, const handlers::handler_info &link,
	const std::unordered_map<uint32_t, const handlers::handler_info *> &by_id)
{
	const auto &ls = std::get<handlers::link_spec>(link.spec);
	e.st.link_id = link.h.id;
	e.st.generation = link.h.generation;
	e.st.prog_id = ls.prog_id;

	auto pe_it = by_id.find(ls.target_id);
	if (ls.target_id == handlers::NO_ID || pe_it == by_id.end() ||
	    pe_it->second->kind != handlers::handler_kind::perf_event) {
		e.st.state = link_state::skipped;
		return;
	}
	const auto &pe =
		std::get<handlers::perf_event_spec>(pe_it->second->spec);
	auto prog_it = by_id.find(ls.prog_id);
	const handlers::prog_spec *ps =
		prog_it != by_id.end() &&
				prog_it->second->kind == handlers::handler_kind::prog
			? &std::get<handlers::prog_spec>(prog_it->second->spec)
			: nullptr;
	auto kind = handlers::attach_kind_of(
		pe.type, pe.syscall_id, pe.ref_ctr_offset,
		ps && calls_helper(*ps, override_return_proto.id));
	if (!kind) {
		e.st.state = link_state::skipped;
		return;
	}
	const hooks::family *fam =
		hooks::find_family(handlers::family_of(*kind));
	if (!fam) {
		e.st.state = link_state::skipped;
		log(agent_log, log_level::debug,
		    "link %u: %s event: no %s hook in this agent; skipped",
		    e.st.link_id, handlers::perf_event_type_name(pe.type),
		    handlers::attach_kind_name(*kind));
		return;
	}
	e.st.where = fam->describe(pe);
	if (pe.pid != -1 && pe.pid != int32_t(getpid())) {
		e.st.state = link_state::skipped;
		log(agent_log, log_level::debug, "link %u: %s is for pid %d",
		    e.st.link_id, e.st.where.c_str(), pe.pid);
		return;
	}
	if (!ps) {
		hooks::fail_link(e.st, EBADF,
				 "prog " + std::to_string(ls.prog_id) +
					 ": not in the registry");
		return;
	}
	const hooks::services svc{ .reg = *reg,
				   .probes = probes,
				   .backend = backend };
	e.hook = fam->attach(svc, { .link = ls, .event = pe, .prog = *ps,
				    .kind = *kind },
			     e.st);
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
		BPFTIME_TRY(maps_shared::register_all());
		const vm::helper_proto *h =
			handlers::find_helper(override_return_proto.id);
		if (!h) {
			BPFTIME_TRY(handlers::register_helper(override_return_proto));
		} else if (h->fn != helper_override_return) {
			log(agent_log, log_level::warn,
			    "helper override_return (#58) is provided by another component; override probes will not see its requests");
		}
		state_->backend = opts.backend;
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

status attach_context::check_segment() const noexcept
{
	// reg is set once, under the mutex, before the watcher starts.
	handlers::registry *r = state_->reg.get();
	if (!r)
		return fail(EBADF, "registry: not open");
	return r->segment().check_file();
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

result<uint32_t> attach_context::detach_all() noexcept
{
	try {
		std::lock_guard g(state_->mu);
		state &s = *state_;
		if (!s.reg)
			return fail(EBADF, "registry: not open");
		uint32_t n = 0;
		for (auto &[id, e] : s.entries) {
			if (e.hook)
				n++;
			s.detach(e);
		}
		s.entries.clear();
		return n;
	} catch (const std::exception &e) {
		return fail(ENOMEM, std::string("registry: detach: ") + e.what());
	}
}

void attach_context::publish_faults() noexcept
{
	try {
		std::lock_guard g(state_->mu);
		if (!state_->reg)
			return;
		for (auto &[id, e] : state_->entries) {
			if (!e.hook)
				continue;
			const uint64_t n = e.hook->faults();
			if (n <= e.published_faults)
				continue;
			// A released link is gone from the registry, and its
			// count with it.
			if (state_->reg->add_link_faults(
				    { e.st.link_id, e.st.generation },
				    n - e.published_faults))
				e.published_faults = n;
		}
	} catch (...) {
	}
}

std::vector<link_status> attach_context::links() const
{
	std::lock_guard g(state_->mu);
	std::vector<link_status> out;
	for (auto &[id, e] : state_->entries) {
		out.push_back(e.st);
		if (e.hook) {
			out.back().missed = e.hook->missed();
			out.back().faults = e.hook->faults();
			out.back().disabled = e.hook->disabled();
		}
	}
	return out;
}

} // namespace bpftime::agent
