import * as common from '@bpftime/common';
import * as handlers from '@bpftime/handlers';
import { describe, expect, it } from 'vitest';
import * as loader from '../src/index.js';

describe('kernel numbers', () => {
	it.each([
		['MapType', loader.MapType, handlers.MapType, common.MapType],
		['ProgType', loader.ProgType, handlers.ProgType, common.ProgType],
		['AttachType', loader.AttachType, handlers.AttachType, common.AttachType],
		['MapFlags', loader.MapFlags, handlers.MapFlags, common.MapFlags],
	] as const)(
		'exports the same %s object as @bpftime/common and @bpftime/handlers',
		(_name, fromLoader, fromHandlers, fromCommon) => {
			expect(fromLoader).toBe(fromCommon);
			expect(fromHandlers).toBe(fromCommon);
		},
	);

	it('names types with the generated tables, and unknown numbers by value', () => {
		expect(loader.mapTypeName(loader.MapType.Ringbuf)).toBe('BPF_MAP_TYPE_RINGBUF');
		expect(loader.progTypeName(loader.ProgType.Kprobe)).toBe('BPF_PROG_TYPE_KPROBE');
		expect(loader.attachTypeName(loader.AttachType.TraceFentry)).toBe('BPF_TRACE_FENTRY');
		expect(loader.mapTypeName(1500)).toBe('BPF_MAP_TYPE_1500');
		expect(loader.attachTypeName(1500)).toBe('BPF_ATTACH_TYPE_1500');
	});
});
