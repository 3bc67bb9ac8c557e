// @platformatic/kafka's Consumer, with fetch() answering as Kafka's Java consumer reads: every
// fetch of the node goes through it (the group-less fetcher's clients, reader.ts, and group
// mode's members, whose messages stream fetches through fetch(), group-reader.ts), so what the
// library gets wrong is mended once, below everything that reads:
// - an aborted transaction's batches are emptied (aborted.ts: the library's own filter kept all
//   but the last of a producer's in one response), not removed, so offsets still move past them;
// - on a LogAppendTime topic a record's timestamp is the batch's max timestamp, the broker's
//   append time (the library added the record's delta to the batch's first timestamp: the
//   producer's time, which the broker leaves in the record's bytes).
import { Consumer } from '@platformatic/kafka'
import { abortedBatches } from './aborted.ts'

type FetchOptions = Parameters<Consumer<Buffer, Buffer, Buffer, Buffer>['fetch']>[0]
type FetchResponse = Awaited<ReturnType<Consumer<Buffer, Buffer, Buffer, Buffer>['fetch']>>
type FetchCallback = (error: Error | null, response?: FetchResponse) => void

// record batch attributes (Kafka's DefaultRecordBatch): bit 3, the topic stamps records with the broker's append time
const LOG_APPEND_TIME = 0x08

export class JavaReadsConsumer extends Consumer<Buffer, Buffer, Buffer, Buffer> {
  override fetch (options: FetchOptions, callback: FetchCallback): void
  override fetch (options: FetchOptions): Promise<FetchResponse>
  override fetch (options: FetchOptions, callback?: FetchCallback): void | Promise<FetchResponse> {
    if (callback === undefined) return super.fetch(options).then(response => asJavaReads(response))
    super.fetch(options, (error, response) => {
      if (error === null && response !== undefined) asJavaReads(response)
      callback(error, response)
    })
  }
}

/** Mends a fetch response in place (the file's head); per batch, and per record only on a LogAppendTime topic. */
export function asJavaReads (response: FetchResponse): FetchResponse {
  for (const topic of response.responses) {
    for (const partition of topic.partitions) {
      const batches = partition.records
      if (!batches) continue
      const aborted = abortedBatches(batches, partition.abortedTransactions)
      if (aborted) for (const batch of aborted) batch.records = []
      for (const batch of batches) {
        if ((batch.attributes & LOG_APPEND_TIME) === 0) continue
        batch.firstTimestamp = batch.maxTimestamp
        for (const record of batch.records) record.timestampDelta = 0n
      }
    }
  }
  return response
}
