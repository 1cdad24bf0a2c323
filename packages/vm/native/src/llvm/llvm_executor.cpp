// llvm_executor.cpp: the `llvm` backend as the core sees it: finding and
// dlopen()ing the plugin (llvm_abi.h), the executor over code the plugin
// JIT-compiled, the runtime functions that generated code calls, and the
// loader of ahead-of-time objects (aot_loader.cpp), which needs no LLVM.
//
// Runs: each run of generated code gets an llvm_run on the C stack of the
// thread that runs it, chained through `parent` (innermost in t_top) like
// the interpreter's activations, so that a callback may touch its callers'
// frames and context in bounds-check mode and a failing callback fails the
// run whose helper called it (it sets that run's state; generated code
// reads the state after every call).
#include "llvm_backend.hpp"

#include "../fault.hpp"
#include "../tail_call.hpp"

#include <dlfcn.h>
#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

namespace bpftime::vm::detail {
namespace {

thread_local llvm_run *t_top = nullptr;

bool in_range(uint64_t lo, uint64_t len, uint64_t addr, uint64_t size)
{
	const uint64_t rel = addr - lo;
	return rel < len && size <= len - rel;
}

void fail_run(llvm_run &r, bpftime::error e) noexcept
{
	if (r.state == 0 || !r.err) {
		r.state = 2;
		r.err = std::move(e);
	}
}

// ---------------------------------------------------------- runtime

uint64_t rt_tail_call(void *run, uint64_t r1, uint64_t r2, uint64_t r3) noexcept
{
	llvm_run &r = *static_cast<llvm_run *>(run);
	uint64_t r0 = 0;
	std::optional<result<uint64_t>> out =
		run_tail_call(r.ex->prog(), reinterpret_cast<void *>(r1), r.ctx_len, r2, r3, r0);
	if (!out)
		return r0;
	if (*out) {
		r.state = 1;
		r.r0 = **out;
	} else {
		fail_run(r, std::move(*out).error());
	}
	return 0;
}

int rt_check(void *run, uint64_t addr, uint64_t size, uint64_t pc_store) noexcept
{
	llvm_run &r = *static_cast<llvm_run *>(run);
	const bool store = pc_store & 1;
	for (const llvm_run *x = &r; x; x = x->parent)
		if (in_range(x->stack_lo, llvm_stack_size, addr, size) ||
		    in_range(x->ctx_lo, x->ctx_len, addr, size))
			return 1;
	for (const memory_region &m : r.ex->prog().regions)
		if (in_range(m.start, m.size, addr, size) && (!store || m.writable))
			return 1;
	char buf[256];
	std::snprintf(buf, sizeof buf,
		      "%u: out of bounds memory %s of %" PRIu64 " bytes at 0x%" PRIx64
		      " (stack 0x%" PRIx64 "+%" PRIu64 ", ctx 0x%" PRIx64 "+%" PRIu64
		      ", %zu regions)",
		      uint32_t(pc_store >> 1), store ? "store" : "load", size, addr, r.stack_lo,
		      llvm_stack_size, r.ctx_lo, r.ctx_len, r.ex->prog().regions.size());
	fail_run(r, bpftime::error{ EFAULT, buf });
	return 0;
}

uint64_t rt_callx(void *run, uint64_t id, uint64_t pc, uint64_t r1, uint64_t r2,
		  uint64_t r3, uint64_t r4, uint64_t r5) noexcept
{
	llvm_run &r = *static_cast<llvm_run *>(run);
	const program &p = r.ex->prog();
	const bool known = id < p.helpers.size() && p.helpers[id].fn;
	if (id == BPF_FUNC_tail_call && (p.tail_call || known))
		return rt_tail_call(run, r1, r2, r3);
	if (!known) {
		fail_run(r, bpftime::error{ EINVAL, std::to_string(pc) +
							    ": callx to unregistered helper id " +
							    std::to_string(id) });
		return 0;
	}
	return p.helpers[id].fn(r1, r2, r3, r4, r5);
}

void rt_too_deep(void *run, uint64_t pc, uint64_t frames) noexcept
{
	fail_run(*static_cast<llvm_run *>(run),
		 bpftime::error{ ELOOP, std::to_string(pc) +
						": local calls nested too deep, frames " +
						std::to_string(frames) });
}

// ---------------------------------------------------------- the plugin

struct plugin {
	void *handle = nullptr;
	bpftime_llvm_jit_fn jit = nullptr;
	bpftime_llvm_release_fn release = nullptr;
	bpftime_llvm_aot_fn aot = nullptr;
	std::string path;
};

// The folder of the module this core is linked into (the vm addon's shared
// core, the agent, a test executable).
std::string own_dir()
{
	Dl_info info{};
	if (!dladdr(reinterpret_cast<void *>(&own_dir), &info) || !info.dli_fname)
		return ".";
	std::string p = info.dli_fname;
	const size_t slash = p.rfind('/');
	return slash == std::string::npos ? "." : p.substr(0, slash);
}

#ifndef BPFTIME_BUILD_TYPE_DIR
#define BPFTIME_BUILD_TYPE_DIR "Release"
#endif

result<const plugin *> load_plugin_once()
{
	static std::mutex mu;
	static std::optional<result<const plugin *>> cached;
	static plugin p;
	std::lock_guard g(mu);
	if (cached)
		return *cached;
	std::vector<std::string> tried;
	const char *env = getenv("BPFTIME_VM_LLVM_LIB");
	if (env && *env) {
		tried.push_back(env);
	} else {
		const std::string dir = own_dir();
		tried.push_back(dir + "/libbpftime_vm_llvm.so");
		// packages/<pkg>/build/<type>/ -> packages/vm/build/<type>/ (the
		// workspace and node_modules/@bpftime alike).
		tried.push_back(dir + "/../../../vm/build/" BPFTIME_BUILD_TYPE_DIR
				      "/libbpftime_vm_llvm.so");
	}
	std::string why;
	for (const std::string &path : tried) {
		void *h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
		if (!h) {
			const char *e = dlerror();
			why += std::string(" ") + (e ? e : path + ": cannot load") + ";";
			continue;
		}
		auto ver = reinterpret_cast<bpftime_llvm_abi_version_fn>(
			dlsym(h, BPFTIME_LLVM_SYM_ABI_VERSION));
		p.jit = reinterpret_cast<bpftime_llvm_jit_fn>(dlsym(h, BPFTIME_LLVM_SYM_JIT));
		p.release = reinterpret_cast<bpftime_llvm_release_fn>(
			dlsym(h, BPFTIME_LLVM_SYM_RELEASE));
		p.aot = reinterpret_cast<bpftime_llvm_aot_fn>(dlsym(h, BPFTIME_LLVM_SYM_AOT));
		if (!ver || ver() != BPFTIME_LLVM_ABI_VERSION || !p.jit || !p.release || !p.aot) {
			why += " " + path + ": not a bpftime LLVM plugin of ABI version " +
			       std::to_string(BPFTIME_LLVM_ABI_VERSION) + ";";
			dlclose(h);
			continue;
		}
		p.handle = h;
		p.path = path;
		cached = &p;
		return *cached;
	}
	cached = fail(ENOTSUP,
		      "vm backend 'llvm': the LLVM backend is not available (built where "
		      "llvm-19-dev is installed; BPFTIME_VM_LLVM_LIB names the library); tried:" +
			      why);
	return *cached;
}

} // namespace

const program &llvm_executor::prog() const noexcept
{
	return prog_;
}

const uint64_t *llvm_runtime_table() noexcept
{
	static const uint64_t table[BPFTIME_LLVM_RT_COUNT] = {
		reinterpret_cast<uint64_t>(&rt_tail_call),
		reinterpret_cast<uint64_t>(&rt_check),
		reinterpret_cast<uint64_t>(&rt_callx),
		reinterpret_cast<uint64_t>(&rt_too_deep),
	};
	return table;
}

result<const llvm_plugin_fns *> llvm_plugin() noexcept
{
	try {
		auto p = load_plugin_once();
		if (!p)
			return std::move(p).error();
		static llvm_plugin_fns fns;
		fns.jit = (*p)->jit;
		fns.release = (*p)->release;
		fns.aot = (*p)->aot;
		fns.path = (*p)->path.c_str();
		return &fns;
	} catch (const std::exception &e) {
		return fail(ENOMEM, std::string("vm backend 'llvm': ") + e.what());
	}
}

llvm_executor::llvm_executor(const program &p)
	: starts_(llvm_function_starts(p)), prog_(p)
{
}

llvm_executor::~llvm_executor()
{
	if (code_lo_)
		unregister_code(code_lo_);
	if (release_)
		release_(jit_handle_);
	if (map_)
		munmap(map_, map_len_);
}

uint64_t llvm_executor::fn_for(uint32_t pc) const noexcept
{
	const auto &s = starts_;
	auto it = std::lower_bound(s.begin(), s.end(), pc);
	if (it == s.end() || *it != pc)
		return 0;
	return fn_addrs_[size_t(it - s.begin())];
}

result<uint64_t> llvm_executor::enter(uint64_t fn, const uint64_t in[5], uint64_t ctx,
				      uint64_t ctx_len, bool callback) const noexcept
{
	llvm_run run;
	run.ex = this;
	run.parent = t_top;
	run.ctx_lo = ctx;
	run.ctx_len = ctx_len;
	run.callback_depth = run.parent ? run.parent->callback_depth + (callback ? 1 : 0) : 0;
	if (run.callback_depth > MAX_CALL_FRAMES) {
		char buf[96];
		std::snprintf(buf, sizeof buf, "callbacks nested too deep, depth %d",
			      run.callback_depth);
		return fail(ELOOP, buf);
	}
	// Bounds-check mode: the frames the checks accept (llvm_abi.h).
	alignas(16) uint8_t stack[llvm_stack_size];
	run.stack_lo = reinterpret_cast<uint64_t>(stack);
	run.fp = run.stack_lo + llvm_stack_size;
	t_top = &run;
	using fn_t = uint64_t (*)(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, void *);
	const uint64_t r0 = reinterpret_cast<fn_t>(fn)(in[0], in[1], in[2], in[3], in[4], &run);
	t_top = run.parent;
	if (run.state == 0) [[likely]]
		return r0;
	if (run.state == 1)
		return run.r0;
	return std::move(*run.err);
}

result<uint64_t> llvm_executor::run(void *ctx, uint64_t ctx_len) const noexcept
{
	const uint64_t in[5] = { reinterpret_cast<uint64_t>(ctx), ctx_len, 0, 0, 0 };
	return enter(fn_addrs_[0], in, reinterpret_cast<uint64_t>(ctx), ctx_len, false);
}

uint64_t llvm_executor::call_function(uint32_t pc, const uint64_t args[5]) const noexcept
{
	const uint64_t fn = fn_for(pc);
	result<uint64_t> r = fn ? enter(fn, args, 0, 0, true) :
				  result<uint64_t>(fail(EINVAL, "callback to a pc that starts "
								"no function"));
	if (r)
		return *r;
	if (llvm_run *outer = t_top)
		fail_run(*outer, std::move(r).error());
	return 0;
}

uint64_t llvm_executor::run_plain(const void *self, void *ctx, uint64_t ctx_len, int *err) noexcept
{
	result<uint64_t> r = static_cast<const llvm_executor *>(self)->run(ctx, ctx_len);
	*err = r ? 0 : r.error().code;
	return r ? *r : 0;
}

uint64_t llvm_executor::run_guarded(const void *self, void *ctx, uint64_t ctx_len,
				    int *err) noexcept
{
	// A run that a fault ended never restored t_top.
	llvm_run *const top = t_top;
	const uint64_t r0 = guarded_run(&run_plain, self, ctx, ctx_len, err);
	t_top = top;
	return r0;
}

runner llvm_executor::make_runner() const noexcept
{
	return { &run_guarded, this };
}

void llvm_executor::set_code(uint64_t lo, uint64_t hi) noexcept
{
	if (lo && hi > lo) {
		code_lo_ = lo;
		register_code(lo, hi, true);
	}
}

// Where the functions of `p` start: program::function_starts (which the
// verifier found), and every local call's target, for programs built
// without it (the interpreter and the JIT need no function boundaries).
std::vector<uint32_t> llvm_function_starts(const program &p)
{
	std::vector<uint32_t> s = p.function_starts;
	s.push_back(0);
	for (size_t pc = 0; pc < p.insns.size(); pc++) {
		const insn &i = p.insns[pc];
		if (i.code == (BPF_LD | BPF_IMM | BPF_DW)) {
			pc++;
			continue;
		}
		if (i.code == (BPF_JMP | BPF_CALL) && i.src_reg == BPF_PSEUDO_CALL) {
			const int64_t t = int64_t(pc) + 1 + i.imm;
			if (t >= 0 && t < int64_t(p.insns.size()))
				s.push_back(uint32_t(t));
		}
	}
	std::sort(s.begin(), s.end());
	s.erase(std::unique(s.begin(), s.end()), s.end());
	return s;
}

// Fills a request with what every compile of `p` shares; `starts` from
// llvm_function_starts().
static void base_request(const program &p, const std::vector<uint32_t> &starts,
			 bpftime_llvm_request &req, std::vector<uint64_t> &helper_addrs,
			 std::vector<uint32_t> &kfunc_ids, std::vector<uint64_t> &kfunc_addrs)
{
	req = {};
	req.size = sizeof req;
	req.flags = p.options.bounds_check ? BPFTIME_LLVM_BOUNDS_CHECK : 0;
	req.insns = p.insns.data();
	req.insn_count = static_cast<uint32_t>(p.insns.size());
	req.function_count = static_cast<uint32_t>(starts.size());
	req.function_starts = starts.data();
	helper_addrs.assign(p.helpers.size(), 0);
	for (size_t id = 0; id < p.helpers.size(); id++)
		helper_addrs[id] = reinterpret_cast<uint64_t>(p.helpers[id].fn);
	req.helper_addrs = helper_addrs.data();
	req.helper_count = static_cast<uint32_t>(helper_addrs.size());
	for (const auto &[id, e] : p.kfuncs) {
		kfunc_ids.push_back(id);
		kfunc_addrs.push_back(reinterpret_cast<uint64_t>(e.fn));
	}
	req.kfunc_count = static_cast<uint32_t>(kfunc_ids.size());
	req.kfunc_ids = kfunc_ids.data();
	req.kfunc_addrs = kfunc_addrs.data();
	req.runtime_addrs = llvm_runtime_table();
	req.opt_level = 3;
}

static uint32_t opt_level_from_env()
{
	const char *o = getenv("BPFTIME_LLVM_OPT");
	if (o && o[0] >= '0' && o[0] <= '3' && o[1] == 0)
		return uint32_t(o[0] - '0');
	return 3;
}

result<std::unique_ptr<executor>> make_llvm(const program &prog)
{
	auto pl = llvm_plugin();
	if (!pl)
		return std::move(pl).error();
	const auto t0 = std::chrono::steady_clock::now();
	bpftime_llvm_request req;
	std::vector<uint64_t> helper_addrs, kfunc_addrs;
	std::vector<uint32_t> kfunc_ids;
	auto ex = std::unique_ptr<llvm_executor>(new llvm_executor(prog));
	base_request(prog, ex->starts_, req, helper_addrs, kfunc_ids, kfunc_addrs);
	req.opt_level = opt_level_from_env();
	ex->fn_addrs_.assign(ex->starts_.size(), 0);
	bpftime_llvm_jit_result out{};
	out.size = sizeof out;
	out.fn_addrs = ex->fn_addrs_.data();
	char err[512] = "";
	if (int rc = (*pl)->jit(&req, &out, err, sizeof err); rc != 0)
		return fail(-rc, err);
	ex->jit_handle_ = out.handle;
	ex->release_ = (*pl)->release;
	ex->set_code(out.code_lo, out.code_hi);
	ex->compile_ns_ = static_cast<uint64_t>(
		std::chrono::duration_cast<std::chrono::nanoseconds>(
			std::chrono::steady_clock::now() - t0)
			.count());
	return std::unique_ptr<executor>(std::move(ex));
}

result<std::vector<uint8_t>> compile_llvm_aot(const program &prog,
					      std::span<const insn> original,
					      const char *cpu)
{
	auto pl = llvm_plugin();
	if (!pl)
		return std::move(pl).error();
	bpftime_llvm_request req;
	std::vector<uint64_t> helper_addrs, kfunc_addrs;
	std::vector<uint32_t> kfunc_ids;
	const std::vector<uint32_t> starts = llvm_function_starts(prog);
	base_request(prog, starts, req, helper_addrs, kfunc_ids, kfunc_addrs);
	req.flags |= BPFTIME_LLVM_AOT;
	req.insns = original.data();
	req.opt_level = opt_level_from_env();
	req.cpu = cpu;
	void *obj = nullptr;
	size_t len = 0;
	char err[512] = "";
	if (int rc = (*pl)->aot(&req, &obj, &len, err, sizeof err); rc != 0)
		return fail(-rc, err);
	std::vector<uint8_t> out(static_cast<uint8_t *>(obj), static_cast<uint8_t *>(obj) + len);
	std::free(obj);
	return out;
}

} // namespace bpftime::vm::detail
