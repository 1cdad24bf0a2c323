// bpf_defs.hpp: the kernel's eBPF numbers that the registry speaks, with the
// kernel's names (include/uapi/linux/bpf.h).
//
// Map types, program types, attach types, helper ids and flag bits are the
// kernel's, so a registry filled by the syscall-server from a real bpf() call
// and one filled from TypeScript agree, and an exported registry reads the
// same as `bpftool` output. The name tables are used in error messages
// ("no implementation of BPF_MAP_TYPE_LPM_TRIE"), in JSON and in TypeScript.
#pragma once

#include <bpftime/vm/helper_proto.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace bpftime::handlers {

// enum bpf_map_type
inline constexpr uint32_t BPF_MAP_TYPE_UNSPEC = 0;
inline constexpr uint32_t BPF_MAP_TYPE_HASH = 1;
inline constexpr uint32_t BPF_MAP_TYPE_ARRAY = 2;
inline constexpr uint32_t BPF_MAP_TYPE_PROG_ARRAY = 3;
inline constexpr uint32_t BPF_MAP_TYPE_PERF_EVENT_ARRAY = 4;
inline constexpr uint32_t BPF_MAP_TYPE_PERCPU_HASH = 5;
inline constexpr uint32_t BPF_MAP_TYPE_PERCPU_ARRAY = 6;
inline constexpr uint32_t BPF_MAP_TYPE_STACK_TRACE = 7;
inline constexpr uint32_t BPF_MAP_TYPE_LRU_HASH = 9;
inline constexpr uint32_t BPF_MAP_TYPE_LRU_PERCPU_HASH = 10;
inline constexpr uint32_t BPF_MAP_TYPE_LPM_TRIE = 11;
inline constexpr uint32_t BPF_MAP_TYPE_ARRAY_OF_MAPS = 12;
inline constexpr uint32_t BPF_MAP_TYPE_HASH_OF_MAPS = 13;
inline constexpr uint32_t BPF_MAP_TYPE_QUEUE = 22;
inline constexpr uint32_t BPF_MAP_TYPE_STACK = 23;
inline constexpr uint32_t BPF_MAP_TYPE_RINGBUF = 27;
inline constexpr uint32_t BPF_MAP_TYPE_BLOOM_FILTER = 30;
inline constexpr uint32_t BPF_MAP_TYPE_USER_RINGBUF = 31;

// enum bpf_prog_type (the ones bpftime runs; the rest are known by name)
inline constexpr uint32_t BPF_PROG_TYPE_UNSPEC = 0;
inline constexpr uint32_t BPF_PROG_TYPE_SOCKET_FILTER = 1;
inline constexpr uint32_t BPF_PROG_TYPE_KPROBE = 2;
inline constexpr uint32_t BPF_PROG_TYPE_TRACEPOINT = 5;
inline constexpr uint32_t BPF_PROG_TYPE_XDP = 6;
inline constexpr uint32_t BPF_PROG_TYPE_PERF_EVENT = 7;
inline constexpr uint32_t BPF_PROG_TYPE_RAW_TRACEPOINT = 17;
inline constexpr uint32_t BPF_PROG_TYPE_TRACING = 26;
inline constexpr uint32_t BPF_PROG_TYPE_SYSCALL = 31;

// Flags of BPF_MAP_UPDATE_ELEM
inline constexpr uint64_t BPF_ANY = 0;
inline constexpr uint64_t BPF_NOEXIST = 1;
inline constexpr uint64_t BPF_EXIST = 2;
inline constexpr uint64_t BPF_F_LOCK = 4;

// map_flags of BPF_MAP_CREATE
inline constexpr uint32_t BPF_F_NO_PREALLOC = 1u << 0;
inline constexpr uint32_t BPF_F_NO_COMMON_LRU = 1u << 1;
inline constexpr uint32_t BPF_F_NUMA_NODE = 1u << 2;
inline constexpr uint32_t BPF_F_RDONLY = 1u << 3;
inline constexpr uint32_t BPF_F_WRONLY = 1u << 4;
inline constexpr uint32_t BPF_F_STACK_BUILD_ID = 1u << 5;
inline constexpr uint32_t BPF_F_ZERO_SEED = 1u << 6;
inline constexpr uint32_t BPF_F_RDONLY_PROG = 1u << 7;
inline constexpr uint32_t BPF_F_WRONLY_PROG = 1u << 8;
inline constexpr uint32_t BPF_F_CLONE = 1u << 9;
inline constexpr uint32_t BPF_F_MMAPABLE = 1u << 10;
inline constexpr uint32_t BPF_F_PRESERVE_ELEMS = 1u << 11;
inline constexpr uint32_t BPF_F_INNER_MAP = 1u << 12;
// The kernel's BPF_F_ACCESS_MASK: who may read and write, syscall and program side.
inline constexpr uint32_t BPF_F_ACCESS_MASK =
	BPF_F_RDONLY | BPF_F_WRONLY | BPF_F_RDONLY_PROG | BPF_F_WRONLY_PROG;

// BPF_OBJ_NAME_LEN: map and program names hold at most 15 bytes plus NUL.
inline constexpr uint32_t BPF_OBJ_NAME_LEN = 16;

// Largest kmalloc the kernel will do (x86-64: 4 MiB); value sizes above it
// are E2BIG there, and here, so the same map specs succeed or fail alike.
inline constexpr uint32_t KMALLOC_MAX_SIZE = 1u << 22;

// Kernel helper ids (enum bpf_func_id), as BPF_FUNC_<name>: the vm's one list
// (bpftime/vm/helper_proto.hpp), named here too.
#define BPFTIME_HANDLERS_HELPER_ID(name, id) using vm::BPF_FUNC_##name;
BPFTIME_VM_HELPER_IDS(BPFTIME_HANDLERS_HELPER_ID)
#undef BPFTIME_HANDLERS_HELPER_ID

// Kernel names ("BPF_MAP_TYPE_HASH", "BPF_PROG_TYPE_KPROBE", "BPF_TRACE_FENTRY",
// helper "map_lookup_elem"); an empty view for a number the kernel does not
// define. A helper's name is its prototype's (a registered helper of
// bpftime's own included), else the kernel's (vm::kernel_helper_name).
std::string_view map_type_name(uint32_t type) noexcept;
std::string_view prog_type_name(uint32_t type) noexcept;
std::string_view attach_type_name(uint32_t type) noexcept;
std::string_view helper_name(uint32_t id) noexcept;
std::optional<uint32_t> map_type_from_name(std::string_view name) noexcept;
std::optional<uint32_t> prog_type_from_name(std::string_view name) noexcept;
std::optional<uint32_t> attach_type_from_name(std::string_view name) noexcept;
std::optional<uint32_t> helper_from_name(std::string_view name) noexcept;

// "BPF_MAP_TYPE_HASH", or "map type 1500" for a number without a kernel name.
std::string describe_map_type(uint32_t type);

} // namespace bpftime::handlers
