// aot_loader.cpp: runs an object that `bpftime aot` (the plugin's
// bpftime_llvm_aot) compiled, in a process that has no LLVM.
//
// The object is an x86-64 ELF relocatable (ET_REL) file made by LLVM with
// the small PIC code model: its code reaches its own data PC-relatively and
// everything of the process (helpers, kfuncs, map values, the core's runtime
// functions) through one table of 64-bit slots, bpftime_aot_imports, which
// this loader fills from .bpftime.imports (llvm_abi.h). It places every
// allocated section in one private mapping, executable sections first, so
// that every PC-relative displacement fits 32 bits; resolves the few
// relocation types such objects carry (R_X86_64_64, PC32, PLT32, PC64, the
// GOTPCREL family, through slots it adds); then makes the code read-only
// and executable. Symbols the object leaves undefined are refused, except
// the C library's memcpy/memmove/memset/memcmp that LLVM may call for a
// loop it recognises, reached through stubs placed beside the code.
#include "llvm_backend.hpp"

#include <elf.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <map>
#include <string>
#include <string_view>

namespace bpftime::vm::detail {
namespace {

struct elf_view {
	std::span<const uint8_t> bytes;
	const Elf64_Ehdr *eh = nullptr;
	const Elf64_Shdr *sh = nullptr;
	const char *shstr = nullptr;

