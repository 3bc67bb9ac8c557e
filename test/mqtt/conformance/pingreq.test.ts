// MQTT conformance, PINGREQ and PINGRESP (3.1.1 and 5.0 section 3.12).
import { test } from 'tap'
import { dashboard, fileGateway, rawSession, within } from './conformance.ts'

const gw = await fileGateway()

test('[MQTT-3.12.4-1] a PINGREQ is answered with a PINGRESP (3.1.1 and 5.0)', async t => {
  for (const version of [4, 5] as const) {
    const c = await rawSession(t, gw.tcpPort, version)
    for (let i = 0; i < 3; i++) {
      c.send({ cmd: 'pingreq' })
      t.match(await c.next('pingresp'), { cmd: 'pingresp' }, `${version} #${i + 1}`)
    }
  }
})

test('[MQTT-3.12.4-1] MQTT.js\'s own keep-alive pings over WebSocket are answered, and the connection stays up past its keep-alive', async t => {
  const client = await dashboard(t, gw.url, 5, { keepalive: 1 })
  let pongs = 0
  client.on('packetreceive', packet => { if (packet.cmd === 'pingresp') pongs++ })
  const closed = new Promise<string>(resolve => client.once('close', () => resolve('closed')))
  // 3 s is two keep-alive periods for MQTT.js's pings, and twice the 1.5 s the server would wait without them
  const outcome = await within(Promise.race([closed, new Promise<string>(resolve => setTimeout(() => resolve('open'), 3000))]), 10_000, 'three seconds')
  t.equal(outcome, 'open')
  t.ok(pongs >= 1, `${pongs} PINGRESP`)
})
