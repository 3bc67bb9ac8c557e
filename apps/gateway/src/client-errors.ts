// What a client gets when Node's HTTP parser refuses its request, before any
// route or hook sees it: a request line with a space or a control character in
// its target, a bad header line, more than --max-http-header-size (16 KiB) of
// request line and headers, a request not received within requestTimeout. The
// answer is the gateway's refusal body, `{"error":{"code","message"}}` with a
// code of the catalogue (errors.ts), then the connection ends, as Fastify's own
// handler does: a parser that lost its place in the byte stream cannot read a
// next request on it.
import { maxHeaderSize, STATUS_CODES } from 'node:http'
import type { Socket } from 'node:net'
import type { FastifyError, FastifyInstance } from 'fastify'
import { HeadersTooLargeError, MalformedRequestError, RequestTimeoutError } from './errors.ts'

/** The refusal for a parser error: Node's `code` (HPE_* from llhttp, or ERR_HTTP_REQUEST_TIMEOUT) picks it. */
export function clientRefusal (err: NodeJS.ErrnoException, requestTimeoutMs: number): FastifyError {
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') return new RequestTimeoutError(requestTimeoutMs)
  if (err.code === 'HPE_HEADER_OVERFLOW') return new HeadersTooLargeError(maxHeaderSize)
  // llhttp's codes are short ASCII names (HPE_INVALID_CHARACTER, HPE_INVALID_METHOD, ...): safe to echo
  const code = typeof err.code === 'string' && /^[A-Z_]{1,40}$/.test(err.code) ? err.code : 'unreadable'
  return new MalformedRequestError(code)
}

/** Fastify's `clientErrorHandler`: bound to the instance, called with the parser's error and the raw socket. */
export function clientErrorHandler (this: FastifyInstance, err: NodeJS.ErrnoException, socket: Socket): void {
  // a reset connection has nobody to answer
  if (err.code === 'ECONNRESET' || socket.destroyed) return
  const refusal = clientRefusal(err, this.server.requestTimeout)
  this.log.debug({ err: { code: err.code, message: err.message } }, 'a request Node\'s HTTP parser refused')
  if (socket.writable) {
    const body = JSON.stringify({ error: { code: refusal.code, message: refusal.message } })
    const status = refusal.statusCode ?? 400
    socket.write(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`)
  }
  socket.destroy()
}
