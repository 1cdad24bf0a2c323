// log.hpp: the few lines @bpftime/attach prints (which mechanism a probe
// uses, why one failed), on stderr, filtered by SPDLOG_LEVEL as bpftime
// users know it (trace, debug, info, warn, err/error, critical, off; default
// info). Control plane only: never called from a trampoline, a callback path
// or a signal handler.
#pragma once

namespace bpftime::attach::detail {

enum class log_level { trace, debug, info, warn, error, critical, off };

bool log_enabled(log_level level) noexcept;

// printf-style; one line, newline added. Formats into a stack buffer and
// writes it with one write(2), so lines of concurrent threads do not mix.
void log(log_level level, const char *fmt, ...) noexcept
	__attribute__((format(printf, 2, 3)));

} // namespace bpftime::attach::detail
