// Fastify-free: the Origin allow-list for browser clients. Browsers always send
// Origin on a WebSocket upgrade; servers and mobile apps usually do not, and an
// absent Origin is not a browser, so it is not checked here (credentials are).

export interface OriginRule {
  test (origin: string): boolean
}

// An Origin is scheme://host[:port]; anything longer than a hostname can be is hostile.
const MAX_ORIGIN_LENGTH = 300

function escape (text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

/**
 * Entries: `*` (any origin), an exact origin (`https://app.example.com`), or a
 * subdomain wildcard (`https://*.example.com`, one or more labels, never the bare domain).
 */
export function compileOrigins (entries: string[]): OriginRule {
  if (entries.includes('*')) return { test: () => true }
  const exact = new Set<string>()
  const patterns: RegExp[] = []
  for (const entry of entries) {
    const normalized = entry.trim().toLowerCase().replace(/\/+$/, '')
    const wildcard = /^([a-z][a-z0-9+.-]*):\/\/\*\.(.+)$/.exec(normalized)
    if (wildcard) {
      patterns.push(new RegExp(`^${escape(wildcard[1]!)}://([a-z0-9-]+\\.)+${escape(wildcard[2]!)}$`))
    } else {
      exact.add(normalized)
    }
  }
  return {
    test (origin: string): boolean {
      if (origin.length > MAX_ORIGIN_LENGTH) return false
      const normalized = origin.toLowerCase()
      return exact.has(normalized) || patterns.some(p => p.test(normalized))
    }
  }
}

export function originAllowed (origin: string | string[] | undefined, rule: OriginRule): boolean {
  if (origin === undefined) return true
  if (Array.isArray(origin)) return false
  return rule.test(origin)
}
