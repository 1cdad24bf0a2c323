// log.hpp: the agent's log, as bpftime users configure it.
//
//   SPDLOG_LEVEL        trace, debug, info, warn, err/error, critical, off
//                       (default info); spdlog's "logger=level,..." lists
//                       are accepted, the first level wins
//   BPFTIME_LOG_OUTPUT  "console" or "stderr" (default): the target's
//                       stderr; "stdout"; anything else is a file path
//                       ("~/" expands to $HOME) that lines are appended to
//
// One line per call, "[bpftime-agent <pid>] [level] message", written with a
// single write(2) from a stack buffer, so lines of concurrent threads never
// mix and logging allocates nothing. Never called from a hook's hot path.
#pragma once

namespace bpftime::agent {

enum class log_level { trace, debug, info, warn, error, critical, off };

// Reads the two variables; called once by the agent's constructor before
// anything logs (later calls re-read them). A file that cannot be opened
// falls back to stderr, with a warning there.
void log_init_from_env() noexcept;

bool log_enabled(log_level level) noexcept;

void log(log_level level, const char *fmt, ...) noexcept
	__attribute__((format(printf, 2, 3)));

} // namespace bpftime::agent
