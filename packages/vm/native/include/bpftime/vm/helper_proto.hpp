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
// Ids and names are the kernel's enum bpf_func_id (BPF_FUNC_<name>), as
// generated from linux/bpf.h; bpftime's own helpers take ids above the
// kernel's.
#pragma once

#include <bpftime/common/bpf_uapi.hpp>

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

namespace bpftime::vm {

using helper_fn = uint64_t (*)(uint64_t, uint64_t, uint64_t, uint64_t,
			       uint64_t);

// X(name, id) for every helper of the kernel's enum bpf_func_id, from the
// header generated from linux/bpf.h (@bpftime/common, bpf_uapi.hpp).
#define BPFTIME_VM_HELPER_IDS(X) BPFTIME_UAPI_HELPER_IDS(X)

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
