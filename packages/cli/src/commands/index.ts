// The commands of `bpftime`, in the order the overview lists them. A new
// command is one file in this folder and one entry here: main.ts dispatches
// through this table and usage.ts builds the overview from it.
import type { Command } from '../command.js';
import { attach } from './attach.js';
import { detach } from './detach.js';
import { help } from './help.js';
import { load } from './load.js';
import { map } from './map.js';
import { recover } from './recover.js';
import { start } from './start.js';

export const COMMANDS: readonly Command[] = [load, start, attach, detach, map, recover, help];
