import { BpftimeError } from '@bpftime/common';
import { describe, expect, it } from 'vitest';
import { type Backend, backendUnavailable, Vm } from '../src/index.js';

// The LLVM backend where its plugin is built (llvm-19-dev).
const llvmMissing = backendUnavailable('llvm');
if (llvmMissing) console.log(`skipped: the llvm backend: ${llvmMissing}`);
const backends: Backend[] = ['interpreter', 'jit', ...(llvmMissing ? [] : (['llvm'] as Backend[]))];

describe.each(backends)('Vm on the %s', (backend) => {
	it('runs assembly and returns r0 as a bigint', () => {
		using vm = new Vm({ backend });
		vm.load('r0 = -1\nexit');
		expect(vm.run()).toBe(0xffffffffffffffffn);
	});

	it('passes the context by address as r1 and its length as r2', () => {
		using vm = new Vm({ backend, contextSize: 10 });
		vm.load('r3 = *(u32 *)(r1 + 0)\n*(u32 *)(r1 + 4) = w3\nr0 = r2\nexit');
		const ctx = Buffer.from([1, 2, 3, 4, 0, 0, 0, 0, 9, 9]);
		expect(vm.run(ctx)).toBe(10n);
		expect([...ctx.subarray(4, 8)]).toEqual([1, 2, 3, 4]);
	});

	it('calls helpers written in JavaScript with r1..r5 and takes r0 from their result', () => {
		using vm = new Vm({ backend });
		const seen: bigint[][] = [];
		vm.registerHelper(42, 'record', (...args) => {
			seen.push(args);
			return args[0] * 2n + args[4];
		});
		vm.load('r1 = 10\nr2 = 20\nr3 = 30\nr4 = 40\nr5 = 5\ncall 42\nexit');
		expect(vm.run()).toBe(25n);
		expect(seen).toEqual([[10n, 20n, 30n, 40n, 5n]]);
	});

	it('rethrows an exception raised by a JavaScript helper once the program ends', () => {
		using vm = new Vm({ backend });
		vm.registerHelper(1, 'fails', () => {
			throw new RangeError('helper failed');
		});
		vm.load('r1 = 0\nr2 = 0\nr3 = 0\nr4 = 0\nr5 = 0\ncall 1\nexit');
		expect(() => vm.run()).toThrow(RangeError);
	});

	it('has the identity helper of conformance suites', () => {
		using vm = new Vm({ backend });
		vm.registerIdentityHelper();
		vm.load('r1 = 77\ncall 5\nexit');
		expect(vm.run()).toBe(77n);
	});

	it('refuses a program the verifier rejects, naming the instruction', () => {
		using vm = new Vm({ backend });
		expect(() => vm.load('r0 = 0\nr10 = 1\nexit')).toThrow(
			expect.objectContaining({ code: 'EINVAL', message: expect.stringMatching(/^1: /) }),
		);
	});

	it('refuses a call to a helper that is not registered', () => {
		using vm = new Vm({ backend });
		expect(() => vm.load('call 99\nexit')).toThrow(expect.objectContaining({ code: 'EINVAL' }));
	});

	// The run-time bounds checks are the safety net of programs loaded with
	// the verifier off, which is how these out-of-bounds programs load.
	it('stops an out-of-bounds load with EFAULT in bounds-check mode', () => {
		using vm = new Vm({ backend, boundsCheck: true, verifier: 'off' });
		vm.load('r0 = *(u64 *)(r1 + 8)\nexit');
		expect(() => vm.run(Buffer.alloc(8))).toThrow(
			expect.objectContaining({
				code: 'EFAULT',
				message: expect.stringMatching(/out of bounds memory load of 8 bytes/),
			}),
		);
		expect(vm.run(Buffer.alloc(16, 1))).toBe(0x0101010101010101n);
	});

	it('lets a program touch a registered region in bounds-check mode, and only for writing when writable', () => {
		const region = Buffer.alloc(8);
		using vm = new Vm({ backend, boundsCheck: true, verifier: 'off' });
		let address = 0n;
		vm.registerHelper(1, 'region', () => address);
		vm.addMemoryRegion(region, { writable: false });
		vm.load('call 1\nr1 = 5\n*(u64 *)(r0 + 0) = r1\nr0 = 0\nexit');
		// The address of a Buffer is not visible from JavaScript; a helper
		// returning the context pointer gives the region a known address.
		using probe = new Vm({ backend });
		probe.load('r0 = r1\nexit');
		address = probe.run(region);
		expect(() => vm.run()).toThrow(expect.objectContaining({ code: 'EFAULT' }));
		expect(region.readBigUInt64LE()).toBe(0n);
	});

	it('reports the instructions it loaded', () => {
		using vm = new Vm({ backend });
		vm.load('r0 = 0x1122334455667788 ll\nexit');
		expect(vm.instructions().length).toBe(24);
	});

	it('throws EBADF after close', () => {
		const vm = new Vm({ backend });
		vm.close();
		expect(() => vm.load('exit')).toThrow(expect.objectContaining({ code: 'EBADF' }));
	});
});

