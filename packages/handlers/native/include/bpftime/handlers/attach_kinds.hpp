// attach_kinds.hpp: the one vocabulary of attach points, for every package.
//
// Three lists, each an X-macro so that the enum, its names and every table
// built from it come from one line per entry (as the vm's BPFTIME_VM_OPCODES):
//
//   BPFTIME_PERF_EVENT_TYPES   what the registry stores in
//                              perf_event_handler::type: the value is part of
//                              the segment layout, the name of the JSON
//                              format and of the TypeScript API ("uprobe",
//                              "uretprobe", "syscall_tracepoint", "custom").
//                              Append only; never renumber or rename.
//   BPFTIME_HOOK_FAMILIES      the mechanisms that hook a kind in a target
//                              process: the agent's hooks/<family>.cpp and
//                              attach's <family>/ folder.
//   BPFTIME_ATTACH_KINDS       what a link to a perf event becomes in a target
//                              process, and the family that hooks it.
//                              attach_kind_of() is the one rule that decides
//                              it; the agent dispatches on the family.
//
// The TypeScript mirror is src/attach-kinds.ts (package export
// "@bpftime/handlers/attach-kinds"); the binding exports these lists and
// test/attach-kinds.test.ts checks that the two agree. The system call numbers
// of syscall tracepoints are syscalls_x86_64.hpp, generated with its
// TypeScript twin by scripts/gen-syscalls.mjs.
//
// Header-only and free of the segment's types, so that a package that only
// names kinds (the agent's hook table, a tool) needs nothing else of handlers.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

// X(id, value, name)
#define BPFTIME_PERF_EVENT_TYPES(X)                                            \
	X(uprobe, 0, "uprobe")                                                 \
	X(uretprobe, 1, "uretprobe")                                           \
	X(syscall_tracepoint, 2, "syscall_tracepoint")                         \
	X(custom, 3, "custom")

// X(id, name)
#define BPFTIME_HOOK_FAMILIES(X)                                               \
	/* no user-space hook: the agent skips such links */                   \
	X(none, "none")                                                        \
	/* a probe on an instruction of a loaded module (attach's uprobe/) */  \
	X(uprobe, "uprobe")                                                    \
	/* system call entry and exit (attach's syscall/) */                   \
	X(syscall, "syscall")

// X(id, name, family)
#define BPFTIME_ATTACH_KINDS(X)                                                \
	/* uprobe event: the program runs before the probed instruction */     \
	X(uprobe, "uprobe", uprobe)                                            \
	/* uretprobe event: the program runs when the function returns */      \
	X(uretprobe, "uretprobe", uprobe)                                      \
	/* uprobe event whose program calls bpf_override_return: the function  \
	   is skipped when the program asks, with the value it chose */        \
	X(override, "override", uprobe)                                        \
	/* uprobe event with a USDT semaphore (ref_ctr_offset != 0): an entry  \
	   probe on the SDT note's nop */                                      \
	X(usdt, "usdt", uprobe)                                                \
	/* syscall_tracepoint event for one system call (syscalls/sys_enter_   \
	   <name>, sys_exit_<name>) */                                         \
	X(syscall_tracepoint, "syscall_tracepoint", syscall)                   \
	/* syscall_tracepoint event for every system call (raw tracepoints     \
	   sys_enter, sys_exit): syscall_id -1 */                              \
	X(raw_syscall_tracepoint, "raw_syscall_tracepoint", syscall)           \
	/* custom event: a name and a config for an extension to interpret */  \
	X(custom, "custom", none)

