// The JSON Schema of one policy file. Defaults live here. Cross-file checks
// (a rule naming an unknown plan, a topic outside its product) are in policy.ts.

// Names appear in metrics labels, URLs and AsyncAPI channel ids: short, lower-case, no spaces.
// (Plan and product names, the keys of their maps, are checked in policy.ts with a clearer message.)
const name = { type: 'string', pattern: '^[a-z0-9][a-z0-9_-]{0,62}$' }
// Kafka topic names are at most 249 characters of [A-Za-z0-9._-]; patterns add `*` and `{claim}`.
const topicPattern = { type: 'string', minLength: 1, maxLength: 249, pattern: '^[A-Za-z0-9._*{}-]+$' }
// up to a billion per unit: a limit, not a counter; larger numbers are typos
const limit = { type: 'integer', minimum: 0, maximum: 1_000_000_000 }
const text = { type: 'string', maxLength: 4000 }
const claimValue = { type: ['string', 'number', 'boolean'] }

// Bounds that keep a reload and every authorize() cheap, and catch a runaway generator.
export const MAX_PLANS = 1000
export const MAX_PRODUCTS = 1000
export const MAX_RULES = 10_000
export const MAX_TOPICS_PER_PRODUCT = 1000
export const MAX_PATTERNS_PER_RULE = 100
// A product's resume window (plugins/hub/src/window.ts), per topic and node; the same ceilings as the gateway's
// stream.resumeWindowBytes and resumeWindowMs. 1 GiB is four times a node's whole default budget (256 MiB), which
// bounds every window anyway: more is a typo (bits for bytes, a missing unit). An hour: a client away longer
// resumes once, and one Kafka fetch (milliseconds) is nothing against that; a window kept longer only holds memory.
export const MAX_RESUME_WINDOW_BYTES = 1024 * 1024 * 1024
export const MAX_RESUME_WINDOW_MS = 3_600_000

/** Every limit a plan sets, in the order documents list them; all required, so that no plan is unlimited by omission. */
export const PLAN_LIMIT_NAMES = ['connections', 'connectsPerMinute', 'deliveredPerSecond', 'publishedPerSecond', 'bytesPerSecond', 'dailyQuota'] as const

/** The schema of a plan's `limits`, each limit described by `value`: the policy's own, and the catalogue's response. */
export function planLimitsSchema (value: Record<string, unknown>) {
  return {
    type: 'object',
    additionalProperties: false,
    required: [...PLAN_LIMIT_NAMES],
    properties: Object.fromEntries(PLAN_LIMIT_NAMES.map(name => [name, value]))
  }
}

export const planSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['limits'],
  properties: {
    title: text,
    description: text,
    // how a subscription to the plan starts (plugins/apps): auto is active at once, manual waits for an admin
    approval: { enum: ['auto', 'manual'], default: 'auto' },
    limits: planLimitsSchema(limit)
  }
}

// A transform module (plugins/policy/src/transforms.ts): a path relative to the
// policy file, or { module, options } for a module that exports configure(options).
const transformReference = {
  type: ['string', 'object'],
  minLength: 1,
  maxLength: 1024,
  additionalProperties: false,
  required: ['module'],
  properties: {
    module: { type: 'string', minLength: 1, maxLength: 1024 },
    options: { type: 'object' }
  }
}

