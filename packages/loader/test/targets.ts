// Load targets for the tests: the Linux kernel through bpf(2) (the
// kernel-target fixture, a real process answering one command per line),
// and a recorder that keeps every request and can be told to fail one.
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { createInterface, type Interface } from 'node:readline';
import { BpftimeError } from '@bpftime/common';
import type { LinkRequest, LoadTarget, MapCreateRequest, PerfEventRequest, ProgLoadRequest } from '../src/index.js';

const hex = (b: Buffer) => (b.length === 0 ? '-' : b.toString('hex'));

/** The kernel as a LoadTarget: file descriptors are the ids. */
export class KernelTarget implements LoadTarget {
	readonly #child: ChildProcessWithoutNullStreams;
	readonly #lines: Interface;
	readonly #waiting: ((line: string) => void)[] = [];
	/** Ids created and not released. */
	readonly live = new Set<number>();
	/** The verifier log of the last refused program. */
	lastLog = '';

	constructor(tool: string) {
		this.#child = spawn(tool, [], { stdio: ['pipe', 'pipe', 'pipe'] });
		this.#lines = createInterface({ input: this.#child.stdout });
		this.#lines.on('line', (l) => this.#waiting.shift()?.(l));
	}

	#ask(cmd: string): Promise<string> {
		return new Promise((resolve) => {
			this.#waiting.push(resolve);
			this.#child.stdin.write(`${cmd}\n`);
		});
	}

	async #id(cmd: string, what: string): Promise<number> {
		const a = (await this.#ask(cmd)).split(' ');
		if (a[0] !== 'OK') {
			this.lastLog = a[2] && a[2] !== '-' ? Buffer.from(a[2], 'hex').toString() : '';
			throw new BpftimeError(Number(a[1]), `kernel: ${what}: errno ${a[1]}`);
		}
		const id = Number(a[1]);
		this.live.add(id);
		return id;
	}

	loadBtf(data: Buffer): Promise<number> {
		return this.#id(`B ${hex(data)}`, 'BTF load');
	}

	createMap(r: MapCreateRequest): Promise<number> {
		return this.#id(
			`M ${r.type} ${r.keySize} ${r.valueSize} ${r.maxEntries} ${r.flags} ${r.innerMapId ?? -1} ${r.mapExtra} ${r.numaNode} ${r.btfId ?? -1} ${r.btfKeyTypeId} ${r.btfValueTypeId} ${r.name || '-'}`,
			`map '${r.name}' create`,
		);
	}

	async updateMap(map: number, key: Buffer, value: Buffer): Promise<void> {
		const a = (await this.#ask(`U ${map} ${hex(key)} ${hex(value)}`)).split(' ');
		if (a[0] !== 'OK') throw new BpftimeError(Number(a[1]), `kernel: update ${map}: errno ${a[1]}`);
	}

	async freezeMap(map: number): Promise<void> {
		const a = (await this.#ask(`F ${map}`)).split(' ');
		if (a[0] !== 'OK') throw new BpftimeError(Number(a[1]), `kernel: freeze ${map}: errno ${a[1]}`);
	}

	/** The value of a key, or the errno of the refusal. */
	async lookup(map: number, key: Buffer, valueSize: number): Promise<Buffer> {
		const a = (await this.#ask(`L ${map} ${hex(key)} ${valueSize}`)).split(' ');
		if (a[0] !== 'OK') throw new BpftimeError(Number(a[1]), `kernel: lookup ${map}: errno ${a[1]}`);
		return a[1] === '-' ? Buffer.alloc(0) : Buffer.from(a[1] as string, 'hex');
	}

	loadProgram(r: ProgLoadRequest): Promise<number> {
		return this.#id(
			`P ${r.type} ${r.expectedAttachType} ${r.flags} ${r.kernelVersion} ${r.license || '-'} ${r.name || '-'} ${r.btfId ?? -1} ${hex(r.funcInfo)} ${hex(r.lineInfo)} ${hex(r.instructions)}`,
			`prog '${r.name}' load`,
		);
	}

	createPerfEvent(r: PerfEventRequest): Promise<number> {
		if (r.kind !== 'uprobe') throw new BpftimeError('EOPNOTSUPP', 'kernel target: only uprobes');
		return this.#id(`E ${r.path} ${r.offset} ${r.retprobe ? 1 : 0} ${r.pid} ${r.refCtrOffset}`, 'perf event');
	}

	createLink(r: LinkRequest): Promise<number> {
		if (r.kind === 'raw_tracepoint') return this.#id(`R ${r.prog} ${r.name}`, 'raw tracepoint');
		return this.#id(`K ${r.prog} ${r.perfEvent} ${r.cookie}`, 'link');
	}

	release(id: number): void {
		this.live.delete(id);
		this.#child.stdin.write(`C ${id}\n`);
	}

	/** Open file descriptors of the kernel-target process, as the kernel counts them (after a round trip, so closes are done). */
	async fdCount(): Promise<number> {
		await this.#ask('X');
		return readdirSync(`/proc/${this.#child.pid}/fd`).length;
	}

	close(): void {
		this.#child.stdin.end();
		this.#lines.close();
	}
}

export type Recorded =
	| { op: 'createMap'; id: number; req: MapCreateRequest }
	| { op: 'updateMap'; map: number; key: Buffer; value: Buffer }
	| { op: 'freezeMap'; map: number }
	| { op: 'loadProgram'; id: number; req: ProgLoadRequest }
	| { op: 'createPerfEvent'; id: number; req: PerfEventRequest }
	| { op: 'createLink'; id: number; req: LinkRequest }
	| { op: 'release'; id: number };

/** The records of the requests that make an object (and carry its id). */
type Created = Extract<Recorded, { req: unknown }>;

/**
 * Keeps every request in order and hands out ids from 1; `failAt(op, n)`
 * makes the n-th call of `op` (from 1) throw ENOSPC, as a full registry would.
 */
export class RecordingTarget implements LoadTarget {
	readonly log: Recorded[] = [];
	readonly live = new Set<number>();
	#next = 1;
	#fail: { op: string; n: number } | undefined;
	#counts = new Map<string, number>();

	failAt(op: Recorded['op'], n: number): this {
		this.#fail = { op, n };
		return this;
	}

	#check(op: string): void {
		const n = (this.#counts.get(op) ?? 0) + 1;
		this.#counts.set(op, n);
		if (this.#fail && this.#fail.op === op && this.#fail.n === n) {
			throw new BpftimeError('ENOSPC', `recorder: ${op} #${n} refused`);
		}
	}

	// A request that makes an object: checked against failAt(), given the
	// next id, logged.
	#create(op: Created['op'], req: Created['req']): number {
		this.#check(op);
		const id = this.#next++;
		this.live.add(id);
		this.log.push({ op, id, req } as Created);
		return id;
	}

	createMap(req: MapCreateRequest): number {
		return this.#create('createMap', req);
	}

	updateMap(map: number, key: Buffer, value: Buffer): void {
		this.#check('updateMap');
		this.log.push({ op: 'updateMap', map, key: Buffer.from(key), value: Buffer.from(value) });
	}

	freezeMap(map: number): void {
		this.#check('freezeMap');
		this.log.push({ op: 'freezeMap', map });
	}

	async loadProgram(req: ProgLoadRequest): Promise<number> {
		return this.#create('loadProgram', req);
	}

	createPerfEvent(req: PerfEventRequest): number {
		return this.#create('createPerfEvent', req);
	}

	createLink(req: LinkRequest): number {
		return this.#create('createLink', req);
	}

	/** Ids whose release fails with EBUSY, as the kernel's would while another holder uses them. */
	readonly busy = new Set<number>();

	release(id: number): void {
		if (this.busy.has(id)) throw new BpftimeError('EBUSY', `recorder: id ${id} is in use`);
		if (!this.live.delete(id)) throw new BpftimeError('EBADF', `recorder: release of unknown id ${id}`);
		this.log.push({ op: 'release', id });
	}

	ops(): string[] {
		return this.log.map((r) => r.op);
	}
}
