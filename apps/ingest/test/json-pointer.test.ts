import { test } from 'tap'
import { compilePointer, keyOf } from '../src/json-pointer.ts'

test('RFC 6901 pointers, escapes and array indexes', async t => {
  const doc = { data: { symbol: 'BTC-USD', 'a/b': 1, 'm~n': 2, list: [10, 20] }, '': 'empty' }
  t.equal(compilePointer('/data/symbol')(doc), 'BTC-USD')
  t.equal(compilePointer('/data/a~1b')(doc), 1)
  t.equal(compilePointer('/data/m~0n')(doc), 2)
  t.equal(compilePointer('/data/list/1')(doc), 20)
  t.equal(compilePointer('/data/list/01')(doc), undefined, 'no leading zeros')
  t.equal(compilePointer('/')(doc), 'empty', 'the empty key')
  t.equal(compilePointer('/data/missing/deeper')(doc), undefined)
  t.equal(compilePointer('/toString')({}), undefined, 'inherited properties are not fields')
})

test('invalid pointers are refused', async t => {
  t.throws(() => compilePointer('data/symbol'))
  t.throws(() => compilePointer(''))
  t.throws(() => compilePointer('/a~2'))
})

test('keys: strings as they are, other values as JSON, absent as null', async t => {
  t.equal(keyOf('k'), 'k')
  t.equal(keyOf(42), '42')
  t.equal(keyOf(true), 'true')
  t.equal(keyOf({ a: 1 }), '{"a":1}')
  t.equal(keyOf(null), null)
  t.equal(keyOf(undefined), null)
})
