#!/usr/bin/env node
// The `bpftime` executable: see main.ts.
import { main } from './main.js';

// A reader that stops early (`bpftime list | head`) closes the pipe: the
// output is no longer wanted, which is not a failure of the command.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
	if (e.code === 'EPIPE') process.exit(0);
	throw e;
});

process.exitCode = await main(process.argv.slice(2));
