// Managed Kafka (Confluent Cloud, MSK, Aiven) is reached over TLS with SASL.
// A broker of this suite's own listens as they do (SASL_SSL: a self-signed
// certificate, PLAIN and SCRAM-SHA-256/512); over it, with each mechanism,
// the whole data path works: topics created (kafkajs's admin), publishes
// acked (the shared producer), a live subscriber, a resume from Kafka
// (group-less readers) and group mode. A wrong password, and TLS without the
// broker's CA, fail with the reason. The gateway's config reaches it too.
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { PassThrough } from 'node:stream'
import { createServer as createTlsServer } from 'node:tls'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import tap, { test, type Test } from 'tap'
import { KafkaBroker } from '@sluice/stack'
import { KafkaClient, securityFromConfig, type KafkaSecurity, type SaslMechanism } from '@sluice/kafka'
import { streamApp } from '../harness/stream.ts'
import { Client } from '../harness/client.ts'
import { startGateway } from '../harness/gateway.ts'
import { run as sluice } from '@sluice/cli'
import { unique } from '../helpers.ts'

const USER = 'alice'
const PASSWORD = 'alice-secret-0123456789'

// a client certificate of this suite's own, for the mTLS listener (openssl: ca-certificates depends on it)
const certDir = mkdtempSync(join(tmpdir(), 'sluice-client-cert-'))
const CLIENT_KEY = join(certDir, 'client-key.pem')
const CLIENT_CERT = join(certDir, 'client-cert.pem')
const made = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', CLIENT_KEY, '-out', CLIENT_CERT, '-subj', '/CN=sluice-client', '-days', '2'], { encoding: 'utf8' })
if (made.status !== 0) throw new Error(`openssl could not make a client certificate: ${made.stderr}`)

const broker = new KafkaBroker({ secure: { users: { [USER]: PASSWORD }, clientCertPem: readFileSync(CLIENT_CERT, 'utf8') } })
await broker.start()
tap.teardown(() => broker.destroy())

for (const mechanism of ['plain', 'scram-sha-256', 'scram-sha-512'] as SaslMechanism[]) {
  test(`SASL_SSL with ${mechanism}: create, publish, subscribe, resume and group mode`, async t => {
    const security = { tls: { ca: broker.caPem }, sasl: { mechanism, username: USER, password: PASSWORD } }
    const { app, url, kafka } = await streamApp({ brokers: broker.secureBrokers, security })
    t.teardown(() => app.close())
    const topic = unique(`secured-${mechanism}`)
    await kafka.ensureTopics([{ topic, partitions: 2 }])

    const live = new Client(`${url}/v1/stream?topics=${topic}`)
    t.teardown(() => live.close())
    const subscribed = await live.next(f => f.op === 'subscribed')
    for (let i = 0; i < 6; i++) live.send({ op: 'publish', id: `p${i}`, topic, value: { n: i } })
    const acks = await Promise.all([0, 1, 2, 3, 4, 5].map(i => live.next(f => f.id === `p${i}`)))
    t.same(acks.map(a => a.op), ['ack', 'ack', 'ack', 'ack', 'ack', 'ack'], 'every publish acked')
    const got = await live.waitMessages(6, 15_000, topic)
    t.same(got.map(m => (m.value as { n: number }).n).sort(), [0, 1, 2, 3, 4, 5], 'live: every record')

    // a node that never read the topic: its catch-up reads from Kafka
    const other = await streamApp({ brokers: broker.secureBrokers, security })
    t.teardown(() => other.app.close())
    const resumed = new Client(`${other.url}/v1/stream?topics=${topic}&from=${encodeURIComponent(subscribed.cursor as string)}`)
    t.teardown(() => resumed.close())
    t.equal((await resumed.waitMessages(6, 15_000, topic)).length, 6, 'resumed from the cursor: every record')
    const group = new Client(`${other.url}/v1/stream?topics=${topic}&group=${unique('secured')}&from=earliest`)
    t.teardown(() => group.close())
    t.equal((await group.waitMessages(6, 30_000, topic)).length, 6, 'group mode: every record')
  })
}

