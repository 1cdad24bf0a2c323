// bpf_defs.cpp: the kernel's name tables (include/uapi/linux/bpf.h, enum
// bpf_map_type, bpf_prog_type, bpf_attach_type), indexed by their numbers.
// Helper names come from the helper prototypes and the vm's list of kernel
// helper ids.
#include <bpftime/handlers/bpf_defs.hpp>
#include <bpftime/handlers/helpers.hpp>

#include <array>
#include <string>

namespace bpftime::handlers {
namespace {

constexpr std::string_view map_types[] = {
	"BPF_MAP_TYPE_UNSPEC",
	"BPF_MAP_TYPE_HASH",
	"BPF_MAP_TYPE_ARRAY",
	"BPF_MAP_TYPE_PROG_ARRAY",
	"BPF_MAP_TYPE_PERF_EVENT_ARRAY",
	"BPF_MAP_TYPE_PERCPU_HASH",
	"BPF_MAP_TYPE_PERCPU_ARRAY",
	"BPF_MAP_TYPE_STACK_TRACE",
	"BPF_MAP_TYPE_CGROUP_ARRAY",
	"BPF_MAP_TYPE_LRU_HASH",
	"BPF_MAP_TYPE_LRU_PERCPU_HASH",
	"BPF_MAP_TYPE_LPM_TRIE",
	"BPF_MAP_TYPE_ARRAY_OF_MAPS",
	"BPF_MAP_TYPE_HASH_OF_MAPS",
	"BPF_MAP_TYPE_DEVMAP",
	"BPF_MAP_TYPE_SOCKMAP",
	"BPF_MAP_TYPE_CPUMAP",
	"BPF_MAP_TYPE_XSKMAP",
	"BPF_MAP_TYPE_SOCKHASH",
	"BPF_MAP_TYPE_CGROUP_STORAGE",
	"BPF_MAP_TYPE_REUSEPORT_SOCKARRAY",
	"BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE",
	"BPF_MAP_TYPE_QUEUE",
	"BPF_MAP_TYPE_STACK",
	"BPF_MAP_TYPE_SK_STORAGE",
	"BPF_MAP_TYPE_DEVMAP_HASH",
	"BPF_MAP_TYPE_STRUCT_OPS",
	"BPF_MAP_TYPE_RINGBUF",
	"BPF_MAP_TYPE_INODE_STORAGE",
	"BPF_MAP_TYPE_TASK_STORAGE",
	"BPF_MAP_TYPE_BLOOM_FILTER",
	"BPF_MAP_TYPE_USER_RINGBUF",
	"BPF_MAP_TYPE_CGRP_STORAGE",
	"BPF_MAP_TYPE_ARENA",
};

constexpr std::string_view prog_types[] = {
	"BPF_PROG_TYPE_UNSPEC",
	"BPF_PROG_TYPE_SOCKET_FILTER",
	"BPF_PROG_TYPE_KPROBE",
	"BPF_PROG_TYPE_SCHED_CLS",
	"BPF_PROG_TYPE_SCHED_ACT",
	"BPF_PROG_TYPE_TRACEPOINT",
	"BPF_PROG_TYPE_XDP",
	"BPF_PROG_TYPE_PERF_EVENT",
	"BPF_PROG_TYPE_CGROUP_SKB",
	"BPF_PROG_TYPE_CGROUP_SOCK",
	"BPF_PROG_TYPE_LWT_IN",
	"BPF_PROG_TYPE_LWT_OUT",
	"BPF_PROG_TYPE_LWT_XMIT",
	"BPF_PROG_TYPE_SOCK_OPS",
	"BPF_PROG_TYPE_SK_SKB",
	"BPF_PROG_TYPE_CGROUP_DEVICE",
	"BPF_PROG_TYPE_SK_MSG",
	"BPF_PROG_TYPE_RAW_TRACEPOINT",
	"BPF_PROG_TYPE_CGROUP_SOCK_ADDR",
	"BPF_PROG_TYPE_LWT_SEG6LOCAL",
	"BPF_PROG_TYPE_LIRC_MODE2",
	"BPF_PROG_TYPE_SK_REUSEPORT",
	"BPF_PROG_TYPE_FLOW_DISSECTOR",
	"BPF_PROG_TYPE_CGROUP_SYSCTL",
	"BPF_PROG_TYPE_RAW_TRACEPOINT_WRITABLE",
	"BPF_PROG_TYPE_CGROUP_SOCKOPT",
	"BPF_PROG_TYPE_TRACING",
	"BPF_PROG_TYPE_STRUCT_OPS",
	"BPF_PROG_TYPE_EXT",
	"BPF_PROG_TYPE_LSM",
	"BPF_PROG_TYPE_SK_LOOKUP",
	"BPF_PROG_TYPE_SYSCALL",
	"BPF_PROG_TYPE_NETFILTER",
};

constexpr std::string_view attach_types[] = {
	"BPF_CGROUP_INET_INGRESS",
	"BPF_CGROUP_INET_EGRESS",
	"BPF_CGROUP_INET_SOCK_CREATE",
	"BPF_CGROUP_SOCK_OPS",
	"BPF_SK_SKB_STREAM_PARSER",
	"BPF_SK_SKB_STREAM_VERDICT",
	"BPF_CGROUP_DEVICE",
	"BPF_SK_MSG_VERDICT",
	"BPF_CGROUP_INET4_BIND",
	"BPF_CGROUP_INET6_BIND",
	"BPF_CGROUP_INET4_CONNECT",
	"BPF_CGROUP_INET6_CONNECT",
	"BPF_CGROUP_INET4_POST_BIND",
	"BPF_CGROUP_INET6_POST_BIND",
	"BPF_CGROUP_UDP4_SENDMSG",
	"BPF_CGROUP_UDP6_SENDMSG",
	"BPF_LIRC_MODE2",
	"BPF_FLOW_DISSECTOR",
	"BPF_CGROUP_SYSCTL",
	"BPF_CGROUP_UDP4_RECVMSG",
	"BPF_CGROUP_UDP6_RECVMSG",
	"BPF_CGROUP_GETSOCKOPT",
	"BPF_CGROUP_SETSOCKOPT",
	"BPF_TRACE_RAW_TP",
	"BPF_TRACE_FENTRY",
	"BPF_TRACE_FEXIT",
	"BPF_MODIFY_RETURN",
	"BPF_LSM_MAC",
	"BPF_TRACE_ITER",
	"BPF_CGROUP_INET4_GETPEERNAME",
	"BPF_CGROUP_INET6_GETPEERNAME",
	"BPF_CGROUP_INET4_GETSOCKNAME",
	"BPF_CGROUP_INET6_GETSOCKNAME",
	"BPF_XDP_DEVMAP",
	"BPF_CGROUP_INET_SOCK_RELEASE",
	"BPF_XDP_CPUMAP",
	"BPF_SK_LOOKUP",
	"BPF_XDP",
	"BPF_SK_SKB_VERDICT",
	"BPF_SK_REUSEPORT_SELECT",
	"BPF_SK_REUSEPORT_SELECT_OR_MIGRATE",
	"BPF_PERF_EVENT",
	"BPF_TRACE_KPROBE_MULTI",
	"BPF_LSM_CGROUP",
	"BPF_STRUCT_OPS",
	"BPF_NETFILTER",
	"BPF_TCX_INGRESS",
	"BPF_TCX_EGRESS",
	"BPF_TRACE_UPROBE_MULTI",
	"BPF_CGROUP_UNIX_CONNECT",
	"BPF_CGROUP_UNIX_SENDMSG",
	"BPF_CGROUP_UNIX_RECVMSG",
	"BPF_CGROUP_UNIX_GETPEERNAME",
	"BPF_CGROUP_UNIX_GETSOCKNAME",
	"BPF_NETKIT_PRIMARY",
	"BPF_NETKIT_PEER",
	"BPF_TRACE_KPROBE_SESSION",
};

template <size_t N>
std::string_view at(const std::string_view (&table)[N], uint32_t i) noexcept
{
	return i < N ? table[i] : std::string_view();
}

template <size_t N>
std::optional<uint32_t> find(const std::string_view (&table)[N],
			     std::string_view name) noexcept
{
	for (uint32_t i = 0; i < N; i++)
		if (table[i] == name)
			return i;
	return std::nullopt;
}

} // namespace

std::string_view map_type_name(uint32_t type) noexcept
{
	return at(map_types, type);
}
std::string_view prog_type_name(uint32_t type) noexcept
{
	return at(prog_types, type);
}
std::string_view attach_type_name(uint32_t type) noexcept
{
	return at(attach_types, type);
}
std::string_view helper_name(uint32_t id) noexcept
{
	if (const vm::helper_proto *p = find_helper(id))
		return p->name;
	return vm::kernel_helper_name(id);
}
std::optional<uint32_t> map_type_from_name(std::string_view name) noexcept
{
	return find(map_types, name);
}
std::optional<uint32_t> prog_type_from_name(std::string_view name) noexcept
{
	return find(prog_types, name);
}
std::optional<uint32_t> attach_type_from_name(std::string_view name) noexcept
{
	return find(attach_types, name);
}
std::optional<uint32_t> helper_from_name(std::string_view name) noexcept
{
	if (auto id = vm::kernel_helper_id(name))
		return id;
	if (name.substr(0, 4) == "bpf_")
		name.remove_prefix(4);
	for (const vm::helper_proto &p : available_helpers())
		if (p.name == name)
			return p.id;
	return std::nullopt;
}

std::string describe_map_type(uint32_t type)
{
	std::string_view n = map_type_name(type);
	if (!n.empty())
		return std::string(n);
	return "map type " + std::to_string(type);
}

} // namespace bpftime::handlers
