// syscall/rewrite.cpp: finding the `syscall` instructions of the process's
// modules, building their trampolines (layout in dispatch.hpp), patching
// the sites, and the syscall_hooks API (see bpftime/attach/syscall.hpp).
//
// All of it is control-plane code under the attach lock, g().mu: the
// breakpoint table and the thread round trips of patch/code_patch.cpp are
// shared with the uprobe sites.
#include <bpftime/attach/syscall.hpp>

#include "dispatch.hpp"
#include "user_dispatch.hpp"

#include "../log.hpp"
#include "../module_watch.hpp"
#include "../patch/code_patch.hpp"
#include "../patch/exec_memory.hpp"
#include "../probe_table.hpp"
#include "../symbols/elf_file.hpp"
#include "../symbols/proc_maps.hpp"
#include "../uprobe/relocator.hpp"
#include "../uprobe/x86_emitter.hpp"

#include <Zydis/Zydis.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <map>
#include <set>
#include <tuple>

namespace bpftime::attach::detail {
namespace {

// One syscall instruction and, when it can be rewritten, the form of its
// jump and the instructions the jump displaces.
struct sys_rec {
	uint64_t address = 0;	   // the syscall instruction
	uint64_t region = 0;	   // first replaced instruction (0: none)
	uint8_t region_len = 0;	   // bytes from region to address
	uint8_t n_insns = 0;
	uint8_t starts[4] = {};    // offsets of the replaced instructions
	int64_t nr = -1;
	int64_t pre_nr = -1;	   // mov eax, imm just before the syscall
	// The jump sits on the syscall itself and the instructions after it
	// move to the trampoline (the bytes before it are too short or a
	// branch target): `tail` is them.
	bool forward = false;
	// The jump covers the instructions before the syscall and the syscall
	// (they are 5 bytes only together): glibc's thread exit loop
	// `1: xor edi, edi; mov eax, edx; syscall; jmp 1b`, which runs with
	// every signal blocked, so it is only ever written at once (no int3).
	bool covering = false;
	uint64_t cover = 0;	   // its first instruction
	uint8_t cover_len = 0;	   // bytes from there to the syscall
	detail::region tail; // qualified: the field `region` hides the type
	std::vector<std::pair<uint32_t, uint32_t>> moves; // thread moves (offset from region)
	uint64_t move_to = 0;
	std::string module;
	bool rewritten = false;
	std::string reason;
	sys_site *site = nullptr;
	uint64_t tramp = 0;
	uint8_t original[5] = {};
};

struct sys_globals {
	std::vector<sys_rec> sites;
	// Addresses of the syscall instructions seen: a mapping that changed
	// its bounds (an mprotect splits or merges them) is swept again, and
	// its known sites are skipped.
	std::set<uint64_t> known;
	std::set<std::tuple<uint64_t, uint64_t, uint64_t, uint64_t>> scanned; // dev, ino, start, end
	std::map<uint64_t, sys_handler *> handlers;
	uint64_t next_id = 0;
	bool rewritten_once = false;
	bool sud_failed = false; // the fallback could not be turned on
	syscall_stats stats;
};

sys_globals &sg()
{
	static sys_globals *s = new sys_globals();
	return *s;
}

ZydisDecoder &decoder()
{
	static ZydisDecoder d = [] {
		ZydisDecoder x;
		ZydisDecoderInit(&x, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64);
		return x;
	}();
	return d;
}

// An instruction that can run unchanged in the trampoline: no control
// flow, no RIP-relative operand, no relative immediate.
bool movable(const ZydisDecodedInstruction &in)
{
	if (in.attributes & ZYDIS_ATTRIB_IS_RELATIVE)
		return false;
	if ((in.attributes & ZYDIS_ATTRIB_HAS_MODRM) && in.raw.modrm.mod == 0 &&
	    in.raw.modrm.rm == 5)
		return false;
	switch (in.meta.category) {
	case ZYDIS_CATEGORY_COND_BR:
	case ZYDIS_CATEGORY_UNCOND_BR:
	case ZYDIS_CATEGORY_CALL:
	case ZYDIS_CATEGORY_RET:
	case ZYDIS_CATEGORY_INTERRUPT:
	case ZYDIS_CATEGORY_SYSCALL:
	case ZYDIS_CATEGORY_SYSRET:
	case ZYDIS_CATEGORY_SYSTEM:
		return false;
	default:
		return true;
	}
}

struct prev_insn {
	uint64_t address;
	uint8_t length;
	bool movable;
	int64_t imm_eax; // mov eax/rax, imm32: its value, else -1
};

// mov eax, imm32 (b8) or mov rax, simm32 (48 c7 c0): the number of the
// system call that follows, as glibc's wrappers set it.
int64_t nr_of(const uint8_t *p, uint8_t len)
{
	int32_t v;
	if (len == 5 && p[0] == 0xb8) {
		memcpy(&v, p + 1, 4);
		return v >= 0 ? v : -1;
	}
	if (len == 7 && p[0] == 0x48 && p[1] == 0xc7 && p[2] == 0xc0) {
		memcpy(&v, p + 3, 4);
		return v >= 0 ? v : -1;
	}
	return -1;
}

// Sweeps [start, end) linearly, restarting at every function symbol that
// starts inside an instruction (data or padding decoded as code), and
// appends a record for every syscall instruction; `targets` collects every
// relative branch target.
void sweep(uint64_t start, uint64_t end, const std::vector<uint64_t> &fn_starts,
	   std::vector<sys_rec> &out, std::vector<uint64_t> &targets)
{
	prev_insn ring[4];
	int n = 0;
	auto sym = std::lower_bound(fn_starts.begin(), fn_starts.end(), start);
	uint64_t pc = start;
	while (pc < end) {
		while (sym != fn_starts.end() && *sym < pc)
			++sym;
		const auto *code = reinterpret_cast<const uint8_t *>(pc);
		ZydisDecodedInstruction in;
		if (!ZYAN_SUCCESS(ZydisDecoderDecodeInstruction(
			    &decoder(), nullptr, code, std::min<uint64_t>(end - pc, 15), &in))) {
			pc++;
			n = 0;
			continue;
		}
		if (sym != fn_starts.end() && *sym > pc && *sym < pc + in.length) {
			pc = *sym;
			n = 0;
			continue;
		}
		if (in.attributes & ZYDIS_ATTRIB_IS_RELATIVE) {
			for (const auto &imm : in.raw.imm)
				if (imm.is_relative) {
					targets.push_back(pc + in.length + uint64_t(imm.value.s));
					break;
				}
		}
		if (in.mnemonic == ZYDIS_MNEMONIC_SYSCALL) {
			sys_rec r;
			r.address = pc;
			r.pre_nr = n ? ring[n - 1].imm_eax : -1;
			// Walk back over the instructions before it until the
			// 5 bytes of a jump are covered.
			uint32_t len = 0;
			int k = 0;
			for (int i = n - 1; i >= 0 && len < 5; i--, k++) {
				if (!ring[i].movable)
					break;
				len += ring[i].length;
			}
			// The fewest instructions before it that make 5 bytes
			// with the syscall itself.
			{
				uint32_t cl = 0;
				for (int i = n - 1; i >= 0 && cl + 2 < 5; i--) {
					if (!ring[i].movable)
						break;
					cl += ring[i].length;
				}
				if (cl + 2 >= 5 && cl < 5) {
					r.cover = pc - cl;
					r.cover_len = uint8_t(cl);
				}
			}
			if (len >= 5 && len <= 32) {
				r.region = pc - len;
				r.region_len = uint8_t(len);
				r.n_insns = uint8_t(k);
				for (int j = 0; j < k; j++)
					r.starts[j] = uint8_t(ring[n - k + j].address - r.region);
				r.nr = ring[n - 1].imm_eax;
			} else {
				r.reason = n == 0 ? "no instruction before it in the same straight-line code"
						  : "the instructions before it are shorter than a jump or move control flow";
			}
			out.push_back(std::move(r));
		}
		prev_insn p{ pc, in.length, movable(in), nr_of(code, in.length) };
		if (n == 4) {
			std::move(ring + 1, ring + 4, ring);
			n = 3;
		}
		ring[n++] = p;
		pc += in.length;
	}
}

// Decoding is most of a scan's time: only the functions (from one symbol
// to the next) that hold the bytes 0f 05 somewhere are swept; a branch
// into a site's bytes comes from its own function. Without symbols, the
// whole section.
void sweep_around_syscalls(uint64_t start, uint64_t end, const std::vector<uint64_t> &fn_starts,
			   std::vector<sys_rec> &out, std::vector<uint64_t> &targets)
{
	const auto *base = reinterpret_cast<const uint8_t *>(start);
	uint64_t done = start;
	for (uint64_t off = 0; start + off + 1 < end;) {
		const void *hit = memmem(base + off, end - start - off, "\x0f\x05", 2);
		if (!hit)
			break;
		const uint64_t at = reinterpret_cast<uint64_t>(hit);
		off = at - start + 1;
		if (at < done)
			continue;
		auto nxt = std::upper_bound(fn_starts.begin(), fn_starts.end(), at);
		uint64_t lo = nxt == fn_starts.begin() ? start : std::max(*(nxt - 1), start);
		uint64_t hi = nxt == fn_starts.end() ? end : std::min(*nxt, end);
		lo = std::max(lo, done);
		sweep(lo, hi, fn_starts, out, targets);
		done = hi;
		off = hi - start;
	}
}

std::string hex(uint64_t v)
{
	char b[24];
	snprintf(b, sizeof b, "0x%" PRIx64, v);
	return b;
}

// Rejects regions that a branch enters past their first byte, or that
// start before a function their syscall belongs to.
// The first branch target or function start in (lo, hi], as a reason, or "".
std::string entered(uint64_t lo, uint64_t hi, const std::vector<uint64_t> &targets,
		    const std::vector<uint64_t> &fn_starts)
{
	auto t = std::upper_bound(targets.begin(), targets.end(), lo);
	if (t != targets.end() && *t <= hi)
		return "a branch targets " + hex(*t) + ", inside the bytes a jump would cover";
	auto f = std::upper_bound(fn_starts.begin(), fn_starts.end(), lo);
	if (f != fn_starts.end() && *f <= hi)
		return "a function starts at " + hex(*f) + ", inside the bytes a jump would cover";
	return "";
}

// Where the instructions before a syscall cannot hold the jump, the jump
// may cover the syscall and the instructions after it (glibc's read():
// `je ...; xor eax, eax; syscall; cmp rax, -4096`), relocated into the
// trampoline by the uprobe relocator. `end` bounds the decoding.
void plan_forward(sys_rec &r, uint64_t end, const std::vector<uint64_t> &targets,
		  const std::vector<uint64_t> &fn_starts)
{
	const uint64_t after = r.address + 2;
	if (after >= end)
		return;
	auto tail = plan_region(after, reinterpret_cast<const uint8_t *>(after),
				std::min<uint64_t>(end - after, 64), 3);
	if (!tail) {
		r.reason += "; after it: " + tail.error().message;
		return;
	}
	const std::string why = entered(r.address, after + tail->length - 1, targets, fn_starts);
	if (!why.empty()) {
		r.reason += "; after it: " + why;
		return;
	}
	r.forward = true;
	r.region = r.address;
	r.region_len = 0;
	r.tail = std::move(*tail);
	// The number is the constant before it only when nothing jumps to
	// the syscall itself with another one.
	if (!std::binary_search(targets.begin(), targets.end(), r.address))
		r.nr = r.pre_nr;
	r.reason.clear();
}

// Rejects regions that a branch enters past their first byte, or that
// start before a function their syscall belongs to; tries the forward
// form for the others.
void check_regions(std::vector<sys_rec> &recs, size_t from, std::vector<uint64_t> &targets,
		   const std::vector<uint64_t> &fn_starts, uint64_t end)
{
	std::sort(targets.begin(), targets.end());
	for (size_t i = from; i < recs.size(); i++) {
		sys_rec &r = recs[i];
		if (r.region) {
			r.reason = entered(r.region, r.address, targets, fn_starts);
			if (r.reason.empty())
				continue;
			r.region = 0;
		}
		plan_forward(r, end, targets, fn_starts);
		if (!r.region && r.cover && entered(r.cover, r.address, targets, fn_starts).empty()) {
			r.covering = true;
			r.region = r.cover;
			r.region_len = r.cover_len;
			r.n_insns = 0;
			if (!std::binary_search(targets.begin(), targets.end(), r.address))
				r.nr = r.pre_nr;
			r.reason.clear();
		}
	}
}

void rip_op(emitter &e, uint8_t op, uint8_t modrm, uint64_t target)
{
	e.byte(op);
	e.byte(modrm);
	e.u32(uint32_t(target - (e.here() + 4)));
}

// A trampoline: its data (the slots its rip-relative operands read, and
// the sys_site) in the first 64 bytes, then the code (dispatch.hpp).
constexpr uint32_t data_size = 64;

// Whether the CPU has BMI2 (shrx, which leaves the flags alone).
bool has_bmi2()
{
	static const bool yes = [] {
		__builtin_cpu_init();
		return __builtin_cpu_supports("bmi2") != 0;
	}();
	return yes;
}

// A call of a routine: rel32 when it reaches (a direct call is predicted
// even after the kernel's return cleared the branch predictors' state,
// which an indirect one is not), else through the slot.
void call_routine(emitter &e, uint64_t routine, uint64_t slot)
{
	if (rel32_reaches(e.here() + 5, routine)) {
		e.byte(0xe8);
		e.u32(uint32_t(routine - (e.here() + 4)));
	} else {
		rip_op(e, 0xff, 0x15, slot); // call qword [rip+slot]
	}
}

// Builds r's trampoline in fresh trampoline memory. Its tests read
// variables of this process (g_sys_enter_on and the like): the trampolines
// are shared memory that a forked child shares with its parent, and the
// two may have different hooks, so nothing per process is written into
// them.
status build(sys_rec &r)
{
	const uint64_t site_end = r.forward ? r.tail.address + r.tail.length : r.address + 2;
	std::vector<uint64_t> reach = { r.region, site_end };
	if (r.forward)
		for (uint64_t t : reach_targets(r.tail))
			reach.push_back(t);
	auto [lo, hi] = reach_window(reach, 4096);
	if (lo > hi)
		return fail(ENOMEM, "no trampoline address reaches " + hex(r.address));
	// Closer to the routines where the window allows, for direct calls.
	reach.push_back(enter_routine());
	reach.push_back(exit_routine());
	if (auto [l2, h2] = reach_window(reach, 4096); l2 <= h2) {
		lo = l2;
		hi = h2;
	}
	const uint32_t size = data_size + (r.forward ? 256 : 192);
	auto blk = allocate_exec(size, lo, hi, r.region);
	if (!blk)
		return std::move(blk).error();
	const uint64_t base = reinterpret_cast<uint64_t>(blk->exec);
	const uint64_t slot_site = base, slot_enter = base + 8, slot_exit = base + 16,
		       site_at = base + 32;
	const uint64_t code = base + data_size;
	emitter e(code);
	e.raw(reinterpret_cast<const uint8_t *>(r.region), r.region_len);
	// No hook on this call: straight to the syscall. rcx is free before a
	// syscall too (the CPU overwrites it).
	const bool constant = r.nr >= 0 && uint64_t(r.nr) < SYS_NR_SLOTS;
	const auto test_byte = [&e](const void *on) {
		e.mov_imm64(rcx, reinterpret_cast<uint64_t>(on));
		e.byte(0x0f); // movzx ecx, byte [rcx]
		e.byte(0xb6);
		e.byte(0x09);
		e.byte(0xe3); // jrcxz
	};
	size_t skip_at, over_at = 0;
	if (constant || !has_bmi2()) {
		test_byte(constant ? static_cast<const void *>(&g_sys_enter_on[r.nr]) : &g_sys_hooks_on);
		skip_at = e.size();
		e.byte(0);
	} else {
		// The number in rax, tested against its byte where it has one
		// (dispatch.hpp); nothing here changes the flags.
		e.byte(0xb9); // mov ecx, 10
		e.u32(10);
		for (uint8_t b : { 0xc4, 0xe2, 0xf3, 0xf7, 0xc8 }) // shrx rcx, rax, rcx
			e.byte(b);
		e.byte(0xe3); // jrcxz +2: in the table
		e.byte(2);
		e.byte(0xeb); // jmp over the table's test: the routine
		over_at = e.size();
		e.byte(0);
		e.mov_imm64(rcx, reinterpret_cast<uint64_t>(&g_sys_computed_on[0]));
		for (uint8_t b : { 0x0f, 0xb6, 0x0c, 0x01 }) // movzx ecx, byte [rcx+rax]
			e.byte(b);
		e.byte(0xe3); // jrcxz
		skip_at = e.size();
		e.byte(0);
	}
	const uint8_t over = uint8_t(e.size() - (over_at + 1));
	e.lea(rsp, rsp, -128);
	rip_op(e, 0xff, 0x35, slot_site); // push qword [rip+site]
	call_routine(e, enter_routine(), slot_enter);
	const uint8_t skip_enter = uint8_t(e.size() - (skip_at + 1)); // < 20
	// The selector around the call (user_dispatch.hpp): SYS_SKIP_BYTES
	// from here to after the syscall.
	const auto fs_op = [&e](uint8_t op, uint8_t modrm, int32_t off) {
		e.byte(0x64);
		e.byte(op);
		e.byte(modrm);
		e.byte(0x25); // SIB: [disp32]
		e.u32(uint32_t(off));
	};
	fs_op(0xc6, 0x04, sud_sel_offset()); // mov byte [fs:sel], ALLOW
	e.byte(0);
	e.byte(0x0f);
	e.byte(0x05);
	fs_op(0x8a, 0x0c, sud_armed_offset()); // mov cl, [fs:armed]
	fs_op(0x88, 0x0c, sud_sel_offset());   // mov [fs:sel], cl
	// rcx is the kernel's after a syscall (the return address): free to
	// test, unlike the flags, which the syscall kept.
	test_byte(constant ? static_cast<const void *>(&g_sys_exit_on[r.nr]) : &g_sys_exits_on);
	const size_t jrcxz_at = e.size();
	e.byte(0);
	e.lea(rsp, rsp, -128);
	rip_op(e, 0xff, 0x35, slot_site);
	call_routine(e, exit_routine(), slot_exit);
	const uint64_t tail = e.here();
	const uint8_t skip_exit = uint8_t(e.size() - (jrcxz_at + 1)); // < 20
	if (r.forward) {
		std::vector<std::pair<uint32_t, uint32_t>> b;
		BPFTIME_TRY(emit_relocated(r.tail, e, b));
		for (auto [orig, at] : b)
			if (orig + 2 < 5)
				r.moves.emplace_back(orig + 2, at);
		r.move_to = tail;
	} else {
		e.jmp(site_end);
		for (int j = 1; j < r.n_insns; j++)
			if (r.starts[j] < 5)
				r.moves.emplace_back(r.starts[j], r.starts[j]);
		r.move_to = code;
	}
	if (!e.ok() || data_size + e.size() > size)
		return fail(EINVAL, "trampoline of " + hex(r.address) + " out of reach or too large");
	std::vector<uint8_t> bytes(size, 0xcc);
	sys_site s{ .address = r.address, .nr = r.nr };
	const uint64_t slots[3] = { site_at, enter_routine(), exit_routine() };
	memcpy(bytes.data(), slots, sizeof slots);
	memcpy(bytes.data() + (site_at - base), &s, sizeof s);
	memcpy(bytes.data() + data_size, e.bytes().data(), e.size());
	bytes[data_size + jrcxz_at] = skip_exit;
	bytes[data_size + skip_at] = skip_enter;
	if (over_at)
		bytes[data_size + over_at] = over;
	memcpy(blk->write, bytes.data(), size);
	r.tramp = code;
	r.site = reinterpret_cast<sys_site *>(site_at);
	return {};
}

// A thread whose signal mask, as /proc shows it, blocks SIGTRAP (a worker
// that blocks every signal and waits in sigwait, say), or 0. Such a thread
// does not answer the round trip of thread_blocking_sigtrap(), which only
// sees threads interrupted while they block it.
int thread_masking_sigtrap()
{
	DIR *d = opendir("/proc/self/task");
	if (!d)
		return 0;
	int found = 0;
	while (dirent *e = readdir(d)) {
		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		char path[300], line[256];
		snprintf(path, sizeof path, "/proc/self/task/%s/status", e->d_name);
		FILE *f = fopen(path, "re");
		if (!f)
			continue;
		while (fgets(line, sizeof line, f)) {
			if (strncmp(line, "SigBlk:", 7) != 0)
				continue;
			const uint64_t mask = strtoull(line + 7, nullptr, 16);
			if (mask & (1ULL << (SIGTRAP - 1)))
				found = atoi(e->d_name);
			break;
		}
		fclose(f);
		if (found)
			break;
	}
	closedir(d);
	return found;
}

// Writes the jump over a site in one locked 16-byte compare-and-exchange,
// where its 5 bytes lie in one aligned 16-byte block: a thread fetching
// them sees the old instruction or the whole jump. false otherwise.
bool write_at_once(const sys_rec &r)
{
	const uint64_t block = r.region & ~uint64_t(15);
	const uint32_t off = uint32_t(r.region - block);
	if (off > 11)
		return false;
	uint8_t jmp[5] = { 0xe9 };
	const uint32_t rel = uint32_t(r.tramp - (r.region + 5));
	memcpy(jmp + 1, &rel, 4);
	auto *p = reinterpret_cast<unsigned __int128 *>(block);
	for (;;) {
		unsigned __int128 cur;
		memcpy(&cur, reinterpret_cast<const void *>(block), 16);
		unsigned __int128 want = cur;
		memcpy(reinterpret_cast<uint8_t *>(&want) + off, jmp, 5);
		uint64_t lo = uint64_t(cur), hi = uint64_t(cur >> 64);
		bool ok;
		asm volatile("lock cmpxchg16b %1\n\tsete %0"
			     : "=q"(ok), "+m"(*p), "+a"(lo), "+d"(hi)
			     : "b"(uint64_t(want)), "c"(uint64_t(want >> 64))
			     : "cc", "memory");
		if (ok)
			return true;
	}
}

// Patches the sites [from, to) of one module. A site whose jump replaces
// one whole instruction in one aligned 16-byte block is written at once.
// The others follow text_poke_bp()'s order, as code_patch.hpp describes,
// for all of them together: int3 on each first byte, serialise, move
// threads out of the bytes the jump covers, the jumps' last four bytes,
// serialise, their first byte, serialise. A thread that reaches such an
// int3 while it blocks SIGTRAP would die, so the rt_sigreturn site (the
// return of every signal handler, which runs with the handler's mask) is
// only ever written at once.
status patch(std::vector<sys_rec> &recs, size_t from, size_t to)
{
	uint64_t lo = UINT64_MAX, hi = 0;
	std::vector<sys_rec *> todo;
	for (size_t i = from; i < to; i++)
		if (recs[i].tramp) {
			todo.push_back(&recs[i]);
			lo = std::min(lo, recs[i].region);
			hi = std::max(hi, recs[i].region + 5);
		}
	if (todo.empty())
		return {};
	// A thread that blocks SIGTRAP could die on the int3 of a site written
	// in steps: those sites are then left, the others written at once.
	const bool int3_ok = ensure_sigtrap_handler().ok();
	int blocker = int3_ok ? thread_masking_sigtrap() : 0;
	if (int3_ok && !blocker)
		blocker = thread_blocking_sigtrap();
	auto w = code_writer::open(lo, hi - lo);
	if (!w)
		return std::move(w).error();
	std::vector<sys_rec *> staged;
	for (sys_rec *r : todo) {
		memcpy(r->original, reinterpret_cast<const void *>(r->region), 5);
		if (r->covering) {
			if (write_at_once(*r)) {
				r->rewritten = true;
			} else {
				r->tramp = 0;
				r->reason = "the jump over the instructions before the syscall and the syscall "
					    "crosses a 16-byte block: it cannot be written at once";
			}
			continue;
		}
		if (r->moves.empty() && !r->forward && write_at_once(*r)) {
			r->rewritten = true;
			continue;
		}
		if (r->nr == 15 /* rt_sigreturn */) {
			r->tramp = 0;
			r->reason = "the rt_sigreturn site's jump cannot be written at once, and an int3 there "
				    "would kill a thread returning from a handler that blocks SIGTRAP";
			continue;
		}
		if (!int3_ok || blocker) {
			r->tramp = 0;
			r->reason = !int3_ok ? "its jump is written through an int3, and the program "
					       "replaced the SIGTRAP handler"
					     : "its jump is written through an int3, and thread " +
						       std::to_string(blocker) + " blocks SIGTRAP";
			continue;
		}
		BPFTIME_TRY(breakpoint_publish(r->region, r->tramp));
		staged.push_back(r);
	}
	sync_cores();
	todo = std::move(staged);
	const uint8_t int3 = 0xcc;
	for (sys_rec *r : todo)
		w->write(r->region, &int3, 1);
	sync_cores();
	for (sys_rec *r : todo) {
		if (r->moves.empty())
			continue;
		if (!move_threads_out(r->region, r->region + 5, r->move_to, r->moves)) {
			w->write(r->region, r->original, 1);
			r->tramp = 0;
			r->reason = "a thread did not answer the signal that moves threads out of the bytes a jump covers";
		}
	}
	for (sys_rec *r : todo) {
		if (!r->tramp)
			continue;
		const uint32_t rel = uint32_t(r->tramp - (r->region + 5));
		w->write(r->region + 1, reinterpret_cast<const uint8_t *>(&rel), 4);
	}
	sync_cores();
	const uint8_t jmp = 0xe9;
	for (sys_rec *r : todo)
		if (r->tramp)
			w->write(r->region, &jmp, 1);
	sync_cores();
	for (sys_rec *r : todo) {
		breakpoint_retire(r->region);
		if (r->tramp)
			r->rewritten = true;
	}
	return {};
}

// Whether a mapping is a module we rewrite: a file's executable code. Not
// the vDSO (no path), nor our trampolines (a memfd), nor deleted files.
bool is_module(const mapping &m)
{
	return m.exec && !m.path.empty() && m.path[0] == '/' &&
	       m.path.compare(0, 7, "/memfd:") != 0 &&
	       m.path.find(" (deleted)") == std::string::npos;
}

// Scans and rewrites every module mapping not seen yet.
status scan_new_modules()
{
	const auto t0 = std::chrono::steady_clock::now();
	auto maps = read_maps();
	if (!maps)
		return std::move(maps).error();
	sys_globals &s = sg();
	status result_status;
	for (const mapping &m : *maps) {
		if (!is_module(m))
			continue;
		auto key = std::make_tuple(m.device, m.inode, m.start, m.end);
		if (s.scanned.count(key))
			continue;
		s.scanned.insert(key);
		auto elf = load_elf(m.path);
		if (!elf) {
			log(attach_log, log_level::debug, "syscall sites: %s: %s", m.path.c_str(),
			    elf.error().message.c_str());
			continue;
		}
		auto vaddr = (*elf)->vaddr_of_offset(m.offset);
		if (!vaddr)
			continue;
		const uint64_t bias = m.start - *vaddr;
		std::vector<uint64_t> fn_starts;
		for (const elf_symbol &f : (*elf)->functions)
			fn_starts.push_back(f.value + bias);
		std::sort(fn_starts.begin(), fn_starts.end());
		fn_starts.erase(std::unique(fn_starts.begin(), fn_starts.end()), fn_starts.end());
		std::vector<uint64_t> targets;
		const auto m0 = std::chrono::steady_clock::now();
		const size_t from = s.sites.size();
		for (const elf_section &c : (*elf)->code) {
			const uint64_t a = std::max(c.vaddr + bias, m.start);
			const uint64_t b = std::min(c.vaddr + bias + c.size, m.end);
			if (a < b)
				sweep_around_syscalls(a, b, fn_starts, s.sites, targets);
		}
		size_t kept = from;
		for (size_t i = from; i < s.sites.size(); i++)
			if (!in_sud_range(s.sites[i].address) &&
			    s.known.insert(s.sites[i].address).second) {
				if (kept != i)
					s.sites[kept] = std::move(s.sites[i]);
				kept++;
			}
		s.sites.resize(kept);
		check_regions(s.sites, from, targets, fn_starts, m.end);
		for (size_t i = from; i < s.sites.size(); i++) {
			sys_rec &r = s.sites[i];
			r.module = m.path;
			if (!r.region)
				continue;
			if (auto st = build(r); !st) {
				r.reason = st.error().message;
				r.region = 0;
			}
		}
		if (auto st = patch(s.sites, from, s.sites.size()); !st) {
			for (size_t i = from; i < s.sites.size(); i++)
				if (!s.sites[i].rewritten) {
					s.sites[i].reason = st.error().message;
					s.sites[i].tramp = 0;
				}
			result_status = std::move(st);
		}
		s.stats.modules++;
		uint32_t ok = 0, no = 0;
		for (size_t i = from; i < s.sites.size(); i++)
			(s.sites[i].rewritten ? ok : no)++;
		for (size_t i = from; i < s.sites.size(); i++)
			if (!s.sites[i].rewritten)
				log(attach_log, log_level::debug,
				    "syscall site 0x%" PRIx64 " (%s, ELF address 0x%" PRIx64 ") left as it was: %s",
				    s.sites[i].address, m.path.c_str(), s.sites[i].address - bias,
				    s.sites[i].reason.c_str());
		s.stats.rewritten += ok;
		s.stats.not_rewritten += no;
		log(attach_log, log_level::debug,
		    "syscall sites: %s: %u rewritten, %u left as they were, in %.2f ms", m.path.c_str(),
		    ok, no,
		    std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - m0)
			    .count());
	}
	s.stats.scan_ms =
		std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
	return result_status;
}

void publish();

// Turns the syscall user dispatch fallback on once some site is left as it
// was (user_dispatch.hpp), and republishes for its filter.
void cover_left_sites()
{
	sys_globals &s = sg();
	if (!s.stats.not_rewritten || g_sud_on.load() || s.sud_failed)
		return;
	uint32_t missed = 0;
	if (auto st = sud_enable(&missed); !st) {
		s.sud_failed = true;
		log(attach_log, log_level::warn,
		    "syscall sites: %u left as they were and not reported: %s", s.stats.not_rewritten,
		    st.error().message.c_str());
		return;
	}
	s.stats.user_dispatch = true;
	s.stats.user_dispatch_threads_missed = missed;
	if (missed)
		log(attach_log, log_level::warn,
		    "syscall user dispatch: %u threads did not answer the signal that turns it on: "
		    "their calls at the sites left as they were are not reported",
		    missed);
	publish();
}

void rescan_after_dlopen()
{
	if (sg().rewritten_once) {
		(void)scan_new_modules();
		cover_left_sites();
	}
}

// Publishes the handlers as the new snapshot, then the trampolines' tests:
// a number's byte is set once its hooks are in the snapshot, and cleared
// after, so a trampoline that sees it set finds them.
void publish()
{
	sys_globals &s = sg();
	auto *sn = new sys_snapshot();
	size_t at_enter[SYS_NR_SLOTS + 1], at_exit[SYS_NR_SLOTS + 1];
	bool any_enter = false, any_exit = false;
	for (uint32_t nr = 0; nr <= SYS_NR_SLOTS; nr++) {
		for (int pass = 0; pass < 2; pass++) {
			(pass ? at_exit : at_enter)[nr] = sn->pool.size();
			for (auto &[id, h] : s.handlers)
				if (bool(h->exit) == bool(pass) &&
				    (h->nr == ALL_SYSCALLS ||
				     (nr < SYS_NR_SLOTS && uint32_t(h->nr) == nr)))
					sn->pool.push_back(h);
			sn->pool.push_back(nullptr);
		}
	}
	for (uint32_t nr = 0; nr <= SYS_NR_SLOTS; nr++) {
		sn->enter[nr] = sn->pool.data() + at_enter[nr];
		sn->exit[nr] = sn->pool.data() + at_exit[nr];
	}
	g_sys_snapshot.store(sn, std::memory_order_release);
	// The fallback's filter and its hook on the children of clone and
	// fork run in the dispatchers without a hook of the program's.
	const bool sud = g_sud_on.load();
	const auto in = [](uint32_t nr, const auto &list) {
		for (int x : list)
			if (uint32_t(x) == nr)
				return true;
		return false;
	};
	for (uint32_t nr = 0; nr < SYS_NR_SLOTS; nr++) {
		const bool en = *sn->enter[nr] != nullptr || (sud && in(nr, SUD_FILTERED)),
			   ex = *sn->exit[nr] != nullptr || (sud && in(nr, SUD_CHILDREN));
		g_sys_enter_on[nr].store(en, std::memory_order_release);
		g_sys_exit_on[nr].store(ex, std::memory_order_release);
		any_enter |= en;
		any_exit |= ex;
	}
	any_enter |= *sn->enter[SYS_NR_SLOTS] != nullptr;
	any_exit |= *sn->exit[SYS_NR_SLOTS] != nullptr;
	for (uint32_t nr = 0; nr < SYS_NR_SLOTS; nr++)
		g_sys_computed_on[nr].store(g_sys_enter_on[nr].load() || any_exit,
					    std::memory_order_release);
	g_sys_hooks_on.store(any_enter || any_exit || sud, std::memory_order_release);
	g_sys_exits_on.store(any_exit, std::memory_order_release);
}

} // namespace
} // namespace bpftime::attach::detail

