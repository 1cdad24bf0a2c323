// @bpftime/maps-userspace: importing this module registers its map types
// (MAP_TYPES) with the registry of @bpftime/handlers in this process, and
// exports a typed view of each type past array and hash (one file each,
// named after the kernel's).
//
//   import '@bpftime/maps-userspace';
//
// The implementations live in this package's core (libbpftime_maps_userspace.so),
// the registry in handlers' (libbpftime_handlers.so), one copy of each per
// process. What this module hands over is the address of each static map-ops
// table, as a tagged External, through the same registerMapOps() any other
// map package uses.
import { type MapType, registerMapOps } from '@bpftime/handlers';
import { native } from './native.js';

export { PerfEventArray, type PerfEventArrayOptions, type PerfRecord } from './perf-event-array.js';
export { RingBuf, type RingBufReadOptions, type RingBufStats } from './ringbuf.js';
export { UserRingBuf } from './user-ringbuf.js';

const tables = native.mapOps();
for (const t of tables) registerMapOps(t.ops);

/** The map types this package provides (and has registered in this process). */
export const MAP_TYPES: readonly { type: MapType; typeName: string }[] = Object.freeze(
	tables.map((t) => Object.freeze({ type: t.type as MapType, typeName: t.typeName })),
);

export { ArrayOfMaps } from './array-of-maps.js';
export { BloomFilter } from './bloom-filter.js';
export { CgroupArray } from './cgroup-array.js';
export { HashOfMaps } from './hash-of-maps.js';
export { type LpmPrefix, LpmTrie } from './lpm-trie.js';
export { LruHash } from './lru-hash.js';
export { LruPercpuHash } from './lru-percpu-hash.js';
export { PercpuArray } from './percpu-array.js';
export { PercpuHash } from './percpu-hash.js';
export { ProgArray } from './prog-array.js';
export { Queue } from './queue.js';
export { Stack } from './stack.js';
export { StackTraceMap } from './stack-trace.js';
export { type Frame, Symbolizer } from './symbols.js';
export type { ValueList } from './value-list.js';
