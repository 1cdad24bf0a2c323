// kernel_peer.cpp: the kernel column of the VM benchmark (see the header).
// Built with libbpf when CMake finds it; otherwise every load() says so and
// the column is skipped.
#include "kernel_peer.hpp"

#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <sstream>

#if BENCH_HAVE_LIBBPF
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#endif

namespace bench {

using bpftime::fail;
using bpftime::result;

#if BENCH_HAVE_LIBBPF

namespace {

// Everything libbpf prints while loading (one thread, one load per
// process), so a refusal can quote the verifier's own words.
std::string libbpf_log;

int capture(enum libbpf_print_level, const char *fmt, va_list ap)
{
	char buf[4096];
	const int n = std::vsnprintf(buf, sizeof buf, fmt, ap);
	if (n > 0)
		libbpf_log.append(buf, std::min<size_t>(size_t(n), sizeof buf - 1));
	return n;
}

// The last `n` non-empty lines of the verifier log libbpf printed (between
// its BEGIN/END PROG LOAD LOG markers), or of the whole capture.
std::string log_tail(size_t n)
{
	std::string text = libbpf_log;
	if (auto b = text.find("-- BEGIN PROG LOAD LOG --"); b != std::string::npos) {
		text = text.substr(b + 25);
		if (auto e = text.find("-- END PROG LOAD LOG --"); e != std::string::npos)
			text.resize(e);
	}
	std::vector<std::string> lines;
	std::istringstream in(text);
	for (std::string line; std::getline(in, line);)
		if (line.find_first_not_of(" \t") != std::string::npos)
			lines.push_back(line);
	std::string out;
	for (size_t i = lines.size() > n ? lines.size() - n : 0; i < lines.size(); i++)
		out += (out.empty() ? "" : " | ") + lines[i];
	return out;
}

} // namespace

bool kernel_peer::available() noexcept
{
	return true;
}

result<std::unique_ptr<kernel_peer>> kernel_peer::load(const bench_object &obj, const data_image &img)
{
	libbpf_set_print(capture);
	std::unique_ptr<kernel_peer> k(new kernel_peer());
	k->obj_ = bpf_object__open_file(obj.path.c_str(), nullptr);
	if (!k->obj_)
		return fail(errno, "libbpf cannot open " + obj.path + ": " + log_tail(2));
	bpf_program *prog = bpf_object__find_program_by_name(k->obj_, "bench_run");
	if (!prog)
		return fail(EINVAL, obj.path + ": no program bench_run");
	bpf_program__set_type(prog, BPF_PROG_TYPE_SOCKET_FILTER);
	if (int err = bpf_object__load(k->obj_); err) {
		const int e = -err;
		const std::string tail = log_tail(3);
		if (tail.find("processed") != std::string::npos ||
		    libbpf_log.find("BEGIN PROG LOAD LOG") != std::string::npos)
			return fail(e, std::string("the kernel's verifier rejected it (") +
					       std::strerror(e) + "): " + tail);
		return fail(e, std::string("bpf() refused the load: ") + std::strerror(e) +
				       (e == EPERM ? " (needs CAP_BPF or root)" : "") + "; " + tail);
	}
	k->prog_fd_ = bpf_program__fd(prog);

	// Give the kernel's .bss/.data the driver's bytes (the input), as the
	// driver gave them to bpftime's buffer. libbpf names each global-data
	// map after its section ("checksum.bss"): that name ends with the
	// section's, which @bpftime/loader wrote into the bench object. .rodata
	// is frozen after load and already holds the object's bytes, the same
	// as the image.
	bpf_map *m;
	bpf_object__for_each_map(m, k->obj_)
	{
		if (!bpf_map__is_internal(m))
			continue;
		const std::string name = bpf_map__name(m);
		for (uint32_t i = 0; i < obj.sections.size(); i++) {
			const data_section &d = obj.sections[i];
			if (d.name.starts_with(".rodata") || !name.ends_with(d.name) ||
			    bpf_map__value_size(m) != d.size)
				continue;
			const uint32_t key = 0;
			if (bpf_map_update_elem(bpf_map__fd(m), &key, img.section(i), 0) != 0)
				return fail(errno, "map '" + name + "': update: " + std::strerror(errno));
		}
	}
	return k;
}

kernel_peer::~kernel_peer()
{
	bpf_object__close(obj_);
}

result<kernel_peer::run_result> kernel_peer::run(uint32_t repeat) const
{
	// A socket filter's test run needs a packet of at least ETH_HLEN bytes;
	// the programs ignore it.
	uint8_t packet[64] = {};
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = packet, .data_size_in = sizeof packet,
		    .repeat = static_cast<int>(repeat));
	const auto t0 = std::chrono::steady_clock::now();
	if (bpf_prog_test_run_opts(prog_fd_, &o) != 0)
		return fail(errno, std::string("BPF_PROG_TEST_RUN: ") + std::strerror(errno));
	const auto t1 = std::chrono::steady_clock::now();
	run_result r;
	r.retval = o.retval;
	r.duration = o.duration;
	r.wall_ns = double(std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count()) /
		    repeat;
	return r;
}

std::vector<uint8_t> kernel_peer::jited_code() const
{
	bpf_prog_info info{};
	uint32_t len = sizeof info;
	if (bpf_obj_get_info_by_fd(prog_fd_, &info, &len) != 0 || info.jited_prog_len == 0)
		return {};
	std::vector<uint8_t> code(info.jited_prog_len);
	bpf_prog_info again{};
	again.jited_prog_len = info.jited_prog_len;
	again.jited_prog_insns = reinterpret_cast<uint64_t>(code.data());
	len = sizeof again;
	if (bpf_obj_get_info_by_fd(prog_fd_, &again, &len) != 0)
		return {};
	return code;
}

uint32_t kernel_peer::xlated_insns() const
{
	bpf_prog_info info{};
	uint32_t len = sizeof info;
	if (bpf_obj_get_info_by_fd(prog_fd_, &info, &len) != 0)
		return 0;
	return info.xlated_prog_len / 8;
}

#else // !BENCH_HAVE_LIBBPF

bool kernel_peer::available() noexcept
{
	return false;
}

result<std::unique_ptr<kernel_peer>> kernel_peer::load(const bench_object &, const data_image &)
{
	return fail(ENOTSUP, "vm_bench was built without libbpf (install libbpf-dev and rebuild)");
}

kernel_peer::~kernel_peer() = default;

result<kernel_peer::run_result> kernel_peer::run(uint32_t) const
{
	return fail(ENOTSUP, "built without libbpf");
}

std::vector<uint8_t> kernel_peer::jited_code() const
{
	return {};
}

uint32_t kernel_peer::xlated_insns() const
{
	return 0;
}

#endif

} // namespace bench
