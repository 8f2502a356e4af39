//! Forwarding between buses, from the bubus README: a main bus forwards everything to an auth
//! bus, which forwards to a data bus, which forwards back to the main bus. Each event is still
//! processed once per bus: it never re-enters a bus already in its `event_path`.
//!
//! Run it with `cargo run --example forwarding`.

use bubus::{Event, EventBus, EventHandle};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(result = String)]
struct LoginEvent {
    username: String,
}

#[tokio::main]
async fn main() -> Result<(), bubus::Error> {
    let main_bus = EventBus::new("MainBus");
    let auth_bus = EventBus::new("AuthBus");
    let data_bus = EventBus::new("DataBus");

    // Share all or specific events between buses.
    main_bus.forward_to(&auth_bus); // if the main bus gets a LoginEvent, it goes to AuthBus too
    auth_bus.forward_to(&data_bus); // the auth bus forwards everything to DataBus
    data_bus.forward_to(&main_bus); // and back: no infinite loop, each bus sees it once

    auth_bus.on(|e: EventHandle<LoginEvent>| format!("auth checked {}", e.username));
    data_bus.on(|e: EventHandle<LoginEvent>| format!("data loaded for {}", e.username));

    let event = main_bus
        .dispatch(LoginEvent {
            username: "alice".into(),
        })?
        .await?;
    println!("{:?}", event.event_path()); // the labels of the buses that processed it

    // Results from every bus it reached are on the one handle.
    for result in event.event_results() {
        let value = match (&result.result, result.forwarded_event_id) {
            (Some(value), _) => value.clone(),
            (None, Some(_)) => "(forwarded)".to_owned(),
            (None, None) => "(no value)".to_owned(),
        };
        println!(
            "{:>8}: {:<24} {value}",
            result.eventbus_name, result.handler_name
        );
    }
    println!("results: {:?}", event.event_results_list().await?);
    Ok(())
}
