// Fastify-free: the query string of an upgrade to /v2/broker/, as Fastify's
// parser leaves it (URL-decoded, `+` as a space, a parameter without `=` as an
// empty string, a repeated one as an array; the auth plugin reads credentials
// from the same parse). The Java server split the raw query on `&` and `=`
// itself: it did not decode, and a parameter without `=` failed the open.
//
//   topics=a,b      subscribe; absent or empty: produce only. Repeated: the lists are joined.
//   group.id=g      share the topics' records with the other sockets of group g (of the same
//                   subject); absent or empty: this socket sees every record. Ignored without topics.
// Anything else (access_token, api_key, parameters old clients add) is ignored here.
import { topicList, type Refusal } from '@sluice/sessions'

// Kafka takes any string as a group id; old clients used whatever they liked.
// Printable ASCII keeps it safe in logs and metric labels; 128 characters as on /v1/stream.
const GROUP_ID = /^[\x21-\x7e]{1,128}$/

export interface BrokerQuery {
  topics: string[]
  /** the client's group name; the caller namespaces it per subject */
  group?: string
}

function values (value: unknown): string[] {
  if (value === undefined) return []
  return (Array.isArray(value) ? value : [value]).filter((v): v is string => typeof v === 'string')
}

export function brokerQuery (query: Record<string, unknown>): BrokerQuery | Refusal {
  const topics = topicList(values(query.topics).flatMap(list => list.split(',')).map(name => name.trim()))
  if (!Array.isArray(topics)) return topics
  const groups = values(query['group.id'])
  if (groups.length > 1) return { status: 400, code: 'BAD_REQUEST', message: 'group.id may appear once' }
  const group = groups[0]
  if (group === undefined || group === '' || topics.length === 0) return { topics }
  if (!GROUP_ID.test(group)) return { status: 400, code: 'BAD_REQUEST', message: 'group.id must be 1 to 128 printable ASCII characters' }
  return { topics, group }
}
