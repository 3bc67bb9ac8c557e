// The local stack's CLI; the code is @sluice/stack (packages/stack/src/stack.ts).
//   deploy/local/node.sh deploy/local/stack.ts up [--kafka-port 9092] [--redis-port 6379] [--no-redis] [--brokers N]
//   deploy/local/node.sh deploy/local/stack.ts fetch      only fetches the broker jars (CI warms the cache)
import { main } from '@sluice/stack'

main(process.argv.slice(2)).catch(err => {
  process.stderr.write(`stack: ${err instanceof Error ? err.message : String(err)}\n`)
  process.exit(1)
})
