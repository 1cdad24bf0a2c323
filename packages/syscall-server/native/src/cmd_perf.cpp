// cmd_perf.cpp: perf events (perf_event_open, the PERF_EVENT_IOC_* ioctls)
// of uprobes, syscall tracepoints, bpf_output (perf buffers; their rings in
// events.cpp) and cpu-clock timers, and the links that attach programs to
// them (BPF_LINK_CREATE with BPF_PERF_EVENT or BPF_TRACE_UPROBE_MULTI), as
// kernel/events/core.c, bpf_perf_link_attach() and
// bpf_uprobe_multi_link_attach() do.
//
// An event attached to a program (by SET_BPF or a link) and enabled is a
// registry link: the agent of every target started with `bpftime start`
// sees it and installs the probe; closing the link (or the event, for
// SET_BPF) releases it and the agents remove the probe. A timer instead
// runs its program on a thread of this process (timer_runner).
#include "server_impl.hpp"
#include "user_memory.hpp"

#include <bpftime/common/log.hpp>
#include <bpftime/handlers/syscalls_x86_64.hpp>

#include <linux/bpf.h>
#include <linux/perf_event.h>

#include <cerrno>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <thread>
#include <string>
#include <string_view>
#include <sys/syscall.h>
#include <unistd.h>

namespace bpftime::syscall_server {

namespace {
const log_source perf_log{ "syscall-server", true };

// kernel/trace/trace_uprobe.c: PERF_UPROBE_REF_CTR_OFFSET_SHIFT
constexpr int REF_CTR_OFFSET_SHIFT = 32;

using event_class = object::event_class;

// perf_event_set_bpf_prog() (kernel/events/core.c) and, for raw
// tracepoints, bpf_raw_tp_link_attach(): which programs an event takes.
bool attachable(event_class ev, uint32_t prog_type)
{
	switch (ev) {
	case event_class::uprobe:
		return prog_type == BPF_PROG_TYPE_KPROBE;
	case event_class::tracepoint:
		return prog_type == BPF_PROG_TYPE_TRACEPOINT;
	case event_class::raw_tracepoint:
		return prog_type == BPF_PROG_TYPE_RAW_TRACEPOINT ||
		       prog_type == BPF_PROG_TYPE_RAW_TRACEPOINT_WRITABLE;
	case event_class::bpf_output:
		return false;
	case event_class::timer:
		return prog_type == BPF_PROG_TYPE_PERF_EVENT;
	}
	return false;
}

// Program types a BPF_PERF_EVENT link may take at all (link_create()).
bool perf_link_prog(uint32_t prog_type)
{
	return prog_type == BPF_PROG_TYPE_KPROBE ||
	       prog_type == BPF_PROG_TYPE_TRACEPOINT ||
	       prog_type == BPF_PROG_TYPE_PERF_EVENT;
}

// The tracefs folder: /sys/kernel/tracing, or debugfs's tracing where
// tracefs is not mounted on its own (libbpf looks in the same two places).
const char *tracefs_events()
{
	if (!access("/sys/kernel/tracing/events", F_OK))
		return "/sys/kernel/tracing/events";
	return "/sys/kernel/debug/tracing/events";
}

int read_int_file(const std::string &path)
{
	long fd = syscall(SYS_openat, AT_FDCWD, path.c_str(), O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	char buf[32] = {};
	long n = syscall(SYS_read, fd, buf, sizeof(buf) - 1);
	syscall(SYS_close, fd);
	return n > 0 ? atoi(buf) : -1;
}
} // namespace

// The ids of the syscall tracepoints (sys_enter_<name>, sys_exit_<name>,
// raw_syscalls sys_enter / sys_exit), read from tracefs once: libbpf opens
// a tracepoint by the id it read there.
static void read_tracepoints(server::impl &s)
{
	std::lock_guard g(s.tracepoints_mu);
	if (s.tracepoints_read)
		return;
	s.tracepoints_read = true;
	std::string base = tracefs_events();
	if (DIR *d = opendir((base + "/syscalls").c_str())) {
		while (dirent *e = readdir(d)) {
			std::string_view name = e->d_name;
			bool exit = name.starts_with("sys_exit_");
			if (!exit && !name.starts_with("sys_enter_"))
				continue;
			auto nr = handlers::syscall_number(name.substr(exit ? 9 : 10));
			if (!nr)
				continue;
			int id = read_int_file(base + "/syscalls/" + e->d_name + "/id");
			if (id >= 0)
				s.tracepoints[uint64_t(id)] = { *nr, exit };
		}
		closedir(d);
	}
	for (bool exit : { false, true }) {
		int id = read_int_file(base + (exit ? "/raw_syscalls/sys_exit/id" :
						      "/raw_syscalls/sys_enter/id"));
		if (id >= 0)
			s.tracepoints[uint64_t(id)] = { -1, exit };
	}
}

long server::perf_event_open(uint64_t uattr, long pid, long cpu,
			     long group_fd, unsigned long flags) noexcept
{
	try {
		impl &s = *impl_;
		uint32_t head[2];
		if (copy_from_user(head, uattr, sizeof(head)))
			return -EFAULT;
		const bool is_uprobe = s.uprobe_type >= 0 && head[0] == uint32_t(s.uprobe_type);
		if (!is_uprobe && head[0] != PERF_TYPE_TRACEPOINT &&
		    head[0] != PERF_TYPE_SOFTWARE)
			return -ENOSYS;
		// perf_copy_attr(): size 0 is the first version's size.
		uint32_t size = head[1] ? head[1] : PERF_ATTR_SIZE_VER0;
		if (size < PERF_ATTR_SIZE_VER0 || size > 4096)
			return -E2BIG;
		perf_event_attr a;
		memset(&a, 0, sizeof(a));
		if (copy_from_user(&a, uattr, size < sizeof(a) ? size : sizeof(a)))
			return -EFAULT;
		if (size > sizeof(a)) {
			const auto *p = reinterpret_cast<const unsigned char *>(uattr);
			if (!user_readable(uattr + sizeof(a), size - sizeof(a)))
				return -EFAULT;
			for (size_t i = sizeof(a); i < size; i++)
				if (p[i])
					return -E2BIG;
		}
		if (flags & ~(unsigned long)(PERF_FLAG_FD_NO_GROUP | PERF_FLAG_FD_OUTPUT |
					     PERF_FLAG_PID_CGROUP | PERF_FLAG_FD_CLOEXEC))
			return -EINVAL;
		if (pid == -1 && cpu == -1)
			return -EINVAL;
		if (group_fd != -1)
			return -EINVAL;
		handlers::perf_event_spec spec;
		spec.pid = pid == 0 ? int32_t(getpid()) : int32_t(pid);
		if (head[0] == PERF_TYPE_SOFTWARE) {
			// A CPU-wide cpu-clock event: a timer (bpftrace's
			// interval and profile probes). A perf buffer's per-CPU
			// event (libbpf's perf_buffer__new, bcc's perf reader):
			// its ring is the perf event array slot it is stored in.
			// Other software events the kernel serves.
			if (a.config == PERF_COUNT_SW_CPU_CLOCK && pid == -1)
				return s.open_timer(a, cpu, flags);
			if (a.config != PERF_COUNT_SW_BPF_OUTPUT)
				return -ENOSYS;
			if (cpu < -1 || cpu >= sysconf(_SC_NPROCESSORS_CONF))
				return -EINVAL;
			spec.type = handlers::perf_event_type::custom;
			spec.custom_name = "bpf_output";
			spec.custom_config = PERF_COUNT_SW_BPF_OUTPUT;
			auto h = s.reg->create_perf_event(spec);
			if (!h)
				return -h.error().code;
			auto o = s.make(obj_kind::perf_event, *h, true);
			o->ev = event_class::bpf_output;
			o->enabled = !a.disabled;
			return s.install(std::move(o), flags & PERF_FLAG_FD_CLOEXEC);
		}
		if (!is_uprobe) {
			// A tracepoint: ours when it is a syscall one; any other
			// (sched, net ...) the kernel serves.
			read_tracepoints(s);
			auto it = s.tracepoints.find(a.config);
			if (it == s.tracepoints.end()) {
				// A uprobe made through tracefs's uprobe_events.
				if (!s.legacy_uprobe(a.config, spec))
					return -ENOSYS;
				auto h = s.reg->create_perf_event(spec);
				if (!h)
					return -h.error().code;
				auto o = s.make(obj_kind::perf_event, *h, true);
				o->ev = event_class::uprobe;
				o->enabled = !a.disabled;
				return s.install(std::move(o), flags & PERF_FLAG_FD_CLOEXEC);
			}
			spec.type = handlers::perf_event_type::syscall_tracepoint;
			spec.syscall_id = it->second.syscall_id;
			spec.syscall_exit = it->second.exit;
			auto h = s.reg->create_perf_event(spec);
			if (!h)
				return -h.error().code;
			auto o = s.make(obj_kind::perf_event, *h, true);
			o->ev = event_class::tracepoint;
			o->enabled = !a.disabled;
			return s.install(std::move(o), flags & PERF_FLAG_FD_CLOEXEC);
		}
		bool ret = (a.config >> s.retprobe_bit) & 1;
		spec.type = ret ? handlers::perf_event_type::uretprobe :
				  handlers::perf_event_type::uprobe;
		char path[PATH_MAX];
		long n = string_from_user(path, a.config1, sizeof(path));
		if (n == -EFAULT)
			return -EFAULT;
		if (n < 0)
			return -ENAMETOOLONG;
		spec.path = path;
		spec.offset = a.config2;
		spec.ref_ctr_offset = a.config >> REF_CTR_OFFSET_SHIFT;
		auto h = s.reg->create_perf_event(spec);
		if (!h)
			return -h.error().code;
		auto o = s.make(obj_kind::perf_event, *h, true);
		o->enabled = !a.disabled;
		return s.install(std::move(o), flags & PERF_FLAG_FD_CLOEXEC);
	} catch (const std::bad_alloc &) {
		return -ENOMEM;
	} catch (...) {
		return -EINVAL;
	}
}

// A timer event's program, run every period on a thread of this process
// (the kernel runs it from the CPU's hrtimer interrupt, in whatever task it
// interrupted): bpf_perf_event_data with zero registers and the period.
struct timer_runner {
	std::mutex m;
	std::condition_variable cv;
	bool stop = false;
	std::thread th;

