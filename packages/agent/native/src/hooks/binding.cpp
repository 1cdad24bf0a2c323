// hooks/binding.cpp: see hooks/binding.hpp.
#include "hooks/binding.hpp"

#include <bpftime/handlers/helpers.hpp>
#include <bpftime/shm/segment.hpp>
#include <bpftime/vm/verifier.hpp>

namespace bpftime::agent::hooks {

constinit thread_local const binding *t_running
	__attribute__((tls_model("initial-exec"))) = nullptr;

std::unique_ptr<binding> bind_program(const services &s,
				      const link_request &r, link_status &st)
{
	if (!s.backend) {
		fail_link(st, s.backend.error().code,
		     st.where + ": " + s.backend.error().message);
		return nullptr;
	}
	handlers::instance_options opts;
	opts.backend = *s.backend;
	auto inst = s.reg.instantiate(r.link.prog_id, opts);
	if (!inst) {
		fail_link(st, inst.error().code,
			  st.where + ": " + inst.error().message);
		return nullptr;
	}
	auto b = std::make_unique<binding>();
	b->owner = *inst;
	b->prog = b->owner.get();
	const vm::runner run = b->prog->machine().get_runner();
	b->run_fn.store(run.fn, std::memory_order_relaxed);
	b->run_self = run.self;
	b->cpu_slots = b->prog->cpu_slots();
	b->cookie = r.link.cookie;
	b->link_id = st.link_id;
	b->in_place = !vm::may_write_context(b->prog->machine().instructions(),
					     handlers::helper_written_args);
	// Made by the first agent or tool that needs it; without room for it
	// the program simply is not counted.
	if (auto t = s.reg.segment().find_or_construct<handlers::prog_stats_table>(
		    handlers::PROG_STATS_NAME);
	    t && (*t)->valid() && (*t)->slot(r.link.prog_id)) {
		b->stats_on = &(*t)->enabled;
		b->stats = (*t)->slot(r.link.prog_id);
	}
	return b;
}

} // namespace bpftime::agent::hooks
