//! One line per log record, for people: `tail`'s output and the live monitor.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

use bubus::wal::{RecordKind, WalRecord};
use bubus::{AnyEvent, result::ResultStatus, time::Timestamp};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::output::{paint, style};

/// Results longer than this (as compact JSON) are cut, with `…`.
const MAX_VALUE_CHARS: usize = 60;
/// Error messages longer than this are cut, with `…`.
const MAX_ERROR_CHARS: usize = 120;
/// How many event labels are remembered to name parents; past it the memory starts afresh.
const MAX_REMEMBERED: usize = 100_000;

/// Formats records, remembering the labels of the events seen so children can name their parent.
#[derive(Debug, Default)]
pub(crate) struct Pretty {
    labels: HashMap<Uuid, String>,
}

impl Pretty {
    pub(crate) fn new() -> Self {
        Pretty::default()
    }

    /// The record as one line (without newline), with colour escapes:
    ///
    /// ```text
    /// 16:40:37.772 Orders#3e1f OrderPlaced#d6f9 dispatched
    /// 16:40:37.774 Orders#3e1f ChargeCard#5f4b completed (1.2ms) child of OrderPlaced#d6f9  ✅ shop::charge (0.9ms) → "charged"
    /// ```
    pub(crate) fn line(&mut self, record: &WalRecord) -> String {
        self.event_line(&record.event, record.kind == RecordKind::Completed)
    }

    /// [`line`](Self::line) for an event not read from a log (a bridge table row): a
    /// completion record if `completed`, a dispatch record otherwise.
    pub(crate) fn event_line(&mut self, event: &bubus::AnyEvent, completed: bool) -> String {
        let label = event.label();
        if self.labels.len() >= MAX_REMEMBERED {
            self.labels.clear();
        }
        self.labels.insert(event.event_id(), label.clone());

        let at = if completed {
            event
                .event_completed_at()
                .unwrap_or_else(|| event.event_created_at())
        } else {
            event.event_created_at()
        };
        let path = event.event_path();
        let buses = if path.is_empty() {
            "-".to_owned()
        } else {
            path.join("→")
        };
        let mut line = format!(
            "{} {} {}",
            paint(style::DIM, clock(at)),
            paint(style::BUS, buses),
            paint(style::BOLD, &label)
        );

        let text = event.to_json_string_with_results();
        let results = results_of(&text);
        if completed {
            let failed = results.iter().any(|r| r.status == ResultStatus::Error);
            let status = if failed { style::ERROR } else { style::OK };
            let _ = write!(line, " {}", paint(status, "completed"));
            if let Some(done) = event.event_completed_at() {
                let _ = write!(
                    line,
                    " ({})",
                    duration(done.duration_since(event.event_created_at()))
                );
            }
        } else {
            let _ = write!(line, " {}", paint(style::DISPATCHED, "dispatched"));
        }
        if let Some(parent) = event.event_parent_id() {
            let parent = self
                .labels
                .get(&parent)
                .cloned()
                .unwrap_or_else(|| format!("#{}", short(&parent)));
            let _ = write!(line, " {}", paint(style::DIM, format!("child of {parent}")));
        }
        for result in &results {
            line.push_str("  ");
            line.push_str(&result_text(event, result));
        }
        line
    }
}

/// What the line shows of one result, read from the event's JSON text: the result's value stays
/// the text it was written as and only its start is shown, so a record whose size is in a result
/// costs about its text, never a parsed tree of it.
struct ResultView<'a> {
    status: ResultStatus,
    handler_name: String,
    started_at: Option<Timestamp>,
    completed_at: Option<Timestamp>,
    error: Option<(String, String)>,
    value: Option<&'a RawValue>,
}

/// The wire form of one result, as much of it as the line shows.
#[derive(Deserialize)]
struct WireResult<'a> {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    handler_name: Option<String>,
    #[serde(default)]
    started_at: Option<String>,
    #[serde(default)]
    completed_at: Option<String>,
    #[serde(default)]
    error: Option<Value>,
    #[serde(borrow, default)]
    result: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct WireResults<'a> {
    #[serde(borrow, default)]
    event_results: Option<InOrder<'a>>,
}

/// The results of an `event_results` object, in order.
struct InOrder<'a>(Vec<WireResult<'a>>);

impl<'de: 'a, 'a> Deserialize<'de> for InOrder<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Entries<'a> {
            type Value = InOrder<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("results keyed by handler id")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<InOrder<'a>, A::Error> {
                let mut results = Vec::new();
                while let Some((_, result)) =
                    map.next_entry::<serde::de::IgnoredAny, WireResult<'a>>()?
                {
                    results.push(result);
                }
                Ok(InOrder(results))
            }
        }
        deserializer.deserialize_map(Entries(std::marker::PhantomData))
    }
}

/// The results in `text`, an event's JSON with its results (written keyed by handler id).
fn results_of(text: &str) -> Vec<ResultView<'_>> {
    let Ok(WireResults {
        event_results: Some(InOrder(results)),
    }) = serde_json::from_str::<WireResults<'_>>(text)
    else {
        return Vec::new();
    };
    results
        .into_iter()
        .map(|r| ResultView {
            status: match r.status.as_deref() {
                Some("completed") => ResultStatus::Completed,
                Some("error") => ResultStatus::Error,
                Some("started") => ResultStatus::Started,
                _ => ResultStatus::Pending,
            },
            handler_name: r.handler_name.unwrap_or_default(),
            started_at: r.started_at.and_then(|t| Timestamp::parse(&t).ok()),
            completed_at: r.completed_at.and_then(|t| Timestamp::parse(&t).ok()),
            error: r.error.and_then(|error| match error {
                Value::Null => None,
                Value::String(message) => Some(("Error".to_owned(), message)),
                Value::Object(fields) => {
                    let text =
                        |key: &str| fields.get(key).and_then(Value::as_str).map(str::to_owned);
                    Some((
                        text("type")
                            .or_else(|| text("name"))
                            .unwrap_or_else(|| "Error".to_owned()),
                        text("message").unwrap_or_default(),
                    ))
                }
                other => Some(("Error".to_owned(), other.to_string())),
            }),
            value: r.result,
        })
        .collect()
}

