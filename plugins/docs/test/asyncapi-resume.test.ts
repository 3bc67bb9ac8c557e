// A product's resume window shows in its channels of the AsyncAPI document (a
// sentence for the client developer and x-sluice-resume-window as the policy
// says it) and on its topics in the catalogue the portal shows; nothing where
// the product sets none (the gateway's window then).
import { test } from 'tap'
import type { PolicyDocument } from '@sluice/policy'
import type { ResumeWindowDocument } from '@sluice/policy/schema'
import { asyncapiDocument } from '../src/asyncapi.ts'
import { catalogue } from '../src/catalogue.ts'

const LIMITS = { connections: 1, connectsPerMinute: 1, deliveredPerSecond: 1, publishedPerSecond: 1, bytesPerSecond: 1, dailyQuota: 1 }

function policy (resume: ResumeWindowDocument | undefined): PolicyDocument {
  return {
    plans: { free: { limits: LIMITS } },
    products: { market: { plans: ['free'], topics: [{ pattern: 'prices.btc', encoding: 'json', slowClient: 'lagging' }, { pattern: 'orders.*', encoding: 'json', slowClient: 'evict' }], ...(resume ? { resume } : {}) } },
    rules: [{ name: 'r', product: 'market', plan: 'free', subscribe: ['prices.btc'] }]
  }
}

function channels (resume: ResumeWindowDocument | undefined): Record<string, { description: string, 'x-sluice-resume-window'?: unknown }> {
  return asyncapiDocument(policy(resume), { host: 'localhost', protocol: 'ws' })!.channels as never
}

test('a product\'s resume window in its channels', async t => {
  const kept = channels({ windowBytes: 65536, windowMs: 5000 })['market-prices_btc']!
  t.match(kept.description, 'Each node keeps this topic\'s recent records in memory, up to 64 KiB and 5 s')
  t.same(kept['x-sluice-resume-window'], { windowBytes: 65536, windowMs: 5000 })
  t.match(channels({ windowBytes: 0 })['market-prices_btc']!.description, 'keeps none of its recent records in memory for resumes', '0: none')
  t.match(channels({ windowMs: 1500 })['market-prices_btc']!.description, 'up to 1500 ms (or more')
  const plain = channels(undefined)['market-prices_btc']!
  t.notMatch(plain.description, 'in memory', 'none set: nothing said')
  t.notOk('x-sluice-resume-window' in plain)
})

test('the catalogue shows a product\'s resume window on each of its topics', async t => {
  const [product] = catalogue(policy({ windowBytes: 65536 })).products
  t.same(product!.topics.map(topic => topic.resume), [{ windowBytes: 65536 }, { windowBytes: 65536 }])
  t.same(catalogue(policy(undefined)).products[0]!.topics.map(topic => 'resume' in topic), [false, false], 'none set: not there')
})
