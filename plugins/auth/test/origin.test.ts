// The Origin allow-list: exact origins, subdomain wildcards, `*`; pure logic.
import { test } from 'tap'
import { compileOrigins, originAllowed } from '../src/origin.ts'

test('origins', async t => {
  const rule = compileOrigins(['https://app.example.com', 'https://*.example.org', 'http://localhost:3000/'])
  t.ok(originAllowed(undefined, rule), 'no Origin: not a browser, not checked here')
  t.ok(originAllowed('https://app.example.com', rule))
  t.ok(originAllowed('HTTPS://APP.EXAMPLE.COM', rule), 'case-insensitive')
  t.ok(originAllowed('http://localhost:3000', rule), 'a trailing slash in the entry is ignored')
  t.ok(originAllowed('https://a.example.org', rule))
  t.ok(originAllowed('https://a.b.example.org', rule))
  t.notOk(originAllowed('https://example.org', rule), 'a wildcard is subdomains only')
  t.notOk(originAllowed('http://a.example.org', rule), 'the scheme counts')
  t.notOk(originAllowed('https://app.example.com.evil.net', rule), 'no suffix tricks')
  t.notOk(originAllowed('https://evilexample.org', rule))
  t.notOk(originAllowed('https://a.example.org:8443', rule), 'nor another port')
  t.notOk(originAllowed('null', rule), 'null only when listed')
  t.notOk(originAllowed(['https://app.example.com', 'https://evil.net'], rule), 'two Origin headers')
  t.notOk(originAllowed('https://' + 'a.'.repeat(200) + 'example.org', rule), 'an absurd length')
  t.notOk(originAllowed('https://app.example.com', compileOrigins([])), 'none allowed by default')
  t.ok(originAllowed('https://anything.example', compileOrigins(['*'])))
  t.ok(originAllowed('null', compileOrigins(['null'])))
})