/// `✅ module::handler (0.9ms) → "value"` (no arrow for a null result), `❌ module::handler
/// (0.1ms) ☠ Type: message`.
fn result_text(event: &AnyEvent, result: &ResultView<'_>) -> String {
    let (icon, name_style) = match result.status {
        ResultStatus::Completed => ("✅", style::OK),
        ResultStatus::Error => ("❌", style::ERROR),
        ResultStatus::Started => ("🏃", style::STARTED),
        _ => ("⏳", style::DIM),
    };
    let mut text = format!(
        "{icon} {}",
        paint(name_style, short_handler_name(&result.handler_name))
    );
    if let (Some(started), Some(done)) = (result.started_at, result.completed_at) {
        let _ = write!(text, " ({})", duration(done.duration_since(started)));
    }
    match (&result.error, result.status, result.value) {
        (Some((error_type, message)), _, _) => {
            let message = cut(&one_line(message), MAX_ERROR_CHARS);
            let _ = write!(
                text,
                " {}",
                paint(style::ERROR, format!("☠ {error_type}: {message}"))
            );
        }
        (None, ResultStatus::Completed, Some(value)) if value.get() != "null" => {
            let _ = write!(text, " → {}", value_text(event, value));
        }
        _ => {}
    }
    text
}

/// A result as compact JSON, cut to [`MAX_VALUE_CHARS`]; a forwarding handler's result (the
/// event itself) as `forwarded`.
fn value_text(event: &AnyEvent, value: &RawValue) -> String {
    if value.get().starts_with('{') {
        #[derive(Deserialize)]
        struct Id<'a> {
            #[serde(borrow, default)]
            event_id: Option<&'a str>,
        }
        if let Ok(Id { event_id: Some(id) }) = serde_json::from_str::<Id<'_>>(value.get()) {
            if id == event.event_id().to_string() {
                return "forwarded".to_owned();
            }
        }
    }
    cut(value.get(), MAX_VALUE_CHARS)
}

/// A handler's name without the leading module path: its last two `::` segments
/// (`my_app::shop::charge` → `shop::charge`).
pub(crate) fn short_handler_name(name: &str) -> &str {
    let mut depth = 0usize;
    let mut segments = 0;
    let bytes = name.as_bytes();
    let mut i = bytes.len();
    // Walk back over `::` separators outside `<…>` (generic arguments may hold paths too).
    while i >= 2 {
        match bytes[i - 1] {
            b'>' => depth += 1,
            b'<' => depth = depth.saturating_sub(1),
            b':' if depth == 0 && bytes[i - 2] == b':' => {
                segments += 1;
                if segments == 2 {
                    return &name[i..];
                }
                i -= 1;
            }
            _ => {}
        }
        i -= 1;
    }
    name
}

/// `HH:MM:SS.mmm` (UTC), as `EventBus::log_tree` prints times.
pub(crate) fn clock(at: Timestamp) -> String {
    let text = at.to_string();
    text.get(11..23).unwrap_or(&text).to_owned()
}

/// `850µs`, `2.1ms`, `1.234s`.
pub(crate) fn duration(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        format!("{}µs", d.as_micros())
    } else if d < Duration::from_secs(1) {
        format!("{:.1}ms", d.as_secs_f64() * 1e3)
    } else {
        format!("{:.3}s", d.as_secs_f64())
    }
}

/// The last four hex digits of an id, as labels show them.
fn short(id: &Uuid) -> String {
    let text = id.to_string();
    text[text.len().saturating_sub(4)..].to_owned()
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// At most `max` characters, the last one `…` if cut.
fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max.saturating_sub(1)) {
        Some((i, _)) if text[i..].chars().nth(1).is_some() => format!("{}…", &text[..i]),
        _ => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handler_names_keep_their_last_two_segments() {
        assert_eq!(short_handler_name("handle"), "handle");
        assert_eq!(short_handler_name("app::handle"), "app::handle");
        assert_eq!(short_handler_name("my_app::shop::charge"), "shop::charge");
        assert_eq!(
            short_handler_name("my_app::Shop<a::b::C>::charge"),
            "Shop<a::b::C>::charge"
        );
        assert_eq!(
            short_handler_name("a::b::main::{{closure}}"),
            "main::{{closure}}"
        );
    }

    #[test]
    fn long_text_is_cut_on_a_character_boundary() {
        assert_eq!(cut("abc", 3), "abc");
        assert_eq!(cut("abcd", 3), "ab…");
        assert_eq!(cut("ééééé", 3), "éé…");
        assert_eq!(cut("", 3), "");
    }

    #[test]
    fn durations_pick_a_readable_unit() {
        assert_eq!(duration(Duration::from_micros(850)), "850µs");
        assert_eq!(duration(Duration::from_micros(2_140)), "2.1ms");
        assert_eq!(duration(Duration::from_millis(1_234)), "1.234s");
    }
}
