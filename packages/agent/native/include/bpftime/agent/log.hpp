// log.hpp: the agent's lines in the one log of @bpftime/common
// (bpftime/common/log.hpp): "[bpftime-agent <pid>] [level] message". The
// agent's constructor configures that log from SPDLOG_LEVEL and
// BPFTIME_LOG_OUTPUT (see the package README); @bpftime/attach's lines
// ("[bpftime attach] ...") go to the same output at the same level. Never
// called from a hook's hot path.
#pragma once

#include <bpftime/common/log.hpp>

namespace bpftime::agent {

using bpftime::log_level;

inline constexpr log_source agent_log{ "bpftime-agent", true };

} // namespace bpftime::agent
