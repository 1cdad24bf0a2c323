// elf_file.cpp: see elf_file.hpp. Reads ELF64 headers as <elf.h> defines
// them (System V gABI), bounds-checking every table against the file size.
#include "elf_file.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <elf.h>
#include <fcntl.h>
#include <map>
#include <mutex>
#include <sys/mman.h>
#include <sys/stat.h>
#include <tuple>
#include <unistd.h>

namespace bpftime::attach::detail {
namespace {

using key = std::tuple<uint64_t, uint64_t, int64_t, int64_t>;
// Never destroyed: resolution may run from static destructors at exit.
struct cache {
	std::mutex lock;
	std::map<key, std::shared_ptr<const elf_file>> files;
};

cache &g_cache()
{
	static cache *c = new cache();
	return *c;
}

struct mapped_file {
	const uint8_t *p = nullptr;
	size_t size = 0;
	~mapped_file()
	{
		if (p)
			munmap(const_cast<uint8_t *>(p), size);
	}
};

bool in_file(size_t size, uint64_t off, uint64_t len)
{
	return off <= size && len <= size - off;
}

} // namespace

result<uint64_t> elf_file::vaddr_of_offset(uint64_t off) const
{
	for (const elf_segment &s : loads)
		if (off >= s.offset && off < s.offset + s.filesz)
			return s.vaddr + (off - s.offset);
	return fail(EINVAL, path + ": file offset 0x" + [&] {
		char b[24];
		snprintf(b, sizeof(b), "%llx", (unsigned long long)off);
		return std::string(b);
	}() + " is in no loadable segment");
}

uint64_t elf_file::offset_of_vaddr(uint64_t v) const
{
	const elf_segment *s = segment_of(v);
	if (!s || v - s->vaddr >= s->filesz)
		return UINT64_MAX;
	return s->offset + (v - s->vaddr);
}

const elf_segment *elf_file::segment_of(uint64_t v) const
{
	for (const elf_segment &s : loads)
		if (v >= s.vaddr && v < s.vaddr + s.memsz)
			return &s;
	return nullptr;
}

const elf_symbol *elf_file::function_at(uint64_t v) const
{
	auto it = std::upper_bound(
		functions.begin(), functions.end(), v,
		[](uint64_t x, const elf_symbol &s) { return x < s.value; });
	// Among symbols starting at or below v, the nearest one that covers
	// it (aliases share a start; prefer one with a size).
	const elf_symbol *best = nullptr;
	while (it != functions.begin()) {
		--it;
		if (best && it->value != best->value)
			break;
		if (v < it->value + std::max<uint64_t>(it->size, 1)) {
			if (!best || (best->size == 0 && it->size != 0))
				best = &*it;
		} else if (!best) {
			return nullptr;
		}
	}
	return best;
}

result<std::shared_ptr<const elf_file>> load_elf(const std::string &path)
{
	int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail(errno == ENOENT ? ENOENT : errno,
			    path + ": open: " + strerror(errno));
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return fail(ENOEXEC, path + ": not a regular file");
	}
	key k{ uint64_t(st.st_dev), uint64_t(st.st_ino), int64_t(st.st_mtim.tv_sec),
	       int64_t(st.st_mtim.tv_nsec) };
	{
		std::lock_guard<std::mutex> g(g_cache().lock);
		if (auto it = g_cache().files.find(k); it != g_cache().files.end()) {
			close(fd);
			return it->second;
		}
	}
	mapped_file f;
	f.size = size_t(st.st_size);
	if (f.size < sizeof(Elf64_Ehdr)) {
		close(fd);
		return fail(ENOEXEC, path + ": too small for an ELF header");
	}
	void *p = mmap(nullptr, f.size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return fail(errno, path + ": mmap: " + strerror(errno));
	f.p = static_cast<const uint8_t *>(p);

	Elf64_Ehdr eh;
	memcpy(&eh, f.p, sizeof(eh));
	if (memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
	    eh.e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh.e_ident[EI_DATA] != ELFDATA2LSB || eh.e_machine != EM_X86_64)
		return fail(ENOEXEC, path + ": not an x86-64 ELF64 file");

	auto out = std::make_shared<elf_file>();
	out->path = path;
	if (eh.e_phentsize == sizeof(Elf64_Phdr) &&
	    in_file(f.size, eh.e_phoff, uint64_t(eh.e_phnum) * sizeof(Elf64_Phdr))) {
		for (int i = 0; i < eh.e_phnum; i++) {
			Elf64_Phdr ph;
			memcpy(&ph, f.p + eh.e_phoff + i * sizeof(ph), sizeof(ph));
			if (ph.p_type != PT_LOAD)
				continue;
			out->loads.push_back({ ph.p_vaddr, ph.p_memsz, ph.p_offset,
					       ph.p_filesz, (ph.p_flags & PF_X) != 0 });
		}
	}
	if (eh.e_shentsize == sizeof(Elf64_Shdr) &&
	    in_file(f.size, eh.e_shoff, uint64_t(eh.e_shnum) * sizeof(Elf64_Shdr))) {
		std::vector<Elf64_Shdr> sh(eh.e_shnum);
		memcpy(sh.data(), f.p + eh.e_shoff, sh.size() * sizeof(Elf64_Shdr));
		for (const Elf64_Shdr &s : sh)
			if (s.sh_type == SHT_PROGBITS && (s.sh_flags & SHF_EXECINSTR) &&
			    (s.sh_flags & SHF_ALLOC) && s.sh_size)
				out->code.push_back({ s.sh_addr, s.sh_size });
		std::sort(out->code.begin(), out->code.end(),
			  [](const elf_section &a, const elf_section &b) {
				  return a.vaddr < b.vaddr;
			  });
		for (const Elf64_Shdr &s : sh) {
			if (s.sh_type != SHT_SYMTAB && s.sh_type != SHT_DYNSYM)
				continue;
			if (s.sh_link >= sh.size() || s.sh_entsize != sizeof(Elf64_Sym) ||
			    !in_file(f.size, s.sh_offset, s.sh_size))
				continue;
			const Elf64_Shdr &strs = sh[s.sh_link];
			if (!in_file(f.size, strs.sh_offset, strs.sh_size))
				continue;
			const char *names = reinterpret_cast<const char *>(f.p + strs.sh_offset);
			for (uint64_t off = 0; off + sizeof(Elf64_Sym) <= s.sh_size;
			     off += sizeof(Elf64_Sym)) {
				Elf64_Sym sym;
				memcpy(&sym, f.p + s.sh_offset + off, sizeof(sym));
				int type = ELF64_ST_TYPE(sym.st_info);
				if ((type != STT_FUNC && type != STT_GNU_IFUNC) ||
				    sym.st_shndx == SHN_UNDEF || sym.st_value == 0 ||
				    sym.st_name >= strs.sh_size)
					continue;
				const char *n = names + sym.st_name;
				size_t len = strnlen(n, strs.sh_size - sym.st_name);
				out->functions.push_back({ std::string(n, len), sym.st_value,
							   sym.st_size, type == STT_GNU_IFUNC,
							   s.sh_type == SHT_SYMTAB });
			}
		}
	}
	std::stable_sort(out->functions.begin(), out->functions.end(),
			 [](const elf_symbol &a, const elf_symbol &b) {
				 return a.value < b.value;
			 });
	std::shared_ptr<const elf_file> done = std::move(out);
	std::lock_guard<std::mutex> g(g_cache().lock);
	g_cache().files[k] = done;
	return done;
}

} // namespace bpftime::attach::detail
