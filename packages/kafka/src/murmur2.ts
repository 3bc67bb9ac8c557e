// Fastify-free: Kafka's murmur2 key hash (the Java client's Utils.murmur2, which
// kafkajs's default partitioner also uses), in 32-bit integer arithmetic.
// kafkajs computes it with a 64-bit Long object per step: measured here, a
// 16 KiB key took 25 ms and a 300,000-byte key 14.6 s of the event loop (a
// client's key, on every publish). Same results (a property test compares them),
// so records keep the partitions other Kafka clients give the same keys.

const SEED = 0x9747b28c
const M = 0x5bd1e995

export function murmur2 (key: Buffer | string): number {
  const data = typeof key === 'string' ? Buffer.from(key) : key
  const length = data.length
  let h = (SEED ^ length) | 0
  const length4 = length >>> 2
  for (let i = 0; i < length4; i++) {
    const i4 = i * 4
    let k = (data[i4]! & 0xff) | ((data[i4 + 1]! & 0xff) << 8) | ((data[i4 + 2]! & 0xff) << 16) | ((data[i4 + 3]! & 0xff) << 24)
    k = Math.imul(k, M)
    k ^= k >>> 24
    k = Math.imul(k, M)
    h = Math.imul(h, M) ^ k
  }
  const tail = length & ~3
  switch (length & 3) {
    case 3: h ^= (data[tail + 2]! & 0xff) << 16 // falls through
    case 2: h ^= (data[tail + 1]! & 0xff) << 8 // falls through
    case 1:
      h ^= data[tail]! & 0xff
      h = Math.imul(h, M)
  }
  h ^= h >>> 13
  h = Math.imul(h, M)
  h ^= h >>> 15
  return h | 0
}
