// module_watch.cpp: see module_watch.hpp.
#include "module_watch.hpp"

#include "log.hpp"
#include "patch/code_patch.hpp"
#include "symbols/proc_maps.hpp"
#include "uprobe/sites.hpp"

#include <cerrno>
#include <cinttypes>
#include <cstring>
#include <sys/stat.h>

namespace bpftime::attach::detail {
namespace {

void process_pending();

void on_dlopen_return(const pt_regs *regs, void *)
{
	if (regs->ax != 0)
		process_pending();
}

void on_dlclose_return(const pt_regs *regs, void *)
{
	if (regs->ax != 0 || tls_in_attach)
		return; // failed, or our own dlclose while resolving
	in_attach guard;
	std::lock_guard<std::recursive_mutex> lock(g().mu);
	drop_dead_sites();
}

} // namespace

// Sites whose code is gone (dlclose unmapped the module, or another file
// is mapped there now) are forgotten, without writing: their probes go
// back to pending when they were attached by module and symbol (the next
// dlopen of the module attaches them again), to failed otherwise. Called
// with the lock held.
void drop_dead_sites()
{
	if (g().sites.empty())
		return;
	auto maps = read_maps();
	if (!maps)
		return;
	std::vector<site_rec *> dead;
	for (auto &[a, sr] : g().sites) {
		const mapping *m = find_mapping(*maps, a);
		if (!m || !m->exec || !m->read || m->device != sr->device || m->inode != sr->inode ||
		    memcmp(reinterpret_cast<const void *>(a), sr->code, sr->written) != 0)
			dead.push_back(sr);
	}
	for (site_rec *sr : dead) {
		g().sites.erase(sr->address);
		breakpoint_retire(sr->address);
		for (auto &[id, p] : g().probes) {
			if (p.sr != sr)
				continue;
			p.sr = nullptr;
			if (p.by_target) {
				p.state = probe_state::pending;
				p.reason = "the module was unloaded; attaches again when dlopen maps it";
			} else {
				p.state = probe_state::failed;
				p.error = ENOENT;
				p.reason = "the module holding " + hex(p.address) + " was unloaded";
			}
			log(attach_log, log_level::info, "probe %" PRIu64 ": %s at %s: %s", id, to_string(p.kind),
			    p.where.c_str(), p.reason.c_str());
		}
	}
}

// Hooks the return of dlopen and dlmopen, so that pending probes attach
// when their module appears, and of dlclose, so that the probes of an
// unloaded module become pending again.
void ensure_dlopen_watch()
{
	if (g().dlopen_watch)
		return;
	g().dlopen_watch = true;
	std::string errors;
	int hooked = 0;
	for (const char *lib : { "libc.so.6", "libdl.so.2" }) {
		for (const char *fn : { "dlopen", "dlmopen", "dlclose" }) {
			auto loc = resolve({ lib, fn, 0 });
			if (!loc)
				continue;
			bool dup = false;
			for (auto &[id, q] : g().probes)
				if (!q.owner && q.address == loc->address)
					dup = true;
			if (dup)
				continue;
			probe_rec p;
			p.id = ++g().next_id;
			p.kind = probe_kind::uretprobe;
			p.cb = strcmp(fn, "dlclose") == 0 ? on_dlclose_return : on_dlopen_return;
			p.address = loc->address;
			p.where = describe(*loc);
			if (auto st = install(p, &*loc); !st) {
				errors += st.error().message + "; ";
				continue;
			}
			hooked++;
			g().probes.emplace(p.id, std::move(p));
		}
	}
	if (!hooked) {
		g().dlopen_watch_error = errors.empty() ? "dlopen not found in libc.so.6 or libdl.so.2" : errors;
		log(attach_log, log_level::warn, "dlopen tracking unavailable: %s", g().dlopen_watch_error.c_str());
	}
}

bool module_may_appear(const std::string &module)
{
	if (module.find('/') == std::string::npos)
		return true;
	struct stat st;
	return stat(module.c_str(), &st) == 0;
}

namespace {

void process_pending()
{
	if (tls_in_attach)
		return; // our own dlopen(RTLD_NOLOAD) while resolving
	in_attach guard;
	std::lock_guard<std::recursive_mutex> lock(g().mu);
	drop_dead_sites();
	for (auto &[id, p] : g().probes) {
		if (p.state != probe_state::pending)
			continue;
		if (!find_module(p.target.module))
			continue;
		auto loc = resolve(p.target);
		if (!loc) {
			p.state = probe_state::failed;
			p.error = loc.error().code;
			p.reason = loc.error().message;
			log(attach_log, log_level::warn, "probe %" PRIu64 ": %s", id, p.reason.c_str());
			continue;
		}
		p.address = loc->address;
		p.where = describe(*loc);
		if (auto st = install(p, &*loc); !st) {
			p.state = probe_state::failed;
			p.error = st.error().code;
			p.reason = st.error().message;
			log(attach_log, log_level::warn, "probe %" PRIu64 ": %s", id, p.reason.c_str());
		}
	}
	if (g().after_dlopen)
		g().after_dlopen();
}

} // namespace

} // namespace bpftime::attach::detail
