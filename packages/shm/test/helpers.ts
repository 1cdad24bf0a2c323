// The shm tests' node fixtures (test/fixtures/*.mjs); the rest comes from
// @bpftime/test-support.
import { nodeFixtures } from '@bpftime/test-support';

export { uniqueSegmentName as uniqueName, waitForLine } from '@bpftime/test-support';

export const { fixture, startChild, runChild } = nodeFixtures(new URL('./fixtures/', import.meta.url));
