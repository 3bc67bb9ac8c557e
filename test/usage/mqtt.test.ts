// Usage metering on MQTT (issue 18): an MQTT connection is sent only the
// records of its Kafka topic that match its filters, so it counts what it
// sent itself, not the hub's batch. A device publishes to two MQTT topics of
// one Kafka topic; its subscriber, on one of them at QoS 0 and at QoS 1,
// is counted for exactly the messages it received; the publishes for exactly
// what Kafka acked. A CONNECT refused once its credential was known is
// counted by code.
import { test } from 'tap'
import { randomBytes } from 'node:crypto'
import { Redis } from 'ioredis'
import { KafkaClient } from '@sluice/kafka'
import { eventually, kafkaBrokers, redisUrl } from '../helpers.ts'
import { DEVICES, connect, deviceToken, gateway } from '../mqtt/harness.ts'

test('MQTT deliveries count what each connection was sent: its filters\' matches, QoS 0 and 1, not the whole Kafka topic', async t => {
  const device = `u${randomBytes(4).toString('hex')}`
  const kafka = new KafkaClient({ brokers: kafkaBrokers(), clientId: 'usage-mqtt-suite' })
  try {
    await kafka.ensureTopics([{ topic: `${DEVICES}.${device}`, partitions: 1 }])
  } finally {
    await kafka.close()
  }
  const { app, url } = await gateway(t)
  const redis = new Redis(redisUrl())
  t.teardown(() => redis.quit())
  const password = deviceToken(device)
  const watcher = await connect(t, url, { protocolVersion: 5, password, clientId: `w-${device}` })
  const received: string[] = []
  watcher.on('message', (topic, payload) => received.push(`${topic} ${payload}`))
  await watcher.subscribeAsync(`devices/${device}/temp`, { qos: 0 })
  await watcher.subscribeAsync(`devices/${device}/level`, { qos: 1 })
  const publisher = await connect(t, url, { protocolVersion: 5, password, clientId: `p-${device}` })
  for (let i = 0; i < 3; i++) await publisher.publishAsync(`devices/${device}/temp`, `t${i}`, { qos: 1 })
  for (let i = 0; i < 2; i++) await publisher.publishAsync(`devices/${device}/hum`, `h${i}`, { qos: 1 })
  for (let i = 0; i < 2; i++) await publisher.publishAsync(`devices/${device}/level`, `l${i}`, { qos: 1 })
  await eventually(() => received.length === 5, 15_000, 'the 3 temp and 2 level messages')
  // nothing more is on its way: the hum records were in the same batches
  await new Promise(resolve => setTimeout(resolve, 300))
  t.equal(received.length, 5, 'the subscriber got its filters\' messages only')

  await app.usage!.flush()
  const day = new Date().toISOString().slice(0, 10)
  const fields = await redis.hgetall(`sluice:usage:a:${day}:${device}`)
  const counts = fields[JSON.stringify(['iot', 'counts'])]?.split(':').map(Number)
  t.ok(counts, `usage of ${device} in Redis: ${JSON.stringify(fields)}`)
  const [delivered, deliveredBytes, published, connectionMs] = counts ?? []
  t.equal(delivered, 5, 'delivered: the 5 messages sent to the subscriber (not the 7 records of the Kafka topic)')
  t.equal(published, 7, 'published: the 7 PUBLISHes Kafka acked')
  // each delivery is a PUBLISH in a WebSocket frame: topic, payload and a few bytes of headers (and a packet id at QoS 1)
  const payloads = received.reduce((n, line) => n + Buffer.byteLength(line) - 1, 0)
  t.ok(deliveredBytes! > payloads && deliveredBytes! < payloads + 5 * 12, `delivered bytes ${deliveredBytes} for ${payloads} bytes of topics and payloads`)
  t.ok(connectionMs! > 0, 'connection time of both connections')
})

test('a CONNECT refused once its credential is known (a will it may not publish: CONNACK 0x87) is counted by code', async t => {
  const device = `u${randomBytes(4).toString('hex')}`
  const { app, url } = await gateway(t)
  const redis = new Redis(redisUrl())
  t.teardown(() => redis.quit())
  const refused = await connect(t, url, { protocolVersion: 5, password: deviceToken(device), clientId: `r-${device}`, will: { topic: 'devices/someone-else/status', payload: Buffer.from('x'), qos: 0, retain: false } })
    .then(() => 0, (err: { code?: number }) => err.code)
  t.equal(refused, 0x87, 'CONNACK 0x87: the will\'s topic is not the device\'s')
  await app.usage!.flush()
  const fields = await redis.hgetall(`sluice:usage:a:${new Date().toISOString().slice(0, 10)}:${device}`)
  t.same(fields, { [JSON.stringify(['*', 'refused:FORBIDDEN'])]: '1' }, 'one FORBIDDEN refusal, under no product yet (a JWT names none)')
})
