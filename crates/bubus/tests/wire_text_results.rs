//! An event read from text keeps its handlers' results as text until something reads them, and
//! writes them back as that text: a log line whose size is in a result costs about its size to
//! read, print or copy (not the 16–32 times of a parsed `serde_json::Value`). Written back
//! unparsed, a number no `f64` holds keeps every digit.

use bubus::{AnyEvent, result::ResultStatus};
use serde_json::json;

const BIG: &str = "123456789012345678901234567890";

fn line(result: &str, result_type: &str) -> String {
    format!(
        r#"{{"event_type":"Report","event_id":"018f8e40-1234-7000-8000-000000000001","event_result_type":{result_type},"event_status":"completed","event_created_at":"2026-01-01T00:00:00.000000000Z","event_results":{{"h1":{{"id":"018f8e40-1234-7000-9000-000000000001","status":"completed","handler_id":"h1","handler_name":"app.report","result":{result},"error":null,"event_children":[]}}}}}}"#
    )
}

#[test]
fn results_read_from_text_are_written_back_as_their_text() {
    let result = format!(r#"[1, {BIG}, {{"a": "x,]"}}]"#);
    let event = AnyEvent::from_json_str(&line(&result, "null")).unwrap();
    let written = event.to_json_string_with_results();
    // Compacted, never re-parsed: the big number keeps its digits.
    assert!(
        written.contains(&format!(r#""result":[1,{BIG},{{"a":"x,]"}}]"#)),
        "{written}"
    );
    // Read back, the same; and readable as a value when asked.
    let again = AnyEvent::from_json_str(&written).unwrap();
    assert_eq!(again.to_json_string_with_results(), written);
    let results = again.event_results();
    assert_eq!(results[0].status, ResultStatus::Completed);
    assert_eq!(results[0].result.as_ref().unwrap()[2], json!({"a": "x,]"}));
}

#[test]
fn text_results_are_still_checked_against_the_result_schema() {
    let schema = r#"{"type":"array","items":{"type":"integer"}}"#;
    let good = AnyEvent::from_json_str(&line("[1, 2, 3]", schema)).unwrap();
    assert_eq!(good.event_results()[0].status, ResultStatus::Completed);
    let bad = AnyEvent::from_json_str(&line(r#"[1, "two"]"#, schema)).unwrap();
    let result = &bad.event_results()[0];
    assert_eq!(result.status, ResultStatus::Error);
    assert!(
        result
            .error
            .as_ref()
            .unwrap()
            .message()
            .contains("did not match event_result_type"),
        "{:?}",
        result.error
    );
}

#[test]
fn a_text_result_nested_too_deep_is_refused_naming_the_field() {
    let deep = format!("{}1{}", "[".repeat(101), "]".repeat(101));
    let err = AnyEvent::from_json_str(&line(&deep, "null")).unwrap_err();
    assert_eq!(err.field(), "event_results.h1.result");
}
