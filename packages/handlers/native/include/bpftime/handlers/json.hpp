// json.hpp: the registry's JSON document (registry::export_json and
// registry::import_json).
//
//   {
//     "format": "bpftime-registry",
//     "version": 2,
//     "capacity": 6144,
//     "handlers": [
//       { "id": 0, "kind": "btf", "data": "9feb0100..." },
//       { "id": 1, "kind": "map", "name": "counts", "type": "BPF_MAP_TYPE_HASH",
//         "key_size": 4, "value_size": 8, "max_entries": 1024, "map_flags": 0,
//         "inner_map_id": null, "btf_id": null, "btf_key_type_id": 0,
//         "btf_value_type_id": 0, "btf_vmlinux_value_type_id": 0,
//         "numa_node": 0, "map_ifindex": 0, "map_extra": "0",
//         "frozen": false, "entries": [["01000000", "0500000000000000"]] },
//       { "id": 2, "kind": "prog", "name": "count", "type": "BPF_PROG_TYPE_KPROBE",
//         "expected_attach_type": "BPF_CGROUP_INET_INGRESS", "attach_btf_id": 0,
//         "prog_flags": 0, "kern_version": 0, "license": "GPL",
//         "insns": "b7000000...", "fd_array": [] },
//       { "id": 3, "kind": "perf_event", "type": "uprobe", "path": "/bin/sh",
//         "offset": "4096", "symbol": "", "pid": -1, "ref_ctr_offset": "0",
//         "syscall_id": -1, "syscall_exit": false, "custom_name": "",
//         "custom_config": "0" },
//       { "id": 4, "kind": "link", "prog_id": 2, "target_id": 3,
//         "attach_type": "BPF_PERF_EVENT", "flags": 0, "cookie": "0" }
//     ]
//   }
//
// Field names are the kernel's bpf_attr names. Types are kernel names (a
// number where the kernel has no name). Bytes (keys, values, instructions,
// BTF) are lower-case hex; u64 fields are decimal strings, because
// JavaScript's JSON.parse rounds integers past 2^53. Map entries are every
// key and value (every index of an array map). The fields of each handler
// are those of its list in fields.hpp, in that order. Strings are UTF-8: a
// document with a string that is not is malformed.
//
// Import takes an empty registry, checks the whole document first (version,
// fields, sizes, references, map implementations), then creates every
// handler with its id and fills the maps, all under the registry's mutex; if
// any step fails, what was created is released again. Errors: EINVAL for a
// malformed document (with line and column or the handler id),
// EPROTONOSUPPORT for another version, ENOTEMPTY when the registry already
// holds handlers, and the errors of creating a handler.
#pragma once

#include <cstdint>

namespace bpftime::handlers {

inline constexpr const char *JSON_FORMAT_NAME = "bpftime-registry";
// 2: maps carry "frozen" (BPF_MAP_FREEZE).
inline constexpr uint32_t JSON_FORMAT_VERSION = 2;

} // namespace bpftime::handlers
