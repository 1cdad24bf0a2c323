// fields.hpp: the one field list of each handler kind, in the style of
// BPFTIME_VM_OPCODES (vm/opcodes.hpp) and the kernel's BPF_INSN_MAP.
//
// Each BPFTIME_<KIND>_FIELDS(X) calls X once per field of the kind's plain
// spec (registry.hpp), in the order of the JSON document (json.hpp):
//
//   X(member, shared, json_key, js_key, codec, role)
//
//   member    the field of the spec: map_spec::key_size
//   shared    the field of the handler in the segment (handler.hpp), as a
//             member path: attr.key_size
//   json_key  its key in the registry's JSON document: "key_size"
//   js_key    its key in the TypeScript API's descriptors and in the spec
//             objects the binding reads: "keySize"
//   codec     how the value is written outside C++ (field_codec below)
//   role      when the field is copied (field_role below)
//
// Everything that moves a field expands these lists: the copy into the
// segment on create and out of it on describe (registry.cpp), the JSON
// reader and writer (json_io.cpp), the binding's conversions between JS
// objects and specs and the key lists it exports, which a test compares with
// the TypeScript descriptor types (test/fields.test.ts). A field added here
// and to the structs is carried everywhere; one missing from a struct does
// not compile.
//
// BPFTIME_HANDLER_KINDS(X) lists the kinds: X(kind, spec, handler, FIELDS).
//
// This header is macros and empty tag types only: it names the structs of
// registry.hpp and handler.hpp but includes neither.
#pragma once

