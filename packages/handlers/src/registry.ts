// registry.ts: the registry of programs, maps, links, perf events and BTF in
// a bpftime segment, and live handles to what it holds.
import {
	BpftimeError,
	expectBuffer,
	expectPositiveInt,
	expectString,
	expectU32,
	expectU64,
	type MapSpec,
	mapTypeNames,
	type ProgSpec,
	progTypeNames,
} from '@bpftime/common';
import type { Segment } from '@bpftime/shm';
import type { PerfEventTypeName } from './attach-kinds.js';
import type { Codec } from './codecs.js';
import { type AttachType, type Backend, UpdateFlags } from './constants.js';
import type { NativeSpec } from './fields.js';
import { type NativeHandle, type NativeRegistry, native, type OwnerInfo } from './native.js';

// --- specs (plain data) -------------------------------------------------------

// MapSpec and ProgSpec are @bpftime/common's (the loader speaks the same ones).
export type { MapSpec, ProgSpec };

/** Ties a program to an event. */
export interface LinkSpec {
	progId: number;
	/** A perf event id; omitted for links without a target. */
	targetId?: number;
	attachType?: AttachType | number;
	flags?: number;
	/** Returned by bpf_get_attach_cookie() in the program. */
	cookie?: bigint;
}

export type PerfEventSpec =
	| {
			type: 'uprobe' | 'uretprobe';
			/** The binary (executable or shared library). */
			path: string;
			/** Offset of the probe in the file, or relative to `symbol`. */
			offset?: bigint | number;
			symbol?: string;
			/** Only this process; -1 (default): all. */
			pid?: number;
			/** USDT semaphore offset. */
			refCtrOffset?: bigint | number;
	  }
	| {
			type: 'syscall_tracepoint';
			/** The system call number; -1 (default): every system call. */
			syscallId?: number;
			/** sys_exit instead of sys_enter. */
			exit?: boolean;
			pid?: number;
	  }
	| {
			type: 'custom';
			name: string;
			config?: bigint;
	  };

// --- descriptors (what the registry holds) ------------------------------------

interface DescriptorBase {
	id: number;
	/** Grows each time the id is reused; a handle of an older generation is stale. */
	generation: bigint;
}

export interface MapDescriptor extends DescriptorBase {
	kind: 'map';
	type: number;
	/** `BPF_MAP_TYPE_HASH`. */
	typeName: string;
	name: string;
	keySize: number;
	valueSize: number;
	/**
	 * Bytes of a value as user space reads and writes it (lookup, update, batches): `valueSize`, except
	 * for per-CPU maps (round_up(valueSize, 8) x possible CPUs, the kernel's bpf_map_value_size).
	 * Computed by the native core from the map type's ops.
	 */
	userValueSize: number;
	maxEntries: number;
	flags: number;
	innerMapId?: number;
	btfId?: number;
	btfKeyTypeId: number;
	btfValueTypeId: number;
	btfVmlinuxValueTypeId: number;
	numaNode: number;
	ifindex: number;
	mapExtra: bigint;
	/** BPF_MAP_FREEZE was applied (`BpfMap.freeze()`): user space can no longer write the map. */
	frozen: boolean;
}

export interface ProgDescriptor extends DescriptorBase {
	kind: 'prog';
	type: number;
	typeName: string;
	name: string;
	license: string;
	insns: Buffer;
	expectedAttachType: number;
	attachBtfId: number;
	progFlags: number;
	kernVersion: number;
	fdArray: number[];
	/** Every map the program uses, sorted: they cannot be released while it exists. */
	mapIds: number[];
}

export interface LinkDescriptor extends DescriptorBase {
	kind: 'link';
	progId: number;
	targetId?: number;
	attachType: number;
	flags: number;
	cookie: bigint;
	/** Runs of the program that a SIGSEGV or SIGBUS ended, added up by the agents of every process. */
	faults: bigint;
}

