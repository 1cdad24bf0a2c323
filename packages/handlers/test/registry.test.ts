import { closeSync, openSync, readFileSync, readSync, writeSync } from 'node:fs';
import { Segment } from '@bpftime/shm';
import { assemble } from '@bpftime/vm';
import { describe, expect, it, onTestFinished } from 'vitest';
import { MapType, ProgType, Registry, registeredMapTypes } from '../src/index.js';
import { emptyBtf, errorOf, freshRegistry, returnImm, uniqueName } from './helpers.js';

const u32le = (v: number) => {
	const b = Buffer.alloc(4);
	b.writeUInt32LE(v, 0);
	return b;
};

const prog = (name = 'p') => ({ type: ProgType.Kprobe, name, license: 'GPL', insns: returnImm(0) });

describe('Registry: the handler table', () => {
	it('gives out the lowest free id and reuses an id after release with a new generation', () => {
		const { reg } = freshRegistry('ids');
		const a = reg.loadProg(prog('a'));
		const b = reg.loadProg(prog('b'));
		expect([a.id, b.id]).toEqual([0, 1]);
		a.release();
		const c = reg.loadProg(prog('c'));
		expect(c.id).toBe(0);
		expect(c.generation).toBeGreaterThan(a.generation);
		expect(reg.size).toBe(2);
	});

	it('creates at a chosen id, and answers EEXIST when it is taken and EBADF outside the table', () => {
		const { reg } = freshRegistry('chosen', { capacity: 16 });
		expect(reg.loadProg(prog(), { id: 7 }).id).toBe(7);
		const taken = errorOf(() => reg.loadProg(prog(), { id: 7 }));
		expect(taken.code).toBe('EEXIST');
		expect(taken.message).toMatch(/id 7 is in use/);
		expect(errorOf(() => reg.loadProg(prog(), { id: 16 })).code).toBe('EBADF');
		expect(reg.size).toBe(1);
	});

	it('answers EMFILE when every id is in use, and keeps what it holds', () => {
		const { reg } = freshRegistry('full', { capacity: 3 });
		for (let i = 0; i < 3; i++) reg.loadProg(prog(`p${i}`));
		const e = errorOf(() => reg.loadProg(prog('extra')));
		expect(e.code).toBe('EMFILE');
		expect(e.errno).toBe(24);
		expect(reg.list().map((d) => d.id)).toEqual([0, 1, 2]);
		reg.release(1);
		expect(reg.loadProg(prog('again')).id).toBe(1);
	});

	it('answers EINVAL for an id that holds another kind and EBADF for an empty one', () => {
		const { reg } = freshRegistry('kinds');
		const p = reg.loadProg(prog());
		const wrong = errorOf(() => reg.map(p.id));
		expect(wrong.code).toBe('EINVAL');
		expect(wrong.message).toMatch(/is a prog, not a map/);
		expect(errorOf(() => reg.link(p.id)).code).toBe('EINVAL');
		expect(errorOf(() => reg.prog(5)).code).toBe('EBADF');
		expect(reg.get(5)).toBeUndefined();
	});

	it('refuses a stale handle after its id was released and reused (EBADF)', () => {
		const { reg } = freshRegistry('stale');
		const old = reg.loadProg(prog('old'));
		old.registry.release(old.id);
		const fresh = reg.loadProg(prog('new'));
		expect(fresh.id).toBe(old.id);
		const e = errorOf(() => old.release());
		expect(e.code).toBe('EBADF');
		expect(e.message).toMatch(/stale handle/);
		const run = errorOf(() => old.run());
		expect(run.code).toBe('EBADF');
		expect(reg.get(fresh.id)?.kind).toBe('prog');
		expect(errorOf(() => reg.release(9)).code).toBe('EBADF');
	});

	it('refuses to release a program a link uses (EBUSY), then releases both in order', () => {
		const { reg } = freshRegistry('busy');
		const p = reg.loadProg(prog());
		const ev = reg.createPerfEvent({ type: 'uprobe', path: '/bin/true', offset: 0x1234n });
		const l = reg.createLink({ progId: p.id, targetId: ev.id, cookie: 99n });
		const e = errorOf(() => p.release());
		expect(e.code).toBe('EBUSY');
		expect(e.message).toMatch(/link id 2 uses it/);
		expect(errorOf(() => ev.release()).code).toBe('EBUSY');
		l.release();
		p.release();
		ev.release();
		expect(reg.size).toBe(0);
	});

	it('bumps the change counter on every create and release', () => {
		const { reg } = freshRegistry('counter');
		const c0 = reg.changeCounter;
		const p = reg.loadProg(prog());
		expect(reg.changeCounter).toBe(c0 + 1n);
		p.release();
		expect(reg.changeCounter).toBe(c0 + 2n);
		errorOf(() => reg.release(p.id));
		expect(reg.changeCounter).toBe(c0 + 2n);
	});

	it('describes every kind of handler with the attributes it was created with', () => {
		const { reg } = freshRegistry('describe');
		const code = assemble('r0 = 7\nexit');
		const p = reg.loadProg({ type: ProgType.Kprobe, name: 'probe', license: 'Dual MIT/GPL', insns: code });
		const upSpec = {
			type: 'uretprobe',
			path: '/usr/lib/libc.so.6',
			offset: 0x9abcn,
			symbol: 'malloc',
			pid: 1234,
			refCtrOffset: 0x40n,
		} as const;
		const up = reg.createPerfEvent(upSpec);
		const sc = reg.createPerfEvent({ type: 'syscall_tracepoint', syscallId: 257, exit: true });
		const cu = reg.createPerfEvent({ type: 'custom', name: 'gpu_kernel', config: 5n });
		const l = reg.createLink({ progId: p.id, targetId: up.id, attachType: 1, cookie: 0xdeadbeefcafen });
		const btf = reg.loadBtf(emptyBtf());
		expect(reg.get(p.id)).toMatchObject({
			kind: 'prog',
			name: 'probe',
			license: 'Dual MIT/GPL',
			type: ProgType.Kprobe,
			typeName: 'BPF_PROG_TYPE_KPROBE',
			mapIds: [],
		});
		expect((reg.get(p.id) as { insns: Buffer }).insns.equals(code)).toBe(true);
		expect(reg.get(up.id)).toMatchObject({ kind: 'perf_event', ...upSpec });
		expect(reg.get(sc.id)).toMatchObject({ type: 'syscall_tracepoint', syscallId: 257, syscallExit: true });
		expect(reg.get(cu.id)).toMatchObject({ type: 'custom', customName: 'gpu_kernel', customConfig: 5n });
		expect(reg.get(l.id)).toMatchObject({ kind: 'link', progId: p.id, targetId: up.id, cookie: 0xdeadbeefcafen });
		expect((reg.get(btf.id) as { data: Buffer }).data.equals(emptyBtf())).toBe(true);
		expect(reg.list().map((d) => d.kind)).toEqual(['prog', 'perf_event', 'perf_event', 'perf_event', 'link', 'btf']);
	});
});

