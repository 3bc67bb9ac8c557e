// The portal's copy-paste clients of a topic (public/snippets.js), pure
// strings checked in Node: the reader's key and the topic land in each, quoted
// for its language; the Node one is valid JavaScript (parsed), the Python one
// valid Python (parsed by python3's ast where python3 is installed), the shell
// ones one word per argument whatever the key holds.
import { test } from 'tap'
import { spawnSync } from 'node:child_process'
import { Script } from 'node:vm'

// a browser module, plain JS: loaded by URL so that the Node typecheck does not follow it (its own tsconfig checks it)
const { snippets, KEY_PLACEHOLDER } = await import(String(new URL('../public/snippets.js', import.meta.url))) as {
  snippets (topic: string, origin: string, key?: string): Array<{ id: string, title: string, code: string }>
  KEY_PLACEHOLDER: string
}

const KEY = 'sk_0123456789abcdef_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_abcde'

test('every snippet names the topic and the reader\'s key, or the placeholder without one', async t => {
  const got = snippets('demo.ticks', 'http://gw.example:8080', KEY)
  t.same(got.map(s => s.id), ['browser', 'node', 'python', 'websocat', 'wscat', 'mqtt'])
  for (const s of got) {
    t.match(s.code, KEY, `${s.id}: the key`)
    t.match(s.code, 'ws://gw.example:8080/', `${s.id}: the gateway, over WebSocket`)
    if (s.id !== 'mqtt') t.match(s.code, '/v1/stream?topics=demo.ticks', `${s.id}: the topic`)
  }
  t.match(got.find(s => s.id === 'browser')!.code, `&api_key=${KEY}`, 'a browser sends the key in the query (no headers on a WebSocket)')
  t.match(snippets('demo.ticks', 'https://gw.example').find(s => s.id === 'node')!.code, 'wss://gw.example/v1/stream', 'https: wss')
  for (const s of snippets('demo.ticks', 'http://gw.example')) t.match(s.code, KEY_PLACEHOLDER, `${s.id}: the placeholder without a key`)
})

test('the snippets parse in their languages, and a pattern is escaped in the URL', async t => {
  const got = snippets('orders.*', 'http://gw.example', KEY)
  t.match(got.find(s => s.id === 'node')!.code, 'topics=orders.*', 'encodeURIComponent leaves * as it is')
  for (const id of ['browser', 'node', 'mqtt']) {
    // the import lines aside, the code must compile as a module body (compiled, never run)
    const body = got.find(s => s.id === id)!.code.replace(/^import .*$/m, '')
    t.doesNotThrow(() => new Script(`(async () => {\n${body}\n})`), `${id}: valid JavaScript`)
  }
  const python = spawnSync('python3', ['-c', 'import ast, sys; ast.parse(sys.stdin.read())'], { input: got.find(s => s.id === 'python')!.code, encoding: 'utf8' })
  if (python.error) t.comment('python3 is not installed: the Python snippet is not parsed')
  else t.equal(python.status, 0, `valid Python ${python.stderr}`)
})

test('a key with a quote stays one shell word', async t => {
  const code = snippets('demo.ticks', 'http://gw.example', 'it\'s').find(s => s.id === 'websocat')!.code
  const echoed = spawnSync('sh', ['-c', `printf '%s\\n' ${code.replace(/^websocat /, '')}`], { encoding: 'utf8' })
  t.same(echoed.stdout.trim().split('\n'), ['-H', 'x-api-key: it\'s', 'ws://gw.example/v1/stream?topics=demo.ticks'])
})
