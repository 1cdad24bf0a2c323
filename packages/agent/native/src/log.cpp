// log.cpp: see log.hpp.
#include <bpftime/agent/log.hpp>

#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <string_view>
#include <unistd.h>

namespace bpftime::agent {
namespace {

std::atomic<log_level> g_level{ log_level::info };
std::atomic<int> g_fd{ STDERR_FILENO };

log_level parse_level(const char *s) noexcept
{
	if (!s || !*s)
		return log_level::info;
	std::string_view v(s);
	if (auto comma = v.find(','); comma != v.npos)
		v = v.substr(0, comma);
	if (auto eq = v.find('='); eq != v.npos)
		v = v.substr(eq + 1);
	if (v == "trace")
		return log_level::trace;
	if (v == "debug")
		return log_level::debug;
	if (v == "info")
		return log_level::info;
	if (v == "warn" || v == "warning")
		return log_level::warn;
	if (v == "err" || v == "error")
		return log_level::error;
	if (v == "critical")
		return log_level::critical;
	if (v == "off")
		return log_level::off;
	return log_level::info;
}

const char *level_name(log_level l) noexcept
{
	switch (l) {
	case log_level::trace:
		return "trace";
	case log_level::debug:
		return "debug";
	case log_level::info:
		return "info";
	case log_level::warn:
		return "warning";
	case log_level::error:
		return "error";
	case log_level::critical:
		return "critical";
	case log_level::off:
		break;
	}
	return "off";
}

// Moves a descriptor of ours above the range programs usually use, so a
// target that closes or dup2()s its low descriptors is less likely to hit
// it (close-on-exec: a program the target execs does not inherit it).
int park_fd(int fd) noexcept
{
	int high = fcntl(fd, F_DUPFD_CLOEXEC, 700);
	if (high < 0)
		return fd;
	close(fd);
	return high;
}

} // namespace

void log_init_from_env() noexcept
{
	g_level.store(parse_level(getenv("SPDLOG_LEVEL")),
		      std::memory_order_relaxed);
	const char *out = getenv("BPFTIME_LOG_OUTPUT");
	std::string_view o = out ? out : "";
	int old = g_fd.load(std::memory_order_relaxed);
	int fd = STDERR_FILENO;
	if (o.empty() || o == "console" || o == "stderr") {
		fd = STDERR_FILENO;
	} else if (o == "stdout") {
		fd = STDOUT_FILENO;
	} else {
		std::string path(o);
		const char *home = getenv("HOME");
		if (path.starts_with("~/") && home)
			path = std::string(home) + path.substr(1);
		int f = ::open(path.c_str(),
			       O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (f < 0) {
			int e = errno;
			g_fd.store(STDERR_FILENO, std::memory_order_relaxed);
			log(log_level::warn,
			    "BPFTIME_LOG_OUTPUT: cannot open '%s': %s; logging to stderr",
			    path.c_str(), strerror(e));
			fd = STDERR_FILENO;
		} else {
			fd = park_fd(f);
		}
	}
	g_fd.store(fd, std::memory_order_relaxed);
	if (old > STDERR_FILENO && old != fd)
		close(old);
}

bool log_enabled(log_level level) noexcept
{
	return level != log_level::off &&
	       level >= g_level.load(std::memory_order_relaxed);
}

void log(log_level level, const char *fmt, ...) noexcept
{
	if (!log_enabled(level))
		return;
	int saved_errno = errno;
	char buf[2048];
	int n = snprintf(buf, sizeof buf, "[bpftime-agent %d] [%s] ",
			 int(getpid()), level_name(level));
	if (n < 0)
		n = 0;
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(buf + n, sizeof buf - size_t(n) - 1, fmt, ap);
	va_end(ap);
	size_t len = size_t(n) + (m < 0 ? 0 : size_t(m));
	if (len > sizeof buf - 2)
		len = sizeof buf - 2;
	buf[len++] = '\n';
	const char *p = buf;
	int fd = g_fd.load(std::memory_order_relaxed);
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		p += w;
		len -= size_t(w);
	}
	errno = saved_errno;
}

} // namespace bpftime::agent
