// proc_maps.hpp: this process's memory map, from /proc/self/maps.
//
// Control plane only (allocates, reads a file); never from a trampoline or a
// signal handler.
#pragma once

#include <bpftime/common/result.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace bpftime::attach::detail {

struct mapping {
	uint64_t start = 0;
	uint64_t end = 0;
	bool read = false, write = false, exec = false, shared = false;
	uint64_t offset = 0; // file offset of `start`
	uint64_t device = 0; // makedev(major, minor)
	uint64_t inode = 0;
	std::string path; // "" for anonymous mappings, "[vdso]" etc.

	int prot() const noexcept;
};

// Every mapping, in address order. EIO when the file cannot be read.
result<std::vector<mapping>> read_maps();

// The mapping that contains `addr`, or nullptr.
const mapping *find_mapping(const std::vector<mapping> &maps, uint64_t addr);

} // namespace bpftime::attach::detail
