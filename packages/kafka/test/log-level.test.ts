import { test } from 'tap'
import { logLevel } from 'kafkajs'
import { kafkaLogLevel } from '../src/kafka.ts'

test('kafkajs routine events are not errors; real failures still are', async t => {
  t.equal(kafkaLogLevel(logLevel.ERROR, 'Connection', 'Response GroupCoordinator(key: 10, version: 2)'), 'debug', 'a protocol error kafkajs retries itself')
  t.equal(kafkaLogLevel(logLevel.ERROR, 'Connection', '[Connection] Response Metadata(key: 3, version: 6)'), 'debug', 'the older message shape')
  t.equal(kafkaLogLevel(logLevel.ERROR, 'Runner', 'The group is rebalancing, re-joining'), 'info', 'a rebalance kafkajs rejoins')
  t.equal(kafkaLogLevel(logLevel.ERROR, 'Consumer', 'Crash: KafkaJSNumberOfRetriesExceeded: connect ECONNREFUSED'), 'error', 'a crash is an error')
  t.equal(kafkaLogLevel(logLevel.ERROR, 'Producer', 'Response Produce(key: 0, version: 7)'), 'error', 'the same words outside Connection are not routine')
  t.equal(kafkaLogLevel(logLevel.WARN, 'Producer', 'Limiting retries for the idempotent producer may invalidate EoS guarantees'), 'debug', 'our own retry setting')
  t.equal(kafkaLogLevel(logLevel.WARN, 'BrokerPool', 'Failed to connect to seed broker, trying another broker from the list'), 'warn')
  t.equal(kafkaLogLevel(logLevel.INFO, 'Consumer', 'Starting'), 'debug', 'kafkajs info is our debug')
  t.equal(kafkaLogLevel(logLevel.DEBUG, 'Consumer', 'x'), undefined)
})
