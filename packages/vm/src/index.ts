export * from './asm/index.js';
export { type Backend, checkBackend, type HelperFn, opcodeTableAccepts, pluginPath, Vm, type VmOptions } from './vm.js';
