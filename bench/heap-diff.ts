// What a V8 heap snapshot holds more than another, by object kind: the count and the self size of
// each (type, constructor or name) pair in B. less those in A., largest first. For two snapshots of
// the same process (bench/idle-topics.ts --heap-snapshots DIR writes them before and after its
// topics), divided by --per (the topic count) when given.
//
//   bash deploy/local/node.sh bench/heap-diff.ts DIR/A.heapsnapshot DIR/B.heapsnapshot [--per 1000] [--top 40]
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'

interface Snapshot {
  snapshot: { meta: { node_fields: string[], node_types: [string[], ...unknown[]] } }
  nodes: number[]
  strings: string[]
}

/** (type, name) -> [count, self bytes] */
function kinds (file: string): Map<string, [number, number]> {
  const snap = JSON.parse(readFileSync(file, 'utf8')) as Snapshot
  const fields = snap.snapshot.meta.node_fields
  const types = snap.snapshot.meta.node_types[0]
  const [typeAt, nameAt, sizeAt] = ['type', 'name', 'self_size'].map(f => fields.indexOf(f))
  const out = new Map<string, [number, number]>()
  for (let i = 0; i < snap.nodes.length; i += fields.length) {
    const type = types[snap.nodes[i + typeAt!]!]!
    let name = snap.strings[snap.nodes[i + nameAt!]!]!
    // strings and code are many and unnamed: by type alone
    if (type === 'string' || type === 'concatenated string' || type === 'sliced string' || type === 'number' || type === 'code') name = ''
    if (name.length > 60) name = `${name.slice(0, 57)}...`
    const key = `${type} ${name}`
    const entry = out.get(key) ?? [0, 0]
    entry[0]++
    entry[1] += snap.nodes[i + sizeAt!]!
    out.set(key, entry)
  }
  return out
}

function main (): void {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { per: { type: 'string', default: '1' }, top: { type: 'string', default: '40' } } })
  if (positionals.length !== 2) throw new Error('usage: heap-diff.ts A.heapsnapshot B.heapsnapshot [--per N] [--top N]')
  const per = Number(values.per)
  const a = kinds(positionals[0]!)
  const b = kinds(positionals[1]!)
  const rows: Array<[string, number, number]> = []
  for (const key of new Set([...a.keys(), ...b.keys()])) {
    const [ca, sa] = a.get(key) ?? [0, 0]
    const [cb, sb] = b.get(key) ?? [0, 0]
    rows.push([key, (cb - ca) / per, (sb - sa) / per])
  }
  rows.sort((x, y) => y[2] - x[2])
  const total = rows.reduce((sum, r) => sum + r[2], 0)
  process.stdout.write(`self bytes added${per !== 1 ? ` per 1/${per}` : ''}: ${total.toFixed(0)}\n`)
  for (const [key, count, size] of rows.slice(0, Number(values.top))) {
    process.stdout.write(`${size.toFixed(0).padStart(9)} B ${count.toFixed(2).padStart(9)} x  ${key}\n`)
  }
}

main()
