// A Dockerfile reader for the deploy suites, which have no Docker engine: the
// instructions grouped by stage, as BuildKit reads them (comments and parser
// directives dropped, `\` continuations joined, exec-form JSON parsed), and the
// .dockerignore rules as BuildKit applies them (last matching pattern wins; a
// pattern that matches a directory matches everything under it).
import { existsSync, readFileSync } from 'node:fs'

export interface Instruction {
  /** upper case: FROM, COPY, RUN, ... */
  keyword: string
  /** `--name=value` flags before the arguments */
  flags: Record<string, string>
  /** the exec form's array, when the arguments are one */
  exec?: string[]
  /** the arguments after the flags, as written (shell form), continuations joined */
  args: string
  line: number
}

export interface Stage {
  image: string
  name?: string
  instructions: Instruction[]
}

export function parseDockerfile (text: string): Stage[] {
  const stages: Stage[] = []
  const lines = text.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const first = i + 1
    let line = lines[i]!.trim()
    if (line === '' || line.startsWith('#')) continue
    // a continuation joins the next line; comment lines inside one are dropped, as BuildKit does
    while (line.endsWith('\\') && i + 1 < lines.length) {
      line = line.slice(0, -1)
      let next = lines[++i]!.trim()
      while (next.startsWith('#') && i + 1 < lines.length) next = lines[++i]!.trim()
      line += ' ' + next
    }
    const match = /^([A-Za-z]+)\s+(.*)$/s.exec(line)
    if (!match) throw new Error(`Dockerfile line ${first}: cannot read "${line}"`)
    const keyword = match[1]!.toUpperCase()
    let rest = match[2]!.trim()
    const flags: Record<string, string> = {}
    // HEALTHCHECK's flags come before its CMD, COPY's before its sources: both are --name=value
    for (let flag = /^--([a-z-]+)=(\S+)\s+/.exec(rest); flag; flag = /^--([a-z-]+)=(\S+)\s+/.exec(rest)) {
      flags[flag[1]!] = flag[2]!
      rest = rest.slice(flag[0].length)
    }
    const instruction: Instruction = { keyword, flags, args: rest, line: first }
    const execText = keyword === 'HEALTHCHECK' ? rest.replace(/^CMD\s+/, '') : rest
    if (execText.startsWith('[')) {
      try {
        const parsed: unknown = JSON.parse(execText)
        if (Array.isArray(parsed) && parsed.every(p => typeof p === 'string')) instruction.exec = parsed
      } catch {}
    }
    if (keyword === 'FROM') {
      const from = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(rest)
      if (!from) throw new Error(`Dockerfile line ${first}: cannot read FROM "${rest}"`)
      stages.push({ image: from[1]!, name: from[2], instructions: [] })
      continue
    }
    const stage = stages.at(-1)
    if (!stage) throw new Error(`Dockerfile line ${first}: ${keyword} before any FROM`)
    stage.instructions.push(instruction)
  }
  return stages
}

/** Shell-form arguments split on blanks (COPY sources and destination, ENV pairs); no quoting is used here. */
export function words (args: string): string[] {
  return args.split(/\s+/).filter(w => w !== '')
}

/** ENV key=value pairs of one instruction. */
export function envPairs (instruction: Instruction): Record<string, string> {
  const env: Record<string, string> = {}
  for (const pair of words(instruction.args)) {
    const eq = pair.indexOf('=')
    if (eq <= 0) throw new Error(`Dockerfile line ${instruction.line}: ENV takes key=value pairs here`)
    env[pair.slice(0, eq)] = pair.slice(eq + 1)
  }
  return env
}

export interface IgnoreRule { pattern: string, negate: boolean, regexp: RegExp }

export function readDockerignore (file: string): IgnoreRule[] {
  if (!existsSync(file)) return []
  return readFileSync(file, 'utf8').split('\n')
    .map(l => l.trim())
    .filter(l => l !== '' && !l.startsWith('#'))
    .map(l => {
      const negate = l.startsWith('!')
      const pattern = clean(negate ? l.slice(1) : l)
      return { pattern, negate, regexp: patternRegExp(pattern) }
    })
}

function clean (pattern: string): string {
  return pattern.replace(/^\/+/, '').replace(/\/+$/, '')
}

/**
 * A .dockerignore pattern as a RegExp: Go's filepath.Match (`*` and `?` within
 * one path segment, `[...]` classes) plus `**` for any number of segments.
 * Unlike shell globs, `*` and `**` match names that start with a dot.
 */
export function patternRegExp (pattern: string): RegExp {
  let source = ''
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!
    if (c === '*' && pattern[i + 1] === '*') {
      i++
      if (pattern[i + 1] === '/') {
        i++
        source += '(?:.*/)?'
      } else {
        source += '.*'
      }
    } else if (c === '*') {
      source += '[^/]*'
    } else if (c === '?') {
      source += '[^/]'
    } else if (c === '[') {
      const end = pattern.indexOf(']', i + 1)
      if (end === -1) throw new Error(`.dockerignore pattern ${pattern}: unclosed [`)
      source += '[' + pattern.slice(i + 1, end).replace(/^!/, '^') + ']'
      i = end
    } else {
      source += c.replace(/[.+^${}()|\\]/g, '\\$&')
    }
  }
  return new RegExp(`^${source}$`)
}

/** Whether a path (relative to the build context, `/`-separated) is left out of the context. */
export function ignored (rules: IgnoreRule[], path: string): boolean {
  const parts = path.split('/')
  let excluded = false
  for (const rule of rules) {
    // the path itself or any directory above it
    for (let n = 1; n <= parts.length; n++) {
      if (rule.regexp.test(parts.slice(0, n).join('/'))) {
        excluded = !rule.negate
        break
      }
    }
  }
  return excluded
}
