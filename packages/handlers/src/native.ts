// native.ts: the addon's interface (binding/handlers_binding.cpp) and its
// loading. Internal to the package.
import { fileURLToPath } from 'node:url';
import { loadNative, type NativeAddon } from '@bpftime/common';

export interface NativeHandle {
	id: number;
	generation: bigint;
}

/** Who made a handler: the process (pid and start time, clock ticks since boot) and whether its load is unfinished. */
export interface OwnerInfo {
	id: number;
	generation: bigint;
	kind: string;
	name: string;
	/** 0: unknown. */
	pid: number;
	startTime: bigint;
	/** Part of a load that has not committed (`beginLoad` without its `endLoad`). */
	inLoad: boolean;
	/** The process still runs (same pid, same start time). */
	alive: boolean;
}

export interface NativeRegistry {
	capacity(): number;
	changeCounter(): bigint;
	size(): number;
	createMap(spec: object, id?: number): NativeHandle;
	createProg(spec: object, id?: number): NativeHandle;
	createLink(spec: object, id?: number): NativeHandle;
	createPerfEvent(spec: object, id?: number): NativeHandle;
	createBtf(data: Uint8Array, id?: number): NativeHandle;
	release(id: number, generation?: bigint): void;
	get(id: number): Record<string, unknown> | undefined;
	list(): Record<string, unknown>[];
	beginLoad(): void;
	endLoad(): void;
	owners(): OwnerInfo[];
	rollBackDeadLoads(): OwnerInfo[];
	mapLookup(id: number, gen: bigint, key: Uint8Array, value?: Uint8Array): Buffer | undefined;
	mapLookupAndDelete(id: number, gen: bigint, key: Uint8Array): Buffer | undefined;
	mapUpdate(id: number, gen: bigint, key: Uint8Array, value: Uint8Array, flags: number): void;
	mapDelete(id: number, gen: bigint, key: Uint8Array): boolean;
	mapNextKey(id: number, gen: bigint, key: Uint8Array | null): Buffer | undefined;
	mapLookupBatch(
		id: number,
		gen: bigint,
		after: Uint8Array | null,
		maxCount: number,
	): { count: number; keys: Buffer; values: Buffer };
	mapUpdateBatch(id: number, gen: bigint, keys: Uint8Array, values: Uint8Array, flags: number): number;
	mapDeleteBatch(id: number, gen: bigint, keys: Uint8Array): number;
	mapMmap(id: number, gen: bigint): Buffer;
	mapFreeze(id: number, gen: bigint): void;
	mapFrozen(id: number, gen: bigint): boolean;
	progInstantiate(
		id: number,
		gen: bigint,
		backend?: string,
		boundsCheck?: boolean,
	): { backend: string; compileTimeNs: bigint };
	progRun(
		id: number,
		gen: bigint,
		backend: string | undefined,
		boundsCheck: boolean,
		ctx: Uint8Array | undefined,
		cookie: bigint | undefined,
		funcIp: bigint | undefined,
	): bigint;
	exportJson(): string;
	importJson(text: string): void;
	close(): void;
}

export interface HandlersAddon extends NativeAddon {
	openRegistry(
		mode: 'create' | 'open' | 'openOrCreate' | 'inspect',
		segment: string,
		capacity?: number,
	): NativeRegistry;
	registerMapOps(ops: unknown): void;
	registeredMapTypes(): { type: number; typeName: string; provider: string }[];
	declareMapTypeProvider(type: number, provider: string): void;
	helpers(): { id: number; name: string }[];
	optionsFromEnv(): { capacity: number };
	backendFromEnv(): string;
	defaultCapacity: number;
	jsonVersion: number;
	/** Per kind, the descriptor's and the create spec's keys, from native/include/bpftime/handlers/fields.hpp. */
	fieldKeys: Record<string, { descriptor: string[]; spec: string[] }>;
	perfEventTypeNames: string[];
	hookFamilyNames: string[];
	attachKinds: { name: string; family: string }[];
	syscallsX86_64: Record<string, number>;
}

export const native = loadNative<HandlersAddon>(fileURLToPath(new URL('..', import.meta.url)), 'handlers');
