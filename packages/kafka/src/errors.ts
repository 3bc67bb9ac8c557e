import createError from '@fastify/error'

// The Kafka module's error catalogue. Codes are never reused; tests assert on `code`.
export const KafkaUnavailableError = createError('SLUICE_KAFKA_UNAVAILABLE', 'Kafka is unavailable: %s', 503)
export const KafkaTimeoutError = createError('SLUICE_KAFKA_TIMEOUT', 'Kafka did not answer within %d ms (a record it was sent may still be written)', 503)
// Outside dev mode nothing creates topics (brokers run with auto-create off): the message says how
export const KafkaUnknownTopicError = createError('SLUICE_KAFKA_UNKNOWN_TOPIC', 'Topic "%s" does not exist (an operator creates topics with `sluice topics create`, or the admin API)', 404)
export const KafkaTooLargeError = createError('SLUICE_KAFKA_TOO_LARGE', 'Record too large for topic "%s"', 413)
export const KafkaClosedError = createError('SLUICE_KAFKA_CLOSED', 'The Kafka client is closed', 503)
