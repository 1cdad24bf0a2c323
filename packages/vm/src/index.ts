export * from './asm/index.js';
export { type Backend, type HelperFn, opcodeTableAccepts, pluginPath, Vm, type VmOptions } from './vm.js';
