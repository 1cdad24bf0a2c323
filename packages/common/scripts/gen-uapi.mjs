#!/usr/bin/env node
// gen-uapi.mjs: writes the kernel's eBPF numbers, read from linux/bpf.h, as
// one C++ header and one TypeScript module, so that no package types them by
// hand (the way cilium/ebpf generates internal/sys).
//
//   node packages/common/scripts/gen-uapi.mjs [--header PATH] [--out DIR]
//   pnpm --filter @bpftime/common gen:uapi
//
// Reads /usr/include/linux/bpf.h (Debian's linux-libc-dev) unless --header
// names another copy, and writes, relative to --out (default: the package):
//   native/include/bpftime/common/bpf_uapi.hpp   namespace bpftime::uapi
//   src/uapi.ts                                  MapType, ProgType, ...
// Both files are committed; test/uapi.test.ts regenerates them into a
// temporary folder and fails when they differ from the committed ones.
//
// The header is parsed here, without a C compiler: the enums of bpf.h are
// plain lists of `NAME` or `NAME = value` entries (value: a number, `(1U << n)`
// or an earlier name), and the helper ids are the `FN(name)` list of
// __BPF_FUNC_MAPPER, numbered from 0 in order.
//
// The uapi enums only ever grow at their end. NEWER lists the entries of the
// kernels after the oldest header this project builds against (Linux 6.1,
// Debian bookworm) that bpftime already names; they are added when the header
// lacks them, and checked against it when it has them, so the output is the
// same from any header that is at least as old as the newest entry here.
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const packageDir = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const DEFAULT_HEADER = '/usr/include/linux/bpf.h';
export const HEADER_OUT = 'native/include/bpftime/common/bpf_uapi.hpp';
export const TS_OUT = 'src/uapi.ts';

/** Entries newer than Linux 6.1 that bpftime names, [name, value], in enum order. */
export const NEWER = {
	bpf_map_type: [
		['BPF_MAP_TYPE_CGRP_STORAGE', 32],
		['BPF_MAP_TYPE_ARENA', 33],
	],
	bpf_prog_type: [['BPF_PROG_TYPE_NETFILTER', 32]],
	bpf_attach_type: [
		['BPF_STRUCT_OPS', 44],
		['BPF_NETFILTER', 45],
		['BPF_TCX_INGRESS', 46],
		['BPF_TCX_EGRESS', 47],
		['BPF_TRACE_UPROBE_MULTI', 48],
		['BPF_CGROUP_UNIX_CONNECT', 49],
		['BPF_CGROUP_UNIX_SENDMSG', 50],
		['BPF_CGROUP_UNIX_RECVMSG', 51],
		['BPF_CGROUP_UNIX_GETPEERNAME', 52],
		['BPF_CGROUP_UNIX_GETSOCKNAME', 53],
		['BPF_NETKIT_PRIMARY', 54],
		['BPF_NETKIT_PEER', 55],
		['BPF_TRACE_KPROBE_SESSION', 56],
	],
	bpf_func_id: [
		['cgrp_storage_get', 210],
		['cgrp_storage_delete', 211],
	],
};

/**
 * The groups written out: a named enum of bpf.h, or a set of constants of its
 * anonymous enums. `prefix` is stripped to make the TypeScript name
 * (BPF_MAP_TYPE_LRU_HASH -> LruHash); `table` names the kernel name table.
 */
