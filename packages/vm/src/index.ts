export * from './asm/index.js';
export { type Backend, type HelperFn, pluginPath, Vm, type VmOptions } from './vm.js';
