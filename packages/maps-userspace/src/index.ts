// @bpftime/maps-userspace: importing this module registers its map types
// (BPF_MAP_TYPE_ARRAY, BPF_MAP_TYPE_HASH,
// BPF_MAP_TYPE_RINGBUF, BPF_MAP_TYPE_USER_RINGBUF, BPF_MAP_TYPE_PERF_EVENT_ARRAY) with the registry of
// @bpftime/handlers in this process.
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
