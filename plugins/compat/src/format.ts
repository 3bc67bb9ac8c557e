// How records become kafka-text / kafka-binary frames for the hub. The hub
// builds a frame once per record per format key and writes the same bytes to
// every socket with that key, so the key names everything the bytes depend
// on: the subprotocol and, per topic, the output transform the socket's
// product applies. Sockets of one product share frames; a socket whose
// product transforms a topic differently gets its own.
import type { ConsumedRecord, Logger } from '@sluice/kafka'
import { wireFrame, wireText, type FrameFormat } from '@sluice/hub'
import type { ValueEncoding } from '@sluice/policy/access'
import { binaryMessage, errorMessage, textMessage, type Subprotocol } from './codec.ts'
import type { TransformRunner } from './transform-runner.ts'

export interface FormatOptions {
  subprotocol: Subprotocol
  /** per topic, the output transform of the product the socket reaches it through */
  outputs: ReadonlyMap<string, TransformRunner>
  /** per topic, the product's encoding (in group mode the hub passes the first topic's to every record) */
  encodings: ReadonlyMap<string, ValueEncoding>
  log: Logger
  /** a record kafka-binary cannot frame */
  unframeable? (): void
}

export function formatKey (subprotocol: Subprotocol, outputs: ReadonlyMap<string, TransformRunner>): string {
  if (outputs.size === 0) return subprotocol
  return `${subprotocol}|${[...outputs].map(([topic, runner]) => `${topic}=${runner.id}`).sort().join(',')}`
}

export function compatFormat (options: FormatOptions): FrameFormat {
  const { subprotocol, outputs, encodings, log } = options
  const binary = subprotocol === 'kafka-binary'
  return {
    key: formatKey(subprotocol, outputs),
    frame (record: ConsumedRecord, encoding: ValueEncoding): Buffer | undefined {
      let topic = record.topic
      let value = record.value
      const runner = outputs.get(topic)
      if (runner) {
        const message = runner.output(record)
        // discarded by the transform, or the transform failed (counted and logged by the runner)
        if (message === null) return undefined
        topic = message.topic
        value = message.value
      }
      if (!binary) return wireText(textMessage(topic, value, encodings.get(record.topic) ?? encoding))
      try {
        return wireFrame(binaryMessage(topic, value), true)
      } catch (err) {
        // a clear error in place of the record rather than a corrupt frame
        options.unframeable?.()
        log.warn({ err, topic: record.topic, partition: record.partition, offset: record.offset }, 'record not sent to kafka-binary sockets')
        return wireText(errorMessage((err as { code: string }).code, (err as Error).message, { topic: record.topic, partition: record.partition, offset: record.offset }))
      }
    }
  }
}