	template <class T> const T *at(uint64_t off, uint64_t count = 1) const
	{
		if (off > bytes.size() || count > (bytes.size() - off) / sizeof(T))
			return nullptr;
		return reinterpret_cast<const T *>(bytes.data() + off);
	}
	std::string_view section_name(const Elf64_Shdr &s) const
	{
		return shstr ? std::string_view(shstr + s.sh_name) : std::string_view();
	}
	const Elf64_Shdr *find(std::string_view name) const
	{
		for (unsigned i = 0; i < eh->e_shnum; i++)
			if (section_name(sh[i]) == name)
				return &sh[i];
		return nullptr;
	}
};

result<elf_view> parse(std::span<const uint8_t> obj)
{
	elf_view v;
	v.bytes = obj;
	v.eh = v.at<Elf64_Ehdr>(0);
	if (!v.eh || std::memcmp(v.eh->e_ident, ELFMAG, SELFMAG) != 0)
		return fail(ENOEXEC, "aot object: not an ELF file");
	if (v.eh->e_ident[EI_CLASS] != ELFCLASS64 || v.eh->e_ident[EI_DATA] != ELFDATA2LSB ||
	    v.eh->e_type != ET_REL || v.eh->e_machine != EM_X86_64)
		return fail(ENOEXEC, "aot object: not an x86-64 ELF relocatable object");
	if (v.eh->e_shentsize != sizeof(Elf64_Shdr))
		return fail(ENOEXEC, "aot object: bad section header size");
	v.sh = v.at<Elf64_Shdr>(v.eh->e_shoff, v.eh->e_shnum);
	if (!v.sh || v.eh->e_shstrndx >= v.eh->e_shnum)
		return fail(ENOEXEC, "aot object: section headers out of the file");
	const Elf64_Shdr &ss = v.sh[v.eh->e_shstrndx];
	v.shstr = v.at<char>(ss.sh_offset, ss.sh_size);
	if (!v.shstr || ss.sh_size == 0 || v.shstr[ss.sh_size - 1] != 0)
		return fail(ENOEXEC, "aot object: bad section name table");
	for (unsigned i = 0; i < v.eh->e_shnum; i++) {
		const Elf64_Shdr &s = v.sh[i];
		if (s.sh_name >= ss.sh_size)
			return fail(ENOEXEC, "aot object: bad section name");
		if (s.sh_type != SHT_NOBITS && s.sh_type != SHT_NULL &&
		    !v.at<uint8_t>(s.sh_offset, s.sh_size))
			return fail(ENOEXEC, "aot object: section '" +
						     std::string(v.section_name(s)) +
						     "' out of the file");
	}
	return v;
}

uint64_t align_up(uint64_t v, uint64_t a)
{
	return a > 1 ? (v + a - 1) / a * a : v;
}

struct mapping {
	void *p = MAP_FAILED;
	size_t len = 0;
	~mapping()
	{
		if (p != MAP_FAILED)
			munmap(p, len);
	}
};

} // namespace

result<std::vector<insn>> aot_object_insns(std::span<const uint8_t> obj)
{
	auto v = parse(obj);
	if (!v)
		return std::move(v).error();
	const Elf64_Shdr *s = v->find(BPFTIME_LLVM_AOT_INSN_SECTION);
	if (!s || s->sh_size == 0 || s->sh_size % sizeof(insn) != 0)
		return fail(ENOEXEC, "aot object: no " BPFTIME_LLVM_AOT_INSN_SECTION
				     " section: not made by bpftime aot");
	std::vector<insn> out(s->sh_size / sizeof(insn));
	std::memcpy(out.data(), obj.data() + s->sh_offset, s->sh_size);
	return out;
}

result<std::unique_ptr<executor>> load_llvm_aot(const program &prog,
						std::span<const uint8_t> obj)
{
	auto pv = parse(obj);
	if (!pv)
		return std::move(pv).error();
	const elf_view &v = *pv;
	const unsigned n = v.eh->e_shnum;

	// Symbols.
	const Elf64_Shdr *symtab = nullptr;
	for (unsigned i = 0; i < n; i++)
		if (v.sh[i].sh_type == SHT_SYMTAB)
			symtab = &v.sh[i];
	if (!symtab || symtab->sh_link >= n || symtab->sh_entsize != sizeof(Elf64_Sym))
		return fail(ENOEXEC, "aot object: no symbol table");
	const auto *syms = v.at<Elf64_Sym>(symtab->sh_offset, symtab->sh_size / sizeof(Elf64_Sym));
	const size_t nsyms = symtab->sh_size / sizeof(Elf64_Sym);
	const Elf64_Shdr &strs = v.sh[symtab->sh_link];
	const char *str = v.at<char>(strs.sh_offset, strs.sh_size);
	if (!syms || !str || strs.sh_size == 0 || str[strs.sh_size - 1] != 0)
		return fail(ENOEXEC, "aot object: bad symbol table");
	auto sym_name = [&](const Elf64_Sym &s) -> std::string_view {
		return s.st_name < strs.sh_size ? std::string_view(str + s.st_name) :
						  std::string_view();
	};

	// Externals: stubs for functions, slots for GOT-relative references.
	std::map<size_t, uint64_t> externals; // symbol index -> address
	for (size_t k = 1; k < nsyms; k++) {
		if (syms[k].st_shndx != SHN_UNDEF)
			continue;
		const std::string name(sym_name(syms[k]));
		if (name.empty())
			continue;
		if (name != "memcpy" && name != "memmove" && name != "memset" && name != "memcmp")
			return fail(ENOEXEC, "aot object: undefined symbol '" + name +
						     "' (only the helper table and memcpy, "
						     "memmove, memset, memcmp are linked)");
		void *a = dlsym(RTLD_DEFAULT, name.c_str());
		if (!a)
			return fail(ENOEXEC, "aot object: cannot find '" + name + "' in this process");
		externals[k] = reinterpret_cast<uint64_t>(a);
	}

	// Layout: executable sections, stubs, then the rest, then GOT slots.
	std::vector<uint64_t> where(n, UINT64_MAX);
	uint64_t off = 0;
	for (int pass = 0; pass < 2; pass++) {
		for (unsigned i = 0; i < n; i++) {
			const Elf64_Shdr &s = v.sh[i];
			if (!(s.sh_flags & SHF_ALLOC) || bool(s.sh_flags & SHF_EXECINSTR) != (pass == 0))
				continue;
			off = align_up(off, std::max<uint64_t>(s.sh_addralign, 1));
			where[i] = off;
			off += s.sh_size;
		}
		if (pass == 0) {
			off = align_up(off, 16);
			off += 16 * externals.size();
			off = align_up(off, uint64_t(getpagesize()));
		}
	}
	// The text part ends at the first page boundary after the stubs.
	uint64_t text_end = 0;
	for (unsigned i = 0; i < n; i++)
		if ((v.sh[i].sh_flags & SHF_ALLOC) && (v.sh[i].sh_flags & SHF_EXECINSTR))
			text_end = std::max(text_end, where[i] + v.sh[i].sh_size);
	const uint64_t stub_base = align_up(text_end, 16);
	text_end = align_up(stub_base + 16 * externals.size(), uint64_t(getpagesize()));
	off = align_up(off, 8);
	const uint64_t got_base = off;
	off += 8 * (nsyms + 1);
	const size_t total = align_up(std::max<uint64_t>(off, 1), uint64_t(getpagesize()));

	mapping m;
	m.len = total;
	m.p = mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m.p == MAP_FAILED)
		return fail(ENOMEM, "aot object: cannot map " + std::to_string(total) + " bytes");
	auto *base = static_cast<uint8_t *>(m.p);
	const uint64_t b = reinterpret_cast<uint64_t>(base);
	for (unsigned i = 0; i < n; i++)
		if (where[i] != UINT64_MAX && v.sh[i].sh_type != SHT_NOBITS)
			std::memcpy(base + where[i], obj.data() + v.sh[i].sh_offset, v.sh[i].sh_size);
	std::map<size_t, uint64_t> stub_of;
	{
		uint64_t at = stub_base;
		for (const auto &[k, addr] : externals) {
			// jmp *0(%rip); .quad addr
			static const uint8_t jmp[6] = { 0xff, 0x25, 0, 0, 0, 0 };
			std::memcpy(base + at, jmp, 6);
			std::memcpy(base + at + 6, &addr, 8);
			stub_of[k] = b + at;
			at += 16;
		}
	}

