// What keeps objects of one class alive in a V8 heap snapshot: for each object named NAME, the
// shortest chain of references from the GC roots to it (breadth first), chains that differ only in
// array and table indices counted together, most frequent first. Weak references do not keep
// anything alive, and neither does a WeakMap entry (V8 lists it as a reference from the table to
// the value; the value lives only as long as its key, which has a chain of its own).
// It named what held the closed sessions of both leaks the fuzz suites found (a hub feed's
// subscribers, the MQTT session store's holders): FUZZ_HEAP_SNAPSHOTS=DIR writes the snapshots,
// bench/heap-diff.ts says which classes grew.
//
//   bash deploy/local/node.sh bench/heap-paths.ts DIR/2.heapsnapshot StreamSession [--top 3]
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'

interface Snapshot {
  snapshot: { meta: { node_fields: string[], node_types: [string[], ...unknown[]], edge_fields: string[], edge_types: [string[], ...unknown[]] } }
  nodes: number[]
  edges: number[]
  strings: string[]
}

function main (): void {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '3' } } })
  if (positionals.length !== 2) throw new Error('usage: heap-paths.ts FILE.heapsnapshot NAME [--top N]')
  const [file, wanted] = positionals as [string, string]
  const snap = JSON.parse(readFileSync(file, 'utf8')) as Snapshot
  const { meta } = snap.snapshot
  const width = meta.node_fields.length
  const edgeWidth = meta.edge_fields.length
  const [typeAt, nameAt, edgeCountAt] = ['type', 'name', 'edge_count'].map(f => meta.node_fields.indexOf(f)) as [number, number, number]
  const [edgeTypeAt, edgeNameAt, toAt] = ['type', 'name_or_index', 'to_node'].map(f => meta.edge_fields.indexOf(f)) as [number, number, number]
  const nodeTypes = meta.node_types[0]
  const edgeTypes = meta.edge_types[0]
  const { nodes, edges, strings } = snap
  const count = nodes.length / width
  // each node's first edge: a node's edges follow the previous node's
  const firstEdge = new Int32Array(count + 1)
  for (let n = 0, e = 0; n < count; n++) {
    firstEdge[n] = e
    e += nodes[n * width + edgeCountAt]! * edgeWidth
  }
  firstEdge[count] = edges.length
  const holds = (e: number): boolean => {
    const type = edgeTypes[edges[e + edgeTypeAt]!]
    if (type === 'weak' || type === 'shortcut') return false
    return !(type === 'internal' && String(strings[edges[e + edgeNameAt]!]).includes('part of key'))
  }
  // breadth first from the root (node 0): each node's parent and the edge from it
  const parent = new Int32Array(count).fill(-1)
  const via = new Int32Array(count).fill(-1)
  parent[0] = 0
  const queue = [0]
  for (let q = 0; q < queue.length; q++) {
    const n = queue[q]!
    for (let e = firstEdge[n]!; e < firstEdge[n + 1]!; e += edgeWidth) {
      if (!holds(e)) continue
      const to = edges[e + toAt]! / width
      if (parent[to] !== -1) continue
      parent[to] = n
      via[to] = e
      queue.push(to)
    }
  }
  const label = (n: number) => `${nodeTypes[nodes[n * width + typeAt]!]} ${String(strings[nodes[n * width + nameAt]!]).slice(0, 60)}`
  const edgeLabel = (e: number) => {
    const type = edgeTypes[edges[e + edgeTypeAt]!]
    return type === 'element' || type === 'hidden' ? `[${type}]` : `${type} ${String(strings[edges[e + edgeNameAt]!]).replace(/\d+/g, 'N')}`
  }
  const chains = new Map<string, number>()
  let found = 0
  let reachable = 0
  for (let n = 0; n < count; n++) {
    if (strings[nodes[n * width + nameAt]!] !== wanted || nodeTypes[nodes[n * width + typeAt]!] !== 'object') continue
    found++
    if (parent[n] === -1) continue
    reachable++
    const steps: string[] = []
    // 40 steps is far past any chain seen (16 for both leaks)
    for (let at = n; at !== 0 && steps.length < 40; at = parent[at]!) steps.push(`${label(at)}  <- ${edgeLabel(via[at]!)} -`)
    const chain = steps.join('\n    ')
    chains.set(chain, (chains.get(chain) ?? 0) + 1)
  }
  process.stdout.write(`${found} objects named ${wanted}, ${reachable} reachable from the GC roots\n`)
  for (const [chain, times] of [...chains].sort((a, b) => b[1] - a[1]).slice(0, Number(values.top))) {
    process.stdout.write(`\n${times} x\n    ${chain}\n`)
  }
}

main()
