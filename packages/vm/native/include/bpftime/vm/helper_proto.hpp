// helper_proto.hpp: what a helper is, for the verifier and the runtime: the
// kernel's struct bpf_func_proto (include/linux/bpf.h) plus its id and name.
//
// A helper is registered with its prototype (vm::register_helper); nothing
// else describes it. The verifier reads the argument kinds to check each call
// (verifier.hpp), and written_args() derives from them which argument
// registers a helper may write through, for may_write_context().
//
//   constexpr bpftime::vm::helper_proto identity{
//       .id = 5, .name = "identity", .ret = bpftime::vm::RET_INTEGER,
//       .args = { bpftime::vm::ARG_ANYTHING },
//       .fn = +[](uint64_t a, uint64_t, uint64_t, uint64_t, uint64_t) {
//           return a; } };
//   if (auto st = v.register_helper(identity); !st) die(st.error().message);
//
// Ids and names are the kernel's enum bpf_func_id (BPF_FUNC_<name>), listed
// once below in the kernel's order (its __BPF_FUNC_MAPPER); bpftime's own
// helpers take ids above the kernel's.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

namespace bpftime::vm {

using helper_fn = uint64_t (*)(uint64_t, uint64_t, uint64_t, uint64_t,
			       uint64_t);

// X(name, id) for every helper of the kernel's enum bpf_func_id.
#define BPFTIME_VM_HELPER_IDS(X) \
	X(unspec, 0) \
	X(map_lookup_elem, 1) \
	X(map_update_elem, 2) \
	X(map_delete_elem, 3) \
	X(probe_read, 4) \
	X(ktime_get_ns, 5) \
	X(trace_printk, 6) \
	X(get_prandom_u32, 7) \
	X(get_smp_processor_id, 8) \
	X(skb_store_bytes, 9) \
	X(l3_csum_replace, 10) \
	X(l4_csum_replace, 11) \
	X(tail_call, 12) \
	X(clone_redirect, 13) \
	X(get_current_pid_tgid, 14) \
	X(get_current_uid_gid, 15) \
	X(get_current_comm, 16) \
	X(get_cgroup_classid, 17) \
	X(skb_vlan_push, 18) \
	X(skb_vlan_pop, 19) \
	X(skb_get_tunnel_key, 20) \
	X(skb_set_tunnel_key, 21) \
	X(perf_event_read, 22) \
	X(redirect, 23) \
	X(get_route_realm, 24) \
	X(perf_event_output, 25) \
	X(skb_load_bytes, 26) \
	X(get_stackid, 27) \
	X(csum_diff, 28) \
	X(skb_get_tunnel_opt, 29) \
	X(skb_set_tunnel_opt, 30) \
	X(skb_change_proto, 31) \
	X(skb_change_type, 32) \
	X(skb_under_cgroup, 33) \
	X(get_hash_recalc, 34) \
	X(get_current_task, 35) \
	X(probe_write_user, 36) \
	X(current_task_under_cgroup, 37) \
	X(skb_change_tail, 38) \
	X(skb_pull_data, 39) \
	X(csum_update, 40) \
	X(set_hash_invalid, 41) \
	X(get_numa_node_id, 42) \
	X(skb_change_head, 43) \
	X(xdp_adjust_head, 44) \
	X(probe_read_str, 45) \
	X(get_socket_cookie, 46) \
	X(get_socket_uid, 47) \
	X(set_hash, 48) \
	X(setsockopt, 49) \
	X(skb_adjust_room, 50) \
	X(redirect_map, 51) \
	X(sk_redirect_map, 52) \
	X(sock_map_update, 53) \
	X(xdp_adjust_meta, 54) \
	X(perf_event_read_value, 55) \
	X(perf_prog_read_value, 56) \
	X(getsockopt, 57) \
	X(override_return, 58) \
	X(sock_ops_cb_flags_set, 59) \
	X(msg_redirect_map, 60) \
	X(msg_apply_bytes, 61) \
	X(msg_cork_bytes, 62) \
	X(msg_pull_data, 63) \
	X(bind, 64) \
	X(xdp_adjust_tail, 65) \
	X(skb_get_xfrm_state, 66) \
	X(get_stack, 67) \
	X(skb_load_bytes_relative, 68) \
	X(fib_lookup, 69) \
	X(sock_hash_update, 70) \
	X(msg_redirect_hash, 71) \
	X(sk_redirect_hash, 72) \
	X(lwt_push_encap, 73) \
	X(lwt_seg6_store_bytes, 74) \
	X(lwt_seg6_adjust_srh, 75) \
	X(lwt_seg6_action, 76) \
	X(rc_repeat, 77) \
	X(rc_keydown, 78) \
	X(skb_cgroup_id, 79) \
	X(get_current_cgroup_id, 80) \
	X(get_local_storage, 81) \
	X(sk_select_reuseport, 82) \
	X(skb_ancestor_cgroup_id, 83) \
	X(sk_lookup_tcp, 84) \
	X(sk_lookup_udp, 85) \
	X(sk_release, 86) \
	X(map_push_elem, 87) \
	X(map_pop_elem, 88) \
	X(map_peek_elem, 89) \
	X(msg_push_data, 90) \
	X(msg_pop_data, 91) \
	X(rc_pointer_rel, 92) \
	X(spin_lock, 93) \
	X(spin_unlock, 94) \
	X(sk_fullsock, 95) \
	X(tcp_sock, 96) \
	X(skb_ecn_set_ce, 97) \
	X(get_listener_sock, 98) \
	X(skc_lookup_tcp, 99) \
	X(tcp_check_syncookie, 100) \
	X(sysctl_get_name, 101) \
	X(sysctl_get_current_value, 102) \
	X(sysctl_get_new_value, 103) \
	X(sysctl_set_new_value, 104) \
	X(strtol, 105) \
	X(strtoul, 106) \
	X(sk_storage_get, 107) \
	X(sk_storage_delete, 108) \
	X(send_signal, 109) \
	X(tcp_gen_syncookie, 110) \
	X(skb_output, 111) \
	X(probe_read_user, 112) \
	X(probe_read_kernel, 113) \
	X(probe_read_user_str, 114) \
	X(probe_read_kernel_str, 115) \
	X(tcp_send_ack, 116) \
	X(send_signal_thread, 117) \
	X(jiffies64, 118) \
	X(read_branch_records, 119) \
	X(get_ns_current_pid_tgid, 120) \
	X(xdp_output, 121) \
	X(get_netns_cookie, 122) \
	X(get_current_ancestor_cgroup_id, 123) \
	X(sk_assign, 124) \
	X(ktime_get_boot_ns, 125) \
	X(seq_printf, 126) \
	X(seq_write, 127) \
	X(sk_cgroup_id, 128) \
	X(sk_ancestor_cgroup_id, 129) \
	X(ringbuf_output, 130) \
	X(ringbuf_reserve, 131) \
	X(ringbuf_submit, 132) \
	X(ringbuf_discard, 133) \
	X(ringbuf_query, 134) \
	X(csum_level, 135) \
	X(skc_to_tcp6_sock, 136) \
	X(skc_to_tcp_sock, 137) \
	X(skc_to_tcp_timewait_sock, 138) \
	X(skc_to_tcp_request_sock, 139) \
	X(skc_to_udp6_sock, 140) \
	X(get_task_stack, 141) \
	X(load_hdr_opt, 142) \
	X(store_hdr_opt, 143) \
	X(reserve_hdr_opt, 144) \
	X(inode_storage_get, 145) \
	X(inode_storage_delete, 146) \
	X(d_path, 147) \
	X(copy_from_user, 148) \
	X(snprintf_btf, 149) \
	X(seq_printf_btf, 150) \
	X(skb_cgroup_classid, 151) \
	X(redirect_neigh, 152) \
	X(per_cpu_ptr, 153) \
	X(this_cpu_ptr, 154) \
	X(redirect_peer, 155) \
	X(task_storage_get, 156) \
	X(task_storage_delete, 157) \
	X(get_current_task_btf, 158) \
	X(bprm_opts_set, 159) \
	X(ktime_get_coarse_ns, 160) \
	X(ima_inode_hash, 161) \
	X(sock_from_file, 162) \
	X(check_mtu, 163) \
	X(for_each_map_elem, 164) \
	X(snprintf, 165) \
	X(sys_bpf, 166) \
	X(btf_find_by_name_kind, 167) \
	X(sys_close, 168) \
	X(timer_init, 169) \
	X(timer_set_callback, 170) \
	X(timer_start, 171) \
	X(timer_cancel, 172) \
	X(get_func_ip, 173) \
	X(get_attach_cookie, 174) \
	X(task_pt_regs, 175) \
	X(get_branch_snapshot, 176) \
	X(trace_vprintk, 177) \
	X(skc_to_unix_sock, 178) \
	X(kallsyms_lookup_name, 179) \
	X(find_vma, 180) \
	X(loop, 181) \
	X(strncmp, 182) \
	X(get_func_arg, 183) \
	X(get_func_ret, 184) \
	X(get_func_arg_cnt, 185) \
	X(get_retval, 186) \
	X(set_retval, 187) \
	X(xdp_get_buff_len, 188) \
	X(xdp_load_bytes, 189) \
	X(xdp_store_bytes, 190) \
	X(copy_from_user_task, 191) \
	X(skb_set_tstamp, 192) \
	X(ima_file_hash, 193) \
	X(kptr_xchg, 194) \
	X(map_lookup_percpu_elem, 195) \
	X(skc_to_mptcp_sock, 196) \
	X(dynptr_from_mem, 197) \
	X(ringbuf_reserve_dynptr, 198) \
	X(ringbuf_submit_dynptr, 199) \
	X(ringbuf_discard_dynptr, 200) \
	X(dynptr_read, 201) \
	X(dynptr_write, 202) \
	X(dynptr_data, 203) \
	X(tcp_raw_gen_syncookie_ipv4, 204) \
	X(tcp_raw_gen_syncookie_ipv6, 205) \
	X(tcp_raw_check_syncookie_ipv4, 206) \
	X(tcp_raw_check_syncookie_ipv6, 207) \
	X(ktime_get_tai_ns, 208) \
	X(user_ringbuf_drain, 209) \
	X(cgrp_storage_get, 210) \
	X(cgrp_storage_delete, 211)

#define BPFTIME_VM_HELPER_ID_CONST(name, id) \
	inline constexpr uint32_t BPF_FUNC_##name = id;
BPFTIME_VM_HELPER_IDS(BPFTIME_VM_HELPER_ID_CONST)
#undef BPFTIME_VM_HELPER_ID_CONST

// The kernel's name of helper id without "bpf_" ("map_lookup_elem"); empty
// for an id the kernel does not define.
std::string_view kernel_helper_name(uint32_t id) noexcept;
// The id of a kernel helper by name, with or without "bpf_".
std::optional<uint32_t> kernel_helper_id(std::string_view name) noexcept;

// enum bpf_return_type: what r0 holds after the call. RET_UNSPEC marks a
// proto that was never filled in; register_helper refuses it.
enum bpf_return_type : uint8_t {
	RET_UNSPEC,
	RET_INTEGER,                     // a number
	RET_VOID,                        // nothing (r0 is unknown)
	RET_PTR_TO_MAP_VALUE_OR_NULL,    // a map value, or NULL
	RET_PTR_TO_RINGBUF_MEM_OR_NULL,  // a ring buffer record, or NULL
	RET_PTR_TO_MEM_OR_NULL,          // other memory, or NULL
};

// enum bpf_arg_type: what one argument register must hold. The low byte is
// the base kind; the flags above it refine it as the kernel's do.
enum bpf_arg_type : uint16_t {
	ARG_DONTCARE = 0,       // not an argument: r(n) is not read
	ARG_ANYTHING,           // any value: a number or an address read as one
	ARG_CONST_MAP_PTR,      // a map (lddw BPF_PSEUDO_MAP_FD / _IDX)
	ARG_PTR_TO_MAP_KEY,     // key_size bytes: the stack, a map value, the ctx
	ARG_PTR_TO_MAP_VALUE,   // value_size bytes, as a key
	ARG_PTR_TO_MEM,         // memory of the size in the next argument
	ARG_CONST_SIZE,         // the size of the memory argument before it, > 0
	ARG_CONST_SIZE_OR_ZERO, // the same, possibly 0
	ARG_CONST_ALLOC_SIZE_OR_ZERO, // a size the helper allocates
	ARG_PTR_TO_CTX,         // the program's context
	ARG_PTR_TO_FUNC,        // a callback (lddw BPF_PSEUDO_FUNC)
	ARG_PTR_TO_STACK,       // the stack, handed to a callback
	ARG_PTR_TO_LONG,        // 8 bytes the helper writes a result into
	ARG_PTR_TO_CONST_STR,   // a NUL-terminated read-only string
	ARG_PTR_TO_RINGBUF_MEM, // a record from bpf_ringbuf_reserve, released

