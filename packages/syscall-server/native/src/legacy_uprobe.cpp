// legacy_uprobe.cpp: the tracefs way of making a uprobe, which libbpf takes
// where the kernel has no uprobe PMU (perf_event_uprobe_open_legacy) and bcc
// falls back to: the tool appends "p:uprobes/<name> <path>:0x<offset>" (or
// "r:uretprobes/..." for a return probe) to <tracefs>/uprobe_events, reads
// the new event's id from <tracefs>/events/<group>/<name>/id, opens a
// PERF_TYPE_TRACEPOINT event with that id and attaches its program; to
// detach it appends "-:<group>/<name>".
//
// Here nothing reaches the kernel's tracefs: uprobe_events opened for
// writing is a memfd of the tool's, whose lines are read when the tool
// closes it (each append is an open, a write and a close); the events live
// in this process, with ids from LEGACY_ID_BASE up (past any tracepoint id
// of the kernel's), and their perf_event_open makes a registry uprobe event
// as the uprobe PMU's does.
#include "server_impl.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <string_view>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace bpftime::syscall_server {

namespace {

constexpr uint32_t LEGACY_ID_BASE = 1u << 30;

// "<tracefs>/<rest>" for either place tracefs is mounted: <rest>, else
// empty.
std::string_view tracefs_rest(std::string_view path)
{
	for (std::string_view root :
	     { "/sys/kernel/tracing/", "/sys/kernel/debug/tracing/" })
		if (path.starts_with(root))
			return path.substr(root.size());
	return {};
}

// One line of uprobe_events (kernel/trace/trace_uprobe.c
// create_or_delete_trace_uprobe): "p[:[GRP/]EVENT] PATH:OFFSET[(REF)]",
// "r[:[GRP/]EVENT] ...", "-:[GRP/]EVENT".
void parse_line(server::impl &s, std::string_view line)
{
	while (!line.empty() && (line.back() == '\n' || line.back() == ' '))
		line.remove_suffix(1);
	if (line.size() < 3)
		return;
	char kind = line[0];
	if (kind != 'p' && kind != 'r' && kind != '-')
		return;
	std::string_view rest = line.substr(1);
	std::string name;
	if (!rest.empty() && rest[0] == ':') {
		size_t sp = rest.find(' ');
		name = std::string(rest.substr(1, sp == std::string_view::npos ?
							  std::string_view::npos :
							  sp - 1));
		rest = sp == std::string_view::npos ? std::string_view() :
						      rest.substr(sp + 1);
	}
	if (name.find('/') == std::string::npos)
		name = std::string(kind == 'r' ? "uretprobes/" : "uprobes/") + name;
	std::lock_guard g(s.legacy_mu);
	if (kind == '-') {
		s.legacy.erase(name);
		return;
	}
	while (!rest.empty() && rest[0] == ' ')
		rest.remove_prefix(1);
	size_t sp = rest.find(' ');
	if (sp != std::string_view::npos)
		rest = rest.substr(0, sp);
	size_t colon = rest.rfind(':');
	if (colon == std::string_view::npos)
		return;
	server::impl::legacy_probe p;
	p.path = std::string(rest.substr(0, colon));
	std::string off(rest.substr(colon + 1));
	p.offset = strtoull(off.c_str(), nullptr, 0);
	p.retprobe = kind == 'r';
	p.id = s.next_legacy_id++;
	s.legacy[name] = std::move(p);
}

} // namespace

int server::open_uprobe_events(const char *path, int flags) noexcept
{
	try {
		if (!path || tracefs_rest(path) != "uprobe_events" ||
		    !(flags & (O_WRONLY | O_RDWR)))
			return -ENOENT;
		long fd = syscall(SYS_memfd_create, "bpftime-uprobe_events",
				  (flags & O_CLOEXEC) ? MFD_CLOEXEC : 0);
		if (fd < 0)
			return -errno;
		std::lock_guard g(impl_->legacy_mu);
		impl_->uprobe_event_files.insert(int(fd));
		impl_->n_uprobe_event_files.store(
			int(impl_->uprobe_event_files.size()));
		return int(fd);
	} catch (...) {
		return -ENOMEM;
	}
}

void server::uprobe_events_closed(int fd) noexcept
{
	try {
		if (impl_->n_uprobe_event_files.load() == 0)
			return;
		{
			std::lock_guard g(impl_->legacy_mu);
			if (!impl_->uprobe_event_files.erase(fd))
				return;
			impl_->n_uprobe_event_files.store(
				int(impl_->uprobe_event_files.size()));
		}
		std::string text;
		char buf[4096];
		for (off_t at = 0;;) {
			long n = syscall(SYS_pread64, fd, buf, sizeof buf, at);
			if (n <= 0)
				break;
			text.append(buf, size_t(n));
			at += n;
		}
		size_t start = 0;
		while (start < text.size()) {
			size_t nl = text.find('\n', start);
			size_t end = nl == std::string::npos ? text.size() : nl;
			parse_line(*impl_, std::string_view(text).substr(start, end - start));
			start = end + 1;
		}
	} catch (...) {
	}
}

std::string server::legacy_event_id(const char *path) const
{
	if (!path)
		return {};
	std::string_view rest = tracefs_rest(path);
	if (!rest.starts_with("events/") || !rest.ends_with("/id"))
		return {};
	std::string name(rest.substr(7, rest.size() - 10));
	std::lock_guard g(impl_->legacy_mu);
	auto it = impl_->legacy.find(name);
	if (it == impl_->legacy.end())
		return {};
	return std::to_string(it->second.id) + "\n";
}

bool server::impl::legacy_uprobe(uint64_t id, handlers::perf_event_spec &spec)
{
	if (id < LEGACY_ID_BASE)
		return false;
	std::lock_guard g(legacy_mu);
	for (auto &[name, p] : legacy)
		if (p.id == id) {
			spec.type = p.retprobe ? handlers::perf_event_type::uretprobe :
						 handlers::perf_event_type::uprobe;
			spec.path = p.path;
			spec.offset = p.offset;
			return true;
		}
	return false;
}

} // namespace bpftime::syscall_server
