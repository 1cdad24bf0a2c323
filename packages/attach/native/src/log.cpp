// log.cpp: see log.hpp.
#include "log.hpp"

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <unistd.h>

namespace bpftime::attach::detail {
namespace {

log_level parse_level(const char *s) noexcept
{
	if (!s)
		return log_level::info;
	// spdlog also accepts "logger=level,..." lists; take the bare level if
	// there is one, else the first entry's level.
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

log_level threshold() noexcept
{
	static const log_level level = parse_level(getenv("SPDLOG_LEVEL"));
	return level;
}

const char *name(log_level l) noexcept
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

} // namespace

bool log_enabled(log_level level) noexcept
{
	return level != log_level::off && level >= threshold();
}

void log(log_level level, const char *fmt, ...) noexcept
{
	if (!log_enabled(level))
		return;
	char buf[1024];
	int n = snprintf(buf, sizeof(buf), "[bpftime attach] [%s] ",
			 name(level));
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(buf + n, sizeof(buf) - n - 1, fmt, ap);
	va_end(ap);
	size_t len = n + (m < 0 ? 0 : (size_t)m);
	if (len > sizeof(buf) - 2)
		len = sizeof(buf) - 2;
	buf[len++] = '\n';
	ssize_t w = write(STDERR_FILENO, buf, len);
	(void)w;
}

} // namespace bpftime::attach::detail
