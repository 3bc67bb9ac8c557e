// The contract between the policy and the routes that use it: may this
// identity subscribe to / publish on this topic, and under which product terms.
import type { Identity } from '@sluice/protocol/identity'
import type { ProductTransforms } from './transforms.ts'

export type { ProductTransforms, LoadedTransform, TransformFunction, TransformMessage } from './transforms.ts'

export type Action = 'subscribe' | 'publish'

/** How a topic's record values become JSON in frames (docs/design.md: no record silently altered). */
export type ValueEncoding = 'json' | 'text' | 'base64'

/** What a slow socket gets when its send queue is full. */
export type SlowClientPolicy = 'lagging' | 'evict'

export interface TopicTerms {
  product: string
  plan: string
  encoding: ValueEncoding
  slowClient: SlowClientPolicy
  /** the product's transform modules (kafka-websocket compatibility), loaded; absent when it names none */
  transforms?: ProductTransforms
}

export type AccessDecision =
  | ({ allowed: true } & TopicTerms)
  | { allowed: false, reason: string }

export interface AccessControl {
  authorize (identity: Identity, action: Action, topic: string): AccessDecision
  /** called after each successful reload; returns an unsubscribe function */
  onChange (listener: () => void): () => void
}
