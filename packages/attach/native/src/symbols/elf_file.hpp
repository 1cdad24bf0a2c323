// elf_file.hpp: the parts of an x86-64 ELF file that symbol resolution
// needs: its loadable segments and its function symbols (.symtab and
// .dynsym). The file is read once and kept in a cache keyed by device,
// inode and modification time.
//
// Control plane only; thread-safe (the cache is locked, a parsed file is
// immutable).
#pragma once

#include <bpftime/common/result.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace bpftime::attach::detail {

struct elf_segment {
	uint64_t vaddr = 0, memsz = 0, offset = 0, filesz = 0;
	bool exec = false;
};

struct elf_symbol {
	std::string name;
	uint64_t value = 0; // ELF virtual address
	uint64_t size = 0;
	bool ifunc = false;
	bool from_symtab = false; // else .dynsym
};

// An SHF_EXECINSTR section: code, not data that a loadable segment
// happens to map executable (headers, read-only data of old layouts).
struct elf_section {
	uint64_t vaddr = 0, size = 0;
};

struct elf_file {
	std::string path;
	std::vector<elf_segment> loads;
	std::vector<elf_section> code; // by address
	std::vector<elf_symbol> functions; // sorted by value

	// The virtual address of a file offset inside a loaded segment, or
	// nullptr-like failure (EINVAL).
	result<uint64_t> vaddr_of_offset(uint64_t off) const;
	// The file offset of a virtual address, or UINT64_MAX.
	uint64_t offset_of_vaddr(uint64_t v) const;
	const elf_segment *segment_of(uint64_t v) const;
	// The function containing v (largest start <= v within its size, or
	// equal to a size-0 symbol), or nullptr.
	const elf_symbol *function_at(uint64_t v) const;
};

// ENOENT: cannot open; ENOEXEC: not a 64-bit x86-64 ELF file.
result<std::shared_ptr<const elf_file>> load_elf(const std::string &path);

} // namespace bpftime::attach::detail
