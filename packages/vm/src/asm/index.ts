// Assembler, disassembler and instruction codec for eBPF in the syntax
// llvm-objdump prints (see ./README.md for the grammar and its extensions).
//
//   const code = assemble('r0 = 0x1122334455667788 ll\nexit');
//   disassemble(code);              // ['r0 = 1234605616436508552 ll', 'exit']
//   disassemble(code, { hex: true }); // ['r0 = 0x1122334455667788 ll', 'exit']
//   decode(code)[0];                // { code: 0x18, dst: 0, src: 0, off: 0, imm: 0x55667788 }

export { assemble } from './assemble.js';
export { type DisassembleOptions, disassemble, rawInsn } from './disassemble.js';
export { decode, encode, INSN_SIZE, type Insn } from './insn.js';
