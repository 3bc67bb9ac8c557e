// pino settings for the ingest app: JSON logs. The feed code logs a feed's
// name and host only, never its URL, headers, token or subscription messages;
// the redaction below is the second line, for anything that logs a config.
const CENSOR = '[REDACTED]'

export function loggerOptions (level: string) {
  return {
    level,
    redact: {
      paths: [
        'headers',
        'token',
        'url',
        'subscribe',
        '*.headers',
        '*.token',
        '*.subscribe',
        'feed.url',
        'config.feeds[*].url',
        'config.feeds[*].headers',
        'config.feeds[*].subscribe',
        'feeds[*].url',
        'feeds[*].headers',
        'feeds[*].subscribe',
        '*.authorization',
        '*.password',
        '*.secret'
      ],
      censor: CENSOR
    }
  }
}
