// TypeScript abxbus reads what Rust wrote, field by field.
//
//     node abxbus_check_rust.mjs DIR
//
// DIR holds what crates/bubus/tests/interop_abxbus.rs wrote: `events.json`, `snapshot.json` and
// `wal.jsonl`. Each is loaded with `BaseEvent.fromJSON` / `EventBus.fromJSON` and written again
// with `toJSON`; every field Rust wrote must say the same in TypeScript's JSON, except where
// TypeScript rewrites a field by design:
//
// * a null Rust writes for a key TypeScript leaves out when undefined;
// * `event_result_type`: TypeScript rebuilds a schema into a zod type and writes that type's
//   schema; the rebuilt type must accept every value the event's handlers returned;
// * `event_pending_bus_count`: each runtime counts its own buses;
// * a result's `error`: TypeScript keeps the message;
// * a result's `event_children`: TypeScript rebuilds it from the child events it holds.
//
// Prints `@@ok <check>` per check that held, `@@mismatch <check>: <what>` per field that did
// not, and exits 1 if any did not. Run from this folder, so `abxbus` resolves.

import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { BaseEvent, EventBus } from 'abxbus'
import { finish, mismatch, ok, plain, short } from './checks.mjs'

const dir = process.argv[2]
const same = (a, b) => {
  if (a === b) return true
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false
  if (Array.isArray(a) !== Array.isArray(b)) return false
  const ka = Object.keys(a).filter((k) => a[k] !== null)
  const kb = Object.keys(b).filter((k) => b[k] !== null)
  return ka.length === kb.length && ka.every((k) => same(a[k], b[k]))
}
const isEventJson = (value) =>
  typeof value === 'object' && value !== null && typeof value.event_type === 'string' && typeof value.event_id === 'string'

const compareResult = (check, expected, actual) => {
  let good = true
  for (const [key, value] of Object.entries(expected)) {
    const got = actual[key] ?? null
    if (key === 'event_children') continue
    if (key === 'error' && value !== null) {
      if (got === null || got.message !== value.message) {
        mismatch(check, `error changed: ${short(value)} -> ${short(got)}`)
        good = false
      }
    } else if (!same(value, got)) {
      mismatch(check, `\`${key}\` changed: ${short(value)} -> ${short(got)}`)
      good = false
    }
  }
  return good
}

const compareEvent = (check, rust, event) => {
  const ts = plain(event.toJSON())
  let good = true
  for (const [key, value] of Object.entries(rust)) {
    if (key === 'event_pending_bus_count') continue
    const got = ts[key] ?? null
    if (key === 'event_result_type') {
      if ((value === null) !== (got === null)) {
        mismatch(check, `event_result_type changed: ${short(value)} -> ${short(got)}`)
        good = false
      }
      for (const result of Object.values(rust.event_results ?? {})) {
        const returned = result.result
        if (result.status !== 'completed' || returned == null || isEventJson(returned)) continue
        if (!event.event_result_type?.safeParse(returned).success) {
          mismatch(check, `the rebuilt result type rejects the result ${short(returned)}`)
          good = false
        }
      }
    } else if (key === 'event_results') {
      const theirs = got ?? {}
      if (!same(Object.keys(value).sort(), Object.keys(theirs).sort())) {
        mismatch(check, `result keys changed: ${short(Object.keys(value))} -> ${short(Object.keys(theirs))}`)
        good = false
      }
      for (const [id, result] of Object.entries(value)) {
        good = compareResult(`${check} result ${id.slice(-4)}`, result, theirs[id] ?? {}) && good
      }
    } else if (!same(value, got)) {
      mismatch(check, `\`${key}\` changed: ${short(value)} -> ${short(got)}`)
      good = false
    }
  }
  return good
}

// Events with their results, and one never dispatched.
for (const rust of JSON.parse(readFileSync(join(dir, 'events.json'), 'utf8'))) {
  const check = `events: ${rust.event_type}#${rust.event_id.slice(-4)}`
  if (compareEvent(check, rust, BaseEvent.fromJSON(rust))) ok(`${check} every field`)
}

// The bus snapshot.
const snapshot = JSON.parse(readFileSync(join(dir, 'snapshot.json'), 'utf8'))
const bus = EventBus.fromJSON(snapshot)
const dumped = plain(bus.toJSON())
let good = true
for (const [key, value] of Object.entries(snapshot)) {
  if (key === 'event_history') {
    for (const [id, event] of Object.entries(value)) {
      good = compareEvent(`snapshot event ${id.slice(-4)}`, event, BaseEvent.fromJSON(dumped.event_history[id])) && good
    }
  } else if (!same(value, dumped[key] ?? null)) {
    mismatch('snapshot', `\`${key}\` changed: ${short(value)} -> ${short(dumped[key])}`)
    good = false
  }
}
if (good) ok('snapshot: every field')

// The write-ahead log, line by line.
const lines = readFileSync(join(dir, 'wal.jsonl'), 'utf8').split('\n').filter((line) => line.trim())
good = lines.length > 0
lines.forEach((line, i) => {
  const rust = JSON.parse(line)
  const check = `wal: line ${i + 1} (${rust.event_type}, ${rust.event_status})`
  if (compareEvent(check, rust, BaseEvent.fromJSON(rust))) ok(check)
  else good = false
})
if (good) ok(`wal: every line (${lines.length})`)

finish()
