// A persistent session resumed on a second gateway node after the first is
// killed with SIGKILL, with Debian's mosquitto_sub over TCP (issue 16, "must
// show"): clean session 0 (-c) and QoS 1, on 3.1.1 and 5.0, no message lost.
import { spawn } from 'node:child_process'
import t, { type Test } from 'tap'
import { eventually, unique } from '../helpers.ts'
import { DEV_TOKEN } from './harness.ts'
import { producer, startNodes } from './persistent-nodes.ts'

const records = producer(t)

/** mosquitto_sub with a persistent session, its printed payloads as they come */
function subscriber (t: Test, port: number, clientId: string, version: 'mqttv311' | 'mqttv5', filter: string): { lines: string[], stop: () => void } {
  const args = ['-h', '127.0.0.1', '-p', String(port), '-V', version, '-u', 'dash', '-P', DEV_TOKEN, '-i', clientId, '-c', '-q', '1', '-t', filter, '-F', '%q %p', '-W', '120']
  // 5.0: -c keeps the session only with a Session Expiry Interval (-x)
  if (version === 'mqttv5') args.push('-x', '600')
  const sub = spawn('mosquitto_sub', args)
  const lines: string[] = []
  sub.stdout.on('data', chunk => lines.push(...String(chunk).split('\n').filter(Boolean)))
  const stop = () => { if (sub.exitCode === null) sub.kill('SIGKILL') }
  t.teardown(stop)
  return { lines, stop }
}

for (const version of ['mqttv311', 'mqttv5'] as const) {
  t.test(`${version}: mosquitto_sub -c -q 1 resumes its session on node B after node A is killed with SIGKILL, none of its QoS 1 messages lost [MQTT-4.4.0-1]`, async t => {
    const [a, b] = await startNodes(t, 2, unique('mqtt-persist-tcp-sessions'), { tcp: true })
    const device = unique('mos').replace(/[^a-z0-9]/gi, '')
    const clientId = unique('mos-client')
    const first = subscriber(t, a!.tcpPort!, clientId, version, `sensors/${device}/temp`)
    // subscribed once it prints a record: one is written until it does
    let probe = 0
    await eventually(async () => {
      if (first.lines.length > 0) return true
      await records.temp(device, `probe-${probe++}`)
      return false
    }, 30_000, 'mosquitto_sub on node A prints a record')
    for (let i = 0; i < 3; i++) await records.temp(device, `before-${i}`)
    await eventually(() => first.lines.some(l => l.endsWith('before-2')), 15_000, 'before-2 on node A')
    // its PUBACKs reach the session's record within a flush (500 ms)
    await new Promise(resolve => setTimeout(resolve, 1500))
    a!.child.kill('SIGKILL')
    await a!.exited
    first.stop()
    for (let i = 0; i < 3; i++) await records.temp(device, `while-down-${i}`)

    const second = subscriber(t, b!.tcpPort!, clientId, version, `sensors/${device}/temp`)
    await eventually(() => second.lines.some(l => l.endsWith('while-down-2')), 30_000, `the records written while down, on node B (got: ${second.lines.join(' | ')})`)
    await records.temp(device, 'after-0')
    await eventually(() => second.lines.some(l => l.endsWith('after-0')), 15_000, 'a record written after, on node B')
    const payloads = new Set([...first.lines, ...second.lines].map(l => l.slice(2)))
    t.same(['before-0', 'before-1', 'before-2', 'while-down-0', 'while-down-1', 'while-down-2', 'after-0'].filter(p => !payloads.has(p)), [], 'none lost')
    t.ok(second.lines.every(l => l.startsWith('1 ')), 'delivered at QoS 1')
  })
}
