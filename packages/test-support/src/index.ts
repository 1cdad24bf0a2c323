// @bpftime/test-support: what the tests of the @bpftime packages share.
// Private to the workspace (never published); vitest and tsc read this
// TypeScript directly, so it has no build step.
export { type BuildDir, compileBpf, findClang, hostInclude, run, useBuildDir } from './build.js';
export { damagedCopies, importOrRefuse } from './damage.js';
export {
	childEnv,
	finished,
	killOnFinish,
	type NodeFixtures,
	nodeFixtures,
	Proc,
	startNode,
	startProcess,
	waitForLine,
} from './processes.js';
export { freshRegistry, type RegistryClasses, uniqueSegmentName } from './segments.js';
export { errorOf, u32le, u64le } from './values.js';
