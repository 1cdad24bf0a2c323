// bpftime link list|detach: the links of the registry, which tie a program
// to an event; detaching one removes it from the registry, and every agent
// takes its hook off when it sees the change (BPFTIME_AGENT_POLL_MS).
import { BpftimeError } from '@bpftime/common';
import type { LinkDescriptor } from '@bpftime/handlers';
import { type Command, type Context, takeOptions, UsageError } from '../command.js';
import { jsonText } from '../format/json.js';
import { openRegistry } from '../registry.js';
import { findHandler } from '../registry-view.js';
import { linkRow, linkTable } from './list.js';

async function list(args: string[], ctx: Context): Promise<number> {
	const { options, rest } = takeOptions(args, { '--json': 'flag' }, 'link', false);
	if (rest.length) throw new UsageError(`link list: unexpected argument '${rest[0]}'`, 'link');
	const { seg, reg } = await openRegistry(ctx.segment);
	try {
		const rows = reg
			.list()
			.filter((d): d is LinkDescriptor => d.kind === 'link')
			.map((l) => linkRow(reg, l));
		ctx.io.out(options['--json'] === true ? jsonText(rows) : rows.length ? linkTable(ctx, rows) : 'no links\n');
		return 0;
	} finally {
		reg.close();
		seg.close();
	}
}

async function detach(args: string[], ctx: Context): Promise<number> {
	const { rest } = takeOptions(args, {}, 'link', false);
	if (rest.length === 0) throw new UsageError('link detach: missing the link id', 'link');
	if (rest.length > 1) throw new UsageError(`link detach: unexpected argument '${rest[1]}'`, 'link');
	const which = rest[0] as string;
	if (!/^\d+$/.test(which)) throw new UsageError(`link detach: '${which}' is not a link id`, 'link');
	const { seg, reg } = await openRegistry(ctx.segment);
	try {
		const l = findHandler(reg, 'link', which);
		const row = linkRow(reg, l);
		try {
			reg.link(l.id).release();
		} catch (e) {
			if (e instanceof BpftimeError && e.code === 'EBADF')
				throw new BpftimeError('ENOENT', `link id ${which}: released meanwhile (ENOENT)`);
			throw e;
		}
		ctx.io.out(
			`link ${l.id} detached: prog ${row.progId}${row.progName ? ` '${row.progName}'` : ''} from ${row.target}\n`,
		);
		return 0;
	} finally {
		reg.close();
		seg.close();
	}
}

const subcommands = new Map([
	['list', list],
	['detach', detach],
]);

export const link: Command = {
	name: 'link',
	overview: [
		['link list [--json]', 'list the links of the registry'],
		['link detach <id>', 'remove a link: its program stops running there'],
	],
	usage: `Usage: bpftime link list [--json]
       bpftime link detach <id>

list    one row per link: id, program, cookie, faults (runs a SIGSEGV or
        SIGBUS ended, in every process), and target (the perf event: uprobe
        binary and offset, syscall tracepoint)
detach  removes the link from the registry; every process running its
        program takes the hook off within BPFTIME_AGENT_POLL_MS. The
        program, its maps and the event stay.

Example:
  bpftime link list
  bpftime link detach 5
`,
	async run(args, ctx) {
		const [sub, ...rest] = args;
		if (sub === undefined) throw new UsageError('link: missing the subcommand (list, detach)', 'link');
		const run = subcommands.get(sub);
		if (!run) throw new UsageError(`link: unknown subcommand '${sub}'`, 'link');
		return run(rest, ctx);
	},
};
