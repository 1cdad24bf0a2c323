// proc_maps.cpp: see proc_maps.hpp.
#include "proc_maps.hpp"

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <sys/mman.h>
#include <sys/sysmacros.h>

namespace bpftime::attach::detail {

int mapping::prot() const noexcept
{
	return (read ? PROT_READ : 0) | (write ? PROT_WRITE : 0) |
	       (exec ? PROT_EXEC : 0);
}

result<std::vector<mapping>> read_maps()
{
	FILE *f = fopen("/proc/self/maps", "re");
	if (!f)
		return fail(errno == ENOENT ? EIO : errno,
			    std::string("/proc/self/maps: ") + strerror(errno));
	std::vector<mapping> out;
	char *line = nullptr;
	size_t cap = 0;
	ssize_t n;
	while ((n = getline(&line, &cap, f)) > 0) {
		mapping m;
		char perms[8] = {};
		unsigned maj = 0, min = 0;
		int path_at = 0;
		if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %7s %" SCNx64
				 " %x:%x %" SCNu64 " %n",
			   &m.start, &m.end, perms, &m.offset, &maj, &min,
			   &m.inode, &path_at) < 7)
			continue;
		m.read = perms[0] == 'r';
		m.write = perms[1] == 'w';
		m.exec = perms[2] == 'x';
		m.shared = perms[3] == 's';
		m.device = makedev(maj, min);
		if (path_at > 0 && path_at < n) {
			m.path.assign(line + path_at);
			while (!m.path.empty() && m.path.back() == '\n')
				m.path.pop_back();
		}
		out.push_back(std::move(m));
	}
	free(line);
	fclose(f);
	if (out.empty())
		return fail(EIO, "/proc/self/maps: no mappings read");
	return out;
}

const mapping *find_mapping(const std::vector<mapping> &maps, uint64_t addr)
{
	size_t lo = 0, hi = maps.size();
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (maps[mid].end <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < maps.size() && maps[lo].start <= addr && addr < maps[lo].end)
		return &maps[lo];
	return nullptr;
}

} // namespace bpftime::attach::detail
