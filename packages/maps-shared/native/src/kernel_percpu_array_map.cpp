// kernel_percpu_array_map.cpp: BPFTIME_MAP_TYPE_KERNEL_USER_PERCPU_ARRAY, a
// kernel BPF_MAP_TYPE_PERCPU_ARRAY operated through bpf(2) on each
// process's fd.
//
// User space reads and writes every CPU's value at once (round_up(value_size,
// 8) x possible CPUs, the kernel's bpf_map_value_size), as with the kernel.
// A program's CPU is the CPU slot its run owns (@bpftime/handlers'
// cpu_slot.hpp), else the CPU it runs on. Its lookup returns that CPU's value
// in a copy of all of them in a buffer of the calling thread (kernel_map.hpp,
// BUFFER_SLOTS): writes through the pointer do NOT reach the kernel map. Its
// update reads every CPU's value, replaces its CPU's and writes them back:
// two bpf(2) calls, not atomic against a kernel program updating the same
// element on another CPU (which the kernel's own per-CPU update never races
// with, each CPU writing only its value).
#include "kernel_map.hpp"

#include <bpftime/handlers/cpu_slot.hpp>
#include <bpftime/handlers/registry.hpp>
#include <bpftime/maps_shared/maps_shared.hpp>
#include <bpftime/shm/segment.hpp>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <sched.h>
#include <sys/rseq.h>

namespace bpftime::maps_shared {
namespace {

using namespace bpftime::handlers;

constexpr uint32_t MAGIC = 0x4b504341; // "KPCA"
constexpr uint32_t VERSION = 1;
constexpr uint64_t BPF_EXIST_FLAG = 2;
constexpr uint64_t BPF_F_LOCK_FLAG = 4;

// Where the registry that runs programs keeps the run's CPU slot: this
// shared object's copy of t_cpu_slot until bind_runtime says otherwise (a
// Node addon of its own, beside the registry's).
std::atomic<int64_t> slot_tls_offset{ cpu_slot_tls_offset() };

void bind_runtime(const map_runtime *rt)
{
	if (rt && rt->size >= offsetof(map_runtime, cpu_slot_tls_offset) +
				      sizeof(rt->cpu_slot_tls_offset))
		slot_tls_offset.store(rt->cpu_slot_tls_offset,
				      std::memory_order_relaxed);
}

// The program's CPU: its run's slot, else rseq's CPU, else sched_getcpu().
uint32_t program_cpu(const local *l) noexcept
{
	char *tp = static_cast<char *>(__builtin_thread_pointer());
	int cpu = *reinterpret_cast<const int32_t *>(
		tp + slot_tls_offset.load(std::memory_order_relaxed));
	if (cpu < 0 && __rseq_size)
		cpu = int(reinterpret_cast<const volatile struct rseq *>(
				  tp + __rseq_offset)
				  ->cpu_id);
	if (cpu < 0)
		cpu = sched_getcpu();
	const uint32_t cpus = l->user_size / l->stride;
	return cpu >= 0 && uint32_t(cpu) < cpus ? uint32_t(cpu) : 0;
}

int percpu_create(const map_create_args *a, void **out, char *err,
		  size_t err_len)
{
	return create(a, type_params{ MAGIC, VERSION, 6 /* PERCPU_ARRAY */ },
		      out, err, err_len);
}

void *percpu_lookup(void *lp, const void *key)
{
	auto *l = static_cast<local *>(lp);
	auto *all = static_cast<char *>(syscall_lookup(lp, key));
	return all ? all + size_t(program_cpu(l)) * l->stride : nullptr;
}

// A program's bpf_map_update_elem: its CPU's value only (the kernel's
// percpu_array_update from a program), with the kernel's flag and index
// errors.
int percpu_prog_update(void *lp, const void *key, const void *value,
		       uint64_t flags)
{
	auto *l = static_cast<local *>(lp);
	if ((flags & BPF_F_LOCK_FLAG) || flags > BPF_EXIST_FLAG)
		return -EINVAL;
	uint32_t i;
	memcpy(&i, key, sizeof(i));
	if (i >= l->max_entries)
		return -E2BIG;
	if (flags == 1 /* BPF_NOEXIST */)
		return -EEXIST;
	auto *all = static_cast<char *>(thread_buffer(l));
	if (int r = syscall_lookup_copy(lp, key, all); r < 0)
		return r;
	memcpy(all + size_t(program_cpu(l)) * l->stride, value, l->value_size);
	return syscall_update(lp, key, all, flags);
}

uint32_t user_value_size(const map_create_args *a)
{
	return percpu_value_size(a->value_size);
}

const map_ops ops = {
	.size = sizeof(map_ops),
	.abi_version = MAP_OPS_ABI_VERSION,
	.layout_version = shm::LAYOUT_VERSION,
	.map_type = KERNEL_USER_PERCPU_ARRAY,
	.type_name = "BPFTIME_MAP_TYPE_KERNEL_USER_PERCPU_ARRAY",
	.provider = PROVIDER,
	.create = percpu_create,
	.destroy = destroy,
	.lookup = percpu_lookup,
	.lookup_copy = syscall_lookup_copy,
	.update = syscall_update,
	.delete_elem = syscall_delete,
	.get_next_key = syscall_next_key,
	.state_magic = MAGIC,
	.state_version = VERSION,
	.open = open,
	.close = close,
	.user_value_size = user_value_size,
	.prog_update = percpu_prog_update,
	.bind_runtime = bind_runtime,
};

} // namespace

const handlers::map_ops *kernel_percpu_array_map_ops() noexcept
{
	return &ops;
}

} // namespace bpftime::maps_shared
