//! The event decoder (`AnyEvent::from_json_str`) on arbitrary text: it must never panic, and what
//! it accepts must survive a round trip through the canonical JSON unchanged — as a value, and as
//! the text written from what was read (payload fields kept as text).

#![no_main]

use bubus::AnyEvent;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(event) = AnyEvent::from_json_str(&text) else {
        return;
    };
    let json = event.to_json_with_results();
    let line = json.to_string();
    let again = match AnyEvent::from_json_str(&line) {
        Ok(again) => again,
        Err(err) => {
            panic!("re-decoding our own output failed: {err}\ninput: {text}\noutput: {line}")
        }
    };
    assert_eq!(
        again.to_json_with_results(),
        json,
        "round trip changed the event\ninput: {text}"
    );
    // Written as text (the payload as it was read), it says the same.
    let text_form = event.to_json_string_with_results();
    match serde_json::from_str::<serde_json::Value>(&text_form) {
        Ok(value) => assert_eq!(value, json, "the text form differs\ninput: {text}"),
        Err(err) => panic!("our text form is not JSON: {err}\ninput: {text}\noutput: {text_form}"),
    }
    // The bare form decodes too.
    if let Err(err) = AnyEvent::from_json(&event.to_json()) {
        panic!("re-decoding to_json failed: {err}\ninput: {text}");
    }
});
