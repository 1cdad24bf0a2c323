// native.ts: the addon's interface (binding/maps_userspace_binding.cpp) and
// its loading. Internal to the package.
import { fileURLToPath } from 'node:url';
import { loadNative, type NativeAddon } from '@bpftime/common';

export interface NativeRingConsumer {
	read(
		maxRecords: number,
		maxBytes: number,
		timeoutMs: number,
	): Promise<{ count: number; closed: boolean; sizes: Buffer; data: Buffer }>;
	close(): void;
	stats(): { sleeps: bigint; wakeups: bigint; ringSize: number };
}

export interface NativePerfConsumer {
	read(timeoutMs: number): Promise<{
		count: number;
		sizes: Buffer;
		cpus: Buffer;
		data: Buffer;
		lostCount: number;
		lostCpus: Buffer;
		lost: Buffer;
	}>;
	close(): void;
	stats(): { sleeps: bigint; lost: bigint };
}

export interface NativeUserProducer {
	write(data: Uint8Array): number;
	freeBytes(): number;
	waitForRoom(size: number, timeoutMs: number): Promise<boolean>;
	close(): void;
}

export interface MapsAddon extends NativeAddon {
	mapOps(): { type: number; typeName: string; ops: unknown }[];
	ringConsumer(region: Buffer): NativeRingConsumer;
	perfConsumer(region: Buffer): NativePerfConsumer;
	userProducer(region: Buffer): NativeUserProducer;
}

export const native = loadNative<MapsAddon>(fileURLToPath(new URL('..', import.meta.url)), 'maps_userspace');