/** Over `brokers` with `security`: a topic created, four publishes acked, delivered live and to a group member. */
async function publishSubscribeGroup (t: Test, brokers: string[], security: KafkaSecurity): Promise<void> {
  const { app, url, kafka } = await streamApp({ brokers, security })
  t.teardown(() => app.close())
  const topic = unique('secured')
  await kafka.ensureTopics([{ topic, partitions: 2 }])
  const live = new Client(`${url}/v1/stream?topics=${topic}`)
  t.teardown(() => live.close())
  await live.next(f => f.op === 'subscribed')
  for (let i = 0; i < 4; i++) live.send({ op: 'publish', id: `p${i}`, topic, value: { n: i } })
  t.same((await Promise.all([0, 1, 2, 3].map(i => live.next(f => f.id === `p${i}`)))).map(a => a.op), ['ack', 'ack', 'ack', 'ack'])
  t.equal((await live.waitMessages(4, 15_000, topic)).length, 4, 'live: every record')
  const group = new Client(`${url}/v1/stream?topics=${topic}&group=${unique('secured')}&from=earliest`)
  t.teardown(() => group.close())
  t.equal((await group.waitMessages(4, 30_000, topic)).length, 4, 'group mode: every record')
}

test('SASL_PLAINTEXT (SASL with no TLS, inside a private network): publish, subscribe and group mode', async t => {
  await publishSubscribeGroup(t, broker.saslPlaintextBrokers, { sasl: { mechanism: 'scram-sha-256', username: USER, password: PASSWORD } })
  const anonymous = new KafkaClient({ brokers: broker.saslPlaintextBrokers, clientId: 'test-no-sasl', connectionTimeoutMs: 2000 })
  t.teardown(() => anonymous.close())
  await t.rejects(anonymous.ping(3000), 'without SASL the listener answers nothing')
})

test('mTLS (a client certificate, as Aiven runs by default): publish, subscribe; without the certificate, refused', async t => {
  await publishSubscribeGroup(t, broker.mtlsBrokers, { tls: { ca: broker.caPem, cert: readFileSync(CLIENT_CERT), key: readFileSync(CLIENT_KEY) } })

  const noCert = new KafkaClient({ brokers: broker.mtlsBrokers, clientId: 'test-no-cert', connectionTimeoutMs: 2000, security: { tls: { ca: broker.caPem } } })
  t.teardown(() => noCert.close())
  await t.rejects(noCert.ping(3000), 'no client certificate: refused')

  // the gateway's config: certFile and keyFile
  const caFile = join(certDir, 'ca.pem')
  writeFileSync(caFile, broker.caPem)
  const { app: gateway } = await startGateway({ t, config: { kafka: { brokers: broker.mtlsBrokers, tls: { enabled: true, caFile, certFile: CLIENT_CERT, keyFile: CLIENT_KEY } } } })
  t.equal((await gateway.inject({ method: 'GET', url: '/readyz' })).statusCode, 200, 'a gateway with kafka.tls.certFile and keyFile is ready')
})

