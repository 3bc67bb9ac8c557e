import { test } from 'tap'
import createError from '@fastify/error'
import { frameCode } from '../src/errors.ts'

test('/v2/broker/ error frames carry catalogued codes as they are, and hide a 500 or an uncatalogued throw', async t => {
  const Unavailable = createError('SLUICE_RATE_UNAVAILABLE', 'x', 503)
  const Broken = createError('SLUICE_X_BROKEN', 'x', 500)
  t.equal(frameCode(new Unavailable()), 'SLUICE_RATE_UNAVAILABLE')
  t.equal(frameCode(new Broken()), undefined)
  t.equal(frameCode(new TypeError('bug')), undefined)
  t.equal(frameCode(Object.assign(new Error('x'), { code: 'SLUICE_KAFKA_TIMEOUT' })), 'SLUICE_KAFKA_TIMEOUT')
})
