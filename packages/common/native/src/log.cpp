// log.cpp: see log.hpp.
#include <bpftime/common/log.hpp>

#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

namespace bpftime {
namespace {

// Read by every log() without a lock; written by log_configure().
std::atomic<log_level> g_level{ log_level::info };
std::atomic<int> g_fd{ STDERR_FILENO };

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

log_level parse_log_level(std::string_view v) noexcept
{
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

const char *log_level_name(log_level l) noexcept
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

log_options log_options_from_env()
{
	log_options o;
	const char *level = getenv("SPDLOG_LEVEL");
	o.level = parse_log_level(level ? level : "");
	const char *out = getenv("BPFTIME_LOG_OUTPUT");
	o.output = out ? out : "";
	const char *home = getenv("HOME");
	if (o.output.starts_with("~/") && home)
		o.output = std::string(home) + o.output.substr(1);
	return o;
}

void log_configure(const log_options &o, const log_source &reporter) noexcept
{
	g_level.store(o.level, std::memory_order_relaxed);
	const std::string &out = o.output;
	int old = g_fd.load(std::memory_order_relaxed);
	int fd = STDERR_FILENO;
	if (out.empty() || out == "console" || out == "stderr") {
		fd = STDERR_FILENO;
	} else if (out == "stdout") {
		fd = STDOUT_FILENO;
	} else {
		int f = ::open(out.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
			       0644);
		if (f < 0) {
			int e = errno;
			g_fd.store(STDERR_FILENO, std::memory_order_relaxed);
			log(reporter, log_level::warn,
			    "BPFTIME_LOG_OUTPUT: cannot open '%s': %s; logging to stderr",
			    out.c_str(), strerror(e));
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

void log(const log_source &src, log_level level, const char *fmt, ...) noexcept
{
	if (!log_enabled(level))
		return;
	int saved_errno = errno;
	char buf[2048];
	int n = src.with_pid ? snprintf(buf, sizeof buf, "[%s %d] [%s] ", src.name,
					int(getpid()), log_level_name(level))
			     : snprintf(buf, sizeof buf, "[%s] [%s] ", src.name,
					log_level_name(level));
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

} // namespace bpftime
