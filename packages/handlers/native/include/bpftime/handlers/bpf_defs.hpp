// bpf_defs.hpp: the kernel's eBPF numbers that the registry speaks, with the
// kernel's names (include/uapi/linux/bpf.h).
//
// Map types, program types, attach types, helper ids and flag bits are the
// kernel's, so a registry filled by the syscall-server from a real bpf() call
// and one filled from TypeScript agree, and an exported registry reads the
// same as `bpftool` output. The name tables are used in error messages
// ("no implementation of BPF_MAP_TYPE_LPM_TRIE"), in JSON and in TypeScript.
#pragma once

#include <bpftime/common/bpf_uapi.hpp>
#include <bpftime/vm/helper_proto.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace bpftime::handlers {

// Map types, program types, attach types and the flag bits of
// BPF_MAP_CREATE and BPF_MAP_UPDATE_ELEM come from the header generated from
// linux/bpf.h (@bpftime/common, bpf_uapi.hpp), so that
// bpftime::handlers::BPF_MAP_TYPE_HASH is bpftime::uapi::BPF_MAP_TYPE_HASH.
using namespace ::bpftime::uapi::map_types;
using namespace ::bpftime::uapi::prog_types;
using namespace ::bpftime::uapi::attach_types;
using namespace ::bpftime::uapi::update_flags;
using namespace ::bpftime::uapi::map_flags;

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
