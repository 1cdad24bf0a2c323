// Probes in the Node process itself, through the binding: libc functions
// that Node calls synchronously from JavaScript (getuid for process.getuid(),
// getppid for process.ppid).
import { BpftimeError } from '@bpftime/common';
import { describe, expect, it } from 'vitest';
import { attachProbe, loadedModules, resolve } from '../src/index.js';

describe('probes in the Node process', () => {
	it.each([false, true])('counts every call of getuid and sees its return value (forceBreakpoint %s)', (bp) => {
		using entry = attachProbe({ kind: 'uprobe', module: 'libc.so.6', symbol: 'getuid', forceBreakpoint: bp });
		using ret = attachProbe({ kind: 'uretprobe', module: 'libc.so.6', symbol: 'getuid', forceBreakpoint: bp });
		const info = entry.info();
		expect(info.state).toBe('active');
		expect(info.mechanism).toBe(bp ? 'breakpoint' : 'inline_jump');
		expect(info.where).toBe('libc.so.6:getuid+0x0');
		expect(info.address).toBe(resolve({ module: 'libc.so.6', symbol: 'getuid' }).address);
		for (let i = 0; i < 1000; i++) process.getuid?.();
		expect(entry.hits()).toBe(1000n);
		expect(ret.hits()).toBe(1000n);
		expect(ret.lastRegs().ax).toBe(BigInt(process.getuid?.() ?? -1));
		expect(entry.lastRegs().ip).toBe(info.address);
		expect(entry.lastRegs().cs).toBe(0x33n);
	});

	it('overrides getppid so that process.ppid is the chosen value, until closed', () => {
		const real = process.ppid;
		{
			using o = attachProbe({ kind: 'override', module: 'libc.so.6', symbol: 'getppid', returnValue: 4242 });
			expect(process.ppid).toBe(4242);
			expect(o.hits()).toBe(1n);
		}
		expect(process.ppid).toBe(real);
	});

	it('hooks malloc and free of the running Node process, V8 threads and all, and lets go cleanly', () => {
		const before = resolve({ module: 'libc.so.6', symbol: 'malloc' });
		using entry = attachProbe({ kind: 'uprobe', module: 'libc.so.6', symbol: 'malloc' });
		using ret = attachProbe({ kind: 'uretprobe', module: 'libc.so.6', symbol: 'malloc' });
		using release = attachProbe({ kind: 'uprobe', module: 'libc.so.6', symbol: 'free' });
		expect(entry.info().address).toBe(before.address);
		// Buffers above the pool size are malloc'ed by Node's allocator.
		const kept: Buffer[] = [];
		for (let i = 0; i < 200; i++) kept.push(Buffer.allocUnsafeSlow(64 * 1024 + i));
		kept.length = 0;
		expect(entry.hits()).toBeGreaterThanOrEqual(200n);
		expect(ret.hits()).toBeGreaterThan(0n);
		expect(release.hits()).toBeGreaterThan(0n);
		expect(ret.info().missed).toBe(0n);
	});

	it('stops counting once closed', () => {
		const p = attachProbe({ kind: 'uprobe', module: 'libc.so.6', symbol: 'getuid' });
		process.getuid?.();
		p.close();
		process.getuid?.();
		expect(() => p.hits()).toThrow(/closed/);
		p.close();
	});

	it('lists the main executable first and libc among the modules', () => {
		const mods = loadedModules();
		expect(mods[0]?.mainExecutable).toBe(true);
		expect(mods.some((m) => m.path.endsWith('/libc.so.6'))).toBe(true);
	});

	it.each([
		[
			{ kind: 'uprobe', module: 'libc.so.6', symbol: 'no_such_function_here' },
			'ENOENT',
			/no function 'no_such_function_here'/,
		],
		[{ kind: 'uprobe', module: '/nonexistent/lib.so', symbol: 'f' }, 'ENOENT', /nonexistent/],
		[{ kind: 'uprobe', module: 'libc.so.6', symbol: 'getuid', offset: 1 << 20 }, 'EINVAL', /past the end/],
		[{ kind: 'sideprobe', module: 'libc.so.6', symbol: 'getuid' }, 'EINVAL', /Expected 'uprobe'/],
		[{ kind: 'uprobe', module: 'libc.so.6', symbol: 'getuid', offset: -1 }, 'EINVAL', /Expected u64 for offset/],
	])('refuses %j with %s', (spec, code, message) => {
		const attempt = () => attachProbe(spec as never);
		expect(attempt).toThrow(BpftimeError);
		expect(attempt).toThrow(message);
		try {
			attempt();
		} catch (e) {
			expect((e as BpftimeError).code).toBe(code);
		}
	});

	it('leaves a probe on a library that is not loaded pending', () => {
		using p = attachProbe({ kind: 'uprobe', module: 'libbpftime-never-loaded.so', symbol: 'f' });
		const info = p.info();
		expect(info.state).toBe('pending');
		expect(info.reason).toMatch(/not loaded/);
	});
});
