// attach_manager.cpp: probes, sites and the decisions between them (see
// attach.hpp for the contract).
//
// All control-plane state is process-wide and guarded by one recursive
// lock: a callback may attach or detach (the lock is recursive because our
// own attach code may call a hooked function, malloc say, whose callback
// calls back into this API on the same thread). The hot path never takes
// it (probe_site.cpp).
#include <bpftime/attach/attach.hpp>

#include "log.hpp"
#include "patch/code_patch.hpp"
#include "patch/exec_memory.hpp"
#include "symbols/proc_maps.hpp"
#include "uprobe/probe_site.hpp"
#include "uprobe/relocator.hpp"
#include "uprobe/trampoline.hpp"

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <sys/stat.h>

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

namespace {

using namespace detail;

std::string hex(uint64_t v)
{
	char b[24];
	snprintf(b, sizeof(b), "0x%" PRIx64, v);
	return b;
}

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
};

globals &g()
{
	static globals *state = new globals();
	return *state;
}

thread_local int tls_in_attach = 0;

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

std::string base_name(const std::string &p)
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
		log(log_level::warn,
		    "probe site %s: the module was unloaded or its code changed; "
		    "nothing to restore",
		    hex(sr->address).c_str());
		breakpoint_retire(sr->address);
		return;
	}
	auto w = code_writer::open(sr->address, sr->written);
	if (!w) {
		log(log_level::error, "probe site %s: cannot restore the original bytes: %s",
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

status install(probe_rec &p, const location *loc)
{
	const char *kind = to_string(p.kind);
	if (p.kind != probe_kind::uprobe) {
		if (loc && !loc->symbol.empty() && !loc->at_function_entry())
			return fail(EINVAL, std::string(kind) + " at " + p.where +
						    ": must be at a function's first instruction");
		if (!loc || loc->symbol.empty())
			log(log_level::warn,
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
	log(log_level::info, "probe %" PRIu64 ": %s at %s (%s): %s, %s", p.id, kind, p.where.c_str(),
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

void process_pending();

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
			log(log_level::info, "probe %" PRIu64 ": %s at %s: %s", id, to_string(p.kind),
			    p.where.c_str(), p.reason.c_str());
		}
	}
}

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
		log(log_level::warn, "dlopen tracking unavailable: %s", g().dlopen_watch_error.c_str());
	}
}

bool module_may_appear(const std::string &module)
{
	if (module.find('/') == std::string::npos)
		return true;
	struct stat st;
	return stat(module.c_str(), &st) == 0;
}

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
			log(log_level::warn, "probe %" PRIu64 ": %s", id, p.reason.c_str());
			continue;
		}
		p.address = loc->address;
		p.where = describe(*loc);
		if (auto st = install(p, &*loc); !st) {
			p.state = probe_state::failed;
			p.error = st.error().code;
			p.reason = st.error().message;
			log(log_level::warn, "probe %" PRIu64 ": %s", id, p.reason.c_str());
		}
	}
}

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
			log(log_level::info, "probe %" PRIu64 ": %s at %s: pending: %s", p.id,
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
	log(log_level::debug, "probe %" PRIu64 ": detached", id);
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
