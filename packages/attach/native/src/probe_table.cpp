// probe_table.cpp: the probes of every attach_manager and the decisions
// between them (see attach.hpp for the contract, probe_table.hpp for the
// lock).
#include <bpftime/attach/attach.hpp>

#include "log.hpp"
#include "module_watch.hpp"
#include "probe_table.hpp"
#include "uprobe/sites.hpp"

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <optional>

namespace bpftime::attach {

const char *to_string(probe_kind k) noexcept
{
	switch (k) {
	case probe_kind::uprobe:
		return "uprobe";
	case probe_kind::uretprobe:
		return "uretprobe";
	case probe_kind::override:
		return "override";
	}
	return "?";
}

const char *to_string(mechanism m) noexcept
{
	switch (m) {
	case mechanism::none:
		return "none";
	case mechanism::inline_jump:
		return "inline_jump";
	case mechanism::breakpoint:
		return "breakpoint";
	}
	return "?";
}

const char *to_string(probe_state s) noexcept
{
	switch (s) {
	case probe_state::active:
		return "active";
	case probe_state::pending:
		return "pending";
	case probe_state::failed:
		return "failed";
	}
	return "?";
}

namespace detail {

constinit thread_local int tls_in_attach = 0;

globals &g()
{
	static globals *state = new globals();
	return *state;
}

std::string hex(uint64_t v)
{
	char b[24];
	snprintf(b, sizeof(b), "0x%" PRIx64, v);
	return b;
}

static std::string base_name(const std::string &p)
{
	auto s = p.rfind('/');
	return s == std::string::npos ? p : p.substr(s + 1);
}

std::string describe(const location &loc)
{
	std::string m = base_name(loc.module.path);
	if (loc.symbol.empty())
		return m + ":" + hex(loc.address - loc.module.bias);
	return m + ":" + loc.symbol + "+" + hex(loc.address - loc.symbol_address);
}

} // namespace detail

namespace {

using namespace detail;

std::string target_text(const probe_target &t)
{
	std::string m = t.module.empty() ? "(main executable)" : t.module;
	if (t.symbol.empty())
		return m + ":" + hex(t.offset);
	return m + ":" + t.symbol + "+" + hex(t.offset);
}

result<uint64_t> attach_common(const void *owner, probe_kind kind, probe_callback cb,
			       override_callback ocb, void *user, const attach_options &opts,
			       const probe_target *target, uint64_t address)
{
	in_attach guard;
	std::lock_guard<std::recursive_mutex> lock(g().mu);
	drop_dead_sites();
	ensure_dlopen_watch();
	if (!cb && !ocb)
		return fail(EINVAL, std::string(to_string(kind)) + ": the callback is null");
	probe_rec p;
	p.owner = owner;
	p.kind = kind;
	p.cb = cb;
	p.ocb = ocb;
	p.user = user;
	p.opts = opts;
	std::optional<location> loc;
	if (target) {
		p.by_target = true;
		p.target = *target;
		p.where = target_text(*target);
		auto mod = find_module(target->module);
		if (!mod) {
			if (mod.error().code != ENOENT || target->module.empty() ||
			    !module_may_appear(target->module))
				return fail(mod.error().code,
					    std::string(to_string(kind)) + " at " + p.where + ": " +
						    mod.error().message);
			p.id = ++g().next_id;
			p.state = probe_state::pending;
			ensure_dlopen_watch();
			p.reason = "module '" + target->module + "' is not loaded; attaches when dlopen maps it";
			if (!g().dlopen_watch_error.empty())
				p.reason += " (but dlopen tracking is unavailable: " + g().dlopen_watch_error + ")";
			log(attach_log, log_level::info, "probe %" PRIu64 ": %s at %s: pending: %s", p.id,
			    to_string(kind), p.where.c_str(), p.reason.c_str());
			uint64_t id = p.id;
			g().probes.emplace(id, std::move(p));
			return id;
		}
		auto r = resolve(*target);
		if (!r)
			return fail(r.error().code,
				    std::string(to_string(kind)) + " at " + p.where + ": " + r.error().message);
		loc = std::move(*r);
		address = loc->address;
		p.where = describe(*loc);
	} else {
		auto r = locate(address);
		if (!r)
			return fail(EFAULT, std::string(to_string(kind)) + " at " + hex(address) +
						    ": not in an executable mapping of a loaded module");
		loc = std::move(*r);
		p.where = describe(*loc);
	}
	p.address = address;
	p.id = ++g().next_id;
	BPFTIME_TRY(install(p, loc ? &*loc : nullptr));
	uint64_t id = p.id;
	g().probes.emplace(id, std::move(p));
	return id;
}

probe_info to_info(const probe_rec &p)
{
	probe_info i;
	i.id = p.id;
	i.kind = p.kind;
	i.state = p.state;
	i.mech = p.state == probe_state::active && p.sr ? p.sr->mech : mechanism::none;
	i.address = p.state == probe_state::active ? p.address : 0;
	i.patched_bytes = p.state == probe_state::active && p.sr ? p.sr->patched : 0;
	i.at_function_entry = p.at_entry;
	i.where = p.where;
	i.reason = p.reason;
	i.error = p.error;
	i.missed = p.h ? p.h->missed.load(std::memory_order_relaxed) : 0;
	return i;
}

} // namespace

struct attach_manager::state {};

attach_manager::attach_manager() : state_(std::make_unique<state>())
{
}

attach_manager::~attach_manager()
{
	std::lock_guard<std::recursive_mutex> lock(g().mu);
	std::vector<uint64_t> mine;
	for (auto &[id, p] : g().probes)
		if (p.owner == state_.get())
			mine.push_back(id);
	for (uint64_t id : mine)
		(void)detach(id);
}

result<uint64_t> attach_manager::attach_uprobe(uint64_t address, probe_callback cb, void *user,
					       const attach_options &opts)
{
	return attach_common(state_.get(), probe_kind::uprobe, cb, nullptr, user, opts, nullptr,
			     address);
}

result<uint64_t> attach_manager::attach_uretprobe(uint64_t address, probe_callback cb, void *user,
						  const attach_options &opts)
{
	return attach_common(state_.get(), probe_kind::uretprobe, cb, nullptr, user, opts, nullptr,
			     address);
}

result<uint64_t> attach_manager::attach_override(uint64_t address, override_callback cb, void *user,
						 const attach_options &opts)
{
	return attach_common(state_.get(), probe_kind::override, nullptr, cb, user, opts, nullptr,
			     address);
}

result<uint64_t> attach_manager::attach_uprobe(const probe_target &target, probe_callback cb,
					       void *user, const attach_options &opts)
{
	return attach_common(state_.get(), probe_kind::uprobe, cb, nullptr, user, opts, &target, 0);
}

result<uint64_t> attach_manager::attach_uretprobe(const probe_target &target, probe_callback cb,
						  void *user, const attach_options &opts)
{
	return attach_common(state_.get(), probe_kind::uretprobe, cb, nullptr, user, opts, &target,
			     0);
}

result<uint64_t> attach_manager::attach_override(const probe_target &target, override_callback cb,
						 void *user, const attach_options &opts)
{
	return attach_common(state_.get(), probe_kind::override, nullptr, cb, user, opts, &target, 0);
}

status attach_manager::detach(uint64_t id)
{
	in_attach guard;
	std::lock_guard<std::recursive_mutex> lock(g().mu);
	auto it = g().probes.find(id);
	if (it == g().probes.end() || it->second.owner != state_.get())
		return fail(ENOENT, "probe " + std::to_string(id) + ": no such probe");
	uninstall(it->second);
	log(attach_log, log_level::debug, "probe %" PRIu64 ": detached", id);
	g().probes.erase(it);
	return {};
}

result<probe_info> attach_manager::info(uint64_t id) const
{
	std::lock_guard<std::recursive_mutex> lock(g().mu);
	auto it = g().probes.find(id);
	if (it == g().probes.end() || it->second.owner != state_.get())
		return fail(ENOENT, "probe " + std::to_string(id) + ": no such probe");
	return to_info(it->second);
}

std::vector<probe_info> attach_manager::probes() const
{
	std::lock_guard<std::recursive_mutex> lock(g().mu);
	std::vector<probe_info> out;
	for (auto &[id, p] : g().probes)
		if (p.owner == state_.get())
			out.push_back(to_info(p));
	return out;
}

} // namespace bpftime::attach
