// A plugin used without a loaded config (a test building it alone) falls back
// on the gateway schema's defaults (gatewayDefaults), not on literals of its
// own: each exported fallback is checked against the schema's value here, so
// a default changed in the schema changes every plugin's with it.
import { test } from 'tap'
import { gatewayDefaults } from '@sluice/config/gateway'
import { DEFAULT_LIMITS } from '@sluice/sessions'
import { DEFAULT_ABUSE, DEFAULT_HTTP, UNPLANNED_LIMITS } from '@sluice/rate-limit'
import { DEFAULT_NODE_WINDOW_BYTES, DEFAULT_WINDOW_BOUNDS } from '@sluice/hub'
import { DEFAULT_POLICY_DIR } from '@sluice/docs/cli'

test('the sessions\' limits are stream.*', async t => {
  const { maxQueueBytes, invalidFrameBurst, maxInflightPublishes, publishTimeoutMs, idleTimeoutMs } = gatewayDefaults.stream
  t.same(DEFAULT_LIMITS, { maxQueueBytes, invalidFrameBurst, invalidFramesPerSecond: 1, maxInflightPublishes, publishTimeoutMs, idleTimeoutMs })
})

test('the rate limits\' fallbacks are rateLimit.*', async t => {
  t.same(DEFAULT_ABUSE, gatewayDefaults.rateLimit.abuse)
  t.same(DEFAULT_HTTP, { upgrade: gatewayDefaults.rateLimit.http.upgrade, admin: gatewayDefaults.rateLimit.http.admin, public: gatewayDefaults.rateLimit.http.public })
  t.equal(UNPLANNED_LIMITS.connections, gatewayDefaults.rateLimit.unplanned.connections)
  t.equal(UNPLANNED_LIMITS.connectsPerMinute, gatewayDefaults.rateLimit.unplanned.connectsPerMinute)
})

test('the hub\'s resume windows are stream.resumeWindow*', async t => {
  t.same(DEFAULT_WINDOW_BOUNDS, { maxBytes: gatewayDefaults.stream.resumeWindowBytes, maxAgeMs: gatewayDefaults.stream.resumeWindowMs })
  t.equal(DEFAULT_NODE_WINDOW_BYTES, gatewayDefaults.stream.resumeWindowNodeBytes)
})

test('the AsyncAPI command reads the policy directory a gateway would', async t => {
  t.equal(DEFAULT_POLICY_DIR, gatewayDefaults.policy.dir)
})