namespace bpftime::handlers {

// How a field's value is written in JSON and in JavaScript. The C++ copy
// between spec and handler depends only on the two members' types.
namespace field_codec {
// JSON number, JS number; [0, 2^32).
struct u32 {};
// A handler id: JSON number or null, JS number or undefined; NO_ID is the
// null/undefined.
struct id {};
// JSON decimal string (JSON.parse would round past 2^53), JS bigint.
struct u64 {};
// JSON number in [-1, INT32_MAX], JS number (any i32).
struct i32 {};
// JSON and JS boolean.
struct flag {};
// A boolean the registry keeps in a std::atomic_ref'd uint32_t.
struct atomic_flag {};
// JSON and JS string.
struct string {};
// An object name of at most 15 bytes (BPF_OBJ_NAME_LEN), a char[16] in the
// segment; JSON and JS string.
struct obj_name {};
// Kernel enums: JSON the kernel's name ("BPF_MAP_TYPE_HASH") or, where it
// has none, the number; JS the number.
struct map_type {};
struct prog_type {};
struct attach_type {};
// perf_event_type: JSON and JS its name (perf_event_type_name).
struct perf_type {};
// Bytes: JSON lower-case hex, JS Buffer.
struct bytes {};
// Instructions: as bytes, 8 per instruction.
struct insns {};
// A list of handler ids: JSON and JS array of numbers.
struct id_list {};
} // namespace field_codec

// When a field is copied.
namespace field_role {
// Given on create (absent in a JS spec: an error), described, in JSON.
struct required {};
// Given on create (absent in a JS spec: the spec's default), described,
// in JSON.
struct optional {};
// Changed after create by an operation of the handler (map freeze):
// ignored on create, described, in JSON (import applies it after the
// map's contents).
struct state {};
// Computed by the registry on create (a prog's map ids): described only.
struct derived {};
} // namespace field_role

// clang-format off
#define BPFTIME_MAP_FIELDS(X)                                                                         \
	X(name,                      attr.name,                      "name",                      "name",                  obj_name,    optional) \
	X(type,                      attr.map_type,                  "type",                      "type",                  map_type,    required) \
	X(key_size,                  attr.key_size,                  "key_size",                  "keySize",               u32,         required) \
	X(value_size,                attr.value_size,                "value_size",                "valueSize",             u32,         required) \
	X(max_entries,               attr.max_entries,               "max_entries",               "maxEntries",            u32,         required) \
	X(flags,                     attr.map_flags,                 "map_flags",                 "flags",                 u32,         optional) \
	X(inner_map_id,              attr.inner_map_id,              "inner_map_id",              "innerMapId",            id,          optional) \
	X(btf_id,                    attr.btf_id,                    "btf_id",                    "btfId",                 id,          optional) \
	X(btf_key_type_id,           attr.btf_key_type_id,           "btf_key_type_id",           "btfKeyTypeId",          u32,         optional) \
	X(btf_value_type_id,         attr.btf_value_type_id,         "btf_value_type_id",         "btfValueTypeId",        u32,         optional) \
	X(btf_vmlinux_value_type_id, attr.btf_vmlinux_value_type_id, "btf_vmlinux_value_type_id", "btfVmlinuxValueTypeId", u32,         optional) \
	X(numa_node,                 attr.numa_node,                 "numa_node",                 "numaNode",              u32,         optional) \
	X(ifindex,                   attr.map_ifindex,               "map_ifindex",               "ifindex",               u32,         optional) \
	X(map_extra,                 attr.map_extra,                 "map_extra",                 "mapExtra",              u64,         optional) \
	X(frozen,                    frozen,                         "frozen",                    "frozen",                atomic_flag, state)

#define BPFTIME_PROG_FIELDS(X)                                                                        \
	X(name,                 name,                 "name",                 "name",               obj_name,    optional) \
	X(type,                 prog_type,            "type",                 "type",               prog_type,   required) \
	X(expected_attach_type, expected_attach_type, "expected_attach_type", "expectedAttachType", attach_type, optional) \
	X(attach_btf_id,        attach_btf_id,        "attach_btf_id",        "attachBtfId",        u32,         optional) \
	X(prog_flags,           prog_flags,           "prog_flags",           "progFlags",          u32,         optional) \
	X(kern_version,         kern_version,         "kern_version",         "kernVersion",        u32,         optional) \
	X(license,              license,              "license",              "license",            string,      optional) \
	X(insns,                insns,                "insns",                "insns",              insns,       required) \
	X(fd_array,             fd_array,             "fd_array",             "fdArray",            id_list,     optional) \
	X(map_ids,              map_ids,              "map_ids",              "mapIds",             id_list,     derived)

#define BPFTIME_LINK_FIELDS(X)                                                                        \
	X(prog_id,     prog_id,     "prog_id",     "progId",     u32,         required) \
	X(target_id,   target_id,   "target_id",   "targetId",   id,          optional) \
	X(attach_type, attach_type, "attach_type", "attachType", attach_type, optional) \
	X(flags,       flags,       "flags",       "flags",      u32,         optional) \
	X(cookie,      cookie,      "cookie",      "cookie",     u64,         optional) \
	X(faults,      faults,      "faults",      "faults",     u64,         derived)

#define BPFTIME_PERF_EVENT_FIELDS(X)                                                                  \
	X(type,           type,           "type",           "type",         perf_type, required) \
	X(path,           path,           "path",           "path",         string,    optional) \
	X(offset,         offset,         "offset",         "offset",       u64,       optional) \
	X(symbol,         symbol,         "symbol",         "symbol",       string,    optional) \
	X(pid,            pid,            "pid",            "pid",          i32,       optional) \
	X(ref_ctr_offset, ref_ctr_offset, "ref_ctr_offset", "refCtrOffset", u64,       optional) \
	X(syscall_id,     syscall_id,     "syscall_id",     "syscallId",    i32,       optional) \
	X(syscall_exit,   syscall_exit,   "syscall_exit",   "syscallExit",  flag,      optional) \
	X(custom_name,    custom_name,    "custom_name",    "customName",   string,    optional) \
	X(custom_config,  custom_config,  "custom_config",  "customConfig", u64,       optional)

#define BPFTIME_BTF_FIELDS(X)                                                                         \
	X(data, data, "data", "data", bytes, required)

#define BPFTIME_HANDLER_KINDS(X)                                               \
	X(map,        map_spec,        map_handler,        BPFTIME_MAP_FIELDS)        \
	X(prog,       prog_spec,       prog_handler,       BPFTIME_PROG_FIELDS)       \
	X(link,       link_spec,       link_handler,       BPFTIME_LINK_FIELDS)       \
	X(perf_event, perf_event_spec, perf_event_handler, BPFTIME_PERF_EVENT_FIELDS) \
	X(btf,        btf_spec,        btf_handler,        BPFTIME_BTF_FIELDS)
// clang-format on

} // namespace bpftime::handlers
