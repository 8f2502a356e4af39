//! Collecting results from several handlers: the first value, all values, values by handler,
//! merged maps and concatenated lists, with include filters and error policies.
//!
//! Run it with `cargo run --example result_aggregation`.

use std::collections::BTreeMap;

use bubus::{Event, EventBus, EventHandle, HandlerError, handler::HandlerOptions};
use serde::{Deserialize, Serialize};

type Config = BTreeMap<String, serde_json::Value>;

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(result = Config)]
struct GetConfigEvent;

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(result = Vec<String>)]
struct ListPluginsEvent;

#[tokio::main]
async fn main() -> Result<(), bubus::Error> {
    let bus = EventBus::new("ConfigBus");

    bus.on_with(
        |_: EventHandle<GetConfigEvent>| {
            Config::from([("debug".into(), true.into()), ("port".into(), 8080.into())])
        },
        HandlerOptions::new().name("load_user_config"),
    );
    bus.on_with(
        |_: EventHandle<GetConfigEvent>| Config::from([("timeout".into(), 30.into())]),
        HandlerOptions::new().name("load_system_config"),
    );

    let event = bus.dispatch(GetConfigEvent)?;
    println!("first:    {:?}", event.event_result().await?);
    println!("list:     {:?}", event.event_results_list().await?);
    println!(
        "by name:  {:?}",
        event.event_results_by_handler_name().await?
    );
    println!("merged:   {:?}", event.event_results_flat_dict().await?);

    // A third source that overrides a key: merging reports the conflict unless told otherwise.
    bus.on_with(
        |_: EventHandle<GetConfigEvent>| Config::from([("debug".into(), false.into())]),
        HandlerOptions::new().name("load_env_config"),
    );
    let event = bus.dispatch(GetConfigEvent)?;
    match event.event_results_flat_dict().await {
        Err(err) => println!("conflict: {err}"),
        Ok(merged) => println!("unexpected merge: {merged:?}"),
    }
    let merged = event.results().allow_conflicts().flat_dict().await?;
    println!("last wins: {merged:?}");

    // Lists concatenate; a failing handler is reported unless errors are ignored.
    bus.on(|_: EventHandle<ListPluginsEvent>| vec!["auth".to_string(), "cache".to_string()]);
    bus.on(
        |_: EventHandle<ListPluginsEvent>| -> Result<Vec<String>, HandlerError> {
            Err(HandlerError::new(
                "PluginError",
                "metrics plugin failed to load",
            ))
        },
    );
    bus.on(|_: EventHandle<ListPluginsEvent>| vec!["search".to_string()]);
    let plugins = bus.dispatch(ListPluginsEvent)?;
    match plugins.event_results_flat_list().await {
        Err(err) => println!("plugins failed: {err}"),
        Ok(all) => println!("unexpected: {all:?}"),
    }
    let loaded = plugins.results().ignore_errors().flat_list().await?;
    println!("plugins:  {loaded:?}");
    let short = plugins
        .results()
        .ignore_errors()
        .include(|r| r.result.as_ref().is_some_and(|names| names.len() == 1))
        .list()
        .await?;
    println!("filtered: {short:?}");

    // race(): the first handler to return a value wins; the others are cancelled.
    let fastest = bus.dispatch(GetConfigEvent)?.race().await?;
    println!("first():  {fastest:?}");
    Ok(())
}
