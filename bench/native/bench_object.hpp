// bench_object.hpp: what vm_bench needs from a clang -target bpf object of
// bench/programs: the instructions of its "socket" section, ready for
// bpftime::vm (global-data relocations turned into BPF_PSEUDO_MAP_VALUE
// lddws), and its global-data sections laid out in one buffer that those
// lddws resolve into.
//
//   auto obj = bench::read_bench_object("checksum.bpf.o");
//   bench::data_image img(*obj);              // .bss/.data/.rodata copies
//   vm.set_lddw_resolver(img.resolver());
//   vm.load(obj->insns);
//   img.fill("bench_input", bytes);            // the program's input
//
// This is the part of libbpf's bpf_object__open + relocation that the bench
// programs use (bpf_program__record_reloc, bpf_object__relocate_data): one
// program section, lddw relocations against global data, no sub-programs
// (bench.h inlines everything), no maps other than global data.
#pragma once

#include <bpftime/common/result.hpp>
#include <bpftime/vm/insn.hpp>
#include <bpftime/vm/vm.hpp>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace bench {

struct data_section {
	uint32_t shndx = 0;  // ELF section index: the imm of its lddws
	std::string name;    // ".bss", ".data", ".rodata" ...
	uint64_t size = 0;
	std::vector<uint8_t> init; // initial bytes (empty for .bss: zeros)
};

struct data_symbol {
	std::string name;
	uint32_t shndx = 0;
	uint64_t offset = 0; // in its section
	uint64_t size = 0;
};

struct bench_object {
	std::string path;
	// The "socket" section. Every lddw that the object relocates against
	// global data has src_reg BPF_PSEUDO_MAP_VALUE, imm = the section's
	// index and next_imm = the offset in it, as libbpf would have it with
	// imm = the map's fd.
	std::vector<bpftime::vm::insn> insns;
	std::vector<data_section> sections;
	std::vector<data_symbol> symbols; // STT_OBJECT symbols of data sections
};

[[nodiscard]] bpftime::result<bench_object> read_bench_object(const std::string &path);

// The global data of one object in one page-aligned buffer: each section at
// a 64-byte-aligned offset, initialised from the object. The buffer is what
// bpftime's vm sees as the maps' values (and, in some variants, as ctx).
class data_image {
    public:
	explicit data_image(const bench_object &obj);
	data_image(const data_image &) = delete;
	data_image &operator=(const data_image &) = delete;

	uint8_t *data() const noexcept
	{
		return buf_.get();
	}
	uint64_t size() const noexcept
	{
		return size_;
	}
	// Address of a section's bytes in the buffer; nullptr if unknown.
	uint8_t *section(uint32_t shndx) const noexcept;
	// Copies bytes to the start of a named global (e.g. bench_input); EINVAL
	// when the object has no such global or it is too small.
	[[nodiscard]] bpftime::status fill(const std::string &symbol,
					   std::span<const uint8_t> bytes);
	// Resolves the BPF_PSEUDO_MAP_VALUE lddws of read_bench_object() to
	// addresses in this buffer. The image must outlive the vm.
	bpftime::vm::lddw_resolver resolver() const;

    private:
	struct deleter {
		void operator()(uint8_t *p) const noexcept;
	};
	const bench_object &obj_;
	std::vector<uint64_t> offsets_; // per obj_.sections entry
	uint64_t size_ = 0;
	std::unique_ptr<uint8_t, deleter> buf_;
};

} // namespace bench
