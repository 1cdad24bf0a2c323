export { expectBuffer, expectPositiveInt, expectString, expectU32, expectU64 } from './checks.js';
export { BpftimeError, errnoName, errnoNumber } from './errors.js';
export { findBuilt, loadNative, type NativeAddon } from './native.js';
export { type PreloadOptions, preloadEnv, spawnPreloaded } from './preload.js';
export type { MapSpec, ProgSpec } from './specs.js';
// The generated kernel numbers (scripts/gen-uapi.mjs): all of it is public.
export * from './uapi.js';
