// TypeScript abxbus → the project's roundtrip binary → TypeScript abxbus, field by field.
//
//     node abxbus_roundtrip.mjs BINARY WORKDIR
//
// TypeScript builds events (result schemas, lineage, configuration, payload fields, completed
// events with results and an error) and a bus snapshot; BINARY (`abxbus-rust-roundtrip`) decodes
// them and writes them back; TypeScript checks that every field it wrote came back unchanged and
// that reading the output gives what reading its own JSON gives.
//
// Prints `@@ok <check>` per check that held, `@@mismatch <check>: <what>` per field that did not,
// and exits 1 if any did not. Run (from this folder, so `abxbus` resolves) by
// crates/bubus-roundtrip/tests/abxbus_peers.rs.

import { execFileSync } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { BaseEvent, EventBus } from 'abxbus'
import { finish, mismatch, ok, plain, short } from './checks.mjs'
import { z } from 'zod'

const [binary, workdir] = process.argv.slice(2)
mkdirSync(workdir, { recursive: true })

// Structural equality of JSON values.
const same = (a, b) => {
  if (a === b) return true
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false
  if (Array.isArray(a) !== Array.isArray(b)) return false
  const ka = Object.keys(a)
  const kb = Object.keys(b)
  return ka.length === kb.length && ka.every((k) => Object.hasOwn(b, k) && same(a[k], b[k]))
}
// Whether `actual` says what `expected` says: the same values, and in objects every key of
// `expected`, plus keys TypeScript leaves out when undefined written as null (what the binary
// writes for them, as docs/wire-format.md says). An error TypeScript wrote as `{}` (its `Error`
// objects serialize without their text) comes back as `{"type": "Error", "message": ""}`.
const covers = (expected, actual) => {
  if (typeof expected !== 'object' || expected === null || typeof actual !== 'object' || actual === null) {
    return same(expected, actual)
  }
  if (Array.isArray(expected)) {
    return Array.isArray(actual) && actual.length === expected.length && expected.every((v, i) => covers(v, actual[i]))
  }
  if (Object.keys(expected).length === 0 && same(actual, { type: 'Error', message: '' })) return true
  return (
    Object.entries(expected).every(([k, v]) => Object.hasOwn(actual, k) && covers(v, actual[k])) &&
    Object.entries(actual).every(([k, v]) => Object.hasOwn(expected, k) || v === null)
  )
}
// Every key of `expected` is in `actual`, saying the same.
const compareFields = (check, expected, actual, skip = []) => {
  let good = true
  for (const [key, value] of Object.entries(expected)) {
    if (skip.includes(key)) continue
    if (!Object.hasOwn(actual, key)) {
      mismatch(check, `\`${key}\` is missing`)
      good = false
    } else if (!covers(value, actual[key])) {
      mismatch(check, `\`${key}\` changed: ${short(value)} -> ${short(actual[key])}`)
      good = false
    }
  }
  return good
}
const runBinary = (mode, payload, name) => {
  const input = join(workdir, `${name}.in.json`)
  const output = join(workdir, `${name}.out.json`)
  writeFileSync(input, JSON.stringify(payload, null, 2))
  execFileSync(binary, [mode, input, output], { stdio: ['ignore', 'inherit', 'inherit'] })
  return JSON.parse(readFileSync(output, 'utf8'))
}

// --- Events ------------------------------------------------------------------------------------

const Count = BaseEvent.extend('TsCount', { amount: z.number(), note: z.string(), event_result_type: z.number() })
const Text = BaseEvent.extend('TsText', { label: z.string(), event_result_type: z.string() })
const Tags = BaseEvent.extend('TsTags', { label: z.string(), event_result_type: z.array(z.string()) })
const Invoice = BaseEvent.extend('TsInvoice', {
  customer: z.string(),
  event_result_type: z.object({
    number: z.string(),
    total_cents: z.number().int(),
    lines: z.array(z.string()),
    regions: z.array(z.object({ name: z.string(), weight: z.number() })),
  }),
})

const root = Count({ amount: 7, note: 'root', event_timeout: 12.5, event_concurrency: 'parallel' })
const fresh = [
  root,
  Text({ label: 'child', event_parent_id: root.event_id, event_handler_timeout: 3 }),
  Tags({ label: 'tags', event_handler_completion: 'first' }),
  Invoice({ customer: 'ada' }),
]

const bus = new EventBus('TsShop')
bus.on(Count, async (event) => {
  const child = event.emit(Text({ label: 'charge' }))
  await child.now()
  return event.amount * 100
})
bus.on(Count, async () => {
  throw new TypeError('audit log is full')
})
bus.on(Text, async (event) => `charged for ${event.label}`)
const processed = bus.emit(Count({ amount: 3, note: 'processed' }))
await processed.now().catch(() => {})
await bus.waitUntilIdle()
const processedChild = [...bus.event_history.values()].find((event) => event.event_type === 'TsText')

const checkEvents = (events, name) => {
  const json = events.map((event) => plain(event.toJSON()))
  const back = runBinary('events', json, name)
  if (back.length !== json.length) {
    mismatch(name, `${json.length} events sent, ${back.length} came back`)
    return
  }
  json.forEach((original, i) => {
    const check = `${name} ${original.event_type}#${original.event_id.slice(-4)}`
    if (compareFields(check, original, back[i])) ok(`${check}: every field came back`)
    const own = plain(BaseEvent.fromJSON(original).toJSON())
    const reloaded = plain(BaseEvent.fromJSON(back[i]).toJSON())
    if (compareFields(`${check} (reloaded in TypeScript)`, own, reloaded)) {
      ok(`${check}: every field survives TypeScript reading it back`)
    }
  })
}

checkEvents(fresh, 'events')
checkEvents([processed, processedChild], 'completed')

// --- A bus snapshot ----------------------------------------------------------------------------

const source = plain(bus.toJSON())
const back = runBinary('bus', source, 'bus')
if (compareFields('bus', source, back, ['event_history'])) ok('bus: configuration, handlers and queue came back')
let good = same(Object.keys(back.event_history ?? {}).sort(), Object.keys(source.event_history).sort())
if (!good) mismatch('bus', 'history ids changed')
for (const [id, event] of Object.entries(source.event_history)) {
  good = compareFields(`bus event ${id.slice(-4)}`, event, back.event_history?.[id] ?? {}) && good
}
if (good) ok('bus: every field of every history event came back')
const own = plain(EventBus.fromJSON(source).toJSON())
const reloaded = plain(EventBus.fromJSON(back).toJSON())
good = compareFields('bus (reloaded in TypeScript)', own, reloaded, ['event_history', 'id'])
for (const [id, event] of Object.entries(own.event_history)) {
  good = compareFields(`bus event ${id.slice(-4)} (reloaded)`, event, reloaded.event_history?.[id] ?? {}) && good
}
if (good) ok('bus: every field survives TypeScript restoring it')

finish()
