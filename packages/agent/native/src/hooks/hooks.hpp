// hooks/hooks.hpp: the agent's hook families and the table that dispatches
// links to them.
//
// What a link becomes is decided in one place, handlers' attach vocabulary
// (bpftime/handlers/attach_kinds.hpp: attach_kind_of() gives the kind, and
// each kind names its hook_family). attach_context looks the family up here
// and hands it the link; each family is one file, hooks/<family>.cpp, that
// defines `const family <family>_family` and installs its hooks through
// @bpftime/attach's matching mechanism (uprobe/, syscall/ ...). Adding a
// family is that file plus its line in BPFTIME_AGENT_HOOK_FAMILIES below; a
// kind whose family has no line here is logged (debug) and skipped.
//
// Everything here runs at attach time only, under attach_context::state::mu
// (sync(), on the watcher thread or the caller's); the function pointers and
// virtual calls below are never on a hit's path: a family hands its own
// plain callbacks to @bpftime/attach.
#pragma once

#include <bpftime/agent/attach_context.hpp>
#include <bpftime/attach/attach.hpp>
#include <bpftime/handlers/attach_kinds.hpp>
#include <bpftime/handlers/registry.hpp>
#include <bpftime/vm/vm.hpp>

#include <cstdint>
#include <memory>
#include <string>

namespace bpftime::agent::hooks {

// What attach_context lends a family for one sync().
struct services {
	handlers::registry &reg;
	// Every probe of the agent: destroyed before any hook object, so no
	// callback outlives its binding.
	attach::attach_manager &probes;
	// The backend links' programs run on (context_options::backend); an
	// error fails each link with it.
	const result<vm::backend> &backend;
};

// One link to attach. The references are valid for the call only.
struct link_request {
	const handlers::link_spec &link;
	const handlers::perf_event_spec &event;
	const handlers::prog_spec &prog;
	handlers::attach_kind kind;
};

// A hook that a family installed (or left pending) for one link. Owned by
// attach_context; after detach() it is kept until the context is destroyed,
// because a hit that entered it just before may still be running.
class hook {
    public:
	virtual ~hook() = default;
	// A pending hook became active or failed: update st and log it.
	virtual void refresh(link_status &st) = 0;
	// No new hit reaches the program once this returns; logs the detach.
	virtual void detach(link_status &st) = 0;
	// Hits that did not run the program (see binding.hpp, t_running).
	virtual uint64_t missed() const noexcept = 0;
	// Runs that a fault ended, and whether that disabled the link.
	virtual uint64_t faults() const noexcept = 0;
	virtual bool disabled() const noexcept = 0;
};

struct family {
	handlers::hook_family id;
	// What link_status::where says of the event ("uprobe /bin/x:f+0x0"),
	// before anything is attached.
	std::string (*describe)(const handlers::perf_event_spec &event);
	// Attaches r: sets st.hook and st.state (pending, attached, or failed
	// with st.err through fail_link()) and returns the hook, or null when
	// nothing was installed.
	std::unique_ptr<hook> (*attach)(const services &s, const link_request &r,
					link_status &st);
};

// The families this agent has, one line each.
#define BPFTIME_AGENT_HOOK_FAMILIES(X) X(uprobe) X(syscall)

#define BPFTIME_X(name) extern const family name##_family;
BPFTIME_AGENT_HOOK_FAMILIES(BPFTIME_X)
#undef BPFTIME_X

// The family of this agent that hooks f, or null.
const family *find_family(handlers::hook_family f) noexcept;

// Marks st failed with code and msg, and logs it (warning).
void fail_link(link_status &st, int code, std::string msg);

} // namespace bpftime::agent::hooks
