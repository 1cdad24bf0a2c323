export * from './asm/index.js';
export {
	type Backend,
	backendUnavailable,
	type HelperFn,
	opcodeTableAccepts,
	pluginPath,
	Vm,
	type VmOptions,
} from './vm.js';
