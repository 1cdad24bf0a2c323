// probe_site.cpp: the per-hit dispatch and the per-thread shadow stack of
// return addresses. See probe_site.hpp.
#include "probe_site.hpp"

#include "log.hpp"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

namespace bpftime::attach::detail {
namespace {

struct ret_frame {
	uint64_t ret; // the real return address
	uint64_t sp;  // where it was on the stack (rsp at function entry)
	site *s;
};

// How far apart two frames of one stack may be: more than any frame
// longjmp skips in practice, less than the distance between a thread's
// stack and a separately allocated signal or coroutine stack.
constexpr uint64_t same_stack_span = 1ull << 20;

struct shadow_stack {
	uint32_t depth;
	ret_frame frames[shadow_stack_depth];
};

// One per thread, mapped on the thread's first uretprobe hit. Only the
// pointer is TLS, in the initial-exec model: a dynamic TLS block (the
// default model in a dlopen'ed library, the agent injected into a running
// process) is allocated by __tls_get_addr with malloc on first access,
// which recurses forever when malloc itself has a uretprobe. mmap does not
// call malloc.
__attribute__((tls_model("initial-exec"))) thread_local shadow_stack *tls_shadow = nullptr;

pthread_key_t g_exit_key;
pthread_once_t g_exit_once = PTHREAD_ONCE_INIT;

// At thread exit (pthread key destructor, on the exiting thread).
void free_stack(void *p) noexcept
{
	tls_shadow = nullptr;
	munmap(p, sizeof(shadow_stack));
}

void make_exit_key() noexcept
{
	(void)pthread_key_create(&g_exit_key, free_stack);
}

// Maps the calling thread's shadow stack, on its first uretprobe hit.
[[gnu::noinline, gnu::cold]] shadow_stack *new_thread_stack() noexcept
{
	void *p = mmap(nullptr, sizeof(shadow_stack), PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return nullptr;
	auto *st = static_cast<shadow_stack *>(p);
	tls_shadow = st;
	// Keys below PTHREAD_KEY_2NDLEVEL_SIZE are stored without allocation.
	pthread_once(&g_exit_once, make_exit_key);
	(void)pthread_setspecific(g_exit_key, st);
	return st;
}

void count_missed(site *s) noexcept
{
	const snapshot *sn = s->current.load(std::memory_order_acquire);
	for (handler *h : sn->handlers)
		if (h->kind == probe_kind::uretprobe)
			h->missed.fetch_add(1, std::memory_order_relaxed);
}

[[noreturn]] void lost_return(uint64_t sp) noexcept
{
	// The stack no longer matches what the entry probes saw (a coroutine
	// library switched stacks, or the stack was copied): there is no
	// address to return to. The kernel kills the task in this case too
	// (uprobes' handle_trampoline sends SIGILL).
	log(attach_log, log_level::critical,
	    "uretprobe: no saved return address for the frame at 0x%lx; aborting",
	    (unsigned long)sp);
	abort();
}

// The entry and override handlers of the snapshot, in attach order. True
// when an override chose to skip the function (regs->ax holds its value).
[[gnu::noinline]] bool run_entry_handlers(pt_regs *regs,
					  const snapshot *sn) noexcept
{
	bool skip = false;
	for (handler *h : sn->handlers) {
		switch (h->kind) {
		case probe_kind::uprobe:
			h->cb(regs, h->user);
			break;
		case probe_kind::override: {
			if (skip)
				break;
			uint64_t ret = 0;
			if (h->ocb(regs, h->user, &ret)) {
				skip = true;
				regs->ax = ret;
			}
			break;
		}
		case probe_kind::uretprobe:
			break;
		}
	}
	return skip;
}

// Frames at or below sp on the same stack were left without returning
// (longjmp, or an exception that unwound past them): their returns will
// never come. At the same sp a frame is live only when this is a tail call
// from it: the return address is then its trampoline's return point. A
// frame far below is on another stack (a signal handler's sigaltstack, a
// coroutine's) and stays.
[[gnu::noinline]] void drop_abandoned(shadow_stack &st, uint64_t sp,
				      uint64_t ret) noexcept
{
	while (st.depth > 0) {
		const ret_frame &top = st.frames[st.depth - 1];
		if (top.sp > sp || sp - top.sp >= same_stack_span ||
		    (top.sp == sp && ret == top.s->return_point))
			break;
		count_missed(top.s);
		st.depth--;
	}
}

// Saves the return address at regs->sp on the thread's shadow stack.
uint64_t push_return(const pt_regs *regs, site *s) noexcept
{
	shadow_stack *stack = tls_shadow;
	if (!stack) [[unlikely]] {
		stack = new_thread_stack();
		if (!stack) {
			count_missed(s);
			return entry_continue;
		}
	}
	shadow_stack &st = *stack;
	const uint64_t sp = regs->sp;
	const uint64_t ret = *reinterpret_cast<const uint64_t *>(sp);
	if (st.depth > 0) {
		// The usual case: the newest frame is a caller's, further up.
		const ret_frame &top = st.frames[st.depth - 1];
		if (top.sp <= sp)
			drop_abandoned(st, sp, ret);
	}
	if (st.depth == shadow_stack_depth) [[unlikely]] {
		count_missed(s);
		return entry_continue;
	}
	st.frames[st.depth++] = { ret, sp, s };
	return entry_call_through;
}

// on_entry for every snapshot but a single uprobe's. Out of line, so that
// the single uprobe's path saves no register.
[[gnu::noinline]] uint64_t entry_general(pt_regs *regs, site *s,
					 const snapshot *sn) noexcept
{
	if (sn->has_entry && run_entry_handlers(regs, sn))
		return entry_skip;
	if (!sn->has_return)
		return entry_continue;
	return push_return(regs, s);
}

} // namespace

extern "C" uint64_t bpftime_attach_on_entry(pt_regs *regs, site *s) noexcept
{
	const snapshot *sn = s->current.load(std::memory_order_acquire);
	if (const handler *h = sn->sole_uprobe) [[likely]] {
		h->cb(regs, h->user);
		return entry_continue;
	}
	return entry_general(regs, s, sn);
}

namespace {

// The thread's shadow stack with this return's frame on top: the newest
// one saved at this slot. Newer ones were abandoned (by a longjmp from a
// signal handler on another stack, say) and will never return.
[[gnu::noinline]] shadow_stack &unwind_to(uint64_t sp) noexcept
{
	if (!tls_shadow)
		lost_return(sp);
	shadow_stack &st = *tls_shadow;
	uint32_t i = st.depth;
	while (i > 0 && st.frames[i - 1].sp != sp)
		i--;
	if (i == 0)
		lost_return(sp);
	while (st.depth > i) {
		count_missed(st.frames[st.depth - 1].s);
		st.depth--;
	}
	return st;
}

[[gnu::noinline]] void run_return_handlers(pt_regs *regs,
					   const snapshot *sn) noexcept
{
	for (handler *h : sn->handlers)
		if (h->kind == probe_kind::uretprobe)
			h->cb(regs, h->user);
}

} // namespace

extern "C" uint64_t bpftime_attach_on_return(pt_regs *regs) noexcept
{
	const uint64_t sp = regs->sp;
	shadow_stack *st = tls_shadow;
	if (!st || st->depth == 0 || st->frames[st->depth - 1].sp != sp)
		[[unlikely]] st = &unwind_to(sp);
	// Copied out: a probe hit inside the handlers reuses the slot.
	const ret_frame &top = st->frames[--st->depth];
	const uint64_t ret = top.ret;
	const site *s = top.s;
	regs->ip = ret;
	regs->sp = sp + 8;
	const snapshot *sn = s->current.load(std::memory_order_acquire);
	if (const handler *h = sn->sole_uretprobe) [[likely]]
		h->cb(regs, h->user);
	else
		run_return_handlers(regs, sn);
	return ret;
}

} // namespace bpftime::attach::detail