const GROUPS = [
	{
		ts: 'MapType',
		enum: 'bpf_map_type',
		prefix: 'BPF_MAP_TYPE_',
		table: 'mapTypeNames',
		cxx: 'bpf_map_type',
		ns: 'map_types',
	},
	{
		ts: 'ProgType',
		enum: 'bpf_prog_type',
		prefix: 'BPF_PROG_TYPE_',
		table: 'progTypeNames',
		cxx: 'bpf_prog_type',
		ns: 'prog_types',
	},
	{
		ts: 'AttachType',
		enum: 'bpf_attach_type',
		prefix: 'BPF_',
		table: 'attachTypeNames',
		cxx: 'bpf_attach_type',
		ns: 'attach_types',
	},
	{
		ts: 'LinkType',
		enum: 'bpf_link_type',
		prefix: 'BPF_LINK_TYPE_',
		table: 'linkTypeNames',
		cxx: 'bpf_link_type',
		ns: 'link_types',
	},
	{ ts: 'BpfCmd', enum: 'bpf_cmd', prefix: 'BPF_', table: 'bpfCmdNames', cxx: 'bpf_cmd', ns: 'cmds' },
	{ ts: 'HelperId', enum: 'bpf_func_id', prefix: '', table: 'helperNames', cxx: 'bpf_func_id', ns: 'helper_ids' },
];

/** Flag constants of the anonymous enums that the project uses, by group. */
const FLAGS = [
	{
		ts: 'MapFlags',
		ns: 'map_flags',
		doc: 'map_flags of BPF_MAP_CREATE.',
		prefix: 'BPF_F_',
		members: [
			'BPF_F_NO_PREALLOC',
			'BPF_F_NO_COMMON_LRU',
			'BPF_F_NUMA_NODE',
			'BPF_F_RDONLY',
			'BPF_F_WRONLY',
			'BPF_F_STACK_BUILD_ID',
			'BPF_F_ZERO_SEED',
			'BPF_F_RDONLY_PROG',
			'BPF_F_WRONLY_PROG',
			'BPF_F_CLONE',
			'BPF_F_MMAPABLE',
			'BPF_F_PRESERVE_ELEMS',
			'BPF_F_INNER_MAP',
		],
	},
	{
		ts: 'UpdateFlags',
		ns: 'update_flags',
		// The `flags` of these commands is a __u64 in union bpf_attr.
		cxxType: 'uint64_t',
		doc: 'flags of BPF_MAP_UPDATE_ELEM and BPF_MAP_LOOKUP_ELEM.',
		prefix: 'BPF_',
		members: ['BPF_ANY', 'BPF_NOEXIST', 'BPF_EXIST', 'BPF_F_LOCK'],
	},
	{
		ts: 'ProgFlags',
		ns: 'prog_flags',
		doc: 'prog_flags of BPF_PROG_LOAD.',
		prefix: 'BPF_F_',
		members: [
			'BPF_F_STRICT_ALIGNMENT',
			'BPF_F_ANY_ALIGNMENT',
			'BPF_F_TEST_RND_HI32',
			'BPF_F_TEST_STATE_FREQ',
			'BPF_F_SLEEPABLE',
			'BPF_F_XDP_HAS_FRAGS',
		],
	},
];

/** Single constants (#define in bpf.h) written as they are named. */
const CONSTANTS = [
	{ name: 'BPF_OBJ_NAME_LEN', doc: 'Names of maps and programs hold at most 15 bytes plus NUL.' },
	{ name: 'BPF_PSEUDO_MAP_FD', doc: 'src_reg of a lddw whose imm is a map fd (a registry id here).' },
	{
		name: 'BPF_PSEUDO_MAP_VALUE',
		doc: 'src_reg of a lddw: the address of a map value, imm the map, next imm the offset.',
	},
	{ name: 'BPF_PSEUDO_BTF_ID', doc: 'src_reg of a lddw whose imm is a kernel BTF id (a ksym).' },
	{ name: 'BPF_PSEUDO_FUNC', doc: 'src_reg of a lddw whose imm is the pc-relative address of a sub-program.' },
	{ name: 'BPF_PSEUDO_MAP_IDX', doc: 'src_reg of a lddw whose imm is an index into fd_array.' },
	{ name: 'BPF_PSEUDO_MAP_IDX_VALUE', doc: 'BPF_PSEUDO_MAP_VALUE with the map given as an index into fd_array.' },
	{ name: 'BPF_PSEUDO_CALL', doc: 'src_reg of a call to a sub-program (imm: pc-relative).' },
	{ name: 'BPF_PSEUDO_KFUNC_CALL', doc: 'src_reg of a call to a kernel function (imm: its BTF id).' },
];

