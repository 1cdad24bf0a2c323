// uprobe/sites.hpp: the patched code of uprobes: one site per probed
// address (an inline jump or an int3 and its trampoline, see attach.hpp
// "Mechanisms"), shared by every probe on that address. Called with g().mu
// held (probe_table.hpp).
#pragma once

#include "probe_table.hpp"

#include <string>
#include <vector>

namespace bpftime::attach::detail {

struct site_rec {
	site *s = nullptr;
	uint64_t address = 0;
	mechanism mech = mechanism::none;
	uint32_t patched = 0; // instructions' bytes moved to the trampoline
	uint32_t written = 0; // bytes of the original code we overwrote
	uint8_t original[8] = {};
	uint8_t code[8] = {}; // what we wrote
	uint64_t trampoline = 0;
	uint64_t device = 0, inode = 0;
	std::string reason;
	std::vector<handler *> handlers;
};

// Puts p on its address: creates the site (plans the region, builds the
// trampoline, patches the code) for the first probe there, else joins the
// existing one; publishes the site's new handler snapshot. `loc` is what
// resolve() or locate() found for p.address, or null. Errors name the probe.
status install(probe_rec &p, const location *loc);
// Takes an active p off its site; the last probe of a site writes the
// original bytes back.
void uninstall(probe_rec &p);

} // namespace bpftime::attach::detail