	auto sym_addr = [&](size_t k, uint64_t &out) -> bool {
		if (k >= nsyms)
			return false;
		const Elf64_Sym &s = syms[k];
		if (s.st_shndx == SHN_UNDEF) {
			auto it = stub_of.find(k);
			if (it == stub_of.end())
				return false;
			out = it->second;
			return true;
		}
		if (s.st_shndx == SHN_ABS) {
			out = s.st_value;
			return true;
		}
		if (s.st_shndx >= n || where[s.st_shndx] == UINT64_MAX)
			return false;
		out = b + where[s.st_shndx] + s.st_value;
		return true;
	};

	// Relocations.
	for (unsigned i = 0; i < n; i++) {
		const Elf64_Shdr &rs = v.sh[i];
		if (rs.sh_type == SHT_REL)
			return fail(ENOEXEC, "aot object: SHT_REL relocations are not supported");
		if (rs.sh_type != SHT_RELA || rs.sh_info >= n || where[rs.sh_info] == UINT64_MAX)
			continue;
		const Elf64_Shdr &target = v.sh[rs.sh_info];
		const auto *rel = v.at<Elf64_Rela>(rs.sh_offset, rs.sh_size / sizeof(Elf64_Rela));
		if (!rel)
			return fail(ENOEXEC, "aot object: bad relocation section");
		for (size_t r = 0; r < rs.sh_size / sizeof(Elf64_Rela); r++) {
			const uint32_t type = ELF64_R_TYPE(rel[r].r_info);
			const size_t k = ELF64_R_SYM(rel[r].r_info);
			const uint64_t width = type == R_X86_64_64 || type == R_X86_64_PC64 ? 8 : 4;
			if (rel[r].r_offset > target.sh_size || width > target.sh_size - rel[r].r_offset ||
			    target.sh_type == SHT_NOBITS)
				return fail(ENOEXEC, "aot object: relocation outside its section");
			uint64_t s = 0;
			if (!sym_addr(k, s))
				return fail(ENOEXEC, "aot object: relocation against unknown symbol #" +
							     std::to_string(k));
			const uint64_t p = b + where[rs.sh_info] + rel[r].r_offset;
			uint8_t *at = base + where[rs.sh_info] + rel[r].r_offset;
			const int64_t a = rel[r].r_addend;
			auto put32 = [&](int64_t val) -> bool {
				if (val < INT32_MIN || val > INT32_MAX)
					return false;
				const int32_t x = int32_t(val);
				std::memcpy(at, &x, 4);
				return true;
			};
			bool ok = true;
			switch (type) {
			case R_X86_64_NONE:
				break;
			case R_X86_64_64: {
				const uint64_t val = s + uint64_t(a);
				std::memcpy(at, &val, 8);
				break;
			}
			case R_X86_64_PC64: {
				const uint64_t val = s + uint64_t(a) - p;
				std::memcpy(at, &val, 8);
				break;
			}
			case R_X86_64_PC32:
			case R_X86_64_PLT32:
				ok = put32(int64_t(s + uint64_t(a) - p));
				break;
			case R_X86_64_GOTPCREL:
			case R_X86_64_GOTPCRELX:
			case R_X86_64_REX_GOTPCRELX: {
				const uint64_t slot = got_base + 8 * k;
				std::memcpy(base + slot, &s, 8);
				ok = put32(int64_t(b + slot + uint64_t(a) - p));
				break;
			}
			default:
				return fail(ENOEXEC, "aot object: unsupported relocation type " +
							     std::to_string(type));
			}
			if (!ok)
				return fail(ENOEXEC, "aot object: relocation out of range");
		}
	}

