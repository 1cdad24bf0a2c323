// hooks/uprobe.hpp: what the uprobe family shares with the agent's
// bpf_override_return helper (attach_context.cpp).
#pragma once

#include <cstdint>

namespace bpftime::agent::hooks {

// What an override hook's program asked for, per thread: set by the
// bpf_override_return helper, read back by the override probe's callback
// (hooks/uprobe.cpp) after the program returns. initial-exec, as t_running
// (hooks/binding.hpp); constinit: no TLS wrapper call from other files.
struct override_request {
	bool requested;
	uint64_t value;
};
extern constinit thread_local override_request t_override
	__attribute__((tls_model("initial-exec")));

} // namespace bpftime::agent::hooks
