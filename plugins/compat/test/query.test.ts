// The query string of /v2/broker/ as Fastify parses it: topics and group.id,
// what is tolerated and what is refused before the upgrade.
import { test } from 'tap'
import { parse } from 'node:querystring'
import { brokerQuery } from '../src/query.ts'

// node:querystring behaves as Fastify's parser does on these (decoding, `+`, no `=`, repeats)
const q = (text: string) => brokerQuery(parse(text) as Record<string, unknown>)

test('topics and group.id', async t => {
  t.same(q('topics=a,b&group.id=g'), { topics: ['a', 'b'], group: 'g' })
  t.same(q(''), { topics: [] }, 'no topics: produce only')
  t.same(q('topics=&group.id=g'), { topics: [] }, 'empty topics: produce only, the group is ignored')
  t.same(q('topics=a&group.id='), { topics: ['a'] }, 'an empty group.id: a unique group, as in the Java server')
  t.same(q('topics=a%2Cb&group.id=my%3Agroup'), { topics: ['a', 'b'], group: 'my:group' }, 'URL-decoded')
  t.same(q('topics=a,+b,,a'), { topics: ['a', 'b'] }, 'spaces and empty names dropped, duplicates once')
  t.same(q('topics=a&topics=c'), { topics: ['a', 'c'] }, 'a repeated topics joins the lists')
  t.same(q('debug&topics=a&access_token=x'), { topics: ['a'] }, 'a parameter without = and unknown parameters are tolerated')
})

test('refused before the upgrade', async t => {
  t.match(q('topics=a&group.id=x&group.id=y'), { status: 400, code: 'BAD_REQUEST', message: 'group.id may appear once' })
  t.match(q('topics=a&group.id=' + 'g'.repeat(129)), { status: 400, message: /group\.id must be/ })
  t.match(q('topics=a&group.id=tab%09here'), { status: 400 }, 'control characters')
  t.match(q('topics=a/b'), { status: 400, message: '"a/b" is not a topic name' })
  t.match(q('topics=' + Array.from({ length: 101 }, (_, i) => `t${i}`).join(',')), { status: 400, message: 'at most 100 topics' })
})
