// log.hpp: the one log of bpftime's native cores (the agent, attach), as
// bpftime users configure it.
//
//   constexpr bpftime::log_source src{ "bpftime attach", false };
//   bpftime::log_configure(bpftime::log_options_from_env(), src); // at the edge
//   bpftime::log(src, bpftime::log_level::info, "probe %u: attached", id);
//   // stderr: "[bpftime attach] [info] probe 3: attached"
//
// One line per call, "[<source>] [<level>] message", or "[<source> <pid>]
// [<level>] message" for a source with_pid (the agent's "[bpftime-agent
// 4242] [info] ..."), written with a single write(2) from a stack buffer, so
// lines of concurrent threads never mix and logging allocates nothing. errno
// is preserved. Never called from a hook's hot path.
//
// The configuration is process-wide: level and output apply to every source.
// Until log_configure() is called the level is info and lines go to stderr.
// Cores never read the environment: the edges (the agent's constructor, a
// binding's init, a command-line tool's main) call log_options_from_env()
// and pass the result to log_configure():
//
//   SPDLOG_LEVEL        trace, debug, info, warn, err/error, critical, off
//                       (default info; anything else is info); spdlog's
//                       "logger=level,..." lists are accepted, the first
//                       entry's level wins
//   BPFTIME_LOG_OUTPUT  "console" or "stderr" (default): the process's
//                       stderr; "stdout"; anything else is a file path
//                       ("~/" expands to $HOME) that lines are appended to
#pragma once

#include <string>
#include <string_view>

namespace bpftime {

enum class log_level { trace, debug, info, warn, error, critical, off };

// Who writes a line: its name in brackets, and whether the pid follows it.
struct log_source {
	const char *name;
	bool with_pid;
};

struct log_options {
	log_level level = log_level::info;
	// "", "console", "stderr", "stdout", or a file path (already expanded:
	// log_configure() does not expand "~/").
	std::string output;
};

// SPDLOG_LEVEL's syntax (above); nullopt-free: an unknown name is info, as
// spdlog's own parser falls back.
log_level parse_log_level(std::string_view s) noexcept;
// "trace", "debug", "info", "warning", "error", "critical", "off": the
// names the lines carry.
const char *log_level_name(log_level l) noexcept;

// Reads SPDLOG_LEVEL, BPFTIME_LOG_OUTPUT and, for "~/", HOME. For the edges
// only.
log_options log_options_from_env();

// Applies `o` to every later line of the process. A file that cannot be
// opened falls back to stderr, with a warning there written as `reporter`.
// Descriptors it opens are close-on-exec and moved above the range programs
// usually use; the previous file, if any, is closed. Not thread-safe with
// itself: call it from one thread (the edge's init), before or while others
// log.
void log_configure(const log_options &o, const log_source &reporter) noexcept;

bool log_enabled(log_level level) noexcept;

// printf-style; newline added; truncated at 2 KiB.
void log(const log_source &src, log_level level, const char *fmt, ...) noexcept
	__attribute__((format(printf, 3, 4)));

} // namespace bpftime
