// bench_object.cpp: reading what bench/suites/vm.mjs wrote of a bench
// program's object (the format is in the header).
#include "bench_object.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <new>
#include <sstream>

namespace bench {

using bpftime::fail;
using bpftime::result;
using bpftime::vm::insn;

namespace {

// Two hex digits per byte; false on anything else.
bool from_hex(const std::string &hex, std::vector<uint8_t> &out)
{
	if (hex.size() % 2 != 0)
		return false;
	out.resize(hex.size() / 2);
	for (size_t i = 0; i < out.size(); i++) {
		char *end = nullptr;
		const std::string byte = hex.substr(2 * i, 2);
		out[i] = static_cast<uint8_t>(std::strtoul(byte.c_str(), &end, 16));
		if (end != byte.c_str() + 2)
			return false;
	}
	return true;
}

} // namespace

result<bench_object> read_bench_object(const std::string &stem)
{
	const std::string path = stem + ".bpf.txt";
	std::ifstream in(path);
	if (!in)
		return fail(ENOENT, path + ": cannot open (bench/suites/vm.mjs writes it "
					   "beside <stem>.bpf.o)");
	bench_object obj;
	obj.path = stem + ".bpf.o";
	std::string text;
	if (!std::getline(in, text) || text != "bpftime-bench-object 1")
		return fail(EINVAL, path + ": not a bpftime-bench-object 1 file");
	size_t line = 1, count = 0;
	while (std::getline(in, text)) {
		line++;
		std::istringstream l(text);
		std::string kw, hex;
		std::vector<uint8_t> bytes;
		if (!(l >> kw))
			continue;
		bool ok = true;
		if (kw == "program") {
			std::string name;
			ok = bool(l >> name >> count);
			obj.insns.reserve(count);
		} else if (kw == "insn") {
			ok = (l >> hex) && from_hex(hex, bytes) && bytes.size() == sizeof(insn);
			if (ok)
				std::memcpy(&obj.insns.emplace_back(), bytes.data(), sizeof(insn));
		} else if (kw == "data") {
			data_section d;
			ok = bool(l >> d.name >> d.size >> hex) &&
			     (hex == "-" || (from_hex(hex, d.init) && d.init.size() == d.size));
			obj.sections.push_back(std::move(d));
		} else if (kw == "symbol") {
			data_symbol s;
			ok = (l >> s.name >> s.section >> s.offset >> s.size) &&
			     s.section < obj.sections.size() &&
			     s.offset + s.size <= obj.sections[s.section].size;
			obj.symbols.push_back(std::move(s));
		} else {
			ok = false;
		}
		if (!ok)
			return fail(EINVAL, path + ":" + std::to_string(line) + ": bad '" + kw +
						    "' line");
	}
	if (obj.insns.empty() || obj.insns.size() != count)
		return fail(EINVAL, path + ": " + std::to_string(obj.insns.size()) +
					    " insn lines for a program of " + std::to_string(count));
	return obj;
}

void data_image::deleter::operator()(uint8_t *p) const noexcept
{
	std::free(p);
}

data_image::data_image(const bench_object &obj) : obj_(obj)
{
	for (const data_section &d : obj.sections) {
		size_ = (size_ + 63) / 64 * 64;
		offsets_.push_back(size_);
		size_ += d.size;
	}
	const uint64_t alloc = std::max<uint64_t>((size_ + 4095) / 4096 * 4096, 4096);
	buf_.reset(static_cast<uint8_t *>(std::aligned_alloc(4096, alloc)));
	if (!buf_)
		throw std::bad_alloc();
	std::memset(buf_.get(), 0, alloc);
	for (size_t i = 0; i < obj.sections.size(); i++)
		if (!obj.sections[i].init.empty())
			std::memcpy(buf_.get() + offsets_[i], obj.sections[i].init.data(),
				    obj.sections[i].init.size());
}

uint8_t *data_image::section(uint32_t index) const noexcept
{
	return index < offsets_.size() ? buf_.get() + offsets_[index] : nullptr;
}

bpftime::status data_image::fill(const std::string &symbol, std::span<const uint8_t> bytes)
{
	for (const data_symbol &s : obj_.symbols) {
		if (s.name != symbol)
			continue;
		if (bytes.size() > s.size)
			return fail(EINVAL, obj_.path + ": global '" + symbol + "' holds " +
						    std::to_string(s.size) + " bytes, not " +
						    std::to_string(bytes.size()));
		std::memcpy(section(s.section) + s.offset, bytes.data(), bytes.size());
		return {};
	}
	return fail(EINVAL, obj_.path + ": no global '" + symbol + "'");
}

bpftime::vm::lddw_resolver data_image::resolver() const
{
	return [this](const bpftime::vm::lddw_request &r) -> result<uint64_t> {
		if (r.kind != bpftime::vm::BPF_PSEUDO_MAP_VALUE)
			return fail(EINVAL, "only global data (BPF_PSEUDO_MAP_VALUE) is resolved");
		if (r.imm < 0 || size_t(r.imm) >= obj_.sections.size())
			return fail(EINVAL, "no global-data section #" + std::to_string(r.imm));
		const data_section &d = obj_.sections[size_t(r.imm)];
		if (r.next_imm < 0 || uint64_t(r.next_imm) > d.size)
			return fail(EINVAL, "offset " + std::to_string(r.next_imm) + " outside " +
						    d.name);
		return reinterpret_cast<uint64_t>(buf_.get() + offsets_[size_t(r.imm)] +
						  uint64_t(r.next_imm));
	};
}

} // namespace bench
