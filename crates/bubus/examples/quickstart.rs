//! The login flow from the bubus README: a login handler asks an auth service for an API key
//! through the bus, waits for the answer, and returns a greeting.
//!
//! Run it with `cargo run --example quickstart`.

use std::sync::Arc;

use bubus::handler::method;
use bubus::{Event, EventBus, EventHandle};
use serde::{Deserialize, Serialize};

/// A user logged in. Its handlers return a greeting.
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(result = String)]
struct UserLoginEvent {
    username: String,
    is_admin: bool,
}

/// Ask the auth service for credentials. Its handlers return an [`AuthResponse`].
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(result = AuthResponse)]
struct AuthRequestEvent {
    username: String,
    scope: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct AuthResponse {
    api_key: String,
    expires_in: u32,
}

#[derive(Debug, thiserror::Error)]
#[error("user {0} is not allowed")]
struct Forbidden(String);

/// A service whose method handles auth requests.
struct AuthApi {
    allowed: Vec<String>,
}

impl AuthApi {
    async fn post(
        self: Arc<Self>,
        request: EventHandle<AuthRequestEvent>,
    ) -> Result<AuthResponse, Forbidden> {
        if !self.allowed.contains(&request.username) {
            return Err(Forbidden(request.username.clone()));
        }
        Ok(AuthResponse {
            api_key: format!("key-{}-{}", request.username, request.scope),
            expires_in: 3600,
        })
    }
}

async fn handle_login(event: EventHandle<UserLoginEvent>) -> Result<String, bubus::Error> {
    // The bus running this handler; the auth request becomes a child of the login event.
    let bus = bubus::bus::current_bus().expect("handlers run with a current bus");
    let scope = if event.is_admin { "admin" } else { "user" };
    let auth_request = bus.dispatch(AuthRequestEvent {
        username: event.username.clone(),
        scope: scope.into(),
    })?;
    // Awaiting inside a handler jumps the queue: the request is handled right now.
    let auth_response = auth_request.event_result().await?;
    Ok(format!(
        "User {} logged in admin={} with API response: {:?}",
        event.username, event.is_admin, auth_response
    ))
}

#[tokio::main]
async fn main() -> Result<(), bubus::Error> {
    let bus = EventBus::new("AppBus");
    let auth_api = Arc::new(AuthApi {
        allowed: vec!["alice".into()],
    });

    bus.on(handle_login);
    bus.on(method(&auth_api, AuthApi::post));

    let event = bus.dispatch(UserLoginEvent {
        username: "alice".into(),
        is_admin: true,
    })?;
    println!("{}", event.event_result().await?);

    // Mallory is not allowed: the auth handler's error surfaces through the login handler.
    let denied = bus.dispatch(UserLoginEvent {
        username: "mallory".into(),
        is_admin: false,
    })?;
    match denied.event_result().await {
        Ok(greeting) => println!("unexpected: {greeting}"),
        Err(err) => println!("login failed: {err}"),
    }

    println!("\n{}", bus.log_tree());
    Ok(())
}
