// hooks/hooks.cpp: the table of hook families (see hooks.hpp).
#include "hooks/hooks.hpp"

#include <bpftime/agent/log.hpp>

namespace bpftime::agent::hooks {

const family *find_family(handlers::hook_family f) noexcept
{
	static const family *const table[] = {
#define BPFTIME_X(name) &name##_family,
		BPFTIME_AGENT_HOOK_FAMILIES(BPFTIME_X)
#undef BPFTIME_X
	};
	for (const family *fam : table)
		if (fam->id == f)
			return fam;
	return nullptr;
}

void fail_link(link_status &st, int code, std::string msg)
{
	st.state = link_state::failed;
	st.err = error{ code, std::move(msg) };
	log(agent_log, log_level::warn, "link %u: %s", st.link_id,
	    st.err.message.c_str());
}

} // namespace bpftime::agent::hooks
