//! The cross-runtime roundtrip contract of the bubus family (abxbus), for this crate.
//!
//! The family's runtimes check each other with one small program per runtime that reads what
//! another runtime wrote and writes it back; the test suite then compares the result with the
//! original, field by field, and loads it back into the original runtime. This crate is that
//! program for [`bubus`]:
//!
//! ```console
//! $ abxbus-rust-roundtrip events in.json out.json   # a JSON array of events
//! $ abxbus-rust-roundtrip bus in.json out.json      # one bus snapshot
//! ```
//!
//! * `events`: every event of the array is read with [`AnyEvent::from_json`] and written back
//!   with [`AnyEvent::to_json_with_results`] (or [`AnyEvent::to_json`] when the input had no
//!   `event_results`), in order: ids, lineage, configuration, status, timestamps, result
//!   schemas, payload fields (known or not), unknown metadata keys and results all survive.
//! * `bus`: the snapshot is restored with [`EventBus::restore`] and written back with
//!   [`EventBus::snapshot`]: configuration, handler entries, history with results, and the
//!   pending queue.
//!
//! The output is pretty-printed JSON. Exit status 0 on success; 1 when the input cannot be read
//! or is not what the mode expects (the error, naming the event and field, goes to stderr); 2 for
//! a usage error.
//!
//! The binary is named as the family's tests expect the Rust runtime's to be
//! (`abxbus-rust-roundtrip`), so they can be pointed at this workspace.
//!
//! ```
//! use serde_json::json;
//!
//! let events = json!([{
//!     "event_type": "Ping",
//!     "event_id": "018f8e40-1234-7000-8000-000000000001",
//!     "event_ttl": 60,
//!     "n": 1,
//! }]);
//! let back = bubus_roundtrip::roundtrip_events(&events).unwrap();
//! assert_eq!(back[0]["event_id"], events[0]["event_id"]);
//! assert_eq!(back[0]["event_ttl"], 60);
//! assert_eq!(back[0]["n"], 1);
//! ```

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

use bubus::{AnyEvent, EventBus, wire::DecodeError};
use serde_json::Value;

/// Why a roundtrip failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum RoundtripError {
    /// The input file could not be read, or the output file written.
    Io {
        /// What was being done (`read in.json`, `write out.json`).
        doing: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The input is not JSON.
    Json(serde_json::Error),
    /// The input is JSON of the wrong shape for the mode (`events` wants an array, `bus` an
    /// object).
    Shape(String),
    /// An event (or the snapshot) does not decode; `index` is the event's place in the array.
    Decode {
        /// The event's index in the input array (`None` in `bus` mode).
        index: Option<usize>,
        /// The decode error, naming the field.
        error: DecodeError,
    },
}

impl std::fmt::Display for RoundtripError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RoundtripError::Io { doing, source } => write!(f, "cannot {doing}: {source}"),
            RoundtripError::Json(error) => write!(f, "the input is not JSON: {error}"),
            RoundtripError::Shape(message) => f.write_str(message),
            RoundtripError::Decode {
                index: Some(index),
                error,
            } => write!(f, "event [{index}]: {error}"),
            RoundtripError::Decode { index: None, error } => {
                write!(f, "bus snapshot: {error}")
            }
        }
    }
}

impl std::error::Error for RoundtripError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RoundtripError::Io { source, .. } => Some(source),
            RoundtripError::Json(error) => Some(error),
            RoundtripError::Decode { error, .. } => Some(error),
            RoundtripError::Shape(_) => None,
        }
    }
}

/// `events` mode: each event of a JSON array, decoded and written back.
///
/// # Errors
///
/// [`RoundtripError::Shape`] if `events` is not an array; [`RoundtripError::Decode`] for the
/// first event that does not decode.
pub fn roundtrip_events(events: &Value) -> Result<Value, RoundtripError> {
    let Value::Array(events) = events else {
        return Err(RoundtripError::Shape(
            "events mode expects a JSON array of events".to_owned(),
        ));
    };
    events
        .iter()
        .enumerate()
        .map(|(index, json)| {
            let event = AnyEvent::from_json(json).map_err(|error| RoundtripError::Decode {
                index: Some(index),
                error,
            })?;
            Ok(if json.get("event_results").is_some() {
                event.to_json_with_results()
            } else {
                event.to_json()
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Value::Array)
}

/// `bus` mode: a bus snapshot, restored and snapshotted again.
///
/// # Errors
///
/// [`RoundtripError::Decode`] if the snapshot does not restore.
pub fn roundtrip_bus(snapshot: &Value) -> Result<Value, RoundtripError> {
    let bus = EventBus::restore(snapshot)
        .map_err(|error| RoundtripError::Decode { index: None, error })?;
    Ok(bus.snapshot())
}

/// Runs the command on its arguments (without the program name): `<events|bus> <in> <out>`.
/// Returns the exit status.
pub fn run(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let args: Vec<OsString> = args.into_iter().collect();
    let [mode, input, output] = args.as_slice() else {
        return usage();
    };
    let roundtrip: fn(&Value) -> Result<Value, RoundtripError> = match mode.to_str() {
        Some("events") => roundtrip_events,
        Some("bus") => roundtrip_bus,
        _ => return usage(),
    };
    match run_files(roundtrip, Path::new(input), Path::new(output)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("abxbus-rust-roundtrip: {error}");
            ExitCode::from(1)
        }
    }
}

fn run_files(
    roundtrip: fn(&Value) -> Result<Value, RoundtripError>,
    input: &Path,
    output: &Path,
) -> Result<(), RoundtripError> {
    let text = std::fs::read(input).map_err(|source| RoundtripError::Io {
        doing: format!("read {}", input.display()),
        source,
    })?;
    let value: Value = serde_json::from_slice(&text).map_err(RoundtripError::Json)?;
    let out = roundtrip(&value)?;
    let mut text = serde_json::to_vec_pretty(&out).map_err(RoundtripError::Json)?;
    text.push(b'\n');
    std::fs::write(output, text).map_err(|source| RoundtripError::Io {
        doing: format!("write {}", output.display()),
        source,
    })
}

fn usage() -> ExitCode {
    eprintln!("usage: abxbus-rust-roundtrip <events|bus> <in.json> <out.json>");
    ExitCode::from(2)
}