export interface PerfEventDescriptor extends DescriptorBase {
	kind: 'perf_event';
	/** One of PERF_EVENT_TYPES (attach-kinds.ts). */
	type: PerfEventTypeName;
	path: string;
	offset: bigint;
	symbol: string;
	pid: number;
	refCtrOffset: bigint;
	syscallId: number;
	syscallExit: boolean;
	customName: string;
	customConfig: bigint;
}

export interface BtfDescriptor extends DescriptorBase {
	kind: 'btf';
	data: Buffer;
}

export type HandlerDescriptor = MapDescriptor | ProgDescriptor | LinkDescriptor | PerfEventDescriptor | BtfDescriptor;

function decorate(d: Record<string, unknown>): HandlerDescriptor {
	if (d.kind === 'map') d.typeName = mapTypeNames[d.type as number] || `map type ${d.type}`;
	if (d.kind === 'prog') d.typeName = progTypeNames[d.type as number] || `prog type ${d.type}`;
	return d as unknown as HandlerDescriptor;
}

// --- module-level functions --------------------------------------------------

/**
 * Registers the implementation of map types with this process's registry.
 * Map packages call it when they are imported (e.g. `import '@bpftime/maps-userspace'`);
 * `ops` is an opaque table they export.
 */
export function registerMapOps(ops: unknown): void {
	native.registerMapOps(ops);
}

/** The map types this process can create and open. */
export function registeredMapTypes(): { type: number; typeName: string; provider: string }[] {
	return native.registeredMapTypes();
}

/** The helpers programs may call in this process, by kernel id and name. */
export function availableHelpers(): { id: number; name: string }[] {
	return native.helpers();
}

/** The backend programs run on when none is asked for: BPFTIME_DISABLE_JIT, BPFTIME_VM_NAME, else `jit`. */
export function defaultBackend(): Backend {
	return native.backendFromEnv() as Backend;
}

/** Version of the JSON document `exportJson()` writes and `importJson()` reads. */
export const JSON_VERSION: number = native.jsonVersion;
/** bpftime's DEFAULT_MAX_FD_COUNT. */
export const DEFAULT_CAPACITY: number = native.defaultCapacity;

export type { OwnerInfo };

// --- Registry ------------------------------------------------------------------

export interface RegistryOptions {
	/** Number of ids (fd-like slots). Default: BPFTIME_MAX_FD_COUNT, else 6144. */
	capacity?: number;
}

/**
 * The registry in a bpftime segment: the programs, maps, links, perf events
 * and BTF objects every attached process sees.
 *
 * ```ts
 * import { Segment } from '@bpftime/shm';
 * import { MapType, Registry, u32, u64 } from '@bpftime/handlers';
 * import '@bpftime/maps-userspace'; // array and hash maps
 *
 * using seg = Segment.create({ name: 'demo', sizeMb: 16 });
 * using reg = Registry.create(seg);
 * const counts = reg.createMap({ type: MapType.Hash, name: 'counts', keySize: 4, valueSize: 8, maxEntries: 1024 });
 * const view = counts.typed(u32, u64);
 * view.set(1, 42n);
 * view.get(1); // 42n
 * ```
 *
 * The registry maps the segment by its name: a segment that was removed
 * (`Segment.remove`) cannot be given to it any more.
 */
export class Registry implements Disposable {
	#native: NativeRegistry | undefined;
	readonly segmentName: string;

	private constructor(n: NativeRegistry, segmentName: string) {
		this.#native = n;
		this.segmentName = segmentName;
	}

