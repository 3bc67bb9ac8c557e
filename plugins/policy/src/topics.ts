// Fastify-free: topic names and the patterns policy rules use for them.
//
//   demo.ticks         exactly that topic
//   prices.*           `*` is one or more characters within a dot-separated segment
//   audit.**           `**` is one or more characters, dots included
//   orders.{sub}       `{claim}` is the identity's claim value, as a literal
//
// A claim value fills a template only when it is a plain segment
// ([A-Za-z0-9_-], 1-128 characters): a `sub` of "alice.*" or "a.b" matches
// nothing, so no tenant can reach another tenant's topic through its claims.

import { isTopicName } from '@sluice/protocol/topics'

// the name rule is Kafka's, declared once in @sluice/protocol
export { isTopicName }
const CLAIM_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/
export const CLAIM_SEGMENT = /^[A-Za-z0-9_-]{1,128}$/

type Token = { literal: string } | { star: 1 | 2 } | { claim: string }

export interface TopicPattern {
  readonly source: string
  /** the claims the pattern needs, empty for a fixed pattern */
  readonly claims: readonly string[]
  /** the matcher for these claims, or undefined when a claim is missing or not a plain segment */
  resolve (claims: Record<string, unknown>): RegExp | undefined
  /** a topic this pattern would match for sample claims, for static checks */
  readonly sample: string
}

function escape (text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

// A client chooses the topic a pattern is tested against, so patterns must
// not backtrack: one wildcard per dot-separated segment (the dot anchors it)
// and one `**` per pattern keep every match linear or at worst quadratic in
// the topic's 249 characters.
function checkWildcards (source: string): void {
  if ((source.match(/\*\*/g) ?? []).length > 1) throw new Error('at most one `**` in a pattern')
  for (const segment of source.split('.')) {
    if ((segment.match(/\*+/g) ?? []).length > 1) throw new Error('at most one wildcard between two dots')
  }
}

function tokenize (source: string): Token[] {
  checkWildcards(source)
  const tokens: Token[] = []
  let i = 0
  while (i < source.length) {
    const c = source[i]!
    if (c === '*') {
      let n = 0
      while (source[i] === '*') { n++; i++ }
      if (n > 2) throw new Error('at most two `*` in a row')
      tokens.push({ star: n as 1 | 2 })
    } else if (c === '{') {
      const end = source.indexOf('}', i)
      if (end === -1) throw new Error('`{` without `}`')
      const name = source.slice(i + 1, end)
      if (!CLAIM_NAME.test(name)) throw new Error(`"{${name}}" is not a claim name`)
      tokens.push({ claim: name })
      i = end + 1
    } else if (c === '}') {
      throw new Error('`}` without `{`')
    } else {
      let j = i
      while (j < source.length && !'*{}'.includes(source[j]!)) j++
      tokens.push({ literal: source.slice(i, j) })
      i = j
    }
  }
  return tokens
}

function claimSegment (claims: Record<string, unknown>, name: string): string | undefined {
  const value = claims[name]
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return String(value)
  return typeof value === 'string' && CLAIM_SEGMENT.test(value) ? value : undefined
}

/** Compiles a pattern once; throws with a reason when its syntax is wrong. */
export function compilePattern (source: string, options: { templates: boolean }): TopicPattern {
  const tokens = tokenize(source)
  const claims = tokens.flatMap(t => 'claim' in t ? [t.claim] : [])
  if (!options.templates && claims.length > 0) throw new Error('claim templates belong in access rules, not in product topics')
  const literalPart = tokens.map(t => 'literal' in t ? t.literal : 'x').join('')
  if (!/^[A-Za-z0-9._-]+$/.test(literalPart)) throw new Error('only [A-Za-z0-9._-], `*` and `{claim}` may appear')
  const body = (values: Record<string, string>) => tokens.map(t => {
    if ('literal' in t) return escape(t.literal)
    if ('star' in t) return t.star === 1 ? '[^.]+' : '.+'
    return escape(values[t.claim]!)
  }).join('')
  const sample = tokens.map(t => 'literal' in t ? t.literal : 'x').join('')
  if (claims.length === 0) {
    const fixed = new RegExp(`^${body({})}$`)
    return { source, claims, sample, resolve: () => fixed }
  }
  return {
    source,
    claims,
    sample,
    resolve (identityClaims) {
      const values: Record<string, string> = {}
      for (const name of claims) {
        const value = claimSegment(identityClaims, name)
        if (value === undefined) return undefined
        values[name] = value
      }
      return new RegExp(`^${body(values)}$`)
    }
  }
}

/**
 * The pattern as one identity reads it, as text: each `{claim}` replaced by
 * the claim's value under the same rule as `resolve` (a plain segment), or
 * undefined when `resolve` would be. What a reader is shown ("you may publish
 * on orders.dev"); the matcher stays `resolve`.
 */
export function fillClaims (source: string, claims: Record<string, unknown>): string | undefined {
  let out = ''
  for (const token of tokenize(source)) {
    if ('literal' in token) out += token.literal
    else if ('star' in token) out += '*'.repeat(token.star)
    else {
      const value = claimSegment(claims, token.claim)
      if (value === undefined) return undefined
      out += value
    }
  }
  return out
}
