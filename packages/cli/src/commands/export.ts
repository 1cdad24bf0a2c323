// bpftime export <file.json>: the whole registry, map contents included, as
// the versioned JSON document of @bpftime/handlers (`Registry.exportJson`).
import { writeFileSync } from 'node:fs';
import { BpftimeError } from '@bpftime/common';
import { type Command, takeOptions, UsageError } from '../command.js';
import { openRegistry } from '../registry.js';

export const exportCommand: Command = {
	name: 'export',
	overview: [
		['export <file.json>', 'write the registry (maps with their contents,\nprograms, links, events) to a JSON file'],
	],
	usage: `Usage: bpftime export <file.json>

Writes everything the registry holds (maps with their contents, programs,
links, perf events, BTF) to <file.json> ("-": standard output), as a
versioned JSON document that \`bpftime import\` reads back with the same ids.
The file is written whole or not at all.

Example:
  bpftime export state.json && bpftime clean && bpftime import state.json
`,
	async run(args, { segment, io }) {
		const { rest } = takeOptions(args, {}, 'export', false);
		if (rest.length === 0) throw new UsageError('export: missing the file to write', 'export');
		if (rest.length > 1) throw new UsageError(`export: unexpected argument '${rest[1]}'`, 'export');
		const file = rest[0] as string;
		const { seg, reg } = await openRegistry(segment);
		let text: string;
		try {
			text = reg.exportJson();
		} finally {
			reg.close();
			seg.close();
		}
		if (file === '-') {
			io.out(text.endsWith('\n') ? text : `${text}\n`);
			return 0;
		}
		// Beside the file, then renamed over it: a reader never sees half a document.
		const tmp = `${file}.${process.pid}.tmp`;
		const { renameSync, rmSync } = await import('node:fs');
		try {
			writeFileSync(tmp, text);
			renameSync(tmp, file);
		} catch (e) {
			rmSync(tmp, { force: true });
			const err = e as NodeJS.ErrnoException;
			const why = err.code === 'ENOENT' ? 'its folder does not exist' : err.message.replaceAll(tmp, file);
			throw new BpftimeError(err.code ?? 'EIO', `export: cannot write ${file}: ${why}`);
		}
		const count = (JSON.parse(text) as { handlers?: unknown[] }).handlers?.length;
		io.out(`exported segment '${seg.name}' to ${file}${count === undefined ? '' : ` (${count} objects)`}\n`);
		return 0;
	},
};