namespace bpftime::handlers {

enum class perf_event_type : uint32_t {
#define BPFTIME_X(id, value, name) id = value,
	BPFTIME_PERF_EVENT_TYPES(BPFTIME_X)
#undef BPFTIME_X
};

enum class hook_family : uint8_t {
#define BPFTIME_X(id, name) id,
	BPFTIME_HOOK_FAMILIES(BPFTIME_X)
#undef BPFTIME_X
};

enum class attach_kind : uint8_t {
#define BPFTIME_X(id, name, family) id,
	BPFTIME_ATTACH_KINDS(BPFTIME_X)
#undef BPFTIME_X
};

// The names of perf_event_type in JSON documents and in the TypeScript API;
// "unknown" for a value outside the enum (a segment written by a newer
// version). parse_perf_event_type() is the inverse and gives nullopt for any
// other name.
constexpr const char *perf_event_type_name(perf_event_type t) noexcept
{
	switch (t) {
#define BPFTIME_X(id, value, name)                                             \
	case perf_event_type::id:                                              \
		return name;
		BPFTIME_PERF_EVENT_TYPES(BPFTIME_X)
#undef BPFTIME_X
	}
	return "unknown";
}

constexpr std::optional<perf_event_type>
parse_perf_event_type(std::string_view name) noexcept
{
#define BPFTIME_X(id, value, text)                                             \
	if (name == text)                                                      \
		return perf_event_type::id;
	BPFTIME_PERF_EVENT_TYPES(BPFTIME_X)
#undef BPFTIME_X
	return std::nullopt;
}

constexpr const char *hook_family_name(hook_family f) noexcept
{
	switch (f) {
#define BPFTIME_X(id, name)                                                    \
	case hook_family::id:                                                  \
		return name;
		BPFTIME_HOOK_FAMILIES(BPFTIME_X)
#undef BPFTIME_X
	}
	return "unknown";
}

constexpr const char *attach_kind_name(attach_kind k) noexcept
{
	switch (k) {
#define BPFTIME_X(id, name, family)                                            \
	case attach_kind::id:                                                  \
		return name;
		BPFTIME_ATTACH_KINDS(BPFTIME_X)
#undef BPFTIME_X
	}
	return "unknown";
}

constexpr hook_family family_of(attach_kind k) noexcept
{
	switch (k) {
#define BPFTIME_X(id, name, family)                                            \
	case attach_kind::id:                                                  \
		return hook_family::family;
		BPFTIME_ATTACH_KINDS(BPFTIME_X)
#undef BPFTIME_X
	}
	return hook_family::none;
}

// The number of entries of each list (their enums count from 0).
#define BPFTIME_X(...) +1
inline constexpr unsigned PERF_EVENT_TYPE_COUNT =
	0 BPFTIME_PERF_EVENT_TYPES(BPFTIME_X);
inline constexpr unsigned HOOK_FAMILY_COUNT = 0 BPFTIME_HOOK_FAMILIES(BPFTIME_X);
inline constexpr unsigned ATTACH_KIND_COUNT = 0 BPFTIME_ATTACH_KINDS(BPFTIME_X);
#undef BPFTIME_X

// What a link to a perf event of type `t` becomes in a target process: the
// one rule, used by the agent when it attaches a link. `syscall_id` and
// `ref_ctr_offset` are the event's; `calls_override_return` says whether the
// linked program calls bpf_override_return (the kernel refuses such a
// program on a uprobe; bpftime makes it an override probe instead, which
// takes precedence over a USDT semaphore). nullopt: a value outside
// perf_event_type (a segment written by a newer version).
constexpr std::optional<attach_kind>
attach_kind_of(perf_event_type t, int32_t syscall_id, uint64_t ref_ctr_offset,
	       bool calls_override_return) noexcept
{
	switch (t) {
	case perf_event_type::uprobe:
		if (calls_override_return)
			return attach_kind::override;
		return ref_ctr_offset ? attach_kind::usdt : attach_kind::uprobe;
	case perf_event_type::uretprobe:
		return attach_kind::uretprobe;
	case perf_event_type::syscall_tracepoint:
		return syscall_id == -1 ? attach_kind::raw_syscall_tracepoint
					: attach_kind::syscall_tracepoint;
	case perf_event_type::custom:
		return attach_kind::custom;
	}
	return std::nullopt;
}

// The rule, stated as the compiler checks it.
static_assert(attach_kind_of(perf_event_type::uprobe, -1, 0, false) ==
	      attach_kind::uprobe);
static_assert(attach_kind_of(perf_event_type::uprobe, -1, 0x40, false) ==
	      attach_kind::usdt);
static_assert(attach_kind_of(perf_event_type::uprobe, -1, 0x40, true) ==
	      attach_kind::override);
static_assert(attach_kind_of(perf_event_type::uretprobe, -1, 0, true) ==
	      attach_kind::uretprobe);
static_assert(attach_kind_of(perf_event_type::syscall_tracepoint, 257, 0,
			     false) == attach_kind::syscall_tracepoint);
static_assert(attach_kind_of(perf_event_type::syscall_tracepoint, -1, 0,
			     false) == attach_kind::raw_syscall_tracepoint);
static_assert(attach_kind_of(perf_event_type(7), -1, 0, false) == std::nullopt);
static_assert(family_of(attach_kind::override) == hook_family::uprobe);
static_assert(family_of(attach_kind::raw_syscall_tracepoint) ==
	      hook_family::syscall);
static_assert(parse_perf_event_type("syscall_tracepoint") ==
	      perf_event_type::syscall_tracepoint);
static_assert(!parse_perf_event_type("kprobe"));

} // namespace bpftime::handlers