describe('Vm options', () => {
	it('refuses an unknown backend', () => {
		expect(() => new Vm({ backend: 'llvm2' as Backend })).toThrow(BpftimeError);
		expect(() => backendUnavailable('llvm2' as Backend)).toThrow(BpftimeError);
	});

	it('has the interpreter and the JIT everywhere', () => {
		expect(backendUnavailable('interpreter')).toBeUndefined();
		expect(backendUnavailable('jit')).toBeUndefined();
	});

	it('reports a compile time for the JIT and none for the interpreter', () => {
		using jit = new Vm({ backend: 'jit' });
		jit.load('r0 = 1\nexit');
		expect(jit.compileTimeNs).toBeGreaterThan(0n);
		using interp = new Vm({ backend: 'interpreter' });
		interp.load('r0 = 1\nexit');
		expect(interp.compileTimeNs).toBe(0n);
	});
});

describe.skipIf(llvmMissing !== undefined)('ahead-of-time objects', () => {
	const sum = `
    r0 = 0
loop:
    if r2 == 0 goto done
    r3 = *(u8 *)(r1 + 0)
    r0 += r3
    r1 += 1
    r2 += -1
    goto loop
done:
    exit`;

	it('compiles a program to an x86-64 ELF object that another vm loads and runs', () => {
		using compiler = new Vm({ verifier: 'off' });
		const obj = compiler.compileAot(sum);
		expect(obj.subarray(0, 4)).toEqual(Buffer.from([0x7f, 0x45, 0x4c, 0x46]));
		expect(obj.readUInt16LE(16)).toBe(1); // ET_REL
		expect(obj.readUInt16LE(18)).toBe(62); // EM_X86_64
		using vm = new Vm({ verifier: 'off' });
		vm.loadAot(obj);
		expect(vm.run(Buffer.from([1, 2, 3, 4]))).toBe(10n);
	});

	it('links helper calls against the loading vm', () => {
		using compiler = new Vm();
		compiler.registerHelper(42, 'twice', (a) => a * 2n);
		const obj = compiler.compileAot('r1 = 21\nr2 = 0\nr3 = 0\nr4 = 0\nr5 = 0\ncall 42\nexit');
		using vm = new Vm();
		vm.registerHelper(42, 'twice', (a) => a * 3n);
		vm.loadAot(obj);
		expect(vm.run()).toBe(63n);
	});

	it('refuses an object whose helper the loading vm lacks, naming it', () => {
		using compiler = new Vm();
		compiler.registerIdentityHelper(7);
		const obj = compiler.compileAot('r1 = 1\ncall 7\nexit');
		using vm = new Vm();
		expect(() => vm.loadAot(obj)).toThrow(
			expect.objectContaining({ code: 'EINVAL', message: expect.stringMatching(/unknown helper #7/) }),
		);
	});

	it('refuses a file that is not an object with ENOEXEC', () => {
		using vm = new Vm();
		expect(() => vm.loadAot(Buffer.from('not an ELF object'))).toThrow(
			expect.objectContaining({ code: 'ENOEXEC', message: expect.stringMatching(/not an ELF file/) }),
		);
		const obj = new Vm().compileAot('r0 = 1\nexit');
		obj.writeUInt16LE(3, 18); // e_machine: EM_386
		expect(() => vm.loadAot(obj)).toThrow(expect.objectContaining({ code: 'ENOEXEC' }));
	});

	it('refuses an object compiled without bounds checks in a vm that checks them, and the reverse', () => {
		const plain = new Vm().compileAot('r0 = 1\nexit');
		using checked = new Vm({ boundsCheck: true });
		expect(() => checked.loadAot(plain)).toThrow(
			expect.objectContaining({ code: 'EINVAL', message: expect.stringMatching(/compiled without bounds checks/) }),
		);
		const withChecks = new Vm({ boundsCheck: true }).compileAot('r0 = 1\nexit');
		checked.loadAot(withChecks);
		expect(checked.run()).toBe(1n);
		using unchecked = new Vm();
		expect(() => unchecked.loadAot(withChecks)).toThrow(expect.objectContaining({ code: 'EINVAL' }));
	});

	it('reports the JIT compile time of the llvm backend', () => {
		using vm = new Vm({ backend: 'llvm' });
		vm.load('r0 = 1\nexit');
		expect(vm.compileTimeNs).toBeGreaterThan(0n);
		expect(vm.run()).toBe(1n);
	});
});
