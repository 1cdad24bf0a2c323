// stack_trace_map.cpp: BPF_MAP_TYPE_STACK_TRACE (the kernel's
// kernel/bpf/stackmap.c) and its helpers, bpf_get_stackid and bpf_get_stack.
//
// Stacks. A program's ctx is taken as the x86-64 struct pt_regs of the probed
// thread (what uprobe and kprobe programs get, and what the kernel's
// bpf_get_stackid reads): the first address is its ip, the rest come from
// walking the frame-pointer chain from its bp (the kernel's
// perf_callchain_user does the same for user stacks: no DWARF unwinding, so
// code built without frame pointers yields a short stack). Every read of the
// stack goes through process_vm_readv, a window at a time, so a broken chain
// ends the walk instead of faulting. There is no kernel stack in user space:
// without BPF_F_USER_STACK, bpf_get_stackid and bpf_get_stack answer EFAULT,
// as the kernel does when it gets no frames. bpf_get_stack with
// BPF_F_USER_BUILD_ID gives each frame as the kernel's struct
// bpf_stack_build_id: the GNU build id of the ELF object mapped at the
// address and the address's offset in its file (the kernel's
// stack_map_get_build_id_offset), found among the objects the dynamic
// loader knows (dl_iterate_phdr), from their notes in memory; an address in
// none of them (JIT code, an object mapped by hand) gives
// BPF_STACK_BUILD_ID_IP and the address. Stack maps with
// BPF_F_STACK_BUILD_ID are refused (EINVAL): bpf_get_stackid stores
// addresses only.
//
// The map: n_buckets = max_entries rounded up to a power of two, as the
// kernel; a stack's id is its hash & (n_buckets - 1). A bucket is
// {seq, hash, nr, writer, ips[value_size / 8]}: `seq` is odd while a writer
// fills it, and a reader (a comparison in bpf_get_stackid, a copy to user
// space) that saw the same even seq before and after knows what it read was
// whole. A writer takes the bucket by a compare-and-swap of seq, then puts
// its pid in `writer`; one that finds the bucket taken answers EBUSY (the
// kernel swaps whole buckets instead), unless the pid in `writer` names a
// process that no longer exists (killed while filling it): then it takes
// the bucket over. A writer killed between the swap and the store of its
// pid (two instructions) leaves the bucket busy until user space deletes it.
#include "map_common.hpp"

#include <bpftime/handlers/bpf_defs.hpp>
#include <bpftime/handlers/helpers.hpp>
#include <bpftime/handlers/registry.hpp>
#include <bpftime/maps_userspace/maps_userspace.hpp>
#include <bpftime/vm/helper_proto.hpp>

#include <atomic>
#include <csignal>
#include <cerrno>
#include <elf.h>
#include <link.h>
#include <sys/uio.h>
#include <unistd.h>

namespace bpftime::maps_userspace {
namespace {

using namespace bpftime::handlers;

constexpr uint32_t STACK_MAGIC = 0x53544b54; // "STKT"
// The layout of state and bucket. 1: the first (the writer pid included).
constexpr uint32_t STACK_STATE_VERSION = 1;

// include/uapi/linux/bpf.h
constexpr uint64_t BPF_F_SKIP_FIELD_MASK = 0xff;
constexpr uint64_t BPF_F_USER_STACK = 1 << 8;
constexpr uint64_t BPF_F_FAST_STACK_CMP = 1 << 9;
constexpr uint64_t BPF_F_REUSE_STACKID = 1 << 10;
constexpr uint64_t BPF_F_USER_BUILD_ID = 1 << 11;
constexpr uint32_t BPF_F_STACK_BUILD_ID = 1 << 5;
// The kernel's STACK_CREATE_FLAG_MASK.
constexpr uint32_t CREATE_FLAGS = BPF_F_NUMA_NODE | BPF_F_RDONLY |
				  BPF_F_WRONLY | BPF_F_STACK_BUILD_ID;
// sysctl kernel.perf_event_max_stack's default (PERF_MAX_STACK_DEPTH).
constexpr uint32_t MAX_STACK = 127;

struct bucket {
	std::atomic<uint32_t> seq;
	uint32_t hash;
	uint32_t nr;
	std::atomic<uint32_t> writer; // pid filling it while seq is odd, else 0
	uint64_t *ips() noexcept
	{
		return reinterpret_cast<uint64_t *>(this + 1);
	}
};
static_assert(sizeof(bucket) == 16);

struct state {
	map_state_header header;
	uint32_t key_size;
	uint32_t value_size;
	uint32_t max_entries;
	uint32_t map_flags;
	uint32_t n_buckets;
	uint32_t max_depth; // value_size / 8
	uint32_t stride;    // sizeof(bucket) + value_size
	int64_t buckets_off; // from this struct

