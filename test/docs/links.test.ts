// Every relative link of the project's own Markdown (README.md, docs/, each
// package's README, bench/ and the test harness's README) names a file or
// folder of the repository: a moved suite or package must not leave a reader
// at a dead link. Links to other sites and to anchors alone are not checked.
import { test } from 'tap'
import { existsSync, globSync, readFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'

const root = resolve(import.meta.dirname, '..', '..')
const FILES = ['README.md', 'docs/*.md', 'apps/*/README.md', 'plugins/*/README.md', 'packages/*/README.md', 'bench/README.md', 'test/*/README.md']

/** The relative targets of a Markdown text's inline links, outside fenced code. */
export function relativeLinks (markdown: string): string[] {
  const prose = markdown.replace(/```[\s\S]*?```/g, '')
  const out: string[] = []
  for (const m of prose.matchAll(/\]\(([^)\s]+)\)/g)) {
    const target = m[1]!
    if (/^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith('#')) continue
    const path = target.split('#')[0]!
    if (path !== '') out.push(path)
  }
  return out
}

test('the link reader finds relative links and skips sites, anchors and code', async t => {
  t.same(relativeLinks('see [a](docs/a.md#x), [b](https://x.org/b), [c](#c)\n```\n[d](nowhere.md)\n```\n[e](../e)'), ['docs/a.md', '../e'])
})

test('every relative link of the project\'s Markdown resolves to a file in the repository', async t => {
  const files = FILES.flatMap(g => globSync(g, { cwd: root })).sort()
  t.ok(files.length >= 20, `${files.length} Markdown files`)
  const dead: string[] = []
  let links = 0
  for (const file of files) {
    for (const link of relativeLinks(readFileSync(join(root, file), 'utf8'))) {
      links++
      if (!existsSync(resolve(root, dirname(file), decodeURI(link)))) dead.push(`${file}: ${link}`)
    }
  }
  t.ok(links > 50, `${links} relative links`)
  t.same(dead, [], 'no dead link')
})