	ARG_BASE_MASK = 0xff,
	// Flags (the kernel's type modifiers).
	PTR_MAYBE_NULL = 1u << 8, // NULL is accepted too
	MEM_RDONLY = 1u << 9,     // the helper only reads this memory
	MEM_UNINIT = 1u << 10,    // the helper writes this memory without reading it
	// The helper writes through this argument, or hands it to code that may
	// (bpf_tail_call's ctx, bpf_probe_write_user's destination).
	MEM_WRITE = 1u << 11,

	ARG_PTR_TO_UNINIT_MEM = ARG_PTR_TO_MEM | MEM_UNINIT,
	ARG_PTR_TO_MEM_OR_NULL = ARG_PTR_TO_MEM | PTR_MAYBE_NULL,
	ARG_PTR_TO_STACK_OR_NULL = ARG_PTR_TO_STACK | PTR_MAYBE_NULL,
	ARG_PTR_TO_UNINIT_MAP_VALUE = ARG_PTR_TO_MAP_VALUE | MEM_UNINIT,
};

constexpr bpf_arg_type operator|(bpf_arg_type a, bpf_arg_type b) noexcept
{
	return static_cast<bpf_arg_type>(uint16_t(a) | uint16_t(b));
}
constexpr bpf_arg_type base_type(bpf_arg_type a) noexcept
{
	return static_cast<bpf_arg_type>(a & ARG_BASE_MASK);
}

// One helper: the kernel's bpf_func_proto with its id and name. Plain data,
// usable in constexpr tables; `name` must outlive the proto (a literal), the
// vm copies it at registration.
struct helper_proto {
	uint32_t id = 0;
	std::string_view name;          // kernel name without "bpf_"
	bpf_return_type ret = RET_UNSPEC;
	std::array<bpf_arg_type, 5> args{}; // r1..r5
	helper_fn fn = nullptr;
};

// The argument registers (bit n for rn) through which a helper of this
// prototype may write memory or hand it on: ARG_PTR_TO_MEM without
// MEM_RDONLY, an uninitialised map value, ARG_PTR_TO_LONG, ARG_PTR_TO_STACK
// (a callback's context), ARG_PTR_TO_RINGBUF_MEM, and any argument flagged
// MEM_WRITE. For may_write_context(); an id without a prototype counts as
// writing through all of r1-r5 (ALL_ARGS_WRITTEN).
uint16_t written_args(const helper_proto &p) noexcept;
inline constexpr uint16_t ALL_ARGS_WRITTEN = 0x3e;

// bpf_tail_call (ctx, prog_array, index), the kernel's prototype: the
// backends implement it themselves (it does not return on success). Its ctx
// is handed to the next program, which may write it. Once a tail-call
// resolver is set, vm::load checks calls of id 12 against it with r2 as
// ARG_ANYTHING (the resolver, not the vm, decides what names a prog array);
// a registry that knows maps checks it as it stands.
inline constexpr helper_proto tail_call_proto{
	.id = BPF_FUNC_tail_call,
	.name = "tail_call",
	.ret = RET_INTEGER,
	.args = { ARG_PTR_TO_CTX | MEM_WRITE, ARG_CONST_MAP_PTR, ARG_ANYTHING },
	.fn = nullptr,
};

} // namespace bpftime::vm
