// The gateway's config schema: every key, its range, its default and the
// reason for it (the comment above each key, which docs/reference.md shows).
// It lives here, not in apps/gateway, so that a plugin's fallback for when it
// is used without a loaded config (a test that builds it alone) is
// `gatewayDefaults`, read from this schema, rather than a second literal:
// each default is written once, below. `GatewayConfig`, the loaded config's
// type, is derived from the schema (json-schema-to-ts), never written beside it.
import type { FromSchema } from 'json-schema-to-ts'
import { schemaDefaults } from './defaults.ts'
import { kafkaSchema, logSchema, serverSchema } from './schemas.ts'

export const JWT_ALGORITHMS = ['HS256', 'HS384', 'HS512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'] as const

export const gatewayConfigSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    server: {
      ...serverSchema(8080),
      properties: {
        ...serverSchema(8080).properties,
        // SIGTERM: the drain (drainMs), then what is still in flight (publishes wait up to stream.publishTimeoutMs)
        // and closing Kafka and Redis; 25 s stays under Kubernetes' default grace of 30 s before its SIGKILL
        shutdownTimeoutMs: { type: 'integer', minimum: 100, maximum: 600_000, default: 25_000 },
        // SIGTERM closes the sockets with 1001 spread over this window: 10 s turns 10,000 sockets into
        // 1,000 reconnects a second on the other nodes rather than 10,000 at once; 0 closes them all at once
        drainMs: { type: 'integer', minimum: 0, maximum: 300_000, default: 10_000 },
        // a client has this long to send its request (or upgrade) headers: a real one needs milliseconds; a slowloris holds a socket
        handshakeTimeoutMs: { type: 'integer', minimum: 100, maximum: 120_000, default: 10_000 },
        // connections the kernel completes before the gateway accepts them. A node's clients reconnect at once when
        // another node dies (SIGKILL, a crash: no drain spreads them): Node's default of 511 overflows and the
        // rest wait for SYN retransmits (1 s, then 3 s). 4096 is Linux's net.core.somaxconn default since 5.4,
        // which also caps it: past that sysctl the kernel quietly uses the sysctl's value. At most 65,535: older
        // kernels kept it in 16 bits, where a larger one wrapped (262,144 became 0)
        listenBacklog: { type: 'integer', minimum: 1, maximum: 65_535, default: 4096 },
        // listening sockets on the port (SO_REUSEPORT), each with an accept queue of listenBacklog: the kernel spreads
        // connections over them, so 2 queue twice as many without raising net.core.somaxconn. 5,000 clients resuming
        // on one node overflowed one queue of 4096 in most runs (bench/drain-resume.ts); 1 is one socket, as before.
        // At most 16: each is one more file descriptor, and a burst spreads over them by hash, not by need
        listenSockets: { type: 'integer', minimum: 1, maximum: 16, default: 2 }
      }
    },
    log: logSchema,
    kafka: kafkaSchema('sluice-gateway'),
    redis: {
      type: 'object',
      additionalProperties: false,
      required: ['url'],
      properties: {
        url: { type: 'string', pattern: '^rediss?://' },
        timeoutMs: { type: 'integer', minimum: 50, maximum: 10_000, default: 500 }
      }
    },
    dev: {
      type: 'object',
      additionalProperties: false,
      required: ['token'],
      properties: {
        // 32 characters at least: a dev credential is still a credential
        token: { type: 'string', minLength: 32 }
      }
    },
    auth: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        // browser Origins allowed on authenticated routes; none by default (clients without Origin are not browsers)
        origins: {
          type: 'array',
          default: [],
          maxItems: 100,
          items: { type: 'string', pattern: '^(\\*|null|[a-z][a-z0-9+.-]*://(\\*\\.)?[^/\\s*]+)$' }
        },
        jwt: {
          type: 'object',
          additionalProperties: false,
          default: {},
          properties: {
            audience: { type: 'array', default: [], maxItems: 20, items: { type: 'string', minLength: 1, maxLength: 1024 } },
            // small: exp and nbf are trusted this far past; beyond 5 minutes the clocks are broken, not skewed
            clockSkewSeconds: { type: 'integer', minimum: 0, maximum: 300, default: 30 },
            issuers: {
              type: 'array',
              default: [],
              // a gateway trusts a handful of IdPs; each one is a key source to keep fresh
              maxItems: 20,
              items: {
                type: 'object',
                additionalProperties: false,
                required: ['issuer', 'algorithms'],
                properties: {
                  issuer: { type: 'string', minLength: 1, maxLength: 1024 },
                  algorithms: { type: 'array', minItems: 1, uniqueItems: true, items: { enum: JWT_ALGORITHMS } },
                  // https, or http on loopback only (local IdPs in tests): keys over plain HTTP can be swapped on the way
                  jwksUri: { type: 'string', pattern: '^(https://|http://(127\\.0\\.0\\.1|localhost|\\[::1\\])[:/])' },
                  publicKey: { type: 'string', minLength: 1 },
                  secret: { type: 'string', minLength: 32 }
                }
              }
            },
            jwks: {
              type: 'object',
              additionalProperties: false,
              default: {},
              properties: {
                // an unknown kid refetches at most this often (jose's default)
                cooldownMs: { type: 'integer', minimum: 1000, maximum: 3_600_000, default: 30_000 },
                // known keys are refreshed in the background past this age (jose's default)
                maxAgeMs: { type: 'integer', minimum: 10_000, maximum: 86_400_000, default: 600_000 },
                // an upgrade waits at most this long for an IdP; they answer JWKS in well under a second
                timeoutMs: { type: 'integer', minimum: 100, maximum: 30_000, default: 3000 }
              }
            }
          }
        },
        apiKeys: {
          type: 'object',
          additionalProperties: false,
          default: {},
          properties: {
            // Redis key prefix, so that two gateways (or test suites) can share a Redis
            prefix: { type: 'string', pattern: '^[A-Za-z0-9:._-]{0,64}$', default: 'sluice:' },
            // the safety net behind pub/sub revocation; 4 s keeps docs/design.md's 5 s bound when a message is lost
            recheckIntervalMs: { type: 'integer', minimum: 500, maximum: 60_000, default: 4000 }
          }
        }
      }
    },
    policy: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        // relative to the working directory
        dir: { type: 'string', minLength: 1, default: 'policies' },
        watch: { type: 'boolean', default: true },
        // the poll behind inotify; 1 s keeps a withdrawal within docs/design.md's 2 s when no event arrives
        pollIntervalMs: { type: 'integer', minimum: 100, maximum: 60_000, default: 1000 }
      }
    },
    admin: {
      type: 'object',
      additionalProperties: false,
      required: ['token'],
      properties: {
        // the admin API exists only with a token; 32 characters of it at least
        token: { type: 'string', minLength: 32 }
      }
    },
    docs: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        // where clients reach /v1/stream, for the AsyncAPI document's server: ws(s)://host[:port] as seen
        // from outside (a load balancer's name); default ws://localhost:<server.port>
        publicUrl: { type: 'string', maxLength: 300, pattern: '^wss?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$' }
      }
    },
    rateLimit: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        // plans are limits sold to clients: off only for benchmarks and trusted single-tenant setups
        enabled: { type: 'boolean', default: true },
        // Redis unreachable: fail-open keeps serving under each node's local buckets (same limits, not shared);
        // fail-closed refuses (503 before the upgrade, 1013 after) until Redis answers again
        failure: { enum: ['fail-open', 'fail-closed'], default: 'fail-open' },
        prefix: { type: 'string', pattern: '^[A-Za-z0-9:._-]{0,64}$', default: 'sluice:rl:' },
        // docs/design.md: the failure mode applies within 500 ms; 300 leaves room for the decision itself
        decisionTimeoutMs: { type: 'integer', minimum: 20, maximum: 500, default: 300 },
        // after a Redis error decisions stay local this long, then Redis is asked again: once a second, recovery
        // is noticed fast and a hung Redis costs one slow decision per second
        probeIntervalMs: { type: 'integer', minimum: 100, maximum: 60_000, default: 1000 },
        // a delivery lease holds this much of the plan's per-second rates (fewer Redis calls vs tokens a node may
        // hoard): half a second, so a plan of 10/s still leases 5 at a time
        leaseMs: { type: 'integer', minimum: 50, maximum: 5000, default: 500 },
        // a dead node's connections free themselves after this (live nodes refresh every third of it)
        connectionTtlMs: { type: 'integer', minimum: 3000, maximum: 600_000, default: 30_000 },
        abuse: {
          type: 'object',
          additionalProperties: false,
          default: {},
          properties: {
            // publishes sent while told to wait before the socket is closed with 4029: 50 is a deep pipeline in
            // flight when the first error left; 5 are forgiven per second
            burst: { type: 'integer', minimum: 1, maximum: 100_000, default: 50 },
            leakPerSecond: { type: 'number', minimum: 0, maximum: 100_000, default: 5 }
          }
        },
        // a subject no policy rule grants anything: it may hold this many sockets (one, to be told what it may
        // not do) and do nothing with them
        unplanned: {
          type: 'object',
          additionalProperties: false,
          default: {},
          properties: {
            connections: { type: 'integer', minimum: 0, maximum: 1000, default: 1 },
            connectsPerMinute: { type: 'integer', minimum: 0, maximum: 100_000, default: 6 }
          }
        },
        // @fastify/rate-limit per client address on upgrade requests and the admin API
        http: {
          type: 'object',
          additionalProperties: false,
          default: {},
          properties: {
            enabled: { type: 'boolean', default: true },
            upgrade: {
              type: 'object',
              additionalProperties: false,
              default: {},
              properties: {
                // per address: reconnect storms behind one NAT stay under it; a flood does not
                max: { type: 'integer', minimum: 1, maximum: 10_000_000, default: 600 },
                timeWindowMs: { type: 'integer', minimum: 1000, maximum: 86_400_000, default: 60_000 }
              }
            },
            admin: {
              type: 'object',
              additionalProperties: false,
              default: {},
              properties: {
                // an operator's scripts, not a client population
                max: { type: 'integer', minimum: 1, maximum: 10_000_000, default: 300 },
                timeWindowMs: { type: 'integer', minimum: 1000, maximum: 86_400_000, default: 60_000 }
              }
            },
            // the other public routes (catalogue, API documents, /docs, /portal); probes and /metrics never
            public: {
              type: 'object',
              additionalProperties: false,
              default: {},
              properties: {
                // a developer's page load is about 20 requests, so a NAT of developers reloading stays under
                // 20/s; a scraper's flood does not
                max: { type: 'integer', minimum: 1, maximum: 10_000_000, default: 1200 },
                timeWindowMs: { type: 'integer', minimum: 1000, maximum: 86_400_000, default: 60_000 }
              }
            }
          }
        }
      }
    },
    stream: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        // names this node in the hub's logs and in its rate-limit leases in Redis (default: the host name)
        nodeId: { type: 'string', pattern: '^[a-zA-Z0-9_-]{1,64}$' },
        // docs/design.md: 1 MiB by default; a larger frame closes with 1009
        maxFrameBytes: { type: 'integer', minimum: 1024, maximum: 16 * 1024 * 1024, default: 1024 * 1024 },
        // per-socket send queue: 256 KiB is about 1,000 frames of a 256-byte record; 10,000 stuck sockets then
        // hold at most 2.5 GiB
        maxQueueBytes: { type: 'integer', minimum: 16 * 1024, maximum: 64 * 1024 * 1024, default: 256 * 1024 },
        keepaliveMs: { type: 'integer', minimum: 1000, maximum: 300_000, default: 30_000 },
        // a socket with no subscription that sends nothing for this long is closed (1000):
        // 5 minutes with nothing subscribed and nothing sent is a forgotten tab
        idleTimeoutMs: { type: 'integer', minimum: 1000, maximum: 86_400_000, default: 300_000 },
        // client frames that fail validation before the socket is closed with 1008: a buggy client gets
        // 20 errors to notice; a hostile one is cut off after them
        invalidFrameBurst: { type: 'integer', minimum: 1, maximum: 1000, default: 20 },
        // a socket's publishes share the node's produce requests (packages/kafka/src/publish-batcher.ts): 64 read
        // and unanswered per socket keep one request well filled (bench/publish.ts: 9,478/s over one socket) and
        // bound what a client that stops reading its acks can make the node hold
        maxInflightPublishes: { type: 'integer', minimum: 1, maximum: 10_000, default: 64 },
        // a publish Kafka has not acked by then is answered UNAVAILABLE: the shared producer gives up after
        // ~5 s of retries; 10 s covers that and a slow acks=all
        publishTimeoutMs: { type: 'integer', minimum: 100, maximum: 120_000, default: 10_000 },
        consumerGraceMs: { type: 'integer', minimum: 0, maximum: 600_000, default: 5000 },
        // how soon a new topic reaches pattern subscriptions: one Metadata request per node per period
        topicRefreshMs: { type: 'integer', minimum: 100, maximum: 600_000, default: 5000 },
        // bytes of each topic's window of recent records, which a resume or earliest inside it is served from
        // with no Kafka request; 0 keeps none. 1 MiB is four times a socket's default send queue (256 KiB): a
        // socket that hears `lagging` and resumes at once, or one that reconnects, finds what its queue held and
        // what arrived while it was away, at a topic's usual rate (at 200 records/s of ~1 KiB framed, 5 s)
        resumeWindowBytes: { type: 'integer', minimum: 0, maximum: 1024 * 1024 * 1024, default: 1024 * 1024 },
        // how long a record stays in its topic's window after the live feed dispatched it: 60 s outlasts a
        // node's drain (server.drainMs) and the reconnect backoff of clients that follow it; past a minute, a
        // resume may pay for one Kafka fetch
        resumeWindowMs: { type: 'integer', minimum: 0, maximum: 3_600_000, default: 60_000 },
        // all topics' windows together on one node: past it, the node's oldest records go first, whatever their
        // topic. 256 MiB: 256 busy topics at their full window, or a few thousand quiet ones; a quarter of a
        // 1 GiB container, the rest left to sockets' send queues and the heap's own needs
        resumeWindowNodeBytes: { type: 'integer', minimum: 0, maximum: 64 * 1024 * 1024 * 1024, default: 256 * 1024 * 1024 }
      }
    },
    // MQTT (plugins/mqtt): GET /mqtt is always there; plain TCP only on a port of its own
    mqtt: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        // MQTT over plain TCP on this port (1883 is MQTT's registered one), on server.host; 0: no listener.
        // TLS (8883) is the platform's, as for the other routes
        tcpPort: { type: 'integer', minimum: 0, maximum: 65_535, default: 0 },
        // the compacted Kafka topic of retained messages, keyed by MQTT topic name (created if absent)
        retainedTopic: { type: 'string', minLength: 1, maxLength: 249, default: 'sluice.mqtt.retained' },
        // bytes of retained messages each node holds (all of them, read from the topic): past it a retained
        // PUBLISH of a new topic is refused with 0x97; 64 MiB is ~60,000 retained messages of 1 KiB
        // (plugins/mqtt/src/retained.ts gives the reasons)
        retainedMaxBytes: { type: 'integer', minimum: 0, maximum: 4 * 1024 * 1024 * 1024, default: 64 * 1024 * 1024 },
        // MQTT 5 topic aliases a client may set on one connection (CONNACK Topic Alias Maximum); 0: none (an
        // alias is then DISCONNECT 0x94). 16: a device's few topics (telemetry, status) each sent by alias; each
        // alias holds one topic name of at most 64 KiB, so 16 hold at most 1 MiB a connection, the size of the
        // one packet it may already have in flight. 65,535 is the two-byte property's own bound
        topicAliasMaximum: { type: 'integer', minimum: 0, maximum: 65_535, default: 16 },
        // the compacted Kafka topic of persistent sessions (subscriptions, per-partition positions, QoS 1
        // deliveries not yet acknowledged) and of takeover claims, keyed by client id (created if absent;
        // plugins/mqtt/src/persistence.ts gives the reasons)
        sessionsTopic: { type: 'string', minLength: 1, maxLength: 249, default: 'sluice.mqtt.sessions' }
      }
    },
    // usage metering (plugins/usage): per application and product, per period and UTC day, in Redis, and each
    // closed period as CloudEvents on a Kafka topic for billing; on wherever Redis is configured
    usage: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        // off: no counting, no usage routes (they answer 404 SLUICE_APPS_USAGE_DISABLED), no events
        enabled: { type: 'boolean', default: true },
        // where closed periods' usage events go (created if absent), one per application, product and period
        topic: { type: 'string', minLength: 1, maxLength: 249, default: 'sluice.usage' },
        // a period's length: an hour, as billing systems price; shorter ones (dividing a day, so that periods
        // fall on UTC days) for near-real-time billing and for tests
        periodSeconds: { type: 'integer', enum: [1, 2, 5, 10, 15, 30, 60, 300, 600, 900, 1800, 3600], default: 3600 },
        // how often a node writes its counts to Redis (one script call, and at each period's end whatever this
        // says): a node killed without a flush loses at most this much of the open period's counts. Each
        // application with sockets on the node costs Redis ~6 commands a flush: at 5 s, 1.2 a second, under 0.01
        // per delivered message from 120 messages/s per application up (bench/fanout.ts, docs/performance.md)
        flushMs: { type: 'integer', minimum: 100, maximum: 60_000, default: 5000 },
        // a closed period's events are written this long after it ends: every live node has flushed it at its
        // end, and 30 s covers a node whose timers ran late on a busy event loop or whose clock is a few s off;
        // a flush later than that counts in the period open at the time (nothing lost, nothing twice)
        graceMs: { type: 'integer', minimum: 0, maximum: 3_600_000, default: 30_000 },
        // Redis keys of the aggregates
        prefix: { type: 'string', minLength: 1, maxLength: 64, default: 'sluice:usage:' }
      }
    },
    // the developer portal (plugins/portal): without `oidc` it has no sign-in and its developer panel says so
    portal: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        // developers sign in with the organisation's OpenID Connect provider (authorization code + PKCE)
        oidc: {
          type: 'object',
          additionalProperties: false,
          required: ['issuer', 'clientId', 'redirectUrl', 'cookieSecret'],
          properties: {
            // the one issuer allowed (its discovery document is read from here); https, or http on loopback only
            // (dev mode's and the tests' local provider): tokens over plain HTTP can be read on the way
            issuer: { type: 'string', maxLength: 1024, pattern: '^(https://|http://(127\\.0\\.0\\.1|localhost|\\[::1\\])[:/])' },
            // the portal as the provider knows it (registered there with redirectUrl)
            clientId: { type: 'string', minLength: 1, maxLength: 256 },
            // none: a public client, PKCE alone binds the code to this sign-in; a secret may be `${env:NAME}`
            clientSecret: { type: 'string', minLength: 1, maxLength: 1024 },
            // the gateway's own /portal/callback as the provider knows it; its origin is the one developer
            // requests sent with the session cookie must come from (the CSRF check)
            redirectUrl: { type: 'string', maxLength: 1024, pattern: '^https?://[^/\\s]+/portal/callback$' },
            // signs the session and sign-in cookies (HMAC-SHA256): 32 characters at least, a `${env:NAME}`
            cookieSecret: { type: 'string', minLength: 32 },
            // a session is not renewed silently: 8 hours, a working day, so a developer the organisation
            // removes at its provider loses the portal by the next morning at the latest
            sessionSeconds: { type: 'integer', minimum: 60, maximum: 7 * 86_400, default: 8 * 3600 }
          }
        }
      }
    }
  }
} as const

/** The gateway's config as loaded: every defaulted key present, the sections without a default optional. */
export type GatewayConfig = FromSchema<typeof gatewayConfigSchema>

/** Every default of the schema, frozen: what a plugin falls back on when it is given no value. */
export const gatewayDefaults = schemaDefaults(gatewayConfigSchema)
