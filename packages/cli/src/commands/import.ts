// bpftime import <file.json>: recreates what `bpftime export` wrote, with
// the same ids, in an empty registry (a new segment when there is none).
import { readFileSync } from 'node:fs';
import { BpftimeError } from '@bpftime/common';
import { type Command, takeOptions, UsageError } from '../command.js';
import { registryModules } from '../registry.js';

export const importCommand: Command = {
	name: 'import',
	overview: [['import <file.json>', 'recreate an exported registry (same ids)']],
	usage: `Usage: bpftime import <file.json>

Recreates everything of a document \`bpftime export\` wrote ("-": standard
input) with the same ids: in a new segment when the segment does not exist
(BPFTIME_SHM_MEMORY_MB sizes it), or in the existing registry when it is
empty. A registry that holds anything is refused (ENOTEMPTY: \`bpftime clean\`
first); a malformed document (EINVAL) or one of another version
(EPROTONOSUPPORT) changes nothing, and a segment made for it is removed.

Example:
  bpftime --segment copy import state.json
`,
	async run(args, { segment, io }) {
		const { rest } = takeOptions(args, {}, 'import', false);
		if (rest.length === 0) throw new UsageError('import: missing the file to read', 'import');
		if (rest.length > 1) throw new UsageError(`import: unexpected argument '${rest[1]}'`, 'import');
		const file = rest[0] as string;
		let text: string;
		try {
			text = readFileSync(file === '-' ? 0 : file, 'utf8');
		} catch (e) {
			const err = e as NodeJS.ErrnoException;
			throw new BpftimeError(err.code ?? 'EIO', `import: ${file}: ${err.message}`);
		}
		const { Registry, Segment } = await registryModules();
		const name = segment ?? Segment.defaultOptions().name;
		const fresh = !Segment.exists({ name });
		const seg = fresh ? Segment.create({ name }) : Segment.open({ name });
		let ok = false;
		try {
			const reg = fresh ? Registry.create(seg) : Registry.open(seg);
			try {
				if (!fresh && reg.size > 0)
					throw new BpftimeError(
						'ENOTEMPTY',
						`import: segment '${name}': the registry holds ${reg.size} objects; import needs an empty one (\`bpftime clean\` removes the segment) (ENOTEMPTY)`,
					);
				try {
					reg.importJson(text);
				} catch (e) {
					if (e instanceof BpftimeError) throw new BpftimeError(e.code, `import: ${file}: ${e.message}`);
					throw e;
				}
				io.out(`imported ${file} into segment '${name}': ${reg.size} objects\n`);
				ok = true;
			} finally {
				reg.close();
			}
		} finally {
			seg.close();
			if (fresh && !ok) Segment.remove({ name });
		}
		return 0;
	},
};
