// A hub batch's PUBLISH frames are read once per batch, not once per socket:
// every MQTT socket at the batch's start gets the same Buffer and the same frames.
import { test } from 'tap'
import { wireFrame } from '@sluice/hub'
import { framesOf, publishPacket } from '../src/format.ts'
import { matchesLevels } from '../src/mapping.ts'

test('framesOf reads a batch once: the same frames for the same Buffer, each with its topic and its levels', async t => {
  const names = ['sensors/d1/temp', 'sensors/d2/hum', '$SYS/x']
  const frames = names.map(name => wireFrame(publishPacket(name, Buffer.from('v'), 5), true))
  const batch = Buffer.concat(frames)
  const first = framesOf(batch, 'ws')
  t.same(first.map(f => f.topic), names)
  t.same(first.map(f => f.levels), names.map(n => n.split('/')))
  t.same(first.map(f => f.end - f.start), frames.map(f => f.length), 'each frame whole')
  t.equal(framesOf(batch, 'ws'), first, 'the second socket gets the frames read for the first')
  t.same(framesOf(batch.subarray(frames[0]!.length), 'ws').map(f => f.topic), names.slice(1), 'a view from mid-batch is read on its own')
  t.ok(matchesLevels(['sensors', '+', 'temp'], first[0]!.levels))
  t.notOk(matchesLevels(['#'], first[2]!.levels), '$-names are not matched by a leading wildcard [MQTT-4.7.2-1]')
})