/** TypeScript names that do not follow from the kernel's by case alone. */
const TS_NAME = { BPF_NOEXIST: 'NoExist', BPF_F_LOCK: 'Lock' };

/** `LRU_PERCPU_HASH` -> `LruPercpuHash`, `map_lookup_elem` -> `MapLookupElem`. */
export function pascal(name) {
	return name
		.toLowerCase()
		.split('_')
		.filter((w) => w !== '')
		.map((w) => w[0].toUpperCase() + w.slice(1))
		.join('');
}

function stripComments(text) {
	return text.replace(/\/\*[\s\S]*?\*\//g, ' ').replace(/\/\/[^\n]*/g, '');
}

/** Value of an enumerator's initializer: a number, `(1U << n)`, `1ULL << n` or an earlier name. */
function evaluate(expr, known, where) {
	const e = expr.replace(/[()\s]/g, '');
	let m = /^(0x[0-9a-fA-F]+|\d+)[uUlL]*$/.exec(e);
	if (m) return Number(m[1]);
	m = /^(0x[0-9a-fA-F]+|\d+)[uUlL]*<<(\d+)$/.exec(e);
	if (m) return Number(m[1]) * 2 ** Number(m[2]);
	if (known.has(e)) return known.get(e);
	throw new Error(`${where}: cannot evaluate '${expr.trim()}'`);
}

/**
 * Every enum of the header: `{ name (undefined for anonymous), entries: [{ name, value, alias }] }`.
 * Sentinels (`__MAX_BPF_ATTACH_TYPE`, `MAX_BPF_LINK_TYPE`) are dropped; an
 * alias (`BPF_PROG_RUN = BPF_PROG_TEST_RUN`) keeps `alias: true`.
 */
export function parseEnums(text) {
	const src = stripComments(text);
	const known = new Map();
	const out = [];
	for (const m of src.matchAll(/\benum\s+(\w+)?\s*\{([^}]*)\}/g)) {
		const name = m[1];
		const entries = [];
		let next = 0;
		// Some enums carry a #define between their entries (BPF_F_REDIRECT_FLAGS).
		const body = m[2].replace(/^\s*#(?:[^\n]*\\\n)*[^\n]*$/gm, '');
		for (const raw of body.split(',')) {
			const item = raw.trim();
			if (item === '') continue;
			const em = /^(\w+)\s*(?:=\s*([\s\S]+))?$/.exec(item);
			if (!em) {
				// The helper enum is built by the __BPF_FUNC_MAPPER macro; it is read below.
				if (item.includes('__BPF_FUNC_MAPPER')) continue;
				throw new Error(`enum ${name ?? '(anonymous)'}: cannot parse '${item}'`);
			}
			const [, id, init] = em;
			// An initializer this reader cannot evaluate (a mask expression of an
			// enum the project does not use) leaves NaN; collect() refuses NaN
			// in anything it writes.
			let value = next;
			if (init !== undefined) {
				try {
					value = evaluate(init, known, id);
				} catch {
					value = Number.NaN;
				}
			}
			const alias = init !== undefined && known.has(init.trim());
			known.set(id, value);
			next = value + 1;
			if (/^_*MAX_/.test(id) || id.startsWith('__')) continue;
			entries.push({ name: id, value, alias });
		}
		out.push({ name, entries });
	}
	return out;
}

/** `#define NAME value` lines whose value is a number or `(1U << n)`: name -> { value }. */
export function parseDefines(text) {
	const src = stripComments(text);
	const out = new Map();
	for (const m of src.matchAll(/^[ \t]*#define[ \t]+(\w+)[ \t]+([^\n\\]+)$/gm)) {
		try {
			out.set(m[1], evaluate(m[2], new Map(), m[1]));
		} catch {
			// Not a plain number (a function-like macro, an expression): not needed.
		}
	}
	return out;
}

/** The helpers of __BPF_FUNC_MAPPER: `[{ name: 'map_lookup_elem', value: 1 }, ...]`. */
export function parseHelpers(text) {
	const src = stripComments(text);
	const start = src.indexOf('#define __BPF_FUNC_MAPPER');
	if (start < 0) throw new Error('no __BPF_FUNC_MAPPER in the header');
	// The macro body ends at the first line that does not continue with a backslash.
	const lines = src.slice(start).split('\n');
	const body = [];
	for (const line of lines) {
		body.push(line);
		if (!line.trimEnd().endsWith('\\')) break;
	}
	const entries = [];
	for (const m of body.join('\n').matchAll(/\bFN\(\s*(\w+)\s*(?:,\s*(\d+)[^)]*)?\)/g)) {
		// Linux 6.2+ spells FN(name, id, ##ctx); older headers number by position.
		const value = m[2] === undefined ? entries.length : Number(m[2]);
		entries.push({ name: m[1], value, alias: false });
	}
	if (entries.length === 0) throw new Error('__BPF_FUNC_MAPPER lists no helper');
	return entries;
}

/** Adds the NEWER entries a header lacks; checks the ones it has. */
function withNewer(group, entries) {
	const newer = NEWER[group] ?? [];
	const out = [...entries];
	for (const [name, value] of newer) {
		const have = out.find((e) => e.name === name);
		if (have) {
			if (have.value !== value) throw new Error(`${group} ${name}: header says ${have.value}, NEWER says ${value}`);
			continue;
		}
		const clash = out.find((e) => e.value === value && !e.alias);
		if (clash) throw new Error(`${group} ${name} = ${value}: the header gives ${value} to ${clash.name}`);
		out.push({ name, value, alias: false, newer: true });
	}
	return out.sort((a, b) => a.value - b.value || Number(a.alias) - Number(b.alias));
}

/** Everything the two outputs are made of. */
export function collect(text) {
	const enums = parseEnums(text);
	const byName = new Map(enums.filter((e) => e.name).map((e) => [e.name, e.entries]));
	const defines = parseDefines(text);
	const all = new Map([...defines, ...enums.flatMap((e) => e.entries.map((x) => [x.name, x.value]))]);
	const groups = GROUPS.map((g) => {
		const base = g.enum === 'bpf_func_id' ? parseHelpers(text) : byName.get(g.enum);
		if (!base) throw new Error(`no enum ${g.enum} in the header`);
		const entries = withNewer(g.enum, base);
		for (const e of entries)
			if (Number.isNaN(e.value)) throw new Error(`${g.enum} ${e.name}: cannot evaluate its value`);
		const names = [];
		for (const e of entries) {
			if (e.alias) continue;
			if (names[e.value] !== undefined) throw new Error(`${g.enum}: ${e.name} and ${names[e.value]} share ${e.value}`);
			names[e.value] = e.name;
		}
		for (let i = 0; i < names.length; i++) if (names[i] === undefined) throw new Error(`${g.enum}: no entry for ${i}`);
		return { ...g, entries, names };
	});
	const flags = FLAGS.map((f) => ({
		...f,
		entries: f.members.map((name) => {
			if (!all.has(name) || Number.isNaN(all.get(name))) throw new Error(`no ${name} with a value in the header`);
			return { name, value: all.get(name), define: defines.has(name) };
		}),
	}));
	const constants = CONSTANTS.map((c) => {
		if (!defines.has(c.name)) throw new Error(`no #define ${c.name} in the header`);
		return { ...c, value: defines.get(c.name), define: true };
	});
	return { groups, flags, constants };
}

function tsName(group, kernelName) {
	return TS_NAME[kernelName] ?? pascal(kernelName.slice(group.prefix.length));
}

function banner(source, sha256, comment) {
	return [
		`${comment} GENERATED by packages/common/scripts/gen-uapi.mjs from linux/bpf.h; do not edit.`,
		`${comment} Regenerate: pnpm --filter @bpftime/common gen:uapi`,
		`${comment} Source: ${source} (sha256 ${sha256})`,
		`${comment} Entries marked "newer" are not in that header; gen-uapi.mjs NEWER adds them.`,
	];
}

function hex(v) {
	return v >= 16 ? `0x${v.toString(16)}` : String(v);
}

export function renderTs(data, source, sha256) {
	const l = [...banner(source, sha256, '//')];
	l.push('//');
	l.push("// The kernel's eBPF numbers with TypeScript names: MapType.Hash is");
	l.push('// BPF_MAP_TYPE_HASH, AttachType.TraceFentry is BPF_TRACE_FENTRY, HelperId.MapLookupElem');
	l.push('// is BPF_FUNC_map_lookup_elem. Each `*Names` table gives the kernel name by value.');
	l.push('');
	l.push('/** The sha256 of the linux/bpf.h these numbers were generated from. */');
	l.push(`export const UAPI_SOURCE_SHA256 = '${sha256}';`);
	for (const g of data.groups) {
		const kernelName = (n) => (g.enum === 'bpf_func_id' ? `BPF_FUNC_${n}` : n);
		l.push('');
		l.push(`/** The kernel's enum ${g.enum}. */`);
		l.push(`export const ${g.ts} = {`);
		for (const e of g.entries) {
			l.push(`\t/** ${kernelName(e.name)}${e.alias ? ' (alias)' : ''}${e.newer ? ' (newer)' : ''} */`);
			l.push(`\t${tsName(g, e.name)}: ${e.value},`);
		}
		l.push('} as const;');
		l.push(`export type ${g.ts} = (typeof ${g.ts})[keyof typeof ${g.ts}];`);
		l.push('');
		l.push(
			`/** Kernel names of enum ${g.enum}, indexed by value${g.enum === 'bpf_func_id' ? " (without 'bpf_')" : ''}. */`,
		);
		l.push(`export const ${g.table}: readonly string[] = [`);
		for (const n of g.names) l.push(`\t'${n}',`);
		l.push('];');
	}
	for (const f of data.flags) {
		l.push('');
		l.push(`/** The kernel's ${f.doc} */`);
		l.push(`export const ${f.ts} = {`);
		for (const e of f.entries) {
			l.push(`\t/** ${e.name} */`);
			l.push(`\t${tsName(f, e.name)}: ${hex(e.value)},`);
		}
		l.push('} as const;');
	}
	for (const c of data.constants) {
		l.push('');
		l.push(`/** ${c.doc} */`);
		l.push(`export const ${c.name} = ${c.value};`);
	}
	l.push('');
	return l.join('\n');
}

// A #define of bpf.h becomes a constant only where <linux/bpf.h> was not
// included first; where it was, its macro (of the same value) stands instead.
function cxxConstant(l, name, value, define, type = 'uint32_t') {
	if (define) l.push(`#ifndef ${name}`);
	l.push(`inline constexpr ${type} ${name} = ${value};`);
	if (define) l.push('#endif');
}

export function renderCxx(data, source, sha256) {
	const l = [...banner(source, sha256, '//')];
	l.push('//');
	l.push("// The kernel's eBPF numbers under their kernel names, as constants of");
	l.push('// namespace bpftime::uapi (not enums: a file that also includes <linux/bpf.h>');
	l.push('// sees its own global enumerators, never a clash), and one name table per');
	l.push('// enum, indexed by value, with a lookup each way. Each group sits in an inline');
	l.push('// namespace (map_types, prog_types, attach_types, link_types, cmds, helper_ids,');
	l.push('// map_flags, update_flags, prog_flags), so that a package can take one group');
	l.push('// into its own namespace with a using-directive. The few numbers that bpf.h');
	l.push('// spells as #define (BPF_F_SLEEPABLE, BPF_OBJ_NAME_LEN, BPF_PSEUDO_*) are left to its macro');
	l.push('// where it was included first.');
	l.push('#pragma once');
	l.push('');
	l.push('#include <cstddef>');
	l.push('#include <cstdint>');
	l.push('#include <optional>');
	l.push('#include <string_view>');
	l.push('');
	l.push('namespace bpftime::uapi {');
	l.push('');
	l.push(`inline constexpr std::string_view source_sha256 = "${sha256}";`);
	for (const g of data.groups) {
		const constName = (n) => (g.enum === 'bpf_func_id' ? `BPF_FUNC_${n}` : n);
		l.push('');
		l.push(`// enum ${g.enum}`);
		l.push(`inline namespace ${g.ns} {`);
		for (const e of g.entries) {
			l.push(`inline constexpr uint32_t ${constName(e.name)} = ${e.value};${e.newer ? ' // newer' : ''}`);
		}
		l.push(`} // namespace ${g.ns}`);
		l.push('');
		l.push(
			`// Kernel names of enum ${g.enum}, indexed by value${g.enum === 'bpf_func_id' ? ' (without "bpf_")' : ''}.`,
		);
		l.push(`inline constexpr std::string_view ${g.cxx}_names[] = {`);
		for (const n of g.names) l.push(`\t"${n}",`);
		l.push('};');
		if (g.enum === 'bpf_func_id') {
			// The helper ids once more as an X-macro, X(name, id), for tables
			// that are keyed by helper (the vm's helper list).
			l.push('');
			l.push('// enum bpf_func_id as X(name, id), name without "bpf_".');
			l.push('#define BPFTIME_UAPI_HELPER_IDS(X) \\');
			for (const e of g.entries) l.push(`\tX(${e.name}, ${e.value}) \\`);
			l.push('\t/* end */');
		}
	}
	for (const f of data.flags) {
		l.push('');
		l.push(`// ${f.doc}`);
		l.push(`inline namespace ${f.ns} {`);
		for (const e of f.entries) cxxConstant(l, e.name, hex(e.value), e.define, f.cxxType);
		l.push(`} // namespace ${f.ns}`);
	}
	for (const c of data.constants) {
		l.push('');
		l.push(`// ${c.doc}`);
		cxxConstant(l, c.name, String(c.value), true);
	}
	l.push('');
	l.push('// The name of `value` in `table`; empty for a number the kernel does not define.');
	l.push('template <std::size_t N>');
	l.push('constexpr std::string_view name_of(const std::string_view (&table)[N], uint32_t value) noexcept');
	l.push('{');
	l.push('\treturn value < N ? table[value] : std::string_view();');
	l.push('}');
	l.push('');
	l.push('// The value named `name` in `table`, if any.');
	l.push('template <std::size_t N>');
	l.push(
		'constexpr std::optional<uint32_t> value_of(const std::string_view (&table)[N], std::string_view name) noexcept',
	);
	l.push('{');
	l.push('\tfor (uint32_t i = 0; i < N; i++)');
	l.push('\t\tif (table[i] == name)');
	l.push('\t\t\treturn i;');
	l.push('\treturn std::nullopt;');
	l.push('}');
	l.push('');
	l.push('} // namespace bpftime::uapi');
	l.push('');
	return l.join('\n');
}

/** Generates both files from `header` into `outDir`; returns their paths. */
export function generate({ header = DEFAULT_HEADER, outDir = packageDir } = {}) {
	const text = readFileSync(header, 'utf8');
	const sha256 = createHash('sha256').update(text).digest('hex');
	const data = collect(text);
	const files = [
		[join(outDir, TS_OUT), renderTs(data, header, sha256)],
		[join(outDir, HEADER_OUT), renderCxx(data, header, sha256)],
	];
	for (const [path, body] of files) {
		mkdirSync(dirname(path), { recursive: true });
		writeFileSync(path, body);
	}
	return files.map(([path]) => path);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
	const args = process.argv.slice(2);
	const opt = (flag) => {
		const i = args.indexOf(flag);
		return i >= 0 ? args[i + 1] : undefined;
	};
	try {
		for (const p of generate({ header: opt('--header'), outDir: opt('--out') })) console.log(`wrote ${p}`);
	} catch (e) {
		console.error(`gen-uapi: ${e.message}`);
		process.exit(1);
	}
}
