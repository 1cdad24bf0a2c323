// cmd_prog.cpp: BPF_PROG_LOAD, BPF_PROG_TEST_RUN and BPF_PROG_BIND_MAP, as
// the kernel's bpf_prog_load() / bpf_prog_test_run() / bpf_prog_bind_map().
//
// A loaded program is verified here, in the tool, by the same verifier
// every target runs (registry::instantiate on the interpreter), so a
// program the targets would refuse is refused at load, with the message in
// the tool's log_buf, as the kernel's verifier does.
#include "server_impl.hpp"
#include "user_memory.hpp"

#include <bpftime/handlers/program.hpp>

#include <linux/bpf.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstring>
#include <vector>

namespace bpftime::syscall_server {

int copy_obj_name(std::string &out, const char (&name)[BPF_OBJ_NAME_LEN]);

namespace {

constexpr uint32_t COMPLEXITY_LIMIT_INSNS = 1000000;
constexpr uint32_t LOG_LEVEL_MASK = 1 | 2 | 4 | 8;
constexpr uint32_t KNOWN_PROG_FLAGS = BPF_F_STRICT_ALIGNMENT |
				      BPF_F_ANY_ALIGNMENT | BPF_F_TEST_STATE_FREQ |
				      BPF_F_SLEEPABLE | BPF_F_TEST_RND_HI32 |
				      BPF_F_XDP_HAS_FRAGS;

} // namespace

// The kernel's bpf_verifier_log_attr_valid() (6.4 and later, which dropped
// the 128-byte minimum), for the logs of PROG_LOAD and BTF_LOAD: a buffer
// and its size together, a buffer only with a level, known level bits.
int check_log(uint32_t level, uint64_t buf, uint32_t size)
{
	if (!!buf != !!size)
		return -EINVAL;
	if (buf && !level)
		return -EINVAL;
	if (level & ~LOG_LEVEL_MASK)
		return -EINVAL;
	if (size > (UINT_MAX >> 8))
		return -EINVAL;
	return 0;
}

namespace {

} // namespace

// Writes text to a verifier log of `size` bytes, NUL-terminated, as the
// kernel's bpf_vlog_finalize() leaves it: when it does not fit, the last
// size - 1 bytes (the default, rotating log) or the first ones
// (BPF_LOG_FIXED), and ENOSPC, which the kernel returns even for a program
// it rejected.
int write_log(uint32_t level, uint64_t buf, uint32_t size, const std::string &text)
{
	if (!level || !buf)
		return 0;
	constexpr uint32_t LOG_FIXED = 8;
	size_t n = std::min<size_t>(text.size(), size - 1);
	size_t from = (level & LOG_FIXED) ? 0 : text.size() - n;
	if (copy_to_user(buf, text.data() + from, n))
		return -EFAULT;
	char nul = 0;
	if (copy_to_user(buf + n, &nul, 1))
		return -EFAULT;
	return text.size() + 1 > size ? -ENOSPC : 0;
}

long server::impl::prog_cmd(int cmd, union bpf_attr &attr, uint64_t uattr)
{
	int err = 0;
	if (cmd == BPF_PROG_BIND_MAP) {
		if (attr.prog_bind_map.flags)
			return -EINVAL;
		auto p = get_kind(int(attr.prog_bind_map.prog_fd), obj_kind::prog, err);
		if (!p)
			return err;
		auto m = get_kind(int(attr.prog_bind_map.map_fd), obj_kind::map, err);
		if (!m)
			return err;
		std::lock_guard g(mu);
		if (std::find(p->uses.begin(), p->uses.end(), m) == p->uses.end())
			p->uses.push_back(m);
		return 0;
	}
	if (cmd == BPF_PROG_TEST_RUN) {
		auto &t = attr.test;
		auto p = get_kind(int(t.prog_fd), obj_kind::prog, err);
		if (!p)
			return err;
		if (t.flags || t.cpu || t.batch_size)
			return -EINVAL;
		// The context: ctx_in when given, else the packet (data_in).
		bool use_ctx = t.ctx_in || t.ctx_size_in;
		uint64_t in = use_ctx ? t.ctx_in : t.data_in;
		uint32_t in_size = use_ctx ? t.ctx_size_in : t.data_size_in;
		std::vector<unsigned char> ctx(in_size);
		if (copy_from_user(ctx.data(), in, in_size))
			return -EFAULT;
		handlers::instance_options io;
		if (auto b = handlers::backend_from_env())
			io.backend = *b;
		auto inst = reg->instantiate(p->h.id, io);
		if (!inst)
			return -inst.error().code;
		uint32_t repeat = t.repeat ? t.repeat : 1;
		uint64_t r0 = 0;
		auto start = std::chrono::steady_clock::now();
		for (uint32_t i = 0; i < repeat; i++) {
			auto r = (*inst)->run(ctx.data(), ctx.size());
			if (!r)
				return -r.error().code;
			r0 = *r;
		}
		auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
				  std::chrono::steady_clock::now() - start)
				  .count();
		uint32_t retval = uint32_t(r0);
		uint32_t duration = uint32_t(uint64_t(ns) / repeat);
		uint64_t out = use_ctx ? t.ctx_out : t.data_out;
		uint32_t out_cap = use_ctx ? t.ctx_size_out : t.data_size_out;
		uint32_t out_size = in_size;
		int rc = 0;
		if (out) {
			uint32_t n = std::min(out_cap, in_size);
			if (copy_to_user(out, ctx.data(), n))
				return -EFAULT;
			if (n < in_size)
				rc = -ENOSPC;
		}
		auto at = [&](size_t off) { return uattr + off; };
		if (copy_to_user(at(offsetof(union bpf_attr, test.retval)), &retval, 4) ||
		    copy_to_user(at(offsetof(union bpf_attr, test.duration)), &duration, 4) ||
		    copy_to_user(at(use_ctx ? offsetof(union bpf_attr, test.ctx_size_out) :
					      offsetof(union bpf_attr, test.data_size_out)),
				 &out_size, 4))
			return -EFAULT;
		return rc;
	}