	~timer_runner()
	{
		{
			std::lock_guard g(m);
			stop = true;
		}
		cv.notify_all();
		if (th.joinable())
			th.join();
	}
};

long server::impl::open_timer(const perf_event_attr &a, long cpu,
			      unsigned long flags)
{
	if (cpu < 0 || cpu >= sysconf(_SC_NPROCESSORS_CONF))
		return -EINVAL;
	// perf_event_open(): a frequency above kernel.perf_event_max_sample_rate
	// is EINVAL; period 0 counts and never fires (its program never runs).
	uint64_t period;
	if (a.freq) {
		int max = read_int_file("/proc/sys/kernel/perf_event_max_sample_rate");
		if (a.sample_freq == 0 || (max > 0 && a.sample_freq > uint64_t(max)))
			return -EINVAL;
		period = 1000000000ull / a.sample_freq;
	} else {
		period = a.sample_period;
	}
	handlers::perf_event_spec spec;
	spec.type = handlers::perf_event_type::custom;
	spec.custom_name = "cpu_clock";
	spec.custom_config = PERF_COUNT_SW_CPU_CLOCK;
	auto h = reg->create_perf_event(spec);
	if (!h)
		return -h.error().code;
	auto o = make(obj_kind::perf_event, *h, true);
	o->ev = event_class::timer;
	o->period_ns = period && period < 10000 ? 10000 : period;
	o->enabled = !a.disabled;
	return install(std::move(o), flags & PERF_FLAG_FD_CLOEXEC);
}

// pe.mu held.
long server::impl::sync_timer(object &pe)
{
	bool want = pe.prog && pe.enabled && pe.period_ns;
	if (!want) {
		pe.timer.reset();
		return 0;
	}
	if (pe.timer)
		return 0;
	handlers::instance_options io;
	if (auto b = handlers::backend_from_env())
		io.backend = *b;
	auto inst = reg->instantiate(pe.prog->h.id, io);
	if (!inst)
		return -inst.error().code;
	auto t = std::make_shared<timer_runner>();
	uint64_t period = pe.period_ns;
	t->th = std::thread([t = t.get(), prog = *inst, period] {
		struct {
			uint8_t regs[168]; // struct pt_regs
			uint64_t sample_period;
			uint64_t addr;
		} ctx{};
		ctx.sample_period = period;
		auto next = std::chrono::steady_clock::now();
		std::unique_lock l(t->m);
		for (;;) {
			next += std::chrono::nanoseconds(period);
			if (t->cv.wait_until(l, next, [t] { return t->stop; }))
				return;
			l.unlock();
			(void)prog->run(&ctx, sizeof ctx);
			l.lock();
			// Fell behind (a slow program, a stopped process): the
			// kernel's hrtimer forwards past the missed periods.
			auto now = std::chrono::steady_clock::now();
			if (next < now)
				next = now;
		}
	});
	pe.timer = std::move(t);
	return 0;
}

long server::impl::sync_perf_link(object &pe)
{
	if (pe.ev == event_class::timer)
		return sync_timer(pe);
	bool want = pe.prog && pe.enabled;
	if (want && reg_link_absent(pe)) {
		handlers::link_spec ls;
		ls.prog_id = pe.prog->h.id;
		ls.target_id = pe.h.id;
		// What the kernel's link says it is: a raw tracepoint link, or
		// a perf event one; every process reads it from the registry.
		ls.attach_type = pe.ev == event_class::raw_tracepoint ? BPF_TRACE_RAW_TP :
									BPF_PERF_EVENT;
		ls.cookie = pe.cookie;
		auto h = reg->create_link(ls);
		if (!h)
			return -h.error().code;
		pe.reg_link = *h;
		record_owner(*this, *h);
	} else if (!want && !reg_link_absent(pe) &&
		   !keep.load(std::memory_order_relaxed)) {
		// keep_objects keeps attachments too: a skeleton's destroy
		// disables each event before closing it.
		if (auto r = reg->release(pe.reg_link); !r)
			log(perf_log, log_level::warn, "detach: %s",
			    r.error().message.c_str());
		forget_owner(*this, pe.reg_link);
		pe.reg_link = { handlers::NO_ID, 0 };
	}
	return 0;
}

long server::impl::attach_perf(object &pe, std::shared_ptr<object> prog,
			       bool by_link)
{
	if (!attachable(pe.ev, prog->prog_type))
		return -EINVAL;
	std::lock_guard g(pe.mu);
	if (pe.prog)
		return -EEXIST;
	pe.prog = std::move(prog);
	pe.by_link = by_link;
	// A link attaches whether or not the event was enabled yet (libbpf
	// enables it after); SET_BPF follows the enable state.
	if (by_link)
		pe.enabled = true;
	if (long e = sync_perf_link(pe)) {
		pe.prog.reset();
		return e;
	}
	return 0;
}

void server::impl::detach_perf(object &pe)
{
	std::lock_guard g(pe.mu);
	pe.prog.reset();
	sync_perf_link(pe);
}

long server::ioctl(int fd, unsigned long request, uint64_t arg) noexcept
{
	try {
		impl &s = *impl_;
		auto o = s.get(fd);
		if (!o)
			return -EBADF;
		if (o->kind != obj_kind::perf_event)
			return -ENOTTY;
		switch (request) {
		case PERF_EVENT_IOC_SET_BPF: {
			int err = 0;
			auto p = s.get_kind(int(arg), obj_kind::prog, err);
			if (!p)
				return err;
			return s.attach_perf(*o, std::move(p), false);
		}
		case PERF_EVENT_IOC_ENABLE:
		case PERF_EVENT_IOC_DISABLE: {
			std::lock_guard g(o->mu);
			o->enabled = request == PERF_EVENT_IOC_ENABLE;
			return s.sync_perf_link(*o);
		}
		case PERF_EVENT_IOC_QUERY_BPF: {
			// perf_event_query_prog_array(): tracepoint events only
			// (a uprobe PMU event is EINVAL there too).
			if (o->ev != object::event_class::tracepoint)
				return -EINVAL;
			uint32_t ids_len;
			if (copy_from_user(&ids_len, arg, 4))
				return -EFAULT;
			std::lock_guard g(o->mu);
			uint32_t cnt = o->prog ? 1 : 0;
			if (copy_to_user(arg + 4, &cnt, 4))
				return -EFAULT;
			// ids_len 0 asks for the count alone (bpf_prog_array_copy_info()).
			if (!cnt || !ids_len)
				return 0;
			uint32_t id = ext_id(o->prog->h.id);
			return copy_to_user(arg + 8, &id, 4);
		}
		default:
			return -ENOTTY;
		}
	} catch (const std::bad_alloc &) {
		return -ENOMEM;
	} catch (...) {
		return -EINVAL;
	}
}

// bpf_uprobe_multi_link_attach() (kernel/trace/bpf_trace.c), with its
// checks in its order: one uprobe (or uretprobe) per offset of one binary,
// each with its cookie, behind one link. Here: a registry uprobe event and
// link per offset, all held by the link object, which detaches them
// together when it goes.
long server::impl::uprobe_multi(std::shared_ptr<object> p,
				const union bpf_attr &attr)
{
	uprobe_multi_attr m;
	memcpy(&m, reinterpret_cast<const uint8_t *>(&attr.link_create) + 16,
	       sizeof m);
	if (attr.link_create.flags)
		return -EINVAL;
	uint32_t expected = 0;
	if (auto d = reg->get(p->h.id); d && d->kind == handlers::handler_kind::prog)
		expected = std::get<handlers::prog_spec>(d->spec).expected_attach_type;
	if (expected != TRACE_UPROBE_MULTI)
		return -EINVAL;
	if (m.flags & ~UPROBE_MULTI_RETURN)
		return -EINVAL;
	if (!m.path || !m.offsets || !m.cnt || int32_t(m.pid) < 0)
		return -EINVAL;
	if (m.cnt > MAX_UPROBE_MULTI_CNT)
		return -E2BIG;
	char path[PATH_MAX];
	long n = string_from_user(path, m.path, sizeof(path));
	if (n == -EFAULT)
		return -EFAULT;
	if (n < 0)
		return -ENAMETOOLONG;
	struct stat st;
	if (stat(path, &st) != 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EBADF;
	if (m.pid && kill(pid_t(m.pid), 0) != 0 && errno == ESRCH)
		return -ESRCH;
	std::vector<uint64_t> offsets(m.cnt), refs(m.cnt), cookies(m.cnt);
	if (copy_from_user(offsets.data(), m.offsets, m.cnt * 8))
		return -EFAULT;
	if (m.ref_ctr_offsets &&
	    copy_from_user(refs.data(), m.ref_ctr_offsets, m.cnt * 8))
		return -EFAULT;
	if (m.cookies && copy_from_user(cookies.data(), m.cookies, m.cnt * 8))
		return -EFAULT;
	std::vector<std::shared_ptr<object>> uses{ p };
	for (uint32_t i = 0; i < m.cnt; i++) {
		handlers::perf_event_spec spec;
		spec.type = (m.flags & UPROBE_MULTI_RETURN) ?
				    handlers::perf_event_type::uretprobe :
				    handlers::perf_event_type::uprobe;
		spec.path = path;
		spec.offset = offsets[i];
		spec.ref_ctr_offset = refs[i];
		spec.pid = m.pid ? int32_t(m.pid) : -1;
		auto h = reg->create_perf_event(spec);
		if (!h)
			return -h.error().code; // uses' ~object releases the rest
		auto pe = make(obj_kind::perf_event, *h, true);
		pe->enabled = true;
		{
			std::lock_guard g(pe->mu);
			pe->cookie = cookies[i];
		}
		if (long e = attach_perf(*pe, p, true))
			return e;
		uses.push_back(std::move(pe));
	}
	auto l = make(obj_kind::link, uses[1]->reg_link, true);
	l->uprobe_multi = true;
	l->uses = std::move(uses);
	return install(std::move(l));
}

long server::impl::link_cmd(int cmd, union bpf_attr &attr, uint64_t)
{
	int err = 0;
	if (cmd == BPF_LINK_DETACH) {
		// Perf event and raw tracepoint links have no detach operation
		// in the kernel (bpf_perf_link_lops, bpf_raw_tp_link_lops):
		// closing them is how they go.
		auto l = get_kind(int(attr.link_detach.link_fd), obj_kind::link, err);
		if (!l)
			return err;
		return -EOPNOTSUPP;
	}
	if (cmd == BPF_LINK_UPDATE) {
		// link_update(): the link, then the programs, then the link's
		// update_prog, which these links do not have.
		auto &u = attr.link_update;
		if (u.flags & ~uint32_t(BPF_F_REPLACE))
			return -EINVAL;
		auto l = get_kind(int(u.link_fd), obj_kind::link, err);
		if (!l)
			return err;
		auto np = get_kind(int(u.new_prog_fd), obj_kind::prog, err);
		if (!np)
			return err;
		if (u.flags & BPF_F_REPLACE) {
			auto op = get_kind(int(u.old_prog_fd), obj_kind::prog, err);
			if (!op)
				return err;
		} else if (u.old_prog_fd) {
			return -EINVAL;
		}
		return -EINVAL;
	}
	if (cmd == BPF_RAW_TRACEPOINT_OPEN) {
		auto p = get_kind(int(attr.raw_tracepoint.prog_fd), obj_kind::prog, err);
		if (!p)
			return err;
		char name[128];
		if (!attr.raw_tracepoint.name)
			return -EINVAL;
		long n = string_from_user(name, attr.raw_tracepoint.name, sizeof(name));
		if (n == -EFAULT)
			return -EFAULT;
		if (n < 0)
			return -ENOENT;
		// bpf_get_raw_tracepoint(): the raw tracepoints of system calls
		// are ours; any other name is one bpftime has not (ENOENT).
		std::string_view tp = name;
		if (tp != "sys_enter" && tp != "sys_exit")
			return -ENOENT;
		handlers::perf_event_spec spec;
		spec.type = handlers::perf_event_type::syscall_tracepoint;
		spec.syscall_id = -1;
		spec.syscall_exit = tp == "sys_exit";
		auto h = reg->create_perf_event(spec);
		if (!h)
			return -h.error().code;
		auto pe = make(obj_kind::perf_event, *h, true);
		pe->ev = event_class::raw_tracepoint;
		if (long e = attach_perf(*pe, p, true))
			return e;
		auto l = make(obj_kind::link, pe->reg_link, true);
		l->uses = { p, pe };
		return install(std::move(l));
	}
	auto &lc = attr.link_create;
	auto p = get_kind(int(lc.prog_fd), obj_kind::prog, err);
	if (!p)
		return err;
	if (p->prog_type == BPF_PROG_TYPE_KPROBE &&
	    lc.attach_type == TRACE_UPROBE_MULTI)
		return uprobe_multi(p, attr);
	// link_create() dispatches on the program's type first.
	if (!perf_link_prog(p->prog_type) || lc.attach_type != BPF_PERF_EVENT)
		return -EINVAL;
	if (lc.flags)
		return -EINVAL;
	// perf_event_get(): anything but a perf event is EBADF.
	auto pe = get(int(lc.target_fd));
	if (!pe || pe->kind != obj_kind::perf_event)
		return -EBADF;
	{
		std::lock_guard g(pe->mu);
		pe->cookie = lc.perf_event.bpf_cookie;
	}
	if (long e = attach_perf(*pe, p, true))
		return e;
	auto l = make(obj_kind::link, pe->reg_link, true);
	l->uses = { p, pe };
	return install(std::move(l));
}

} // namespace bpftime::syscall_server
