export { BpftimeError } from '@bpftime/common';
export { type Io, main, UsageError } from './main.js';
