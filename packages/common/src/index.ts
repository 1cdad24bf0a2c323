export { expectBuffer, expectPositiveInt, expectString, expectU32, expectU64 } from './checks.js';
export { BpftimeError, errnoName, errnoNumber } from './errors.js';
export { findBuilt, loadNative, type NativeAddon } from './native.js';
