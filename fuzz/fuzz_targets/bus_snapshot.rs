//! Bus snapshots (`EventBus::restore`, what `abxbus-rust-roundtrip bus` runs) on arbitrary JSON:
//! restoring never panics, and what restores is written back as a snapshot that restores to the
//! same snapshot again (a fixed point after one round).

#![no_main]

use bubus::EventBus;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let Ok(bus) = EventBus::restore(&input) else {
            return;
        };
        let snapshot = bus.snapshot();
        let text = snapshot.to_string();
        let reread: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("our snapshot is not JSON: {e}\n{text}"));
        let again = EventBus::restore(&reread)
            .unwrap_or_else(|e| panic!("our own snapshot does not restore: {e}\n{text}"));
        assert_eq!(again.snapshot(), snapshot, "input: {input}");
        // Restored queues keep their buses alive until they are stopped.
        bus.stop_and_clear(None).await;
        again.stop_and_clear(None).await;
    });
});
