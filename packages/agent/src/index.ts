export { BpftimeError } from '@bpftime/common';
export { type AgentOptions, agentEnv, agentPath, type SpawnWithAgentOptions, spawnWithAgent } from './agent.js';
export { detachAgent, type InjectOptions, inject, injectorPath } from './inject.js';
