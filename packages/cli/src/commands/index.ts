// The commands of `bpftime`, in the order the overview lists them. A new
// command is one file in this folder and one entry here: main.ts dispatches
// through this table and usage.ts builds the overview from it.
import type { Command } from '../command.js';
import { aot } from './aot.js';
import { attach } from './attach.js';
import { clean } from './clean.js';
import { completion } from './completion.js';
import { detach } from './detach.js';
import { doctor } from './doctor.js';
import { exportCommand } from './export.js';
import { help } from './help.js';
import { importCommand } from './import.js';
import { link } from './link.js';
import { list } from './list.js';
import { load } from './load.js';
import { map } from './map.js';
import { objdump } from './objdump.js';
import { prog } from './prog.js';
import { recover } from './recover.js';
import { run } from './run.js';
import { start } from './start.js';
import { vm } from './vm.js';

export const COMMANDS: readonly Command[] = [
	load,
	start,
	attach,
	detach,
	list,
	prog,
	link,
	map,
	exportCommand,
	importCommand,
	clean,
	recover,
	aot,
	run,
	objdump,
	vm,
	doctor,
	completion,
	help,
];
