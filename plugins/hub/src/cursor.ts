// Resume cursors. A cursor names, per topic, the next offset to deliver on each
// partition; it holds no server state, so any gateway node can resume it.
//
//   cursor    = topic-pos *( ";" topic-pos )
//   topic-pos = topic "@" partition ":" offset *( "," partition ":" offset )
//
//   prices.btc@0:42,1:17               next is offset 42 on partition 0, 17 on partition 1
//   prices.btc@0:42;prices.eth@0:5     two topics
//
// Topic names are Kafka's ([a-zA-Z0-9._-], at most 249), so none of "@:,;"
// occurs in them and the cursor needs no escaping in a query string. A
// partition the cursor does not name (created after the cursor was made)
// resumes from its earliest offset. A client builds its own cursor from the
// frames it received: for each partition, the last `offset` plus one.
import { isTopicName as isKafkaTopicName } from '@sluice/protocol/topics'
import { BadCursorError } from './errors.ts'

export type Positions = Map<number, bigint>
export type Cursor = Map<string, Positions>

const DECIMAL = /^\d{1,19}$/
// a cursor longer than this is not a cursor: 64 topics of 64 partitions fit well within it
const MAX_CURSOR_LENGTH = 64 * 1024
// int64: Kafka offsets and partitions never exceed it
const MAX_OFFSET = (1n << 63n) - 1n

/** The policy's (Kafka's) rule for a topic name; a plain boolean, as callers also test strings with it. */
export function isTopicName (name: unknown): boolean {
  return isKafkaTopicName(name)
}

export function parseCursor (text: string): Cursor {
  if (text.length === 0 || text.length > MAX_CURSOR_LENGTH) throw new BadCursorError(`length must be 1 to ${MAX_CURSOR_LENGTH}`)
  const cursor: Cursor = new Map()
  for (const part of text.split(';')) {
    const at = part.indexOf('@')
    const topic = at === -1 ? part : part.slice(0, at)
    if (!isTopicName(topic)) throw new BadCursorError(`"${topic.slice(0, 64)}" is not a topic name`)
    if (at === -1 || at === part.length - 1) throw new BadCursorError(`topic "${topic}" names no partition`)
    if (cursor.has(topic)) throw new BadCursorError(`topic "${topic}" appears twice`)
    const positions: Positions = new Map()
    for (const pair of part.slice(at + 1).split(',')) {
      const [partition, offset, extra] = pair.split(':')
      if (extra !== undefined || partition === undefined || offset === undefined || !DECIMAL.test(partition) || !DECIMAL.test(offset)) {
        throw new BadCursorError(`"${pair.slice(0, 64)}" is not partition:offset`)
      }
      const p = Number(partition)
      const o = BigInt(offset)
      // Kafka partitions are int32
      if (p > 2 ** 31 - 1 || o > MAX_OFFSET) throw new BadCursorError(`"${pair}" is out of range`)
      if (positions.has(p)) throw new BadCursorError(`partition ${p} of "${topic}" appears twice`)
      positions.set(p, o)
    }
    cursor.set(topic, positions)
  }
  return cursor
}

export function formatPositions (topic: string, positions: Positions): string {
  const pairs = [...positions].sort((a, b) => a[0] - b[0]).map(([p, o]) => `${p}:${o}`)
  return `${topic}@${pairs.join(',')}`
}

export function formatCursor (cursor: Cursor): string {
  return [...cursor].map(([topic, positions]) => formatPositions(topic, positions)).join(';')
}
