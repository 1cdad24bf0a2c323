// bench_object.hpp: what vm_bench needs from a bench program: the instructions
// of its bench_run program, ready for bpftime::vm (global-data lddws as
// BPF_PSEUDO_MAP_VALUE), and its global-data sections laid out in one buffer
// that those lddws resolve into.
//
// The object is read by @bpftime/loader, not here: bench/suites/vm.mjs opens
// each <stem>.bpf.o with BpfObject.open() and writes <stem>.bpf.txt beside
// it, a line-based text file that this reader turns back into structs:
//
//   bpftime-bench-object 1
//   program bench_run 17                  name, instruction count
//   insn b700000000000000                 one per instruction slot: its 8
//   ...                                     bytes in file order, as hex
//   data .bss 4096 -                      section name, size, initial bytes
//                                           as hex ('-': all zero)
//   symbol bench_input 0 0 4096           name, data index, offset, size
//
// Tokens are separated by white space; names hold none. A lddw into global
// data has src_reg BPF_PSEUDO_MAP_VALUE, imm = the index of its "data" line
// (0 for the first) and next_imm = the offset in it, as libbpf would have it
// with imm = the map's fd.
//
//   auto obj = bench::read_bench_object("/tmp/x/checksum");  // .bpf.txt
//   bench::data_image img(*obj);              // .bss/.data/.rodata copies
//   vm.set_lddw_resolver(img.resolver());
//   vm.load(obj->insns);
//   img.fill("bench_input", bytes);            // the program's input
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
	std::string name;          // ".bss", ".data", ".rodata" ... (the ELF section)
	uint64_t size = 0;
	std::vector<uint8_t> init; // initial bytes (empty: zeros)
};

struct data_symbol {
	std::string name;
	uint32_t section = 0; // index in bench_object::sections
	uint64_t offset = 0;  // in its section
	uint64_t size = 0;
};

struct bench_object {
	std::string path; // <stem>.bpf.o, for the kernel column's libbpf
	std::vector<bpftime::vm::insn> insns;
	std::vector<data_section> sections; // a lddw's imm indexes this
	std::vector<data_symbol> symbols;   // the variables of those sections
};

// Reads <stem>.bpf.txt. ENOENT when it is missing, EINVAL (naming the line)
// when it is not in the format above.
[[nodiscard]] bpftime::result<bench_object> read_bench_object(const std::string &stem);

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
	uint8_t *section(uint32_t index) const noexcept;
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
