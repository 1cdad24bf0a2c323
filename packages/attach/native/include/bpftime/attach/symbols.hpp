// symbols.hpp: where a probe goes. Finds the modules (main executable and
// shared libraries) mapped in this process and turns a function name or a
// file offset in one of them into a runtime address, the way the kernel's
// uprobes take "binary path + file offset" and libbpf takes "binary path +
// function name + offset".
//
//   auto where = bpftime::attach::resolve({ .module = "libc.so.6", .symbol = "malloc" });
//   if (!where) log(where.error().message);     // ENOENT: not loaded / no such function
//   uint64_t addr = where->address;
//
// Modules are read from /proc/self/maps and their ELF files (.symtab first,
// then .dynsym); nothing here calls into the dynamic loader except dlsym for
// GNU indirect functions (IFUNC), whose symbol value is the resolver and not
// the function that runs.
//
// Thread safety: every function may be called from any thread; parsed ELF
// files are cached behind an internal lock. None is async-signal-safe.
#pragma once

#include <bpftime/common/result.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace bpftime::attach {

// What a probe is attached to, resolved when the module is loaded.
struct probe_target {
	// "" for the main executable; a path ("/usr/lib/x86_64-linux-gnu/libc.so.6",
	// matched by device and inode, so symlinks and bind mounts agree); or a
	// file name without '/' ("libc.so.6"), matched against the file names of
	// loaded modules.
	std::string module;
	// A function name. Empty: `offset` is a file offset in the module, as in
	// the kernel's uprobe ABI.
	std::string symbol;
	// Bytes after the function's first instruction when `symbol` is set; the
	// file offset of the instruction otherwise.
	uint64_t offset = 0;
};

struct module_info {
	std::string path;	  // as /proc/self/maps names it
	uint64_t bias = 0;	  // runtime address = bias + ELF virtual address
	uint64_t start = 0;	  // lowest mapped address of the module
	uint64_t end = 0;	  // one past its highest mapped address
	uint64_t device = 0;	  // st_dev of the file (makedev(major, minor))
	uint64_t inode = 0;
	bool main_executable = false;

	bool operator==(const module_info &) const = default;
};

// A resolved probe address and what contains it.
struct location {
	uint64_t address = 0;	     // runtime address of the instruction
	uint64_t file_offset = 0;    // the same instruction in the module's file
	module_info module;
	std::string symbol;	     // containing function, "" when unknown
	uint64_t symbol_address = 0; // its runtime start
	uint64_t symbol_size = 0;    // 0 when the symbol tables do not say
	// Runtime ranges of code that belongs to the same function elsewhere
	// (GCC's "<name>.cold" part), which may jump back into it.
	std::vector<std::pair<uint64_t, uint64_t>> related_ranges;

	bool at_function_entry() const noexcept
	{
		return !symbol.empty() && address == symbol_address;
	}
};

// Every file-backed module with an executable mapping, main executable
// first. EIO when /proc/self/maps cannot be read.
result<std::vector<module_info>> loaded_modules();

// The loaded module that `name` designates (see probe_target::module).
// ENOENT when none is loaded (for a path: also when the file is missing).
result<module_info> find_module(std::string_view name);

// The runtime address of a target. ENOENT: module not loaded or no such
// function; EINVAL: the function name matches several different addresses
// (local functions of the same name), or the offset lies outside the
// module's loaded segments or outside the function; ENOEXEC: the file is not
// an x86-64 ELF object.
result<location> resolve(const probe_target &target);

// The module and function that contain a runtime address. ENOENT when no
// loaded module maps it.
result<location> locate(uint64_t address);

} // namespace bpftime::attach
