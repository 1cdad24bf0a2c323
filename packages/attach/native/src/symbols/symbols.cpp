// symbols.cpp: modules of this process and the addresses of their
// functions (see symbols.hpp).
#include <bpftime/attach/symbols.hpp>

#include "elf_file.hpp"
#include "proc_maps.hpp"

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstring>
#include <dlfcn.h>
#include <sys/stat.h>
#include <unistd.h>

namespace bpftime::attach {
namespace {

using detail::elf_file;
using detail::mapping;

std::string hex(uint64_t v)
{
	char b[24];
	snprintf(b, sizeof(b), "0x%" PRIx64, v);
	return b;
}

std::string base_name(const std::string &p)
{
	auto s = p.rfind('/');
	return s == std::string::npos ? p : p.substr(s + 1);
}

// Builds the modules from the mappings: one per (device, inode) of a
// file that has an executable mapping.
std::vector<module_info> group(const std::vector<mapping> &maps)
{
	struct stat exe;
	bool have_exe = stat("/proc/self/exe", &exe) == 0;
	std::vector<module_info> out;
	for (const mapping &m : maps) {
		if (m.path.empty() || m.path[0] != '/' || m.inode == 0)
			continue;
		module_info *mod = nullptr;
		for (module_info &x : out)
			if (x.device == m.device && x.inode == m.inode)
				mod = &x;
		if (!mod) {
			out.push_back({});
			mod = &out.back();
			mod->path = m.path;
			mod->device = m.device;
			mod->inode = m.inode;
			mod->start = m.start;
			mod->end = m.end;
			mod->main_executable = have_exe && uint64_t(exe.st_dev) == m.device &&
					       uint64_t(exe.st_ino) == m.inode;
			mod->bias = UINT64_MAX; // filled below
		}
		mod->start = std::min(mod->start, m.start);
		mod->end = std::max(mod->end, m.end);
	}
	std::vector<module_info> kept;
	for (module_info &mod : out) {
		bool exec = false;
		for (const mapping &m : maps)
			if (m.device == mod.device && m.inode == mod.inode && m.exec)
				exec = true;
		if (!exec)
			continue;
		// bias: the mapping of the first loadable segment's page.
		auto elf = detail::load_elf(mod.path);
		if (!elf || (*elf)->loads.empty())
			continue;
		const auto &first = (*elf)->loads.front();
		for (const mapping &m : maps) {
			if (m.device == mod.device && m.inode == mod.inode &&
			    m.offset == (first.offset & ~0xfffULL)) {
				mod.bias = m.start - (first.vaddr & ~0xfffULL);
				break;
			}
		}
		if (mod.bias == UINT64_MAX)
			continue;
		kept.push_back(std::move(mod));
	}
	std::stable_partition(kept.begin(), kept.end(),
			      [](const module_info &m) { return m.main_executable; });
	return kept;
}

result<module_info> pick(const std::vector<module_info> &mods, std::string_view name)
{
	if (name.empty()) {
		for (const module_info &m : mods)
			if (m.main_executable)
				return m;
		return fail(ENOENT, "the main executable is not among the loaded modules");
	}
	std::string n(name);
	if (n.find('/') != std::string::npos) {
		struct stat st;
		if (stat(n.c_str(), &st) != 0)
			return fail(ENOENT, "module '" + n + "': " + strerror(errno));
		for (const module_info &m : mods)
			if (m.device == uint64_t(st.st_dev) && m.inode == uint64_t(st.st_ino))
				return m;
		return fail(ENOENT, "module '" + n + "' is not loaded in this process");
	}
	for (const module_info &m : mods)
		if (base_name(m.path) == n)
			return m;
	return fail(ENOENT, "module '" + n + "' is not loaded in this process");
}

void fill_symbol(location &loc, const elf_file &elf)
{
	const uint64_t v = loc.address - loc.module.bias;
	loc.file_offset = elf.offset_of_vaddr(v);
	const detail::elf_symbol *s = elf.function_at(v);
	if (!s)
		return;
	loc.symbol = s->name;
	loc.symbol_address = loc.module.bias + s->value;
	loc.symbol_size = s->size;
	// GCC moves unlikely code of f into "f.cold"; it jumps back into f.
	const std::string cold = s->name + ".cold";
	for (const detail::elf_symbol &c : elf.functions)
		if (c.name == cold || c.name.rfind(cold + ".", 0) == 0)
			loc.related_ranges.emplace_back(loc.module.bias + c.value,
							loc.module.bias + c.value + c.size);
}

} // namespace

result<std::vector<module_info>> loaded_modules()
{
	auto maps = detail::read_maps();
	if (!maps)
		return std::move(maps).error();
	return group(*maps);
}

result<module_info> find_module(std::string_view name)
{
	auto mods = loaded_modules();
	if (!mods)
		return std::move(mods).error();
	return pick(*mods, name);
}

result<location> resolve(const probe_target &target)
{
	auto mod = find_module(target.module);
	if (!mod)
		return std::move(mod).error();
	auto elf = detail::load_elf(mod->path);
	if (!elf)
		return std::move(elf).error();
	const std::string mod_name = target.module.empty() ? mod->path : target.module;
	location loc;
	loc.module = *mod;
	if (target.symbol.empty()) {
		auto v = (*elf)->vaddr_of_offset(target.offset);
		if (!v)
			return std::move(v).error();
		const detail::elf_segment *seg = (*elf)->segment_of(*v);
		if (!seg || !seg->exec)
			return fail(EINVAL, "module '" + mod_name + "': offset " +
						    hex(target.offset) +
						    " is not in an executable segment");
		loc.address = mod->bias + *v;
		fill_symbol(loc, **elf);
		return loc;
	}
	// Every function of that name; local functions of the same name in
	// different files are ambiguous, aliases of one address are not.
	const detail::elf_symbol *found = nullptr;
	for (bool symtab : { true, false }) {
		for (const detail::elf_symbol &s : (*elf)->functions) {
			if (s.from_symtab != symtab || s.name != target.symbol)
				continue;
			if (found && found->value != s.value)
				return fail(EINVAL, "module '" + mod_name + "': function '" +
							    target.symbol +
							    "' names several addresses (" +
							    hex(found->value) + ", " + hex(s.value) +
							    "); attach by file offset");
			found = &s;
		}
		if (found)
			break;
	}
	if (!found)
		return fail(ENOENT, "module '" + mod_name + "': no function '" +
					    target.symbol + "'");
	uint64_t start = mod->bias + found->value;
	if (found->ifunc) {
		// The symbol is the resolver; the dynamic loader knows which
		// implementation it picked.
		void *h = dlopen(mod->main_executable ? nullptr : mod->path.c_str(),
				 RTLD_LAZY | RTLD_NOLOAD);
		void *p = h ? dlsym(h, target.symbol.c_str()) : nullptr;
		if (h)
			dlclose(h);
		if (!p)
			return fail(ENOENT, "module '" + mod_name + "': '" + target.symbol +
						    "' is an indirect function (IFUNC) the "
						    "dynamic loader does not resolve");
		start = reinterpret_cast<uint64_t>(p);
		auto where = locate(start);
		if (!where)
			return std::move(where).error();
		if (target.offset && where->symbol_size &&
		    target.offset >= where->symbol_size)
			return fail(EINVAL, "module '" + mod_name + "': offset " +
						    hex(target.offset) + " is past the end of '" +
						    target.symbol + "'");
		if (target.offset)
			return locate(start + target.offset);
		return where;
	}
	if (target.offset && found->size && target.offset >= found->size)
		return fail(EINVAL, "module '" + mod_name + "': offset " + hex(target.offset) +
					    " is past the end of '" + target.symbol + "' (" +
					    std::to_string(found->size) + " bytes)");
	loc.address = start + target.offset;
	fill_symbol(loc, **elf);
	if (loc.symbol != target.symbol) {
		// An alias: report the name the caller used.
		loc.symbol = target.symbol;
		loc.symbol_address = start;
		loc.symbol_size = found->size;
	}
	return loc;
}

result<location> locate(uint64_t address)
{
	auto maps = detail::read_maps();
	if (!maps)
		return std::move(maps).error();
	const mapping *m = detail::find_mapping(*maps, address);
	if (!m || m->inode == 0)
		return fail(ENOENT, "no loaded module maps " + hex(address));
	for (const module_info &mod : group(*maps)) {
		if (mod.device != m->device || mod.inode != m->inode)
			continue;
		auto elf = detail::load_elf(mod.path);
		if (!elf)
			return std::move(elf).error();
		location loc;
		loc.address = address;
		loc.module = mod;
		fill_symbol(loc, **elf);
		return loc;
	}
	return fail(ENOENT, "no loaded module maps " + hex(address));
}

} // namespace bpftime::attach
