// TypeScript abxbus writes events, a bus snapshot and log lines for Rust to read.
//
//     node abxbus_write.mjs DIR
//
// A TypeScript bus processes an order (a handler that emits and awaits a child, one that throws,
// configuration overrides) and a list-typed event. Written into DIR:
//
// * `events.json`: `toJSON()` of every event of the bus's history, and one never emitted;
// * `snapshot.json`: `EventBus.toJSON()` of a bus with a completed event and two queued ones;
// * `wal.jsonl`: one `toJSON()` line per completed event (TypeScript abxbus has no write-ahead
//   log of its own; these are the lines a log of its events holds).
//
// crates/bubus/tests/interop_abxbus.rs reads them and compares every field. Prints
// `@@ok written`. Run from this folder, so `abxbus` resolves.

import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { BaseEvent, EventBus } from 'abxbus'
import { z } from 'zod'

const dir = process.argv[2]
mkdirSync(dir, { recursive: true })

const OrderPlaced = BaseEvent.extend('OrderPlaced', {
  order_id: z.string(),
  items: z.array(z.object({ sku: z.string(), quantity: z.number().int() })),
  event_result_type: z.number(),
})
const ChargeCard = BaseEvent.extend('ChargeCard', { order_id: z.string(), cents: z.number(), event_result_type: z.string() })
const PickItems = BaseEvent.extend('PickItems', { skus: z.array(z.string()), event_result_type: z.array(z.string()) })

const bus = new EventBus('TsShop')
bus.on(OrderPlaced, async (event) => {
  const charge = event.emit(ChargeCard({ order_id: event.order_id, cents: 1999 }))
  await charge.now()
  return 1999
})
bus.on(OrderPlaced, async () => {
  throw new TypeError('audit log is full')
})
bus.on(ChargeCard, async (event) => `charged ${event.cents} cents`)
bus.on(PickItems, async (event) => event.skus.map((sku) => `shelf-${sku}`))

const order = bus.emit(
  OrderPlaced({ order_id: 'ord-7', items: [{ sku: 'ENG-1', quantity: 2 }], event_timeout: 20, event_handler_timeout: 4 }),
)
await order.now().catch(() => {})
const picked = bus.emit(PickItems({ skus: ['a', 'b'], event_handler_concurrency: 'parallel' }))
await picked.now()
await bus.waitUntilIdle()

const history = [...bus.event_history.values()]
const events = history.map((event) => event.toJSON())
events.push(PickItems({ skus: [], event_concurrency: 'global-serial' }).toJSON())
writeFileSync(join(dir, 'events.json'), JSON.stringify(events, null, 2))
writeFileSync(join(dir, 'wal.jsonl'), history.map((event) => `${JSON.stringify(event.toJSON())}\n`).join(''))

const queueBus = new EventBus('TsQueue')
queueBus.on(ChargeCard, async (event) => `queued ${event.cents}`)
await queueBus.emit(ChargeCard({ order_id: 'q0', cents: 1 })).now()
// Taken before the bus gets to run them.
queueBus.emit(ChargeCard({ order_id: 'q1', cents: 2 }))
queueBus.emit(ChargeCard({ order_id: 'q2', cents: 3 }))
writeFileSync(join(dir, 'snapshot.json'), JSON.stringify(queueBus.toJSON(), null, 2))
await queueBus.waitUntilIdle()

console.log('@@ok written')
process.exit(0)
