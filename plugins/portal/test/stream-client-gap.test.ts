// The console's resume cursor (stream-client.js, run in Node with its global
// WebSocket) moves past a `gap` frame's records as past a message's: a resume
// from it does not ask Kafka again for records it no longer holds.
import { test } from 'tap'
import { WebSocketServer } from 'ws'

const module = await import(String(new URL('../public/stream-client.js', import.meta.url))) as {
  StreamClient: new () => { connect (credential: string, request: { mode: string, url: URL, protocols: string[] }): void, disconnect (): void, cursor (): string, onFrame: (frame: { op: string }) => void }
}

test('a gap frame moves the cursor past the records gone; never back', async t => {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0, handleProtocols: () => 'sluice.v1' })
  t.teardown(() => server.close())
  await new Promise(resolve => server.once('listening', resolve))
  server.on('connection', ws => {
    for (const frame of [
      { op: 'message', topic: 't', partition: 0, offset: '1', value: 1 },
      { op: 'gap', topic: 't', partition: 0, from: '2', to: '6' },
      { op: 'message', topic: 't', partition: 1, offset: '8', value: 1 },
      { op: 'gap', topic: 't', partition: 1, from: '2', to: '5' },
      { op: 'gap', topic: 'u', partition: 3, from: '0', to: '10' },
      { op: 'gap', topic: 't', partition: 0, from: 'x', to: 'not an offset' }
    ]) ws.send(JSON.stringify(frame))
  })
  const client = new module.StreamClient()
  t.teardown(() => client.disconnect())
  const seen: string[] = []
  const all = new Promise<void>(resolve => {
    client.onFrame = frame => { seen.push(frame.op); if (seen.length === 6) resolve() }
  })
  const address = server.address() as { port: number }
  client.connect('token', { mode: 'subprotocol', url: new URL(`ws://127.0.0.1:${address.port}/v1/stream`), protocols: ['sluice.v1'] })
  await all
  t.equal(client.cursor(), 't@0:6,1:9;u@3:10', 'partition 0 past its gap, partition 1 kept ahead of an older one, a topic heard of only by its gap')
})
