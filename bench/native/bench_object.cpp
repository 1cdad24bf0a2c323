// bench_object.cpp: reading a bench program's BPF object (see the header).
#include "bench_object.hpp"

#include <elf.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <new>

namespace bench {

using bpftime::fail;
using bpftime::result;
using bpftime::vm::insn;

namespace {

constexpr uint8_t LDDW = bpftime::vm::BPF_LD | bpftime::vm::BPF_IMM |
			 bpftime::vm::BPF_DW;

bool is_data_section(const Elf64_Shdr &s, const std::string &name)
{
	if (!(s.sh_flags & SHF_ALLOC) || (s.sh_flags & SHF_EXECINSTR))
		return false;
	return name == ".bss" || name == ".data" || name.starts_with(".rodata") ||
	       name.starts_with(".data.") || name.starts_with(".bss.");
}

} // namespace

result<bench_object> read_bench_object(const std::string &path)
{
	std::ifstream in(path, std::ios::binary);
	if (!in)
		return fail(ENOENT, path + ": cannot open");
	const std::vector<uint8_t> f{ std::istreambuf_iterator<char>(in),
				      std::istreambuf_iterator<char>() };
	const std::string what = path + ": ";
	if (f.size() < sizeof(Elf64_Ehdr))
		return fail(EINVAL, what + "not an ELF file");
	Elf64_Ehdr eh;
	std::memcpy(&eh, f.data(), sizeof eh);
	if (std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
	    eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_machine != EM_BPF)
		return fail(EINVAL, what + "not a 64-bit BPF ELF object");
	if (eh.e_shoff + uint64_t(eh.e_shnum) * sizeof(Elf64_Shdr) > f.size() ||
	    eh.e_shstrndx >= eh.e_shnum)
		return fail(EINVAL, what + "truncated section table");

	std::vector<Elf64_Shdr> sh(eh.e_shnum);
	std::memcpy(sh.data(), f.data() + eh.e_shoff, sh.size() * sizeof(Elf64_Shdr));
	for (const Elf64_Shdr &s : sh)
		if (s.sh_type != SHT_NOBITS && s.sh_offset + s.sh_size > f.size())
			return fail(EINVAL, what + "section past the end of the file");
	auto str = [&](uint32_t strtab, uint32_t off) -> std::string {
		const Elf64_Shdr &s = sh[strtab];
		if (off >= s.sh_size)
			return {};
		const char *p = reinterpret_cast<const char *>(f.data() + s.sh_offset + off);
		return std::string(p, strnlen(p, s.sh_size - off));
	};
	auto sec_name = [&](uint32_t i) { return str(eh.e_shstrndx, sh[i].sh_name); };

	bench_object obj;
	obj.path = path;
	uint32_t prog = 0, symtab = 0;
	for (uint32_t i = 1; i < sh.size(); i++) {
		const std::string name = sec_name(i);
		if (name == "socket" && (sh[i].sh_flags & SHF_EXECINSTR))
			prog = i;
		else if (sh[i].sh_type == SHT_SYMTAB)
			symtab = i;
		else if (is_data_section(sh[i], name)) {
			data_section d;
			d.shndx = i;
			d.name = name;
			d.size = sh[i].sh_size;
			if (sh[i].sh_type != SHT_NOBITS)
				d.init.assign(f.begin() + sh[i].sh_offset,
					      f.begin() + sh[i].sh_offset + sh[i].sh_size);
			obj.sections.push_back(std::move(d));
		}
	}
	if (!prog)
		return fail(EINVAL, what + "no executable \"socket\" section (bench.h's BENCH_PROGRAM)");
	if (!symtab)
		return fail(EINVAL, what + "no symbol table");
	if (sh[prog].sh_size % sizeof(insn) != 0)
		return fail(EINVAL, what + "\"socket\" is not a whole number of instructions");
	obj.insns.resize(sh[prog].sh_size / sizeof(insn));
	std::memcpy(obj.insns.data(), f.data() + sh[prog].sh_offset, sh[prog].sh_size);

	const Elf64_Shdr &st = sh[symtab];
	const size_t nsyms = st.sh_size / sizeof(Elf64_Sym);
	auto sym = [&](size_t i) {
		Elf64_Sym s;
		std::memcpy(&s, f.data() + st.sh_offset + i * sizeof s, sizeof s);
		return s;
	};
	auto data_of = [&](uint32_t shndx) -> const data_section * {
		for (const data_section &d : obj.sections)
			if (d.shndx == shndx)
				return &d;
		return nullptr;
	};
	for (size_t i = 1; i < nsyms; i++) {
		const Elf64_Sym s = sym(i);
		if (ELF64_ST_TYPE(s.st_info) == STT_OBJECT && data_of(s.st_shndx))
			obj.symbols.push_back({ str(st.sh_link, s.st_name), s.st_shndx,
						s.st_value, s.st_size });
	}

	// The relocations of the program section, as libbpf applies them to
	// global data: offset = imm already in the lddw + the symbol's value
	// (a section symbol for statics, the variable for globals).
	for (uint32_t r = 1; r < sh.size(); r++) {
		if (sh[r].sh_type != SHT_REL || sh[r].sh_info != prog)
			continue;
		const size_t nrel = sh[r].sh_size / sizeof(Elf64_Rel);
		for (size_t k = 0; k < nrel; k++) {
			Elf64_Rel rel;
			std::memcpy(&rel, f.data() + sh[r].sh_offset + k * sizeof rel, sizeof rel);
			const uint64_t pc = rel.r_offset / sizeof(insn);
			const std::string where = what + "relocation at insn " + std::to_string(pc);
			if (rel.r_offset % sizeof(insn) != 0 || pc + 1 >= obj.insns.size())
				return fail(EINVAL, where + ": not at an instruction");
			if (ELF64_R_SYM(rel.r_info) >= nsyms)
				return fail(EINVAL, where + ": bad symbol index");
			const Elf64_Sym s = sym(ELF64_R_SYM(rel.r_info));
			insn &lo = obj.insns[pc];
			// R_BPF_64_64 (elf.h): a lddw's 64-bit immediate.
			if (ELF64_R_TYPE(rel.r_info) != R_BPF_64_64 || lo.code != LDDW)
				return fail(EINVAL, where + ": only lddw relocations are supported "
							    "(a call to a sub-program? bench programs inline "
							    "everything)");
			if (!data_of(s.st_shndx))
				return fail(EINVAL, where + ": refers to section " +
							    sec_name(s.st_shndx) +
							    ", not global data");
			const int64_t off = int64_t(lo.imm) + int64_t(s.st_value);
			lo.src_reg = bpftime::vm::BPF_PSEUDO_MAP_VALUE;
			lo.imm = static_cast<int32_t>(s.st_shndx);
			obj.insns[pc + 1].imm = static_cast<int32_t>(off);
		}
	}
	return obj;
}

void data_image::deleter::operator()(uint8_t *p) const noexcept
{
	std::free(p);
}

data_image::data_image(const bench_object &obj) : obj_(obj)
{
	for (const data_section &d : obj.sections) {
		size_ = (size_ + 63) / 64 * 64;
		offsets_.push_back(size_);
		size_ += d.size;
	}
	const uint64_t alloc = std::max<uint64_t>((size_ + 4095) / 4096 * 4096, 4096);
	buf_.reset(static_cast<uint8_t *>(std::aligned_alloc(4096, alloc)));
	if (!buf_)
		throw std::bad_alloc();
	std::memset(buf_.get(), 0, alloc);
	for (size_t i = 0; i < obj.sections.size(); i++)
		if (!obj.sections[i].init.empty())
			std::memcpy(buf_.get() + offsets_[i], obj.sections[i].init.data(),
				    obj.sections[i].init.size());
}

uint8_t *data_image::section(uint32_t shndx) const noexcept
{
	for (size_t i = 0; i < obj_.sections.size(); i++)
		if (obj_.sections[i].shndx == shndx)
			return buf_.get() + offsets_[i];
	return nullptr;
}

bpftime::status data_image::fill(const std::string &symbol, std::span<const uint8_t> bytes)
{
	for (const data_symbol &s : obj_.symbols) {
		if (s.name != symbol)
			continue;
		if (bytes.size() > s.size)
			return fail(EINVAL, obj_.path + ": global '" + symbol + "' holds " +
						    std::to_string(s.size) + " bytes, not " +
						    std::to_string(bytes.size()));
		std::memcpy(section(s.shndx) + s.offset, bytes.data(), bytes.size());
		return {};
	}
	return fail(EINVAL, obj_.path + ": no global '" + symbol + "'");
}

bpftime::vm::lddw_resolver data_image::resolver() const
{
	return [this](const bpftime::vm::lddw_request &r) -> result<uint64_t> {
		if (r.kind != bpftime::vm::BPF_PSEUDO_MAP_VALUE)
			return fail(EINVAL, "only global data (BPF_PSEUDO_MAP_VALUE) is resolved");
		for (size_t i = 0; i < obj_.sections.size(); i++) {
			const data_section &d = obj_.sections[i];
			if (d.shndx != uint32_t(r.imm))
				continue;
			if (r.next_imm < 0 || uint64_t(r.next_imm) > d.size)
				return fail(EINVAL, "offset " + std::to_string(r.next_imm) +
							    " outside " + d.name);
			return reinterpret_cast<uint64_t>(buf_.get() + offsets_[i] +
							  uint64_t(r.next_imm));
		}
		return fail(EINVAL, "no global-data section #" + std::to_string(r.imm));
	};
}

} // namespace bench
