// open-object.ts: BpfObject.open for the commands that take an object file
// (run, objdump), with the file's name in every error: the loader names
// some malformed files by their ELF role ("elf: not an eBPF object file").
import { BpftimeError } from '@bpftime/common';
import type { BpfObject } from '@bpftime/loader';

export async function openObject(file: string): Promise<BpfObject> {
	const { BpfObject } = await import('@bpftime/loader');
	try {
		return BpfObject.open(file);
	} catch (e) {
		if (e instanceof BpftimeError && !e.message.includes(file))
			throw new BpftimeError(e.code, `object '${file}': ${e.message}`, { cause: e });
		throw e;
	}
}
