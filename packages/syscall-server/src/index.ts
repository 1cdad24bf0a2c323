export {
	type SpawnWithSyscallServerOptions,
	type SyscallServerOptions,
	spawnWithSyscallServer,
	syscallServerEnv,
	syscallServerPath,
} from './syscall-server.js';