describe('Registry: bad input', () => {
	it('refuses a map type no package registered here, naming the package that provides it', () => {
		const { reg } = freshRegistry('noops');
		expect(registeredMapTypes().some((t) => t.type === MapType.Hash)).toBe(false);
		const e = errorOf(() => reg.createMap({ type: MapType.Hash, name: 'h', keySize: 4, valueSize: 8, maxEntries: 4 }));
		expect(e.code).toBe('EINVAL');
		expect(e.message).toMatch(/@bpftime\/maps-userspace/);
		expect(reg.size).toBe(0);
	});

	it.each([
		['a name longer than 15 bytes', { ...prog(), name: 'a_very_long_program' }, 'EINVAL', /longer than 15/],
		['a name with a dash', { ...prog(), name: 'bad-name' }, 'EINVAL', /only letters/],
		['an unknown program type', { ...prog(), type: 999 }, 'EINVAL', /unknown program type/],
		['no instructions', { ...prog(), insns: Buffer.alloc(0) }, 'EINVAL', /no instructions/],
		[
			'a lddw naming a map id that holds nothing',
			{ ...prog(), insns: assemble('r1 = map_by_fd(5) ll\nr0 = 0\nexit') },
			'EBADF',
			/id 5 holds nothing/,
		],
		[
			'a lddw indexing past fd_array',
			{ ...prog(), insns: assemble('r1 = map_by_idx(2) ll\nr0 = 0\nexit'), fdArray: [0] },
			'EINVAL',
			/outside fd_array/,
		],
		[
			'a map helper called with a number as its map',
			{ ...prog(), insns: assemble('r1 = 0\nr2 = r10\nr2 += -8\ncall 1\nexit') },
			'EINVAL',
			/insn 3: R1 type=scalar expected=map_ptr/,
		],
		[
			'a map helper called with the stack as its map',
			{ ...prog(), insns: assemble('r1 = r10\nr2 = r10\nr2 += -8\ncall 3\nexit') },
			'EINVAL',
			/insn 3: R1 type=fp expected=map_ptr/,
		],
		[
			'a tail call with no prog array',
			{ ...prog(), insns: assemble('r2 = 7\nr3 = 0\ncall 12\nr0 = 0\nexit') },
			'EINVAL',
			/insn 2: R2 type=scalar expected=map_ptr/,
		],
		[
			'a probe read that would write past the stack frame',
			{ ...prog(), insns: assemble('r1 = r10\nr1 += -8\nr2 = 4096\nr3 = 0\ncall 4\nexit') },
			'EINVAL',
			/insn 4: invalid indirect access to stack R1 off=-8 size=4096/,
		],
		[
			'a probe read into the stack of a size the program computes',
			{
				...prog(),
				insns: assemble('r2 = *(u32 *)(r1 + 0)\nr1 = r10\nr1 += -64\nr3 = 0\ncall 4\nexit'),
			},
			'EINVAL',
			/insn 4: R2 unbounded memory access/,
		],
		[
			'bpf_get_current_comm below the frame',
			{ ...prog(), insns: assemble('r1 = r10\nr1 += -520\nr2 = 16\ncall 16\nexit') },
			'EINVAL',
			/insn 3: invalid indirect access to stack R1 off=-520 size=16/,
		],
	])('refuses a program with %s', (_what, spec, code, message) => {
		const { reg } = freshRegistry('badprog');
		const e = errorOf(() => reg.loadProg(spec));
		expect(e.code).toBe(code);
		expect(e.message).toMatch(message);
		expect(reg.size).toBe(0);
	});

	it('refuses a link to a program that does not exist and a BTF blob without the magic', () => {
		const { reg } = freshRegistry('badlink');
		expect(errorOf(() => reg.createLink({ progId: 3 })).code).toBe('EBADF');
		const bad = emptyBtf();
		bad.writeUInt16LE(0x1234, 0);
		const e = errorOf(() => reg.loadBtf(bad));
		expect(e.code).toBe('EINVAL');
		expect(e.message).toMatch(/bad magic/);
		expect(reg.size).toBe(0);
	});

	it('refuses a second registry in one segment (EEXIST) and opening a segment without one (ENOENT)', () => {
		const { seg } = freshRegistry('twice');
		expect(errorOf(() => Registry.create(seg)).code).toBe('EEXIST');
		const name = uniqueName('empty');
		using empty = Segment.create({ name, sizeMb: 1 });
		const e = errorOf(() => Registry.open(empty));
		expect(e.code).toBe('ENOENT');
		expect(e.message).toMatch(/holds no registry/);
	});

	it('refuses a registry of another layout version (EPROTONOSUPPORT) and a corrupt one (EBADMSG)', () => {
		const { seg, reg, name } = freshRegistry('layout');
		reg.loadProg(prog());
		// The registry's header in the segment file: magic "BPFREGIS", capacity, layout version.
		const fd = openSync(`/dev/shm/${name}`, 'r+');
		onTestFinished(() => closeSync(fd));
		const at = readFileSync(`/dev/shm/${name}`).indexOf('BPFREGIS', 0, 'latin1');
		expect(at).toBeGreaterThan(0);
		const patch = (offset: number, bytes: Buffer) => writeSync(fd, bytes, 0, bytes.length, at + offset);
		const word = Buffer.alloc(4);
		readSync(fd, word, 0, 4, at + 12);
		const version = word.readUInt32LE(0);
		patch(12, u32le(version + 1));
		const e = errorOf(() => Registry.open(seg));
		expect(e.code).toBe('EPROTONOSUPPORT');
		expect(e.message).toMatch(new RegExp(`layout version ${version + 1}, this bpftime reads version ${version}`));
		patch(12, u32le(version));
		patch(0, Buffer.from('XPFREGIS', 'latin1'));
		expect(errorOf(() => Registry.open(seg)).code).toBe('EBADMSG');
		patch(0, Buffer.from('BPFREGIS', 'latin1'));
		using again = Registry.open(seg);
		expect(again.size).toBe(1);
	});

	it('checks arguments before they reach the registry', () => {
		const { reg } = freshRegistry('args');
		const e = errorOf(() => reg.loadProg({ ...prog(), type: -1 }));
		expect(e.code).toBe('EINVAL');
		expect(e.message).toMatch(/Expected u32 for type but received -1/);
	});
});
