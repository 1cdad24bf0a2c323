// log.hpp: the few lines @bpftime/attach prints (which mechanism a probe
// uses, why one failed), through the one log of @bpftime/common
// (bpftime/common/log.hpp): "[bpftime attach] [level] message", at the level
// and on the output that whoever embeds attach configured with
// bpftime::log_configure() (the agent from SPDLOG_LEVEL and
// BPFTIME_LOG_OUTPUT; the addon from SPDLOG_LEVEL; info on stderr when
// nobody did). Control plane only: never called from a trampoline or a
// callback path; lost_return() (a return with no saved address) logs on its
// way to abort().
#pragma once

#include <bpftime/common/log.hpp>

namespace bpftime::attach::detail {

using bpftime::log_level;

inline constexpr log_source attach_log{ "bpftime attach", false };

} // namespace bpftime::attach::detail
