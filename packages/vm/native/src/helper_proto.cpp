// helper_proto.cpp: the kernel's helper names by id (the tables generated
// from linux/bpf.h), and the written-argument facts derived from a prototype
// (helper_proto.hpp).
#include <bpftime/vm/helper_proto.hpp>

namespace bpftime::vm {
std::string_view kernel_helper_name(uint32_t id) noexcept
{
	return uapi::name_of(uapi::bpf_func_id_names, id);
}

std::optional<uint32_t> kernel_helper_id(std::string_view name) noexcept
{
	if (name.substr(0, 4) == "bpf_")
		name.remove_prefix(4);
	return uapi::value_of(uapi::bpf_func_id_names, name);
}

uint16_t written_args(const helper_proto &p) noexcept
{
	uint16_t out = 0;
	for (unsigned r = 1; r <= 5; r++) {
		const bpf_arg_type a = p.args[r - 1];
		bool written = (a & MEM_WRITE) != 0;
		switch (base_type(a)) {
		case ARG_PTR_TO_MEM:
			written |= (a & MEM_RDONLY) == 0;
			break;
		case ARG_PTR_TO_MAP_VALUE:
			written |= (a & MEM_UNINIT) != 0;
			break;
		case ARG_PTR_TO_LONG:
		case ARG_PTR_TO_STACK:
		case ARG_PTR_TO_RINGBUF_MEM:
			written = true;
			break;
		default:
			break;
		}
		if (written)
			out |= uint16_t(1u << r);
	}
	return out;
}

} // namespace bpftime::vm
