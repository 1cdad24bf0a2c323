// uprobe/sites.cpp: see uprobe/sites.hpp.
#include "uprobe/sites.hpp"

#include "log.hpp"
#include "patch/code_patch.hpp"
#include "patch/exec_memory.hpp"
#include "symbols/proc_maps.hpp"
#include "uprobe/relocator.hpp"
#include "uprobe/trampoline.hpp"

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstring>

namespace bpftime::attach::detail {
namespace {

void publish(site_rec *sr)
{
	auto *sn = new snapshot();
	sn->handlers = sr->handlers;
	for (handler *h : sr->handlers) {
		if (h->kind == probe_kind::uretprobe)
			sn->has_return = true;
		else
			sn->has_entry = true;
	}
	if (sr->handlers.size() == 1) {
		handler *h = sr->handlers[0];
		if (h->kind == probe_kind::uprobe)
			sn->sole_uprobe = h;
		else if (h->kind == probe_kind::uretprobe)
			sn->sole_uretprobe = h;
	}
	sr->s->current.store(sn, std::memory_order_release);
}

// Why an inline jump may not go here, or "" when it may.
std::string inline_obstacle(uint64_t addr, const region &r, const location *loc,
			    const std::vector<mapping> &maps)
{
	const uint64_t end = addr + r.length;
	for (auto &[a, other] : g().sites)
		if (a > addr && a < end)
			return "the jump would cover the probe at " + hex(a);
	if (!loc || loc->symbol.empty() || loc->symbol_size == 0) {
		if (r.insns.size() == 1)
			return {};
		return "no symbol size here to prove that no branch targets the " +
		       std::to_string(r.length) + " displaced bytes";
	}
	const uint64_t fn_end = loc->symbol_address + loc->symbol_size;
	if (end > fn_end)
		return "the function has " + std::to_string(fn_end - addr) +
		       " bytes from the probe, fewer than the " + std::to_string(r.length) +
		       " a jump displaces";
	// Only what is mapped executable is read: the symbol tables may claim
	// more than the segments hold.
	auto scan = [&](uint64_t from, uint64_t to) -> std::string {
		const mapping *m = find_mapping(maps, from);
		if (!m || !m->exec)
			return {};
		to = std::min(to, m->end);
		return find_branch_into(from, reinterpret_cast<const uint8_t *>(from), to - from,
					addr, end, loc->symbol_address);
	};
	if (std::string b = scan(loc->symbol_address, fn_end); !b.empty())
		return b + ", inside the bytes a jump would cover";
	for (auto [lo, hi] : loc->related_ranges)
		if (hi > lo)
			if (std::string b = scan(lo, hi); !b.empty())
				return b + " (cold part), inside the bytes a jump would cover";
	return {};
}

result<site_rec *> create_site(uint64_t addr, const location *loc, const attach_options &opts)
{
	auto maps = read_maps();
	if (!maps)
		return std::move(maps).error();
	const mapping *m = find_mapping(*maps, addr);
	if (!m || !m->exec)
		return fail(EFAULT, hex(addr) + " is not in an executable mapping");
	for (auto &[a, other] : g().sites)
		if (addr > a && addr < a + other->written)
			return fail(EBUSY, hex(addr) + " is inside the bytes patched for the probe at " + hex(a));
	const auto *code = reinterpret_cast<const uint8_t *>(addr);
	const size_t avail = std::min<uint64_t>(m->end - addr, 64);
	if (code[0] == 0xcc)
		return fail(EBUSY, hex(addr) + " already holds an int3 that bpftime did not set "
					       "(a debugger or a kernel uprobe)");
	const bool at_entry = loc && loc->at_function_entry();

	mechanism mech = mechanism::inline_jump;
	std::string reason;
	region r;
	if (opts.force_breakpoint) {
		mech = mechanism::breakpoint;
		reason = "breakpoint forced by the attach options";
	} else {
		auto p = plan_region(addr, code, avail, 5);
		if (!p) {
			if (p.error().code != ERANGE)
				return std::move(p).error();
			mech = mechanism::breakpoint;
			reason = p.error().message;
		} else if (std::string why = inline_obstacle(addr, *p, loc, *maps); !why.empty()) {
			mech = mechanism::breakpoint;
			reason = why;
		} else {
			r = std::move(*p);
			reason = std::to_string(r.insns.size()) + " instruction" +
				 (r.insns.size() == 1 ? "" : "s") + " moved (" + r.describe() + ")";
		}
	}
	if (mech == mechanism::breakpoint) {
		auto p = plan_region(addr, code, avail, 1);
		if (!p)
			return std::move(p).error();
		r = std::move(*p);
	}

	std::vector<uint64_t> targets = reach_targets(r);
	targets.push_back(addr);
	auto [lo, hi] = reach_window(targets, max_entry_code);
	if (lo > hi)
		return fail(ENOMEM, "the instructions at " + hex(addr) +
					    " refer to addresses too far apart for one trampoline");
	auto mem = allocate_exec(max_entry_code, lo, hi, addr);
	if (!mem)
		return std::move(mem).error();
	const uint64_t tramp = reinterpret_cast<uint64_t>(mem->exec);
	auto *s = new site();
	s->address = addr;
	s->current.store(new snapshot());
	auto built = build_entry(tramp, r, s, at_entry);
	if (!built)
		return std::move(built).error();
	s->return_point = tramp + built->return_point_at;
	memcpy(mem->write, built->bytes.data(), built->bytes.size());
	// Published to other threads by the patch that follows (int3 and
	// membarrier), never executed before it.
	__builtin___clear_cache(reinterpret_cast<char *>(mem->exec),
				reinterpret_cast<char *>(mem->exec + built->bytes.size()));

	BPFTIME_TRY(ensure_sigtrap_handler());
	if (int t = thread_blocking_sigtrap())
		return fail(EBUSY, "thread " + std::to_string(t) +
					   " blocks SIGTRAP: a breakpoint would kill the process");
	BPFTIME_TRY(breakpoint_publish(addr, tramp));

	auto *sr = new site_rec();
	sr->s = s;
	sr->address = addr;
	sr->trampoline = tramp;
	sr->patched = r.length;
	sr->device = m->device;
	sr->inode = m->inode;
	const uint32_t len = mech == mechanism::inline_jump ? 5 : 1;
	memcpy(sr->original, code, len);
	{
		auto w = code_writer::open(addr, len);
		if (!w)
			return std::move(w).error();
		const uint8_t int3 = 0xcc;
		w->write(addr, &int3, 1);
		sync_cores();
		if (mech == mechanism::inline_jump &&
		    !move_threads_out(addr, addr + r.length, tramp + built->relocated_at,
				      built->boundaries)) {
			mech = mechanism::breakpoint;
			reason = "a thread did not answer the stop signal, so the jump could "
				 "not be placed safely";
		}
		if (mech == mechanism::inline_jump) {
			uint8_t jmp[5] = { 0xe9 };
			const uint32_t rel = uint32_t(tramp - (addr + 5));
			memcpy(jmp + 1, &rel, 4);
			w->write(addr + 1, jmp + 1, 4);
			sync_cores();
			w->write(addr, jmp, 1);
			sync_cores();
			memcpy(sr->code, jmp, 5);
			sr->written = 5;
		} else {
			sr->code[0] = 0xcc;
			sr->written = 1;
			sr->original[1] = 0;
		}
	}
	sr->mech = mech;
	sr->reason = reason;
	g().sites[addr] = sr;
	return sr;
}

// Puts the original bytes back (the last probe of the site is gone).
void remove_site(site_rec *sr)
{
	g().sites.erase(sr->address);
	auto maps = read_maps();
	const mapping *m = maps ? find_mapping(*maps, sr->address) : nullptr;
	const auto *now = reinterpret_cast<const uint8_t *>(sr->address);
	if (!m || m->device != sr->device || m->inode != sr->inode ||
	    memcmp(now, sr->code, sr->written) != 0) {
		log(attach_log, log_level::warn,
		    "probe site %s: the module was unloaded or its code changed; "
		    "nothing to restore",
		    hex(sr->address).c_str());
		breakpoint_retire(sr->address);
		return;
	}
	auto w = code_writer::open(sr->address, sr->written);
	if (!w) {
		log(attach_log, log_level::error, "probe site %s: cannot restore the original bytes: %s",
		    hex(sr->address).c_str(), w.error().message.c_str());
		return;
	}
	if (sr->written > 1) {
		// text_poke_bp order: no thread is inside a jmp, so the int3
		// covers the window where the jump is half gone.
		const uint8_t int3 = 0xcc;
		w->write(sr->address, &int3, 1);
		sync_cores();
		w->write(sr->address + 1, sr->original + 1, sr->written - 1);
		sync_cores();
	}
	w->write(sr->address, sr->original, 1);
	sync_cores();
	breakpoint_retire(sr->address);
}

// A probe inside a function must sit on an instruction boundary: decoded
// from the middle of an instruction, the bytes would be relocated as
// something else. Decodes linearly from the function's start (compilers do
// not put data inside functions on x86-64). Bytes patched by other probes
// are read as they were.
status check_boundary(const probe_rec &p, const location &loc)
{
	auto maps = read_maps();
	if (!maps)
		return std::move(maps).error();
	const mapping *m = find_mapping(*maps, loc.symbol_address);
	if (!m || !m->exec || loc.address >= m->end)
		return {};
	uint64_t at = loc.symbol_address;
	while (at < loc.address) {
		uint8_t buf[16];
		const size_t n = std::min<uint64_t>(sizeof(buf), m->end - at);
		memcpy(buf, reinterpret_cast<const void *>(at), n);
		for (auto &[a, other] : g().sites)
			for (uint32_t i = 0; i < other->written; i++)
				if (a + i >= at && a + i < at + n)
					buf[a + i - at] = other->original[i];
		auto in = decode(at, buf, n);
		if (!in)
			return {}; // cannot tell; the site's own decode decides
		if (at + in->length > loc.address)
			return fail(EINVAL, std::string(to_string(p.kind)) + " at " + p.where +
						    ": not an instruction boundary (inside '" +
						    in->text + "' at +" +
						    hex(at - loc.symbol_address) + ")");
		at += in->length;
	}
	return {};
}

} // namespace

status install(probe_rec &p, const location *loc)
{
	const char *kind = to_string(p.kind);
	if (p.kind != probe_kind::uprobe) {
		if (loc && !loc->symbol.empty() && !loc->at_function_entry())
			return fail(EINVAL, std::string(kind) + " at " + p.where +
						    ": must be at a function's first instruction");
		if (!loc || loc->symbol.empty())
			log(attach_log, log_level::warn,
			    "%s at %s: no symbol covers the address; assuming it is a "
			    "function's first instruction",
			    kind, p.where.c_str());
	}
	if (loc && !loc->symbol.empty() && !loc->at_function_entry())
		BPFTIME_TRY(check_boundary(p, *loc));
	site_rec *sr = nullptr;
	if (auto it = g().sites.find(p.address); it != g().sites.end()) {
		sr = it->second;
	} else {
		auto made = create_site(p.address, loc, p.opts);
		if (!made)
			return fail(made.error().code,
				    std::string(kind) + " at " + p.where + ": " + made.error().message);
		sr = *made;
	}
	auto *h = new handler();
	h->id = p.id;
	h->kind = p.kind;
	h->cb = p.cb;
	h->ocb = p.ocb;
	h->user = p.user;
	sr->handlers.push_back(h);
	publish(sr);
	p.h = h;
	p.sr = sr;
	p.state = probe_state::active;
	p.at_entry = loc && loc->at_function_entry();
	p.reason = sr->reason;
	log(attach_log, log_level::info, "probe %" PRIu64 ": %s at %s (%s): %s, %s", p.id, kind, p.where.c_str(),
	    hex(p.address).c_str(), to_string(sr->mech), sr->reason.c_str());
	return {};
}

void uninstall(probe_rec &p)
{
	if (p.state != probe_state::active || !p.sr)
		return;
	site_rec *sr = p.sr;
	sr->handlers.erase(std::remove(sr->handlers.begin(), sr->handlers.end(), p.h),
			   sr->handlers.end());
	publish(sr);
	if (sr->handlers.empty())
		remove_site(sr);
	p.sr = nullptr;
}

} // namespace bpftime::attach::detail
