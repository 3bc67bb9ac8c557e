// Wills (src/will.ts) without a gateway: when a pending will is written, and
// what cancels it. The gateway suites (test/mqtt/will.test.ts) show the same
// on the real stack; the Will Delay there is cut to the session expiry the
// gateway announces.
import { test } from 'tap'
import type { Identity } from '@sluice/protocol/identity'
import type { AccessControl } from '@sluice/policy/access'
import type { Logger } from '@sluice/protocol/logger'
import { Wills, MAX_WILL_DELAY_S, type Will } from '../src/will.ts'

const silent: Logger = { debug () {}, info () {}, warn () {}, error () {} }

function wills (allowed = true): { wills: Wills, written: string[] } {
  const written: string[] = []
  const access = { authorize: () => ({ allowed }) } as unknown as AccessControl
  return {
    written,
    wills: new Wills({
      produce: async (topic, record) => {
        written.push(`${topic} ${String(record.key)} ${String(record.value)}`)
        return { topic, partition: 0, offset: '0' }
      },
      retained: undefined,
      access,
      log: silent
    })
  }
}

function will (clientId: string): Will {
  return { clientId, name: 'devices/d1/status', topic: 'devices.d1', key: 'status', payload: Buffer.from('offline'), retain: false, identity: {} as Identity }
}

const sleep = (ms: number) => new Promise(resolve => setTimeout(resolve, ms))

test('a will without delay is written at once', async t => {
  const { wills: w, written } = wills()
  w.schedule(will('a'), 0)
  await w.flush()
  t.same(written, ['devices.d1 status offline'])
})

test('[MQTT-3.1.3-9] a delayed will waits its delay, and a new connection of the client id within it cancels it', async t => {
  const { wills: w, written } = wills()
  w.schedule(will('late'), 1)
  w.schedule(will('back'), 1)
  t.equal(w.pending, 2)
  await sleep(300)
  t.same(written, [], 'nothing before the delay')
  t.ok(w.cancel('back'), 'the client came back')
  await sleep(1000)
  t.same(written, ['devices.d1 status offline'], 'only the one not cancelled, after its delay')
  t.equal(w.pending, 0)
})

test('a will the policy no longer allows when it is due is not written', async t => {
  const { wills: w, written } = wills(false)
  w.schedule(will('a'), 0)
  await w.flush()
  t.same(written, [])
})

test('a closing node writes its pending wills before it goes (their timers die with it)', async t => {
  const { wills: w, written } = wills()
  w.schedule(will('a'), MAX_WILL_DELAY_S * 10)
  t.equal(w.pending, 1)
  await w.flush()
  t.same(written, ['devices.d1 status offline'])
  t.equal(w.pending, 0)
})