	// BPF_PROG_LOAD
	if (attr.prog_flags & ~KNOWN_PROG_FLAGS)
		return -EINVAL;
	if (attr.insn_cnt == 0 || attr.insn_cnt > COMPLEXITY_LIMIT_INSNS)
		return -E2BIG;
	handlers::prog_spec s;
	char license[128] = {};
	long l = string_from_user(license, attr.license, sizeof(license) - 1);
	if (l == -EFAULT)
		return -EFAULT;
	s.license = license;
	s.type = attr.prog_type;
	s.expected_attach_type = attr.expected_attach_type;
	s.attach_btf_id = attr.attach_btf_id;
	s.prog_flags = attr.prog_flags;
	s.kern_version = attr.kern_version;
	s.insns.resize(attr.insn_cnt);
	if (copy_from_user(s.insns.data(), attr.insns,
			   size_t(attr.insn_cnt) * sizeof(vm::insn)))
		return -EFAULT;
	if (int e = copy_obj_name(s.name, attr.prog_name))
		return e;
	if (int e = check_log(attr.log_level, attr.log_buf, attr.log_size))
		return e;

	// The tool's descriptors in lddw become registry ids (the kernel's
	// resolve_pseudo_ldimm64); the program holds its maps.
	std::vector<std::shared_ptr<object>> uses;
	auto use = [&](int fd, uint32_t &id) -> int {
		auto m = get_kind(fd, obj_kind::map, err);
		if (!m)
			return err;
		id = m->h.id;
		if (std::find(uses.begin(), uses.end(), m) == uses.end())
			uses.push_back(m);
		return 0;
	};
	for (size_t pc = 0; pc + 1 < s.insns.size(); pc++) {
		vm::insn &i = s.insns[pc];
		if (i.code != (BPF_LD | BPF_IMM | BPF_DW))
			continue;
		uint32_t id = 0;
		switch (i.src_reg) {
		case BPF_PSEUDO_MAP_FD:
		case BPF_PSEUDO_MAP_VALUE:
			if (int e = use(i.imm, id))
				return e;
			i.imm = int32_t(id);
			break;
		case BPF_PSEUDO_MAP_IDX:
		case BPF_PSEUDO_MAP_IDX_VALUE: {
			if (!attr.fd_array || i.imm < 0)
				return -EINVAL;
			int32_t fd;
			if (copy_from_user(&fd, attr.fd_array + uint64_t(i.imm) * 4, 4))
				return -EFAULT;
			if (int e = use(fd, id))
				return e;
			if (s.fd_array.size() <= size_t(i.imm))
				s.fd_array.resize(size_t(i.imm) + 1, handlers::NO_ID);
			s.fd_array[size_t(i.imm)] = id;
			break;
		}
		default:
			break;
		}
		pc++;
	}

	auto h = reg->create_prog(s);
	if (!h) {
		int e = write_log(attr.log_level, attr.log_buf, attr.log_size,
				  h.error().message + "\n");
		return e ? e : -h.error().code;
	}
	auto o = make(obj_kind::prog, *h, true);
	o->uses = std::move(uses);
	o->prog_type = s.type;
	o->load_time_ns = now_ns();
	handlers::instance_options io;
	io.backend = vm::backend::interpreter;
	auto inst = reg->instantiate(h->id, io);
	if (!inst) {
		// ~object releases the program.
		int e = write_log(attr.log_level, attr.log_buf, attr.log_size,
				  inst.error().message + "\n");
		return e ? e : -inst.error().code;
	}
	std::string ok = "processed " + std::to_string(s.insns.size()) +
			 " insns (limit 1000000) max_states_per_insn 0 "
			 "total_states 0 peak_states 0 mark_read 0\n";
	if (int e = write_log(attr.log_level, attr.log_buf, attr.log_size, ok))
		return e;
	// A new program counts from zero, whatever ran under its id before.
	prog_stats_reset(h->id);
	return install(std::move(o));
}

} // namespace bpftime::syscall_server
