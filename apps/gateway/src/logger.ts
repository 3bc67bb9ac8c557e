// pino settings for the gateway: JSON logs with every credential redacted,
// including the ones browsers must put in the query string or subprotocol.
import type { FastifyRequest } from 'fastify'

const CENSOR = '[REDACTED]'
// query parameters that carry credentials (docs/design.md: stream API)
const SECRET_QUERY_PARAMS = ['access_token', 'api_key', 'token']

/** The URL with every credential-bearing query value replaced; the rest kept for debugging. */
export function redactUrl (url: string): string {
  const q = url.indexOf('?')
  if (q === -1) return url
  const params = url.slice(q + 1).split('&').map(part => {
    const eq = part.indexOf('=')
    const rawName = eq === -1 ? part : part.slice(0, eq)
    let name: string
    try {
      name = decodeURIComponent(rawName.replaceAll('+', ' ')).toLowerCase()
    } catch {
      // undecodable: keep the name but never the value
      return eq === -1 ? part : `${rawName}=${CENSOR}`
    }
    return eq !== -1 && SECRET_QUERY_PARAMS.includes(name) ? `${rawName}=${CENSOR}` : part
  })
  return url.slice(0, q + 1) + params.join('&')
}

export function loggerOptions (level: string) {
  return {
    level,
    redact: {
      paths: [
        'req.headers.authorization',
        'req.headers["x-api-key"]',
        'req.headers["sec-websocket-protocol"]',
        'req.headers.cookie',
        'headers.authorization',
        'headers["x-api-key"]',
        'headers["sec-websocket-protocol"]',
        'headers.cookie',
        '*.token',
        '*.password',
        '*.secret'
      ],
      censor: CENSOR
    },
    serializers: {
      req (request: FastifyRequest) {
        return {
          method: request.method,
          url: redactUrl(request.url),
          host: request.host,
          remoteAddress: request.ip
        }
      }
    }
  }
}
