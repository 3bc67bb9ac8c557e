import { test } from 'tap'
import { kafkaClusterId } from '../src/stack.ts'

test('KRaft cluster ids are 22 URL-safe characters and never start with "-" (kafka-storage would read one as an option)', async t => {
  // one id in 64 would start with '-' if drawn blindly; 5,000 draws meet that case with near certainty
  const ids = Array.from({ length: 5000 }, kafkaClusterId)
  t.ok(ids.every(id => /^[A-Za-z0-9_][A-Za-z0-9_-]{21}$/.test(id)), 'every id has the format')
  t.equal(new Set(ids).size, ids.length, 'no id repeats')
})