	bucket *at(uint32_t id) noexcept
	{
		return reinterpret_cast<bucket *>(reinterpret_cast<char *>(this) +
						  buckets_off + size_t(id) * stride);
	}
};
static_assert(sizeof(state) == 48);

state *st(void *s)
{
	return static_cast<state *>(s);
}

// The kernel's stack_map_alloc checks, in its order.
int stack_create(const map_create_args *a, void **out, char *err,
		 size_t err_len)
{
	if (a->map_flags & ~CREATE_FLAGS)
		return set_error(err, err_len, EINVAL,
				 "map_flags 0x%x has bits stack trace maps do "
				 "not take (allowed: 0x%x)",
				 a->map_flags, CREATE_FLAGS);
	if (a->max_entries == 0)
		return set_error(err, err_len, EINVAL, "max_entries is 0");
	if (a->key_size != 4)
		return set_error(err, err_len, EINVAL,
				 "key size %u: stack ids are 4 bytes", a->key_size);
	if (a->value_size < 8 || a->value_size % 8)
		return set_error(err, err_len, EINVAL,
				 "value size %u is not a multiple of 8 (one "
				 "address each)",
				 a->value_size);
	if (a->map_flags & BPF_F_STACK_BUILD_ID)
		return set_error(err, err_len, EINVAL,
				 "map_flags: BPF_F_STACK_BUILD_ID is not "
				 "supported in user space");
	if (a->value_size / 8 > MAX_STACK)
		return set_error(err, err_len, EINVAL,
				 "value size %u holds more than %u frames "
				 "(kernel.perf_event_max_stack)",
				 a->value_size, MAX_STACK);
	if (a->max_entries > (1u << 31))
		return set_error(err, err_len, E2BIG,
				 "max_entries %u is above 2^31", a->max_entries);
	uint32_t n = 1;
	while (n < a->max_entries)
		n <<= 1;
	const uint64_t stride = sizeof(bucket) + a->value_size;
	auto *mgr = static_cast<shm::segment_manager *>(a->segment_manager);
	auto *s = static_cast<state *>(mgr->allocate(sizeof(state), std::nothrow));
	if (!s)
		return set_error(err, err_len, ENOMEM, "the segment is full");
	void *b = mgr->allocate_aligned(stride * n, 64, std::nothrow);
	if (!b) {
		mgr->deallocate(s);
		return set_error(err, err_len, ENOMEM,
				 "the segment has no room for %u buckets of %llu "
				 "bytes",
				 n, (unsigned long long)stride);
	}
	memset(b, 0, stride * n);
	keep_create_args(s, a);
	s->n_buckets = n;
	s->max_depth = a->value_size / 8;
	s->stride = uint32_t(stride);
	s->buckets_off = static_cast<char *>(b) - reinterpret_cast<char *>(s);
	s->header.version = STACK_STATE_VERSION;
	s->header.magic = STACK_MAGIC;
	*out = s;
	return 0;
}

void stack_destroy(void *segment_manager, void *sp)
{
	auto *mgr = static_cast<shm::segment_manager *>(segment_manager);
	mgr->deallocate(st(sp)->at(0));
	st(sp)->header.magic = 0;
	mgr->deallocate(sp);
}

// Programs cannot look into a stack map (the kernel's
// stack_map_lookup_elem is EOPNOTSUPP): NULL.
void *stack_lookup(void *, const void *)
{
	return nullptr;
}

// The kernel's bpf_stackmap_copy: the addresses, zeroes after them.
int stack_lookup_copy(void *sp, const void *key, void *value)
{
	state *s = st(sp);
	uint32_t id;
	memcpy(&id, key, sizeof(id));
	if (id >= s->n_buckets)
		return -ENOENT;
	bucket *b = s->at(id);
	for (int tries = 0; tries < 1000; tries++) {
		uint32_t s1 = b->seq.load(std::memory_order_acquire);
		if (s1 & 1)
			continue;
		uint32_t nr = b->nr;
		if (nr == 0 || nr > s->max_depth) {
			if (b->seq.load(std::memory_order_acquire) == s1)
				return -ENOENT;
			continue;
		}
		memcpy(value, b->ips(), size_t(nr) * 8);
		memset(static_cast<char *>(value) + size_t(nr) * 8, 0,
		       s->value_size - size_t(nr) * 8);
		std::atomic_thread_fence(std::memory_order_acquire);
		if (b->seq.load(std::memory_order_relaxed) == s1)
			return 0;
	}
	return -EBUSY;
}

// The kernel's stack_map_update_elem.
int stack_update(void *, const void *, const void *, uint64_t)
{
	return -EINVAL;
}

int stack_delete(void *sp, const void *key)
{
	state *s = st(sp);
	uint32_t id;
	memcpy(&id, key, sizeof(id));
	if (id >= s->n_buckets)
		return -E2BIG;
	bucket *b = s->at(id);
	uint32_t s1 = b->seq.load(std::memory_order_acquire);
	// Even a bucket a dead writer left busy can be cleared from here.
	b->seq.store(s1 | 1, std::memory_order_relaxed);
	uint32_t nr = b->nr;
	b->nr = 0;
	b->writer.store(0, std::memory_order_relaxed);
	b->seq.store((s1 | 1) + 1, std::memory_order_release);
	return nr ? 0 : -ENOENT;
}

// The kernel's stack_map_get_next_key: an absent, empty or out-of-range key
// starts again at the first stack.
int stack_get_next_key(void *sp, const void *key, void *next_key)
{
	state *s = st(sp);
	uint32_t id = 0;
	if (key) {
		memcpy(&id, key, sizeof(id));
		id = (id >= s->n_buckets || s->at(id)->nr == 0) ? 0 : id + 1;
	}
	while (id < s->n_buckets && s->at(id)->nr == 0)
		id++;
	if (id >= s->n_buckets)
		return -ENOENT;
	memcpy(next_key, &id, sizeof(id));
	return 0;
}

// --- walking the user stack -------------------------------------------------

// struct pt_regs (arch/x86/include/asm/ptrace.h): bp at 32, ip at 128.
constexpr uint64_t PT_REGS_BP = 32, PT_REGS_IP = 128;

// Up to max addresses of the stack whose registers ctx holds: ip, then
// the return address of each frame on the bp chain. Returns how many.
uint32_t walk_user_stack(uint64_t ctx, uint64_t *out, uint32_t max)
{
	uint64_t regs[2];
	if (max == 0 || safe_read(&regs[0], ctx + PT_REGS_IP, 8) != 0 ||
	    safe_read(&regs[1], ctx + PT_REGS_BP, 8) != 0)
		return 0;
	uint32_t n = 0;
	out[n++] = regs[0];
	uint64_t fp = regs[1];
	// The stack is read a window at a time (one system call for most
	// stacks); a frame outside the window moves it.
	constexpr size_t WINDOW = 1024; // small: helpers run on the target thread's stack
	uint64_t win[WINDOW / 8];
	uint64_t win_lo = 0, win_len = 0;
	while (n < max) {
		if (fp == 0 || fp % 8)
			break;
		if (fp < win_lo || fp + 16 > win_lo + win_len) {
			iovec local{ win, WINDOW };
			iovec remote{ reinterpret_cast<void *>(fp), WINDOW };
			ssize_t got = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
			if (got < 16) {
				// The window crossed into unmapped memory: the
				// frame alone.
				remote.iov_len = local.iov_len = 16;
				got = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
				if (got != 16)
					break;
			}
			win_lo = fp;
			win_len = uint64_t(got);
		}
		const uint64_t *frame = win + (fp - win_lo) / 8;
		uint64_t next = frame[0], ret = frame[1];
		if (ret == 0)
			break;
		out[n++] = ret;
		// Frames lie at rising addresses; anything else is not a chain.
		if (next <= fp)
			break;
		fp = next;
	}
	return n;
}

uint32_t hash_ips(const uint64_t *ips, uint32_t nr)
{
	uint64_t h = 0x9e3779b97f4a7c15ULL ^ nr;
	for (uint32_t i = 0; i < nr; i++) {
		h ^= ips[i];
		h *= 0xff51afd7ed558ccdULL;
		h ^= h >> 32;
	}
	return uint32_t(h ^ (h >> 29));
}

constexpr uint64_t neg(int e)
{
	return uint64_t(-int64_t(e));
}

// The helpers make system calls on the target's thread; its errno is left as
// the target had it.
struct keep_errno {
	int saved = errno;
	~keep_errno()
	{
		errno = saved;
	}
};

// Fills a bucket this thread holds (seq = even + 1) and publishes it.
uint64_t fill_bucket(bucket *b, uint32_t even, uint32_t hash,
		     const uint64_t *trace, uint32_t nr, uint32_t id)
{
	b->hash = hash;
	b->nr = nr;
	memcpy(b->ips(), trace, size_t(nr) * 8);
	b->writer.store(0, std::memory_order_relaxed);
	b->seq.store(even + 2, std::memory_order_release);
	return id;
}

// bpf_get_stackid(ctx, map, flags): the kernel's bpf_get_stackid and
// __bpf_get_stackid.
uint64_t h_get_stackid(uint64_t ctx, uint64_t map, uint64_t flags, uint64_t,
		       uint64_t)
{
	keep_errno keep;
	auto *m = reinterpret_cast<const map_instance *>(map);
	if (!m || m->map_type != BPF_MAP_TYPE_STACK_TRACE)
		return neg(EINVAL);
	if (flags & ~(BPF_F_SKIP_FIELD_MASK | BPF_F_USER_STACK |
		      BPF_F_FAST_STACK_CMP | BPF_F_REUSE_STACKID))
		return neg(EINVAL);
	if (!(flags & BPF_F_USER_STACK))
		return neg(EFAULT);
	state *s = st(m->state);
	const uint32_t skip = uint32_t(flags & BPF_F_SKIP_FIELD_MASK);
	uint64_t ips[MAX_STACK + BPF_F_SKIP_FIELD_MASK + 1];
	uint32_t got = walk_user_stack(ctx, ips, s->max_depth + skip);
	if (got <= skip)
		return neg(EFAULT);
	const uint64_t *trace = ips + skip;
	const uint32_t nr = got - skip;
	const uint32_t hash = hash_ips(trace, nr);
	const uint32_t id = hash & (s->n_buckets - 1);
	bucket *b = s->at(id);
	uint32_t s1 = b->seq.load(std::memory_order_acquire);
	if (s1 & 1) {
		// Filled now, or abandoned by a writer that died.
		uint32_t w = b->writer.load(std::memory_order_acquire);
		if (w == 0 || kill(pid_t(w), 0) == 0 || errno != ESRCH ||
		    !b->writer.compare_exchange_strong(w, uint32_t(getpid())))
			return neg(EBUSY);
		return fill_bucket(b, s1 - 1, hash, trace, nr, id);
	}
	if (b->nr && b->hash == hash) {
		if (flags & BPF_F_FAST_STACK_CMP)
			return id;
		bool same = b->nr == nr &&
			    memcmp(b->ips(), trace, size_t(nr) * 8) == 0;
		std::atomic_thread_fence(std::memory_order_acquire);
		if (same && b->seq.load(std::memory_order_relaxed) == s1)
			return id;
	}
	if (b->nr && !(flags & BPF_F_REUSE_STACKID))
		return neg(EEXIST);
	if (!b->seq.compare_exchange_strong(s1, s1 + 1,
					    std::memory_order_acquire))
		return neg(EBUSY);
	b->writer.store(uint32_t(getpid()), std::memory_order_release);
	return fill_bucket(b, s1, hash, trace, nr, id);
}

// include/uapi/linux/bpf.h
struct bpf_stack_build_id {
	int32_t status;
	uint8_t build_id[20]; // BPF_BUILD_ID_SIZE
	uint64_t offset;      // or the ip, with BPF_STACK_BUILD_ID_IP
};
static_assert(sizeof(bpf_stack_build_id) == 32);
constexpr int32_t BPF_STACK_BUILD_ID_VALID = 1;
constexpr int32_t BPF_STACK_BUILD_ID_IP = 2;

// dl_iterate_phdr's callback: when ip (given in out->offset) lies in a
// PT_LOAD segment of the object, fills *out from its NT_GNU_BUILD_ID note
// and stops.
int build_id_of_object(dl_phdr_info *info, size_t, void *data)
{
	auto *out = static_cast<bpf_stack_build_id *>(data);
	const uint64_t ip = out->offset;
	const ElfW(Phdr) *load = nullptr;
	for (ElfW(Half) i = 0; i < info->dlpi_phnum && !load; i++) {
		const ElfW(Phdr) &ph = info->dlpi_phdr[i];
		const uint64_t start = info->dlpi_addr + ph.p_vaddr;
		if (ph.p_type == PT_LOAD && ip >= start && ip - start < ph.p_memsz)
			load = &ph;
	}
	if (!load)
		return 0;
	for (ElfW(Half) i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) &ph = info->dlpi_phdr[i];
		if (ph.p_type != PT_NOTE)
			continue;
		const auto *p = reinterpret_cast<const uint8_t *>(info->dlpi_addr +
								  ph.p_vaddr);
		const uint8_t *end = p + ph.p_memsz;
		while (p + sizeof(ElfW(Nhdr)) <= end) {
			ElfW(Nhdr) n;
			memcpy(&n, p, sizeof(n));
			const uint8_t *name = p + sizeof(n);
			const uint8_t *desc = name + ((n.n_namesz + 3) & ~3u);
			p = desc + ((n.n_descsz + 3) & ~3u);
			if (p > end)
				break;
			if (n.n_type == NT_GNU_BUILD_ID && n.n_namesz == 4 &&
			    memcmp(name, "GNU", 4) == 0 && n.n_descsz > 0 &&
			    n.n_descsz <= sizeof(out->build_id)) {
				memcpy(out->build_id, desc, n.n_descsz);
				out->status = BPF_STACK_BUILD_ID_VALID;
				out->offset = load->p_offset + ip -
					      (info->dlpi_addr + load->p_vaddr);
				return 1;
			}
		}
	}
	return 1; // the object holding ip has no build id
}

// One frame as the kernel's stack_map_get_build_id_offset gives it.
bpf_stack_build_id build_id_frame(uint64_t ip)
{
	bpf_stack_build_id f{};
	f.offset = ip;
	dl_iterate_phdr(build_id_of_object, &f);
	if (f.status != BPF_STACK_BUILD_ID_VALID) {
		f = bpf_stack_build_id{};
		f.status = BPF_STACK_BUILD_ID_IP;
		f.offset = ip;
	}
	return f;
}

// bpf_get_stack(ctx, buf, size, flags): the kernel's __bpf_get_stack. The
// bytes copied, the rest of buf zeroed; on an error buf is all zeroes.
uint64_t h_get_stack(uint64_t ctx, uint64_t buf, uint64_t size, uint64_t flags,
		     uint64_t)
{
	keep_errno keep;
	auto *out = reinterpret_cast<uint8_t *>(buf);
	const uint32_t len = uint32_t(size);
	int e = 0;
	uint32_t copied = 0;
	const bool build_id = flags & BPF_F_USER_BUILD_ID;
	const uint32_t elem = build_id ? sizeof(bpf_stack_build_id) : 8;
	if (flags & ~(BPF_F_SKIP_FIELD_MASK | BPF_F_USER_STACK |
		      BPF_F_USER_BUILD_ID))
		e = EINVAL;
	else if (build_id && !(flags & BPF_F_USER_STACK))
		e = EINVAL; // the kernel's "kernel && user_build_id"
	else if (len % elem)
		e = EINVAL;
	else if (!(flags & BPF_F_USER_STACK))
		e = EFAULT;
	if (!e) {
		const uint32_t skip = uint32_t(flags & BPF_F_SKIP_FIELD_MASK);
		uint64_t ips[MAX_STACK + BPF_F_SKIP_FIELD_MASK + 1];
		const uint32_t want = std::min<uint32_t>(len / elem, MAX_STACK);
		uint32_t got = walk_user_stack(ctx, ips, want + skip);
		if (got <= skip) {
			e = EFAULT;
		} else if (build_id) {
			for (uint32_t i = 0; i < got - skip; i++) {
				const bpf_stack_build_id f =
					build_id_frame(ips[skip + i]);
				memcpy(out + size_t(i) * elem, &f, elem);
			}
			copied = (got - skip) * elem;
		} else {
			copied = (got - skip) * 8;
			memcpy(out, ips + skip, copied);
		}
	}
	if (len > copied)
		memset(out + copied, 0, len - copied);
	return e ? neg(e) : copied;
}

const vm::helper_proto helpers[] = {
	{
		.id = vm::BPF_FUNC_get_stackid,
		.name = "get_stackid",
		.ret = vm::RET_INTEGER,
		.args = { vm::ARG_PTR_TO_CTX, vm::ARG_CONST_MAP_PTR,
			  vm::ARG_ANYTHING },
		.fn = h_get_stackid,
	},
	{
		.id = vm::BPF_FUNC_get_stack,
		.name = "get_stack",
		.ret = vm::RET_INTEGER,
		.args = { vm::ARG_PTR_TO_CTX, vm::ARG_PTR_TO_UNINIT_MEM,
			  vm::ARG_CONST_SIZE_OR_ZERO, vm::ARG_ANYTHING },
		.fn = h_get_stack,
	},
};

const map_ops ops = {
	.size = sizeof(map_ops),
	.abi_version = MAP_OPS_ABI_VERSION,
	.layout_version = shm::LAYOUT_VERSION,
	.map_type = BPF_MAP_TYPE_STACK_TRACE,
	.type_name = "BPF_MAP_TYPE_STACK_TRACE",
	.provider = PROVIDER,
	.create = stack_create,
	.destroy = stack_destroy,
	.lookup = stack_lookup,
	.lookup_copy = stack_lookup_copy,
	.update = stack_update,
	.delete_elem = stack_delete,
	.get_next_key = stack_get_next_key,
	.state_magic = STACK_MAGIC,
	.state_version = STACK_STATE_VERSION,
	.helpers = helpers,
	.helper_count = 2,
};

} // namespace

const handlers::map_ops *stack_trace_map_ops() noexcept
{
	return &ops;
}

} // namespace bpftime::maps_userspace
