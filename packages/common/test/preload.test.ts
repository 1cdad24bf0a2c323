import { describe, expect, it } from 'vitest';
import { BpftimeError, preloadEnv, spawnPreloaded } from '../src/index.js';

describe('preloadEnv', () => {
	it('puts the library first in LD_PRELOAD once, keeping the others in order', () => {
		const env = preloadEnv('/lib/a.so', { env: { LD_PRELOAD: '/lib/b.so /lib/a.so:/lib/c.so' } });
		expect(env.LD_PRELOAD).toBe('/lib/a.so:/lib/b.so:/lib/c.so');
	});

	it('sets the segment and log variables that are given and leaves the rest of env alone', () => {
		const env = preloadEnv('/lib/a.so', {
			env: { HOME: '/root', SPDLOG_LEVEL: 'debug' },
			segment: 'seg',
			logOutput: 'stdout',
		});
		expect(env).toEqual({
			HOME: '/root',
			SPDLOG_LEVEL: 'debug',
			LD_PRELOAD: '/lib/a.so',
			BPFTIME_GLOBAL_SHM_NAME: 'seg',
			BPFTIME_LOG_OUTPUT: 'stdout',
		});
	});

	it('refuses a segment that is not a string with EINVAL', () => {
		expect(() => preloadEnv('/lib/a.so', { env: {}, segment: 3 as unknown as string })).toThrow(BpftimeError);
	});
});

describe('spawnPreloaded', () => {
	it('passes the environment to the child', async () => {
		const child = await spawnPreloaded(
			'sh',
			['-c', 'echo "$BPFTIME_GLOBAL_SHM_NAME"'],
			{ stdio: ['ignore', 'pipe', 'ignore'] },
			{
				PATH: process.env.PATH,
				BPFTIME_GLOBAL_SHM_NAME: 'seg-x',
			},
		);
		let out = '';
		child.stdout?.on('data', (d) => {
			out += d;
		});
		await new Promise((r) => child.on('close', r));
		expect(out.trim()).toBe('seg-x');
	});

	it('rejects with ENOENT naming a command that does not exist', async () => {
		await expect(spawnPreloaded('/nonexistent/tool', [], {}, {})).rejects.toMatchObject({ code: 'ENOENT' });
	});
});
