//! The bridge decoder (`bubus::bridge::decode_message`, what every transport's listener feeds
//! each received message to) on arbitrary text: it must never panic; an event it accepts must,
//! reset for the receiving bus as the bridge resets it (id, parent and path kept), write text
//! that decodes again to the same event; a completion record it accepts must keep its results.

#![no_main]

use bubus::bridge::{Incoming, decode_message};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match decode_message(&text) {
        Err(_) => {}
        Ok(Incoming::Event(event)) => {
            let received = event.event_reset_keep_id();
            assert_eq!(received.event_id(), event.event_id());
            assert_eq!(received.event_parent_id(), event.event_parent_id());
            assert_eq!(received.event_path(), event.event_path());
            let line = received.to_json_string();
            match decode_message(&line) {
                Ok(Incoming::Event(again)) => {
                    assert_eq!(again.to_json(), received.to_json(), "input: {text}")
                }
                Ok(_) => panic!("an event came back as a completion record\ninput: {text}"),
                Err(err) => panic!("re-decoding our own line failed: {err}\ninput: {text}\nline: {line}"),
            }
        }
        Ok(Incoming::Completion(record)) => {
            let again = record.to_json_with_results();
            if let Err(err) = bubus::AnyEvent::from_json(&again) {
                panic!("a completion record's event does not decode again: {err}\ninput: {text}");
            }
        }
        Ok(_) => {}
    }
});