export const productSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['plans', 'topics'],
  properties: {
    title: text,
    description: text,
    plans: { type: 'array', minItems: 1, maxItems: 100, items: name },
    topics: {
      type: 'array',
      minItems: 1,
      maxItems: MAX_TOPICS_PER_PRODUCT,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['pattern'],
        properties: {
          pattern: topicPattern,
          encoding: { enum: ['json', 'text', 'base64'], default: 'json' },
          slowClient: { enum: ['lagging', 'evict'], default: 'lagging' },
          description: text,
          // the message schema, shown in the portal and AsyncAPI; not enforced here
          schema: { type: 'object' }
        }
      }
    },
    // how much of its topics' recent records each node keeps for resumes, written from memory with no Kafka
    // request (plugins/hub/README.md); a bound left out is the gateway's (stream.resumeWindowBytes, resumeWindowMs)
    resume: {
      type: 'object',
      additionalProperties: false,
      properties: {
        // bytes of records and their frames per topic, all partitions; 0 keeps none
        windowBytes: { type: 'integer', minimum: 0, maximum: MAX_RESUME_WINDOW_BYTES },
        // how long a record stays after the live feed dispatched it; 0 keeps none
        windowMs: { type: 'integer', minimum: 0, maximum: MAX_RESUME_WINDOW_MS }
      }
    },
    // MQTT (GET /mqtt, plugins/mqtt): which MQTT topics are which Kafka topic's records. `filter` is an MQTT topic
    // name with {name} levels; `key` builds the record key from the same names (sensors/{device}/temp with key
    // {device}: sensors/d1/temp is key d1 of sensors.temp); as many as a product may have topics
    mqtt: {
      type: 'array',
      maxItems: MAX_TOPICS_PER_PRODUCT,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['filter', 'topic', 'key'],
        properties: {
          // levels of letters, digits, _ - . or one {name}; no wildcard, no leading $ (wildcards never match $-topics)
          filter: { type: 'string', maxLength: 256, pattern: '^(?!\\$)([A-Za-z0-9_.-]+|\\{[a-z][a-z0-9_]{0,31}\\})(/([A-Za-z0-9_.-]+|\\{[a-z][a-z0-9_]{0,31}\\}))*$' },
          // the Kafka topic a message to the MQTT topic is written to: a name, or one with {name} parts of the filter
          // ('devices.{device}'), so that the rules' per-topic ACL ('devices.{sub}') reaches MQTT topics too
          topic: { type: 'string', minLength: 1, maxLength: 249, pattern: '^([A-Za-z0-9._-]|\\{[a-z][a-z0-9_]{0,31}\\})+$' },
          key: { type: 'string', minLength: 1, maxLength: 256 }
        }
      }
    },
    // kafka-websocket compatibility (/v2/broker/): rewrite or discard messages on the way in and out
    transforms: {
      type: 'object',
      additionalProperties: false,
      properties: { input: transformReference, output: transformReference }
    }
  }
}

export const ruleSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'product', 'plan'],
  properties: {
    name,
    description: text,
    product: name,
    plan: name,
    match: {
      type: 'object',
      additionalProperties: false,
      properties: {
        kinds: { type: 'array', minItems: 1, uniqueItems: true, items: { enum: ['jwt', 'api-key', 'dev'] } },
        claims: {
          type: 'object',
          maxProperties: 20,
          additionalProperties: {
            anyOf: [claimValue, { type: 'array', minItems: 1, maxItems: 100, items: claimValue }]
          }
        }
      }
    },
    subscribe: { type: 'array', maxItems: MAX_PATTERNS_PER_RULE, items: topicPattern },
    publish: { type: 'array', maxItems: MAX_PATTERNS_PER_RULE, items: topicPattern }
  }
}

export const policyFileSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    version: { const: 1 },
    plans: { type: 'object', maxProperties: MAX_PLANS, additionalProperties: planSchema },
    products: { type: 'object', maxProperties: MAX_PRODUCTS, additionalProperties: productSchema },
    rules: { type: 'array', maxItems: MAX_RULES, items: ruleSchema }
  }
} as const

export type Encoding = 'json' | 'text' | 'base64'
export type SlowClient = 'lagging' | 'evict'

/** A plan's limits: one number per name of PLAN_LIMIT_NAMES. */
export type PlanLimits = Record<(typeof PLAN_LIMIT_NAMES)[number], number>

export interface PlanDocument {
  title?: string
  description?: string
  /** filled in with its default ('auto') when the policy loads */
  approval?: 'auto' | 'manual'
  limits: PlanLimits
}

export interface ProductTopicDocument {
  pattern: string
  encoding: Encoding
  slowClient: SlowClient
  description?: string
  schema?: Record<string, unknown>
}

export type TransformReferenceDocument = string | { module: string, options?: Record<string, unknown> }

/** How much of a product's topics' recent records each node keeps for resumes; a bound left out is the gateway's. */
export interface ResumeWindowDocument {
  windowBytes?: number
  windowMs?: number
}

export interface ProductDocument {
  title?: string
  description?: string
  plans: string[]
  topics: ProductTopicDocument[]
  resume?: ResumeWindowDocument
  transforms?: { input?: TransformReferenceDocument, output?: TransformReferenceDocument }
  mqtt?: MqttMappingDocument[]
}

/** One MQTT topic pattern of a product and the Kafka topic (and key) its messages are. */
export interface MqttMappingDocument {
  filter: string
  topic: string
  key: string
}

export interface RuleDocument {
  name: string
  description?: string
  product: string
  plan: string
  match?: {
    kinds?: Array<'jwt' | 'api-key' | 'dev'>
    claims?: Record<string, string | number | boolean | Array<string | number | boolean>>
  }
  subscribe?: string[]
  publish?: string[]
}

export interface PolicyFileDocument {
  version?: 1
  plans?: Record<string, PlanDocument>
  products?: Record<string, ProductDocument>
  rules?: RuleDocument[]
}
