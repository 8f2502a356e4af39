// How the interop scripts report: `@@ok <check>` per check that held, `@@mismatch <check>: <what>`
// per field that did not (read by `bubus_test_support::peers::run_checks`).

let mismatches = 0

export const ok = (check) => console.log(`@@ok ${check}`)

export const mismatch = (check, what) => {
  mismatches += 1
  console.log(`@@mismatch ${check}: ${what}`)
}

export const short = (value) => {
  const text = JSON.stringify(value) ?? 'undefined'
  return text.length <= 300 ? text : `${text.slice(0, 300)}…`
}

// What TypeScript's own JSON of a value gives (undefined keys dropped).
export const plain = (value) => JSON.parse(JSON.stringify(value))

// Exits 1 if any check did not hold, 0 otherwise.
export const finish = () => {
  if (mismatches > 0) {
    console.error(`${mismatches} mismatches`)
    process.exit(1)
  }
  process.exit(0)
}
