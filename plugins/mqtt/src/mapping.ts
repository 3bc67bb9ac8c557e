// Fastify-free: the products' MQTT mappings (policy YAML, `mqtt:` of a
// product) and MQTT's topic rules. One Kafka topic per MQTT topic pattern:
// `sensors/{device}/temp` with key `{device}` makes the MQTT topic
// sensors/d1/temp the records of sensors.temp with key d1, both ways.

export interface MqttMapping {
  product: string
  /** the MQTT topic pattern, levels of literals or one {name} each */
  filter: string
  /** the Kafka topic */
  topic: string
  /** the record key, built from the same {names} */
  key: string
}

/** A product's mappings as the policy document declares them. */
export interface MappingSource {
  readonly document?: { products: Record<string, { mqtt?: Array<{ filter: string, topic: string, key: string }> }> } | undefined
}

const VARIABLE = /^\{([a-z][a-z0-9_]{0,31})\}$/

const NAME = /\{([a-z][a-z0-9_]{0,31})\}/g

/** A Kafka topic or key with {name} parts: filled from an MQTT name's levels, and read back. */
class Template {
  readonly text: string
  readonly names: string[] = []
  readonly #pattern: RegExp

  /** `value`: what one {name} may hold here (a Kafka topic's characters, or one MQTT level) */
  constructor (text: string, value: string) {
    this.text = text
    const source = text.replace(/\{([a-z][a-z0-9_]{0,31})\}|([^{]+|\{)/g, (_all, name: string | undefined, literal: string | undefined) => {
      if (name === undefined) return (literal ?? '').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
      this.names.push(name)
      return `(${value})`
    })
    this.#pattern = new RegExp(`^${source}$`)
  }

  fill (values: ReadonlyMap<string, string>): string | undefined {
    let missing = false
    const out = this.text.replace(NAME, (_all, name: string) => {
      const v = values.get(name)
      if (v === undefined) missing = true
      return v ?? ''
    })
    return missing ? undefined : out
  }

  /** The names' values in `text`, added to `into`; false when it does not fit or contradicts them. */
  read (text: string, into: Map<string, string>): boolean {
    const m = this.#pattern.exec(text)
    if (!m) return false
    for (let i = 0; i < this.names.length; i++) {
      const name = this.names[i]!
      const seen = into.get(name)
      if (seen !== undefined && seen !== m[i + 1]) return false
      into.set(name, m[i + 1]!)
    }
    return true
  }
}

// a {name} of a Kafka topic holds Kafka's topic characters but the dot, so that one MQTT level fills one
// part of the name ('devices.{device}': devices/a.b/x is no device's), as the policy's {sub} does
const TOPIC_VALUE = '[A-Za-z0-9_-]+'
const TOPIC_VALUE_WHOLE = new RegExp(`^${TOPIC_VALUE}$`)
// Kafka's own rule for a topic name
const KAFKA_TOPIC = /^[A-Za-z0-9._-]{1,249}$/
const KEY_VALUE = '[^/]+'

/** One mapping, compiled: its MQTT levels, and its Kafka topic and key templates. */
export class CompiledMapping {
  readonly product: string
  readonly filter: string
  readonly levels: ReadonlyArray<{ literal: string } | { name: string }>
  readonly #topic: Template
  readonly #key: Template

  constructor (mapping: MqttMapping) {
    this.product = mapping.product
    this.filter = mapping.filter
    this.levels = mapping.filter.split('/').map(level => {
      const m = VARIABLE.exec(level)
      return m ? { name: m[1]! } : { literal: level }
    })
    this.#topic = new Template(mapping.topic, TOPIC_VALUE)
    this.#key = new Template(mapping.key, KEY_VALUE)
  }

  /** The Kafka topic as declared, {names} included. */
  get topic (): string {
    return this.#topic.text
  }

  /** The record of an MQTT topic name, or undefined when the name is not this mapping's. */
  toRecord (name: string): { topic: string, key: string } | undefined {
    const parts = name.split('/')
    if (parts.length !== this.levels.length) return undefined
    const values = new Map<string, string>()
    for (let i = 0; i < parts.length; i++) {
      const level = this.levels[i]!
      const part = parts[i]!
      if ('literal' in level) {
        if (level.literal !== part) return undefined
      } else {
        if (part.length === 0) return undefined
        const seen = values.get(level.name)
        if (seen !== undefined && seen !== part) return undefined
        values.set(level.name, part)
      }
    }
    const topic = this.#topic.fill(values)
    const key = this.#key.fill(values)
    // a level that cannot be part of a Kafka topic name (a dot, a space) maps to nothing rather than to another topic
    if (topic === undefined || key === undefined || !KAFKA_TOPIC.test(topic)) return undefined
    if (this.#topic.names.some(n => !TOPIC_VALUE_WHOLE.test(values.get(n)!))) return undefined
    return { topic, key }
  }

  /** The MQTT topic name of a record, or undefined when its topic or key does not fit. */
  toName (topic: string, key: string | undefined): string | undefined {
    if (key === undefined) return undefined
    const values = new Map<string, string>()
    if (!this.#topic.read(topic, values) || !this.#key.read(key, values)) return undefined
    const parts: string[] = []
    for (const level of this.levels) {
      if ('literal' in level) {
        parts.push(level.literal)
      } else {
        const value = values.get(level.name)
        // a level neither topic nor key carries cannot be rebuilt: the record is no MQTT message of this mapping
        if (value === undefined) return undefined
        parts.push(value)
      }
    }
    const name = parts.join('/')
    // never a wildcard character in a name [MQTT-4.7.1-1]: a key that would make one is not delivered
    return /[+#\0]/.test(name) ? undefined : name
  }

  /**
   * The Kafka topic a subscription filter reaches through this mapping: undefined when the filter matches no
   * name of it; `open` when a {name} of the topic is left to a wildcard (many Kafka topics: not served in this slice).
   */
  reachedBy (filter: string): string | 'open' | undefined {
    const parts = filter.split('/')
    const values = new Map<string, string>()
    let reached = false
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i]!
      // the schema forbids mappings starting with $, so no name here is one a wildcard must not match [MQTT-4.7.2-1]
      if (part === '#') {
        reached = true
        break
      }
      const level = this.levels[i]
      if (level === undefined) return undefined
      if ('name' in level) {
        if (part === '+') continue
        const seen = values.get(level.name)
        if (seen !== undefined && seen !== part) return undefined
        values.set(level.name, part)
      } else if (part !== '+' && level.literal !== part) {
        return undefined
      }
    }
    if (!reached && parts.length !== this.levels.length) return undefined
    const topic = this.#topic.fill(values)
    return topic === undefined ? 'open' : topic
  }
}

/** [MQTT-4.7.1-2] and [MQTT-4.7.1-3]: '#' alone and last, '+' alone in its level; never empty [MQTT-4.7.3-1]. */
export function validFilter (filter: string): boolean {
  if (filter.length === 0 || filter.includes('\0')) return false
  const parts = filter.split('/')
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!
    if (part === '#') {
      if (i !== parts.length - 1) return false
    } else if (part === '+') {
      continue
    } else if (part.includes('#') || part.includes('+')) {
      return false
    }
  }
  return true
}

/** A topic name a client may publish to: no wildcard [MQTT-3.3.2-2], not empty [MQTT-4.7.3-1]. */
export function validName (name: string): boolean {
  return name.length > 0 && !/[+#\0]/.test(name)
}

/** Whether a topic name matches a filter; $-names are never matched by a leading wildcard [MQTT-4.7.2-1]. */
export function matches (filter: string, name: string): boolean {
  return matchesLevels(filter.split('/'), name.split('/'))
}

/** `matches` on names and filters already split at '/': what a session compares per delivered frame. */
export function matchesLevels (f: readonly string[], n: readonly string[]): boolean {
  if (n[0]!.startsWith('$') && (f[0] === '+' || f[0] === '#')) return false
  for (let i = 0; i < f.length; i++) {
    const part = f[i]!
    // 'sport/#' matches 'sport' too (MQTT 4.7.1.2)
    if (part === '#') return true
    if (i >= n.length) return false
    if (part !== '+' && part !== n[i]) return false
  }
  return f.length === n.length
}

/** Every product's mappings, compiled once per policy document. */
export class Mappings {
  readonly #source: MappingSource
  #document: unknown
  #all: CompiledMapping[] = []

  constructor (source: MappingSource) {
    this.#source = source
  }

  #current (): void {
    const document = this.#source.document
    if (document === this.#document) return
    this.#document = document
    this.#all = []
    for (const [product, doc] of Object.entries(document?.products ?? {})) {
      for (const m of doc.mqtt ?? []) {
        this.#all.push(new CompiledMapping({ product, ...m }))
      }
    }
  }

  /** The Kafka record an MQTT topic name is (the first mapping that fits), or undefined. */
  toRecord (name: string): { topic: string, key: string, product: string } | undefined {
    this.#current()
    for (const m of this.#all) {
      const record = m.toRecord(name)
      if (record) return { ...record, product: m.product }
    }
    return undefined
  }

  /** The MQTT topic name of a record (the first mapping of its topic whose key fits), or undefined. */
  toName (topic: string, key: string | undefined): string | undefined {
    this.#current()
    for (const m of this.#all) {
      const name = m.toName(topic, key)
      if (name !== undefined) return name
    }
    return undefined
  }

  /** The Kafka topics a subscription filter reaches, and whether some mapping it reaches leaves its topic open. */
  reachedBy (filter: string): { topics: string[], open: boolean } {
    this.#current()
    const topics = new Set<string>()
    let open = false
    for (const m of this.#all) {
      const reached = m.reachedBy(filter)
      if (reached === 'open') open = true
      else if (reached !== undefined) topics.add(reached)
    }
    return { topics: [...topics], open }
  }
}
