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

// Kernel helper ids (enum bpf_func_id) of the standard helpers.
inline constexpr uint32_t BPF_FUNC_map_lookup_elem = 1;
inline constexpr uint32_t BPF_FUNC_map_update_elem = 2;
inline constexpr uint32_t BPF_FUNC_map_delete_elem = 3;
inline constexpr uint32_t BPF_FUNC_probe_read = 4;
inline constexpr uint32_t BPF_FUNC_ktime_get_ns = 5;
inline constexpr uint32_t BPF_FUNC_trace_printk = 6;
inline constexpr uint32_t BPF_FUNC_get_prandom_u32 = 7;
inline constexpr uint32_t BPF_FUNC_get_smp_processor_id = 8;
inline constexpr uint32_t BPF_FUNC_tail_call = 12;
inline constexpr uint32_t BPF_FUNC_get_current_pid_tgid = 14;
inline constexpr uint32_t BPF_FUNC_get_current_uid_gid = 15;
inline constexpr uint32_t BPF_FUNC_get_current_comm = 16;
inline constexpr uint32_t BPF_FUNC_perf_event_output = 25;
inline constexpr uint32_t BPF_FUNC_get_stackid = 27;
inline constexpr uint32_t BPF_FUNC_probe_write_user = 36;
inline constexpr uint32_t BPF_FUNC_probe_read_str = 45;
inline constexpr uint32_t BPF_FUNC_perf_prog_read_value = 56;
inline constexpr uint32_t BPF_FUNC_override_return = 58;
inline constexpr uint32_t BPF_FUNC_get_stack = 67;
inline constexpr uint32_t BPF_FUNC_map_push_elem = 87;
inline constexpr uint32_t BPF_FUNC_map_pop_elem = 88;
inline constexpr uint32_t BPF_FUNC_map_peek_elem = 89;
inline constexpr uint32_t BPF_FUNC_strtol = 105;
inline constexpr uint32_t BPF_FUNC_strtoul = 106;
inline constexpr uint32_t BPF_FUNC_probe_read_user = 112;
inline constexpr uint32_t BPF_FUNC_probe_read_kernel = 113;
inline constexpr uint32_t BPF_FUNC_probe_read_user_str = 114;
inline constexpr uint32_t BPF_FUNC_probe_read_kernel_str = 115;
inline constexpr uint32_t BPF_FUNC_read_branch_records = 119;
inline constexpr uint32_t BPF_FUNC_ktime_get_boot_ns = 125;
inline constexpr uint32_t BPF_FUNC_ringbuf_output = 130;
inline constexpr uint32_t BPF_FUNC_ringbuf_reserve = 131;
inline constexpr uint32_t BPF_FUNC_ringbuf_submit = 132;
inline constexpr uint32_t BPF_FUNC_ringbuf_discard = 133;
inline constexpr uint32_t BPF_FUNC_ringbuf_query = 134;
inline constexpr uint32_t BPF_FUNC_ktime_get_coarse_ns = 160;
inline constexpr uint32_t BPF_FUNC_snprintf = 165;
inline constexpr uint32_t BPF_FUNC_get_func_ip = 173;
inline constexpr uint32_t BPF_FUNC_get_attach_cookie = 174;
inline constexpr uint32_t BPF_FUNC_loop = 181;

// Kernel names ("BPF_MAP_TYPE_HASH", "BPF_PROG_TYPE_KPROBE", "BPF_TRACE_FENTRY",
// helper "map_lookup_elem"); an empty view for a number the kernel does not
// define.
std::string_view map_type_name(uint32_t type) noexcept;
std::string_view prog_type_name(uint32_t type) noexcept;
std::string_view attach_type_name(uint32_t type) noexcept;
std::string_view helper_name(uint32_t id) noexcept;
std::optional<uint32_t> map_type_from_name(std::string_view name) noexcept;
std::optional<uint32_t> prog_type_from_name(std::string_view name) noexcept;
std::optional<uint32_t> attach_type_from_name(std::string_view name) noexcept;
std::optional<uint32_t> helper_from_name(std::string_view name) noexcept;

// The @bpftime package that implements a map type, for the error that
// names it when no implementation is registered; empty when none does.
std::string_view map_type_provider(uint32_t type) noexcept;

// "BPF_MAP_TYPE_HASH", or "map type 1500" for a number without a kernel name.
std::string describe_map_type(uint32_t type);

} // namespace bpftime::handlers
