// A /v1/stream node in a process of its own, for test/stream/large-record.test.ts:
// test/harness/stream.ts's stack with its default limits (a 256 KiB send queue,
// 1 MiB frames). A node whose event loop is stuck cannot answer /healthz, and a
// test in another process can tell; in the test's own process a stuck loop
// would stop the test too. Prints its ws:// URL, then runs until killed.
import { allowAll, streamApp } from '../harness/stream.ts'

const { app, url } = await streamApp({ access: allowAll(), nodeId: process.argv[2] ?? 'large-record' })
process.stdout.write(url + '\n')
process.once('SIGTERM', () => { app.close().finally(() => process.exit(0)) })
