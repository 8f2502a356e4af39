//! The write-ahead log reader on arbitrary bytes: it must never panic, report only line errors,
//! number lines consistently, and read the same records however the input is chunked.

#![no_main]

use std::io::BufReader;

use bubus::wal::{RecordKind, WalReader};
use libfuzzer_sys::fuzz_target;

/// What a reader yields, minus what the decoder makes up (ids of events logged without one).
#[derive(Debug, PartialEq)]
enum Seen {
    Record(u64, RecordKind, String),
    LineError(Option<u64>),
}

fn read(input: impl std::io::BufRead) -> Vec<Seen> {
    WalReader::new(input)
        .max_line_len(4096)
        .map(|item| match item {
            Ok(record) => Seen::Record(
                record.line,
                record.kind,
                record.event.event_type().to_owned(),
            ),
            Err(err) => {
                assert!(err.is_line_error(), "reading bytes in memory failed: {err}");
                Seen::LineError(err.line())
            }
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let whole = read(data);
    let newlines = data.iter().filter(|&&b| b == b'\n').count() as u64;
    let mut last = 0;
    for seen in &whole {
        let line = match seen {
            Seen::Record(line, ..) => *line,
            Seen::LineError(line) => line.expect("line errors name their line"),
        };
        assert!(line > last, "line numbers must increase: {whole:?}");
        assert!(line <= newlines + 1, "line {line} past the end: {whole:?}");
        last = line;
    }
    for capacity in [1, 2, 7] {
        let chunked = read(BufReader::with_capacity(capacity, data));
        assert_eq!(chunked, whole, "reading {capacity} bytes at a time differs");
    }
});