namespace bpftime::attach {

using namespace detail;

struct syscall_hooks::state {
	std::vector<uint64_t> ids;
};

syscall_hooks::syscall_hooks() : state_(std::make_unique<state>())
{
}

syscall_hooks::~syscall_hooks()
{
	std::vector<uint64_t> ids = state_->ids;
	for (uint64_t id : ids)
		(void)detach(id);
}

namespace {

result<uint64_t> add(std::vector<uint64_t> &mine, int32_t nr, syscall_enter_callback ecb,
		     syscall_exit_callback xcb, void *user)
{
	if (!ecb && !xcb)
		return fail(EINVAL, "syscall hook: null callback");
	if (nr < ALL_SYSCALLS || nr > 1023)
		return fail(EINVAL, "syscall hook: system call number " + std::to_string(nr) +
					    " out of range [-1, 1023]");
	in_attach guard;
	std::lock_guard<std::recursive_mutex> lock(g().mu);
	sys_globals &s = sg();
	if (!s.rewritten_once) {
		s.rewritten_once = true;
		ensure_dlopen_watch();
		g().after_dlopen = rescan_after_dlopen;
		if (auto st = scan_new_modules(); !st)
			log(attach_log, log_level::warn, "syscall sites: %s", st.error().message.c_str());
		cover_left_sites();
	}
	auto *h = new sys_handler{ .id = ++s.next_id, .nr = nr, .enter = ecb, .exit = xcb, .user = user };
	s.handlers.emplace(h->id, h);
	mine.push_back(h->id);
	publish();
	return h->id;
}

} // namespace

result<uint64_t> syscall_hooks::attach_enter(int32_t nr, syscall_enter_callback cb, void *user)
{
	if (!cb)
		return fail(EINVAL, "syscall hook: null callback");
	return add(state_->ids, nr, cb, nullptr, user);
}

result<uint64_t> syscall_hooks::attach_exit(int32_t nr, syscall_exit_callback cb, void *user)
{
	if (!cb)
		return fail(EINVAL, "syscall hook: null callback");
	return add(state_->ids, nr, nullptr, cb, user);
}

status syscall_hooks::detach(uint64_t id)
{
	auto it = std::find(state_->ids.begin(), state_->ids.end(), id);
	if (it == state_->ids.end())
		return fail(ENOENT, "syscall hook " + std::to_string(id) + ": no such hook");
	state_->ids.erase(it);
	std::lock_guard<std::recursive_mutex> lock(g().mu);
	// The handler itself stays allocated: a thread may be running it.
	sg().handlers.erase(id);
	publish();
	return {};
}

status syscall_hooks::rescan()
{
	in_attach guard;
	std::lock_guard<std::recursive_mutex> lock(g().mu);
	if (!sg().rewritten_once)
		return {};
	status st = scan_new_modules();
	cover_left_sites();
	return st;
}

std::vector<syscall_site_info> syscall_hooks::sites()
{
	std::lock_guard<std::recursive_mutex> lock(g().mu);
	std::vector<syscall_site_info> out;
	for (const sys_rec &r : sg().sites)
		out.push_back({ r.address, r.module, r.rewritten, r.nr, r.reason,
				!r.rewritten && g_sud_on.load() });
	return out;
}

syscall_stats syscall_hooks::stats()
{
	std::lock_guard<std::recursive_mutex> lock(g().mu);
	return sg().stats;
}

} // namespace bpftime::attach
