// probe_table.hpp: the process-wide table behind every attach_manager
// (probe_table.cpp): the probes of all managers by id and the patched sites
// by address, shared with the uprobe sites (uprobe/sites.cpp) that install
// and remove probes and the module watch (module_watch.cpp) that attaches
// pending probes when dlopen maps their module.
//
// All of it is control-plane state, guarded by one recursive lock, g().mu: a
// callback may attach or detach (the lock is recursive because our own
// attach code may call a hooked function, malloc say, whose callback calls
// back into this API on the same thread). The hot path never takes it
// (uprobe/probe_site.cpp). Every function declared here is called with the
// lock held unless it says otherwise.
#pragma once

#include <bpftime/attach/attach.hpp>

#include "uprobe/probe_site.hpp"

#include <cstdint>
#include <map>
#include <mutex>
#include <string>

namespace bpftime::attach::detail {

struct site_rec; // uprobe/sites.hpp

struct probe_rec {
	uint64_t id = 0;
	const void *owner = nullptr;
	probe_kind kind = probe_kind::uprobe;
	probe_callback cb = nullptr;
	override_callback ocb = nullptr;
	void *user = nullptr;
	attach_options opts;
	bool by_target = false;
	probe_target target;
	probe_state state = probe_state::pending;
	uint64_t address = 0;
	bool at_entry = false;
	std::string where, reason;
	int error = 0;
	handler *h = nullptr;
	site_rec *sr = nullptr;
};

// Process-wide and never destroyed: an attach_manager that lives in a
// static of another translation unit (the agent's) may be destroyed at exit
// after this file's statics would be.
struct globals {
	std::recursive_mutex mu;
	std::map<uint64_t, site_rec *> sites;
	std::map<uint64_t, probe_rec> probes;
	uint64_t next_id = 0;
	bool dlopen_watch = false;
	std::string dlopen_watch_error;
	// Runs after a dlopen mapped something (the system call hooks scan
	// the new modules), with the lock held.
	void (*after_dlopen)() = nullptr;
};

globals &g();

// How deep this thread is in our own attach code: a dlopen or dlclose that
// resolving a module makes (RTLD_NOLOAD) must not re-enter the module watch.
extern constinit thread_local int tls_in_attach;

struct in_attach {
	in_attach()
	{
		tls_in_attach++;
	}
	~in_attach()
	{
		tls_in_attach--;
	}
};

// "0x401136"
std::string hex(uint64_t v);
// "libc.so.6:malloc+0x0", or "prog:0x1139" where no symbol covers it.
std::string describe(const location &loc);

} // namespace bpftime::attach::detail
