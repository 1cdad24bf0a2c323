// log_driver.cpp: a program that configures the log as an edge does (from
// the environment) and writes one line at each level as two sources, for
// test/log.test.ts. Compiled at test time with native/src/log.cpp.
#include <bpftime/common/log.hpp>

#include <cerrno>
#include <cstdio>

int main()
{
	constexpr bpftime::log_source agent{ "bpftime-agent", true };
	constexpr bpftime::log_source attach{ "bpftime attach", false };
	bpftime::log_configure(bpftime::log_options_from_env(), agent);
	using bpftime::log_level;
	for (log_level l : { log_level::trace, log_level::debug, log_level::info,
			     log_level::warn, log_level::error,
			     log_level::critical }) {
		errno = EAGAIN;
		bpftime::log(agent, l, "agent line at %s", bpftime::log_level_name(l));
		bpftime::log(attach, l, "attach line at %s", bpftime::log_level_name(l));
		if (errno != EAGAIN)
			printf("errno changed by log(): %d\n", errno);
	}
	return 0;
}
