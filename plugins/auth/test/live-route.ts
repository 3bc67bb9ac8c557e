// Moved to test/harness/live-route.ts (issue 15); this file goes once the
// last importers (test/mqtt-harness.ts, test/apps-harness.ts) read from there.
export { liveGateway as startGateway, LIVE_PATH, WHOAMI_PATH, type TestGateway } from '../../../test/harness/live-route.ts'
export { policyDir, TEST_POLICY } from '../../../test/harness/policy.ts'
export { Client, refusal, type Frame } from '../../../test/harness/client.ts'
