// Kafka's own rule for topic names (kafka.common.internals.Topic), declared
// once: JSON Schemas (the admin API, the AsyncAPI frames) use the pattern,
// code uses isTopicName. Names are at most 249 characters of [A-Za-z0-9._-],
// so none of "@:,;" occurs in them and a resume cursor needs no escaping.
export const TOPIC_NAME_PATTERN = '^[A-Za-z0-9._-]{1,249}$'
const TOPIC_NAME = new RegExp(TOPIC_NAME_PATTERN)

export function isTopicName (topic: unknown): topic is string {
  return typeof topic === 'string' && TOPIC_NAME.test(topic) && topic !== '.' && topic !== '..'
}
