// bpftime list: everything the registry holds (programs, maps, links, perf
// events) and the processes that have it mapped, as tables or --json.
import type {
	HandlerDescriptor,
	LinkDescriptor,
	MapDescriptor,
	PerfEventDescriptor,
	ProgDescriptor,
	Registry,
} from '@bpftime/handlers';
import { type Command, type Context, takeOptions, UsageError } from '../command.js';
import { jsonText } from '../format/json.js';
import { paint, table } from '../format/style.js';
import { openRegistry } from '../registry.js';
import { describeEvent, describeLinkTarget, segmentUsers, shortTypeName } from '../registry-view.js';

export function progRow(p: ProgDescriptor) {
	return {
		id: p.id,
		name: p.name,
		type: shortTypeName(p.typeName),
		insns: p.insns.length / 8,
		mapIds: p.mapIds,
		license: p.license,
	};
}

export function mapRow(m: MapDescriptor) {
	return {
		id: m.id,
		name: m.name,
		type: shortTypeName(m.typeName),
		keySize: m.keySize,
		valueSize: m.valueSize,
		maxEntries: m.maxEntries,
		flags: m.flags,
		btfId: m.btfId,
		frozen: m.frozen,
	};
}

export function linkRow(reg: Registry, l: LinkDescriptor) {
	const prog = reg.get(l.progId);
	return {
		id: l.id,
		progId: l.progId,
		progName: prog?.kind === 'prog' ? prog.name : undefined,
		targetId: l.targetId,
		target: describeLinkTarget(reg, l),
		cookie: l.cookie,
		faults: l.faults,
	};
}

/** Link rows as a table. */
export function linkTable(ctx: Context, rows: ReturnType<typeof linkRow>[]): string {
	return table(
		ctx.io,
		[
			{ header: 'ID', right: true },
			{ header: 'PROG' },
			{ header: 'COOKIE' },
			{ header: 'FAULTS', right: true },
			{ header: 'TARGET' },
		],
		rows.map((l) => [
			String(l.id),
			`${l.progId}${l.progName === undefined ? '' : ` ${l.progName}`}`,
			`0x${l.cookie.toString(16)}`,
			String(l.faults),
			l.target,
		]),
	);
}

export function progTable(ctx: Context, rows: ReturnType<typeof progRow>[]): string {
	return table(
		ctx.io,
		[
			{ header: 'ID', right: true },
			{ header: 'NAME' },
			{ header: 'TYPE' },
			{ header: 'INSNS', right: true },
			{ header: 'MAPS' },
		],
		rows.map((p) => [String(p.id), p.name, p.type, String(p.insns), p.mapIds.join(',') || '-']),
	);
}

export function mapTable(ctx: Context, rows: ReturnType<typeof mapRow>[]): string {
	return table(
		ctx.io,
		[
			{ header: 'ID', right: true },
			{ header: 'NAME' },
			{ header: 'TYPE' },
			{ header: 'KEY', right: true },
			{ header: 'VALUE', right: true },
			{ header: 'MAX_ENTRIES', right: true },
			{ header: 'FLAGS' },
			{ header: 'BTF' },
		],
		rows.map((m) => [
			String(m.id),
			m.name,
			m.type,
			`${m.keySize}B`,
			`${m.valueSize}B`,
			String(m.maxEntries),
			`0x${m.flags.toString(16)}${m.frozen ? ' frozen' : ''}`,
			m.btfId === undefined ? '-' : String(m.btfId),
		]),
	);
}

async function run(args: string[], ctx: Context): Promise<number> {
	const { options, rest } = takeOptions(args, { '--json': 'flag' }, 'list', false);
	if (rest.length) throw new UsageError(`list: unexpected argument '${rest[0]}'`, 'list');
	const { seg, reg } = await openRegistry(ctx.segment);
	try {
		const all: HandlerDescriptor[] = reg.list();
		const of = <K extends HandlerDescriptor['kind']>(k: K) =>
			all.filter((d): d is Extract<HandlerDescriptor, { kind: K }> => d.kind === k);
		const programs = of('prog').map(progRow);
		const maps = of('map').map(mapRow);
		const links = of('link').map((l) => linkRow(reg, l));
		const events = of('perf_event').map((e: PerfEventDescriptor) => ({
			id: e.id,
			type: e.type,
			event: describeEvent(e),
		}));
		const btf = of('btf').map((b) => ({ id: b.id, bytes: b.data.length }));
		const processes = segmentUsers(seg.name);
		if (options['--json'] === true) {
			ctx.io.out(jsonText({ segment: seg.name, programs, maps, links, events, btf, processes }));
			return 0;
		}
		const section = (title: string, count: number, body: () => string) => {
			ctx.io.out(`${paint(ctx.io, 'cyan', `${title} (${count})`)}\n${count ? body() : '  none\n'}\n`);
		};
		section('Programs', programs.length, () => progTable(ctx, programs));
		section('Maps', maps.length, () => mapTable(ctx, maps));
		section('Links', links.length, () => linkTable(ctx, links));
		section('Events', events.length, () =>
			table(
				ctx.io,
				[{ header: 'ID', right: true }, { header: 'EVENT' }],
				events.map((e) => [String(e.id), e.event]),
			),
		);
		section('Processes', processes.length, () =>
			table(
				ctx.io,
				[{ header: 'PID', right: true }, { header: 'COMMAND' }, { header: 'ROLE' }],
				processes.map((p) => [String(p.pid), p.command, p.role]),
			),
		);
		return 0;
	} finally {
		reg.close();
		seg.close();
	}
}

export const list: Command = {
	name: 'list',
	overview: [['list [--json]', 'the programs, maps, links and events of the registry\nand the processes using it']],
	usage: `Usage: bpftime list [--json]

Prints what the registry holds, one table each: programs (id, name, type,
instruction count, maps used), maps (id, name, type, key and value sizes,
max entries, flags, BTF id), links (id, program, cookie, faults, target),
perf events (uprobes, uretprobes, syscall tracepoints), and the processes
that have the segment mapped with their role: agent (the target runs the
registry's programs: \`bpftime start\` or \`bpftime attach\`), syscall-server
(a loader tool under \`bpftime load <command>\`) or other.

Options:
  --json  one JSON document: { segment, programs, maps, links, events, btf,
          processes }; 64-bit numbers are written exactly

Example:
  bpftime list
  bpftime list --json | jq '.maps[].name'
`,
	run,
};
