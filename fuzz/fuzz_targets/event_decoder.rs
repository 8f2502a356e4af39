//! The event decoder (`AnyEvent::from_json_str`) on arbitrary text: it must never panic, and what
//! it accepts must survive a round trip through the canonical JSON unchanged.

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
    // The bare form decodes too.
    if let Err(err) = AnyEvent::from_json(&event.to_json()) {
        panic!("re-decoding to_json failed: {err}\ninput: {text}");
    }
});