	static #resolveCapacity(options: RegistryOptions): number {
		return options.capacity === undefined
			? native.optionsFromEnv().capacity
			: expectPositiveInt(options.capacity, 'capacity');
	}

	/** A new, empty registry in the segment. Throws EEXIST when it holds one already. */
	static create(segment: Segment, options: RegistryOptions = {}): Registry {
		const cap = Registry.#resolveCapacity(options);
		return new Registry(native.openRegistry('create', segment.name, cap), segment.name);
	}

	/**
	 * The registry of the segment. Throws ENOENT when it holds none. Releases what loaders that died
	 * before committing their load left behind (`rollBackDeadLoads()`), unless `rollBack` is false
	 * (to list them first, as `bpftime recover --list` does).
	 */
	static open(segment: Segment, options: { rollBack?: boolean } = {}): Registry {
		const mode = options.rollBack === false ? 'inspect' : 'open';
		return new Registry(native.openRegistry(mode, segment.name), segment.name);
	}

	static openOrCreate(segment: Segment, options: RegistryOptions = {}): Registry {
		const cap = Registry.#resolveCapacity(options);
		return new Registry(native.openRegistry('openOrCreate', segment.name, cap), segment.name);
	}

	/** @internal */
	get handle(): NativeRegistry {
		if (!this.#native) throw new BpftimeError('EBADF', `registry of segment '${this.segmentName}': closed`);
		return this.#native;
	}

	/** Number of ids, fixed at creation. */
	get capacity(): number {
		return this.handle.capacity();
	}

	/** Grows with every create and release; attached processes watch it to pick up new links. */
	get changeCounter(): bigint {
		return this.handle.changeCounter();
	}

	/** Number of handlers. */
	get size(): number {
		return this.handle.size();
	}

	#id(options: { id?: number } | undefined): number | undefined {
		return options?.id === undefined ? undefined : expectU32(options.id, 'id');
	}

	/**
	 * Creates a map (BPF_MAP_CREATE). `options.id` chooses its id (EEXIST when taken), otherwise
	 * the lowest free one. Throws EINVAL when no implementation of the type is registered in this
	 * process, naming the package that declares the type (`bpftime.mapTypes` in its package.json).
	 */
	createMap(spec: MapSpec, options?: { id?: number }): BpfMap {
		const s = {
			type: expectU32(spec.type, 'type'),
			name: spec.name === undefined ? '' : expectString(spec.name, 'name'),
			keySize: expectU32(spec.keySize, 'keySize'),
			valueSize: expectU32(spec.valueSize, 'valueSize'),
			maxEntries: expectU32(spec.maxEntries, 'maxEntries'),
			flags: spec.flags === undefined ? 0 : expectU32(spec.flags, 'flags'),
			innerMapId: spec.innerMapId === undefined ? undefined : expectU32(spec.innerMapId, 'innerMapId'),
			btfId: spec.btfId === undefined ? undefined : expectU32(spec.btfId, 'btfId'),
			btfKeyTypeId: expectU32(spec.btfKeyTypeId ?? 0, 'btfKeyTypeId'),
			btfValueTypeId: expectU32(spec.btfValueTypeId ?? 0, 'btfValueTypeId'),
			btfVmlinuxValueTypeId: expectU32(spec.btfVmlinuxValueTypeId ?? 0, 'btfVmlinuxValueTypeId'),
			numaNode: expectU32(spec.numaNode ?? 0, 'numaNode'),
			ifindex: expectU32(spec.ifindex ?? 0, 'ifindex'),
			mapExtra: expectU64(spec.mapExtra ?? 0n, 'mapExtra'),
		} satisfies NativeSpec<'map'>;
		const h = this.handle.createMap(s, this.#id(options));
		return this.map(h.id);
	}

	/** Loads a program (BPF_PROG_LOAD): checks its map references; the VM verifies it when it is instantiated. */
	loadProg(spec: ProgSpec, options?: { id?: number }): Prog {
		const s = {
			type: expectU32(spec.type, 'type'),
			name: spec.name === undefined ? '' : expectString(spec.name, 'name'),
			license: spec.license === undefined ? '' : expectString(spec.license, 'license'),
			insns: expectBuffer(spec.insns, 'insns'),
			expectedAttachType: expectU32(spec.expectedAttachType ?? 0, 'expectedAttachType'),
			attachBtfId: expectU32(spec.attachBtfId ?? 0, 'attachBtfId'),
			progFlags: expectU32(spec.progFlags ?? 0, 'progFlags'),
			kernVersion: expectU32(spec.kernVersion ?? 0, 'kernVersion'),
			fdArray: (spec.fdArray ?? []).map((x, i) => expectU32(x, `fdArray[${i}]`)),
		} satisfies NativeSpec<'prog'>;
		const h = this.handle.createProg(s, this.#id(options));
		const p = this.prog(h.id);
		if (p.generation !== h.generation) throw new BpftimeError('EBADF', `${p.describe()}: released meanwhile`);
		return p;
	}

	createPerfEvent(spec: PerfEventSpec, options?: { id?: number }): PerfEvent {
		let s: NativeSpec<'perf_event'>;
		switch (spec.type) {
			case 'uprobe':
			case 'uretprobe':
				s = {
					type: spec.type,
					path: expectString(spec.path, 'path'),
					offset: expectU64(spec.offset ?? 0n, 'offset'),
					symbol: spec.symbol === undefined ? '' : expectString(spec.symbol, 'symbol'),
					pid: spec.pid ?? -1,
					refCtrOffset: expectU64(spec.refCtrOffset ?? 0n, 'refCtrOffset'),
				};
				break;
			case 'syscall_tracepoint':
				s = { type: spec.type, syscallId: spec.syscallId ?? -1, syscallExit: spec.exit === true, pid: spec.pid ?? -1 };
				break;
			case 'custom':
				s = {
					type: spec.type,
					customName: expectString(spec.name, 'name'),
					customConfig: expectU64(spec.config ?? 0n, 'config'),
				};
				break;
			default:
				throw new BpftimeError(
					'EINVAL',
					`Expected 'uprobe', 'uretprobe', 'syscall_tracepoint' or 'custom' for type but received ${JSON.stringify((spec as { type: unknown }).type)}`,
				);
		}
		const h = this.handle.createPerfEvent(s, this.#id(options));
		return new PerfEvent(this, h);
	}

	createLink(spec: LinkSpec, options?: { id?: number }): Link {
		const s = {
			progId: expectU32(spec.progId, 'progId'),
			targetId: spec.targetId === undefined ? undefined : expectU32(spec.targetId, 'targetId'),
			attachType: expectU32(spec.attachType ?? 0, 'attachType'),
			flags: expectU32(spec.flags ?? 0, 'flags'),
			cookie: expectU64(spec.cookie ?? 0n, 'cookie'),
		} satisfies NativeSpec<'link'>;
		const h = this.handle.createLink(s, this.#id(options));
		return new Link(this, h);
	}

	/** Loads raw BTF (BPF_BTF_LOAD): EINVAL unless it starts with a BTF header. */
	loadBtf(data: Uint8Array, options?: { id?: number }): Btf {
		const h = this.handle.createBtf(expectBuffer(data, 'data'), this.#id(options));
		return new Btf(this, h);
	}

	/** What id holds, or undefined. */
	get(id: number): HandlerDescriptor | undefined {
		const d = this.handle.get(expectU32(id, 'id'));
		return d === undefined ? undefined : decorate(d);
	}

	/** Everything the registry holds, by id. */
	list(): HandlerDescriptor[] {
		return this.handle.list().map(decorate);
	}

	/**
	 * Begins a load: what this registry creates until the matching `endLoad()` is one transaction.
	 * A process that dies in between leaves its handlers marked, and the next `Registry.open` of
	 * any process releases them all. Nests; only the outermost `endLoad()` commits.
	 */
	beginLoad(): void {
		this.handle.beginLoad();
	}

	/** Commits the load `beginLoad()` began (what a failed load did not release itself stays). */
	endLoad(): void {
		this.handle.endLoad();
	}

	/** Who made each handler: process id and start time, whether its load is unfinished, whether it still runs. */
	owners(): OwnerInfo[] {
		return this.handle.owners();
	}

	/** Releases the handlers of every unfinished load whose process is gone; returns them. */
	rollBackDeadLoads(): OwnerInfo[] {
		return this.handle.rollBackDeadLoads();
	}

	#expect(id: number, kind: HandlerDescriptor['kind']): HandlerDescriptor {
		const d = this.get(id);
		if (!d) throw new BpftimeError('EBADF', `id ${id} holds nothing`);
		if (d.kind !== kind) throw new BpftimeError('EINVAL', `id ${id} is a ${d.kind}, not a ${kind}`);
		return d;
	}

	/** A handle to the map at id: EBADF when empty, EINVAL when it holds something else. */
	map(id: number): BpfMap;
	/** A typed view of the map at id; the codecs' sizes must match the map's. */
	map<K, V>(id: number, key: Codec<K>, value: Codec<V>): TypedMap<K, V>;
	map<K, V>(id: number, key?: Codec<K>, value?: Codec<V>): BpfMap | TypedMap<K, V> {
		const d = this.#expect(id, 'map') as MapDescriptor;
		const m = new BpfMap(this, d);
		return key && value ? m.typed(key, value) : m;
	}

	/** The first map of that name. Throws ENOENT when there is none. */
	mapByName(name: string): BpfMap {
		const d = this.list().find((x): x is MapDescriptor => x.kind === 'map' && x.name === name);
		if (!d) throw new BpftimeError('ENOENT', `no map named '${expectString(name, 'name')}'`);
		return new BpfMap(this, d);
	}

	/** A handle to the program at id: EBADF when empty, EINVAL when it holds something else. */
	prog(id: number): Prog {
		return new Prog(this, this.#expect(id, 'prog') as ProgDescriptor);
	}

	link(id: number): Link {
		const d = this.#expect(id, 'link');
		return new Link(this, d);
	}

	/** Removes what id holds (a map with its contents). EBUSY while another handler uses it. */
	release(id: number): void {
		this.handle.release(expectU32(id, 'id'));
	}

	/** The whole registry, map contents included, as a versioned JSON document. */
	exportJson(): string {
		return this.handle.exportJson();
	}

	/**
	 * Recreates everything of an exported document, with the same ids, in this registry, which must
	 * be empty (ENOTEMPTY). A malformed document (EINVAL) or one of another version
	 * (EPROTONOSUPPORT) changes nothing.
	 */
	importJson(text: string): void {
		this.handle.importJson(expectString(text, 'json'));
	}

	/** Unmaps the segment from this registry object (the registry itself stays). Views stay valid until collected. */
	close(): void {
		this.#native?.close();
		this.#native = undefined;
	}

	[Symbol.dispose](): void {
		this.close();
	}
}

// --- handles -------------------------------------------------------------------

/** A live reference to one handler, bound to its generation: stale once released. */
abstract class HandleBase implements Disposable {
	readonly registry: Registry;
	readonly id: number;
	readonly generation: bigint;
	#closed = false;

	constructor(registry: Registry, h: NativeHandle) {
		this.registry = registry;
		this.id = h.id;
		this.generation = h.generation;
	}

	protected get native(): NativeRegistry {
		if (this.#closed) throw new BpftimeError('EBADF', `${this.describe()}: handle is closed`);
		return this.registry.handle;
	}

	abstract describe(): string;

	/** Removes the handler from the registry (EBUSY while others use it; EBADF when already gone). */
	release(): void {
		this.native.release(this.id, this.generation);
		this.#closed = true;
	}

	/** Forgets this handle; the handler stays in the registry. */
	close(): void {
		this.#closed = true;
	}

	[Symbol.dispose](): void {
		this.close();
	}
}

export interface BatchResult {
	/** Entries read. */
	count: number;
	/** count keys, packed. */
	keys: Buffer;
	/** count values, packed. */
	values: Buffer;
}

/** A map of the registry, with raw `Buffer` keys and values. */
export class BpfMap extends HandleBase {
	readonly name: string;
	readonly type: number;
	readonly typeName: string;
	readonly keySize: number;
	readonly valueSize: number;
	/** Bytes of the values `lookup`, `update` and the batches take and give (`MapDescriptor.userValueSize`). */
	readonly userValueSize: number;
	readonly maxEntries: number;
	readonly flags: number;

	/** @internal */
	constructor(registry: Registry, d: MapDescriptor) {
		super(registry, d);
		this.name = d.name;
		this.type = d.type;
		this.typeName = d.typeName;
		this.keySize = d.keySize;
		this.valueSize = d.valueSize;
		this.userValueSize = d.userValueSize;
		this.maxEntries = d.maxEntries;
		this.flags = d.flags;
	}

	describe(): string {
		return `map '${this.name}' (id ${this.id})`;
	}

	/** The value of key, or undefined (BPF_MAP_LOOKUP_ELEM). */
	lookup(key: Uint8Array): Buffer | undefined {
		return this.native.mapLookup(this.id, this.generation, key);
	}

	/**
	 * BPF_MAP_LOOKUP_ELEM with the value buffer filled in first, as the kernel's bpf() passes it: a
	 * bloom filter reads the value it is asked about from there. Undefined when absent.
	 */
	lookupWithValue(key: Uint8Array, value: Uint8Array): Buffer | undefined {
		return this.native.mapLookup(this.id, this.generation, key, value);
	}

	/** BPF_MAP_LOOKUP_AND_DELETE_ELEM (a queue's or stack's pop); undefined when absent or empty. */
	lookupAndDelete(key: Uint8Array): Buffer | undefined {
		return this.native.mapLookupAndDelete(this.id, this.generation, key);
	}

	/** BPF_MAP_UPDATE_ELEM; `flags` from `UpdateFlags` (default Any). */
	update(key: Uint8Array, value: Uint8Array, flags: number = UpdateFlags.Any): void {
		this.native.mapUpdate(this.id, this.generation, key, value, expectU32(flags, 'flags'));
	}

	/** BPF_MAP_DELETE_ELEM; false when there was no such key. Arrays throw EINVAL. */
	delete(key: Uint8Array): boolean {
		return this.native.mapDelete(this.id, this.generation, key);
	}

	/** The key after `key` (none: the first); undefined after the last (BPF_MAP_GET_NEXT_KEY). */
	nextKey(key?: Uint8Array): Buffer | undefined {
		return this.native.mapNextKey(this.id, this.generation, key ?? null);
	}

	/** Up to `count` entries after `after` (none: from the first), in one native call. */
	lookupBatch(after: Uint8Array | undefined, count: number): BatchResult {
		return this.native.mapLookupBatch(this.id, this.generation, after ?? null, expectPositiveInt(count, 'count'));
	}

	/** Applies packed keys and values in one native call; returns the number applied. */
	updateBatch(keys: Uint8Array, values: Uint8Array, flags: number = UpdateFlags.Any): number {
		return this.native.mapUpdateBatch(this.id, this.generation, keys, values, expectU32(flags, 'flags'));
	}

	/** Deletes packed keys in one native call; stops with ENOENT at the first absent key. */
	deleteBatch(keys: Uint8Array): number {
		return this.native.mapDeleteBatch(this.id, this.generation, keys);
	}

	/** Every key, fetched in batches. */
	*keys(batchSize = 65536): IterableIterator<Buffer> {
		for (const [k] of this.entries(batchSize)) yield k;
	}

	/** Every entry, fetched `batchSize` at a time. */
	*entries(batchSize = 65536): IterableIterator<[Buffer, Buffer]> {
		let after: Buffer | undefined;
		for (;;) {
			const b = this.lookupBatch(after, batchSize);
			for (let i = 0; i < b.count; i++) {
				yield [
					b.keys.subarray(i * this.keySize, (i + 1) * this.keySize),
					b.values.subarray(i * this.userValueSize, (i + 1) * this.userValueSize),
				];
			}
			if (b.count < batchSize) return;
			after = Buffer.from(b.keys.subarray((b.count - 1) * this.keySize, b.count * this.keySize));
		}
	}

	/**
	 * The values of a BPF_F_MMAPABLE array map, viewed in place (writes go to the map). EPERM once the
	 * map is frozen, as the kernel refuses a writable mmap of a frozen map. Views are not tracked: one
	 * taken before `freeze()` stays writable.
	 */
	mmap(): Buffer {
		return this.native.mapMmap(this.id, this.generation);
	}

	/**
	 * BPF_MAP_FREEZE: from now on user space (this process and every other) cannot write the map:
	 * `update`, `delete`, `updateBatch`, `deleteBatch` and `mmap` throw EPERM naming the map. Lookups
	 * keep working; programs may still write it unless it was created with `MapFlags.RdonlyProg`.
	 * Throws EPERM when the map is already frozen (as the kernel does: a frozen map gives user space
	 * no write permission) and for a `MapFlags.Rdonly` map; EBUSY while a write from user space is in
	 * progress or when another caller froze it at the same time.
	 */
	freeze(): void {
		this.native.mapFreeze(this.id, this.generation);
	}

	/** Whether the map is frozen (by any process); read from the registry on each access. */
	get frozen(): boolean {
		return this.native.mapFrozen(this.id, this.generation);
	}

	/**
	 * A typed view. The codecs' sizes are checked here, once:
	 * `map 'counts': key: expected 4 bytes (keySize) but u64 is 8`.
	 */
	typed<K, V>(key: Codec<K>, value: Codec<V>): TypedMap<K, V> {
		if (key.size !== this.keySize)
			throw new BpftimeError(
				'EINVAL',
				`${this.describe()}: key: expected ${this.keySize} bytes (keySize) but ${key.name} is ${key.size}`,
			);
		if (value.size !== this.userValueSize) {
			const field = this.userValueSize === this.valueSize ? 'valueSize' : 'userValueSize';
			throw new BpftimeError(
				'EINVAL',
				`${this.describe()}: value: expected ${this.userValueSize} bytes (${field}) but ${value.name} is ${value.size}`,
			);
		}
		return new TypedMap(this, key, value);
	}
}

/** A map seen through codecs: `get`/`set`/`delete` like a JavaScript Map, u64 as bigint. */
export class TypedMap<K, V> implements Iterable<[K, V]> {
	readonly map: BpfMap;
	readonly #key: Codec<K>;
	readonly #value: Codec<V>;
	readonly #kbuf: Buffer;
	readonly #vbuf: Buffer;

	/** @internal */
	constructor(map: BpfMap, key: Codec<K>, value: Codec<V>) {
		this.map = map;
		this.#key = key;
		this.#value = value;
		this.#kbuf = Buffer.alloc(key.size);
		this.#vbuf = Buffer.alloc(value.size);
	}

	#k(key: K): Buffer {
		this.#key.encode(key, this.#kbuf, 0);
		return this.#kbuf;
	}

	get(key: K): V | undefined {
		const v = this.map.lookup(this.#k(key));
		return v === undefined ? undefined : this.#value.decode(v, 0);
	}

	has(key: K): boolean {
		return this.map.lookup(this.#k(key)) !== undefined;
	}

	set(key: K, value: V, flags: number = UpdateFlags.Any): this {
		this.#value.encode(value, this.#vbuf, 0);
		this.map.update(this.#k(key), this.#vbuf, flags);
		return this;
	}

	delete(key: K): boolean {
		return this.map.delete(this.#k(key));
	}

	/** Writes many entries in one native call per batch; returns the number written. */
	setMany(entries: Iterable<[K, V]>, flags: number = UpdateFlags.Any): number {
		const list = Array.isArray(entries) ? (entries as [K, V][]) : [...entries];
		const ks = this.#key.size;
		const vs = this.#value.size;
		const keys = Buffer.alloc(list.length * ks);
		const values = Buffer.alloc(list.length * vs);
		for (let i = 0; i < list.length; i++) {
			const [k, v] = list[i] as [K, V];
			this.#key.encode(k, keys, i * ks);
			this.#value.encode(v, values, i * vs);
		}
		return list.length === 0 ? 0 : this.map.updateBatch(keys, values, flags);
	}

	/** Deletes many keys in one native call; ENOENT at the first absent one. */
	deleteMany(keys: Iterable<K>): number {
		const list = Array.isArray(keys) ? (keys as K[]) : [...keys];
		const ks = this.#key.size;
		const buf = Buffer.alloc(list.length * ks);
		for (let i = 0; i < list.length; i++) this.#key.encode(list[i] as K, buf, i * ks);
		return list.length === 0 ? 0 : this.map.deleteBatch(buf);
	}

	/** Every entry, read in batches of `batchSize` per native call. */
	*entries(batchSize = 65536): IterableIterator<[K, V]> {
		const ks = this.#key.size;
		const vs = this.#value.size;
		let after: Buffer | undefined;
		for (;;) {
			const b = this.map.lookupBatch(after, batchSize);
			for (let i = 0; i < b.count; i++) yield [this.#key.decode(b.keys, i * ks), this.#value.decode(b.values, i * vs)];
			if (b.count < batchSize) return;
			after = Buffer.from(b.keys.subarray((b.count - 1) * ks, b.count * ks));
		}
	}

	*keys(): IterableIterator<K> {
		for (const [k] of this.entries()) yield k;
	}

	*values(): IterableIterator<V> {
		for (const [, v] of this.entries()) yield v;
	}

	[Symbol.iterator](): IterableIterator<[K, V]> {
		return this.entries();
	}

	/** Every entry as an array (the bulk read): one native call per `batchSize` entries, no generator. */
	readAll(batchSize = 65536): [K, V][] {
		const ks = this.#key.size;
		const vs = this.#value.size;
		const key = this.#key;
		const value = this.#value;
		const out: [K, V][] = [];
		let after: Buffer | undefined;
		for (;;) {
			const b = this.map.lookupBatch(after, batchSize);
			const { keys, values, count } = b;
			if (key.decodeMany && value.decodeMany) {
				const ka = key.decodeMany(keys, count);
				const va = value.decodeMany(values, count);
				for (let i = 0; i < count; i++) out.push([ka[i] as K, va[i] as V]);
			} else {
				for (let i = 0; i < count; i++) out.push([key.decode(keys, i * ks), value.decode(values, i * vs)]);
			}
			if (count < batchSize) return out;
			after = keys.subarray((count - 1) * ks, count * ks);
		}
	}
}

export interface RunOptions {
	/** Default: the environment's (BPFTIME_DISABLE_JIT, BPFTIME_VM_NAME), else `jit`. */
	backend?: Backend;
	/** Check every memory access (slower); a violation is EFAULT. */
	boundsCheck?: boolean;
	/** What bpf_get_attach_cookie() returns during this run. */
	cookie?: bigint;
	/** What bpf_get_func_ip() returns during this run. */
	funcIp?: bigint;
}

/** A program of the registry. */
export class Prog extends HandleBase {
	readonly name: string;
	readonly type: number;
	readonly typeName: string;

	/** @internal */
	constructor(registry: Registry, d: ProgDescriptor) {
		super(registry, d);
		this.name = d.name;
		this.type = d.type;
		this.typeName = d.typeName;
	}

	describe(): string {
		return `prog '${this.name}' (id ${this.id})`;
	}

	/**
	 * Makes the program runnable in this process (verify, resolve maps, bind helpers, JIT); cached, so
	 * `run` does it once. EINVAL names a helper bpftime does not provide or the verifier's complaint.
	 */
	instantiate(options: Omit<RunOptions, 'cookie' | 'funcIp'> = {}): { backend: Backend; compileTimeNs: bigint } {
		const r = this.native.progInstantiate(this.id, this.generation, options.backend, options.boundsCheck === true);
		return { backend: r.backend as Backend, compileTimeNs: r.compileTimeNs };
	}

	/** Runs the program in this process with r1 = ctx, r2 = ctx.length; returns r0. It may write into ctx. */
	run(ctx?: Uint8Array, options: RunOptions = {}): bigint {
		return this.native.progRun(
			this.id,
			this.generation,
			options.backend,
			options.boundsCheck === true,
			ctx === undefined ? undefined : expectBuffer(ctx, 'ctx'),
			options.cookie === undefined ? undefined : expectU64(options.cookie, 'cookie'),
			options.funcIp === undefined ? undefined : expectU64(options.funcIp, 'funcIp'),
		);
	}
}

export class Link extends HandleBase {
	describe(): string {
		return `link (id ${this.id})`;
	}
}

export class PerfEvent extends HandleBase {
	describe(): string {
		return `perf_event (id ${this.id})`;
	}
}

export class Btf extends HandleBase {
	describe(): string {
		return `btf (id ${this.id})`;
	}
}
