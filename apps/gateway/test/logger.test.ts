import { test } from 'tap'
import { redactUrl } from '../src/logger.ts'

test('credentials in the query string are redacted, the rest kept', async t => {
  t.equal(redactUrl('/v1/stream?topics=a,b&access_token=eyJhbGc.x.y&from=latest'), '/v1/stream?topics=a,b&access_token=[REDACTED]&from=latest')
  t.equal(redactUrl('/v1/stream?api_key=sk_live_1&API_KEY=sk_2'), '/v1/stream?api_key=[REDACTED]&API_KEY=[REDACTED]')
  t.equal(redactUrl('/v1/stream?access%5Ftoken=secret'), '/v1/stream?access%5Ftoken=[REDACTED]', 'percent-encoded names too')
  t.equal(redactUrl('/v1/stream?%E0%A4%A=secret'), '/v1/stream?%E0%A4%A=[REDACTED]', 'an undecodable name keeps no value')
  t.equal(redactUrl('/healthz'), '/healthz')
  t.equal(redactUrl('/v2/broker/?topics=a&access_token'), '/v2/broker/?topics=a&access_token', 'no value, nothing to hide')
})