test('every client sends the broker\'s host name as TLS server name (SNI), as managed Kafka routes by it', async t => {
  // a TLS server with the broker's certificate (valid for localhost) that notes the name each connection asked for
  const names: Array<string | false | null> = []
  const server = createTlsServer(broker.keystore, socket => {
    names.push(socket.servername)
    socket.destroy()
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => server.close())
  const port = (server.address() as { port: number }).port
  const client = new KafkaClient({ brokers: [`localhost:${port}`], clientId: 'test-sni', connectionTimeoutMs: 1000, requestTimeoutMs: 1000, security: { tls: { ca: broker.caPem } } })
  t.teardown(() => client.close())
  // the shared producer is @platformatic/kafka's (as the readers and group members are); ping is kafkajs's admin
  await client.produce('any', { value: 'x' }, { timeoutMs: 2000 }).catch(() => {})
  const producerNames = names.length
  await client.ping(2000).catch(() => {})
  t.ok(producerNames > 0, `the producer connected (${producerNames} times)`)
  t.ok(names.length > producerNames, 'and the admin')
  t.same([...new Set(names)], ['localhost'], 'every connection named the host')
})

test('a wrong password, or TLS without the broker\'s CA, fails and says why', async t => {
  const wrong = new KafkaClient({ brokers: broker.secureBrokers, clientId: 'test-wrong-password', connectionTimeoutMs: 3000, security: { tls: { ca: broker.caPem }, sasl: { mechanism: 'scram-sha-256', username: USER, password: 'not-the-password' } } })
  t.teardown(() => wrong.close())
  const refused = await wrong.ping(5000).then(() => undefined, (err: Error) => err)
  t.comment(`wrong password: ${refused?.message}`)
  t.match(refused, { code: 'SLUICE_KAFKA_UNAVAILABLE', message: /SASL/ }, 'SCRAM with a wrong password: unavailable, and SASL named')
  const untrusted = new KafkaClient({ brokers: broker.secureBrokers, clientId: 'test-untrusted', connectionTimeoutMs: 3000, security: { tls: {}, sasl: { mechanism: 'plain', username: USER, password: PASSWORD } } })
  t.teardown(() => untrusted.close())
  const untrustedError = await untrusted.ping(5000).then(() => undefined, (err: Error) => err)
  t.comment(`untrusted certificate: ${untrustedError?.message}`)
  t.match(untrustedError, { code: 'SLUICE_KAFKA_UNAVAILABLE', message: /self.signed certificate/ }, 'a self-signed certificate the client was not given: the reason, not "no answer"')
})

test('the gateway\'s config: kafka.tls and kafka.sasl reach every connection', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-kafka-ca-'))
  const caFile = join(dir, 'ca.pem')
  writeFileSync(caFile, broker.caPem)
  const kafka = { brokers: broker.secureBrokers, tls: { enabled: true, caFile }, sasl: { mechanism: 'scram-sha-512', username: USER, password: PASSWORD } }
  const { app } = await startGateway({ t, config: { kafka } })
  const ready = await app.inject({ method: 'GET', url: '/readyz' })
  t.equal(ready.statusCode, 200, 'ready: the gateway reached the broker over SASL_SSL')

  // `sluice topics` reads the same settings from the environment
  const out = new PassThrough()
  let printed = ''
  out.on('data', chunk => { printed += String(chunk) })
  const topic = unique('secured-cli')
  const env = { KAFKA_BROKERS: broker.secureBrokers.join(','), KAFKA_TLS: 'true', KAFKA_TLS_CA_FILE: caFile, KAFKA_SASL_MECHANISM: 'scram-sha-256', KAFKA_SASL_USERNAME: USER, KAFKA_SASL_PASSWORD: PASSWORD }
  t.equal(await sluice(['topics', 'create', topic, '--partitions', '2'], { out, err: new PassThrough(), env }), 0)
  t.match(printed, new RegExp(`created\\s+${topic}`), 'sluice topics create over SASL_SSL')
  await t.rejects(sluice(['topics', 'list'], { out, err: new PassThrough(), env: { ...env, KAFKA_SASL_MECHANISM: 'gssapi' } }), /\/kafka\/sasl\/mechanism/, 'a mechanism not offered: refused with its setting, as in the apps')
  await t.rejects(sluice(['topics', 'list'], { out, err: new PassThrough(), env: { KAFKA_BROKERS: env.KAFKA_BROKERS, KAFKA_SASL_USERNAME: USER } }), /\/kafka\/sasl/, 'half a SASL setting: refused')

  t.throws(() => securityFromConfig({ tls: { caFile } }, () => Buffer.from('')), /kafka\.tls\.enabled/, 'a CA file with TLS off is refused, not ignored')
  t.throws(() => securityFromConfig({ tls: { enabled: true, caFile: join(dir, 'missing.pem') } }, file => { throw Object.assign(new Error(`no ${file}`), { code: 'ENOENT' }) }), /kafka\.tls\.caFile: cannot read .*missing\.pem \(ENOENT\)/)
  t.throws(() => securityFromConfig({ tls: { enabled: true, certFile: caFile } }, () => Buffer.from('')), /certFile and kafka\.tls\.keyFile come together/)
  t.equal(securityFromConfig({}, () => Buffer.from('')), undefined, 'no tls, no sasl: plain TCP')
})
