// ELF constants this package reads, with the names of <elf.h>.

export const ELFCLASS64 = 2;
export const ELFDATA2LSB = 1;
export const EV_CURRENT = 1;

export const ET_REL = 1;
export const ET_EXEC = 2;
export const ET_DYN = 3;

export const EM_X86_64 = 62;
export const EM_BPF = 247;

export const SHN_UNDEF = 0;
export const SHN_LORESERVE = 0xff00;
export const SHN_ABS = 0xfff1;
export const SHN_COMMON = 0xfff2;
export const SHN_XINDEX = 0xffff;

export const SHT_NULL = 0;
export const SHT_PROGBITS = 1;
export const SHT_SYMTAB = 2;
export const SHT_STRTAB = 3;
export const SHT_RELA = 4;
export const SHT_NOTE = 7;
export const SHT_NOBITS = 8;
export const SHT_REL = 9;
export const SHT_DYNSYM = 11;
export const SHT_SYMTAB_SHNDX = 18;

export const SHF_WRITE = 0x1n;
export const SHF_ALLOC = 0x2n;
export const SHF_EXECINSTR = 0x4n;

export const STB_LOCAL = 0;
export const STB_GLOBAL = 1;
export const STB_WEAK = 2;

export const STT_NOTYPE = 0;
export const STT_OBJECT = 1;
export const STT_FUNC = 2;
export const STT_SECTION = 3;
export const STT_FILE = 4;
export const STT_GNU_IFUNC = 10;

export const STV_DEFAULT = 0;
export const STV_HIDDEN = 2;

export const PT_LOAD = 1;

/** BPF relocation types (llvm/BinaryFormat/ELFRelocs/BPF.def; kernel Documentation/bpf/llvm_reloc.rst). */
export const R_BPF_NONE = 0;
export const R_BPF_64_64 = 1;
export const R_BPF_64_ABS64 = 2;
export const R_BPF_64_ABS32 = 3;
export const R_BPF_64_NODYLD32 = 4;
export const R_BPF_64_32 = 10;

export const EHDR_SIZE = 64;
export const SHDR_SIZE = 64;
export const PHDR_SIZE = 56;
export const SYM_SIZE = 24;
export const REL_SIZE = 16;
export const RELA_SIZE = 24;
