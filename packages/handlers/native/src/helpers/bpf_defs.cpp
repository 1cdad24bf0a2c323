// bpf_defs.cpp: the kernel's names by number: map, program and attach types
// from the tables generated from include/uapi/linux/bpf.h (bpf_uapi.hpp of
// @bpftime/common); helper names from the helper prototypes and the vm's
// list of kernel helper ids.
#include <bpftime/handlers/bpf_defs.hpp>
#include <bpftime/handlers/helpers.hpp>

#include <string>

namespace bpftime::handlers {

std::string_view map_type_name(uint32_t type) noexcept
{
	return uapi::name_of(uapi::bpf_map_type_names, type);
}
std::string_view prog_type_name(uint32_t type) noexcept
{
	return uapi::name_of(uapi::bpf_prog_type_names, type);
}
std::string_view attach_type_name(uint32_t type) noexcept
{
	return uapi::name_of(uapi::bpf_attach_type_names, type);
}
std::string_view helper_name(uint32_t id) noexcept
{
	if (const vm::helper_proto *p = find_helper(id))
		return p->name;
	return vm::kernel_helper_name(id);
}
std::optional<uint32_t> map_type_from_name(std::string_view name) noexcept
{
	return uapi::value_of(uapi::bpf_map_type_names, name);
}
std::optional<uint32_t> prog_type_from_name(std::string_view name) noexcept
{
	return uapi::value_of(uapi::bpf_prog_type_names, name);
}
std::optional<uint32_t> attach_type_from_name(std::string_view name) noexcept
{
	return uapi::value_of(uapi::bpf_attach_type_names, name);
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