	// The import table.
	const Elf64_Shdr *desc = v.find(BPFTIME_LLVM_AOT_IMPORT_SECTION);
	uint64_t *imports = nullptr;
	for (size_t k = 1; k < nsyms; k++)
		if (sym_name(syms[k]) == BPFTIME_LLVM_AOT_IMPORTS) {
			uint64_t a = 0;
			if (sym_addr(k, a))
				imports = reinterpret_cast<uint64_t *>(a);
		}
	if (!desc || !imports)
		return fail(ENOEXEC, "aot object: no import table: not made by bpftime aot");
	const std::string_view text(reinterpret_cast<const char *>(obj.data() + desc->sh_offset),
				    strnlen(reinterpret_cast<const char *>(obj.data() + desc->sh_offset),
					    desc->sh_size));
	const uint64_t *rt = llvm_runtime_table();
	size_t slot = 0;
	for (size_t pos = 0; pos < text.size();) {
		size_t eol = text.find('\n', pos);
		if (eol == std::string_view::npos)
			eol = text.size();
		const std::string line(text.substr(pos, eol - pos));
		pos = eol + 1;
		if (line.size() < 3 || line[1] != ' ')
			return fail(ENOEXEC, "aot object: bad import '" + line + "'");
		char *end = nullptr;
		const unsigned long long num = std::strtoull(line.c_str() + 2, &end, 10);
		if (!end || *end)
			return fail(ENOEXEC, "aot object: bad import '" + line + "'");
		uint64_t value = 0;
		if (line[0] == 'f') {
			if ((num & 1) != uint64_t(prog.options.bounds_check))
				return fail(EINVAL, std::string("aot object: compiled ") +
							    (num & 1 ? "with" : "without") +
							    " bounds checks, loaded into a vm " +
							    (prog.options.bounds_check ? "with" : "without") +
							    " them");
			continue;
		}
		switch (line[0]) {
		case 'h':
			if (num >= prog.helpers.size() || !prog.helpers[num].fn)
				return fail(ENOENT, "aot object: helper #" + std::to_string(num) +
							    " is not registered");
			value = reinterpret_cast<uint64_t>(prog.helpers[num].fn);
			break;
		case 'k': {
			auto it = prog.kfuncs.find(uint32_t(num));
			if (it == prog.kfuncs.end())
				return fail(ENOENT, "aot object: kfunc " + std::to_string(num) +
							    " is not registered");
			value = reinterpret_cast<uint64_t>(it->second.fn);
			break;
		}
		case 'r':
			if (num >= BPFTIME_LLVM_RT_COUNT)
				return fail(ENOEXEC, "aot object: unknown runtime function " + line);
			value = rt[num];
			break;
		case 'l':
			if (num + 1 >= prog.insns.size() ||
			    prog.insns[num].code != (BPF_LD | BPF_IMM | BPF_DW))
				return fail(ENOEXEC, "aot object: import '" + line +
							     "' names no lddw of the program");
			value = uint64_t(uint32_t(prog.insns[num].imm)) |
				uint64_t(uint32_t(prog.insns[num + 1].imm)) << 32;
			break;
		default:
			return fail(ENOEXEC, "aot object: bad import '" + line + "'");
		}
		imports[slot++] = value;
	}

	auto ex = std::unique_ptr<llvm_executor>(new llvm_executor(prog));
	ex->fn_addrs_.assign(ex->starts_.size(), 0);
	for (size_t f = 0; f < ex->starts_.size(); f++) {
		const std::string want = BPFTIME_LLVM_FN_PREFIX + std::to_string(ex->starts_[f]);
		for (size_t k = 1; k < nsyms && !ex->fn_addrs_[f]; k++)
			if (sym_name(syms[k]) == want && syms[k].st_shndx != SHN_UNDEF)
				sym_addr(k, ex->fn_addrs_[f]);
		if (!ex->fn_addrs_[f])
			return fail(ENOEXEC, "aot object: no function " + want);
	}
	if (mprotect(base, text_end, PROT_READ | PROT_EXEC) != 0)
		return fail(errno, "aot object: mprotect");
	ex->map_ = m.p;
	ex->map_len_ = m.len;
	m.p = MAP_FAILED;
	ex->set_code(b, b + text_end);
	return std::unique_ptr<executor>(std::move(ex));
}

} // namespace bpftime::vm::detail
