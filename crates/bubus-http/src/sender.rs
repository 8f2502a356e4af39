//! The sending side: a reqwest client that POSTs events, keeping connections alive and retrying
//! what may succeed on a second try.

use std::time::Duration;

use axum::body::Bytes;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};

/// How a sender retries a POST that failed with a connection error, a timeout, a 5xx, a 408 or
/// a 429: up to `attempts` tries in all, waiting `base`, `2·base`, `4·base`, … (at most `max`,
/// with ±25 % jitter) between them.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Tries in all, the first included (at least 1).
    pub attempts: u32,
    /// The first wait.
    pub base: Duration,
    /// The longest wait.
    pub max: Duration,
}

impl Default for RetryPolicy {
    /// 6 tries, waiting 50 ms, 100 ms, … up to 2 s (about 1.5 s in all).
    fn default() -> Self {
        RetryPolicy {
            attempts: 6,
            base: Duration::from_millis(50),
            max: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// No retries: one try.
    pub fn none() -> Self {
        RetryPolicy {
            attempts: 1,
            ..RetryPolicy::default()
        }
    }

    fn delay(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.min(20));
        let delay = self.base.saturating_mul(factor).min(self.max);
        // ±25 % so many senders retrying at once spread out.
        delay.mul_f64(0.75 + fastrand::f64() * 0.5)
    }
}

/// Why a send failed for good.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The receiver answered with a status that retrying will not change (a 4xx but 408/429),
    /// or the last retry still got an error status.
    #[error("POST {url}: {status} {body}")]
    Status {
        /// The URL.
        url: String,
        /// The status.
        status: u16,
        /// The response body (the receiver's reason), cut to 512 bytes.
        body: String,
    },
    /// The request could not be made (connection refused, reset, timed out) on the last try.
    #[error("POST {url}: {source}")]
    Request {
        /// The URL.
        url: String,
        /// What failed.
        #[source]
        source: reqwest::Error,
    },
    /// The URL or the token cannot be used.
    #[error("{0}")]
    Config(String),
}

/// A sender that POSTs JSON events to one URL (`http://host:port/path`), over kept-alive
/// connections, retrying per its [`RetryPolicy`].
#[derive(Clone, Debug)]
pub struct HttpSender {
    client: reqwest::Client,
    url: reqwest::Url,
    token: Option<HeaderValue>,
    retry: RetryPolicy,
}

impl HttpSender {
    /// A sender to `url`, with the default retry policy, a 10 s timeout per try (the family's)
    /// and no token.
    ///
    /// # Errors
    ///
    /// [`SendError::Config`] if `url` is not an `http://` URL.
    pub fn new(url: &str) -> Result<Self, SendError> {
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| SendError::Config(format!("invalid URL {url:?}: {e}")))?;
        if parsed.scheme() != "http" {
            return Err(SendError::Config(format!(
                "unsupported URL {url:?}: only http:// is supported"
            )));
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| SendError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(HttpSender {
            client,
            url: parsed,
            token: None,
            retry: RetryPolicy::default(),
        })
    }

    /// Sends `Authorization: Bearer <token>` with every request.
    ///
    /// # Errors
    ///
    /// [`SendError::Config`] if the token cannot be a header value.
    pub fn bearer_token(mut self, token: &str) -> Result<Self, SendError> {
        let mut value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
            SendError::Config("the bearer token is not a valid header value".into())
        })?;
        value.set_sensitive(true);
        self.token = Some(value);
        Ok(self)
    }

    /// Retries per `policy`.
    #[must_use]
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// The URL.
    pub fn url(&self) -> &str {
        self.url.as_str()
    }

    /// POSTs one event's JSON text; done once the receiver answered 2xx.
    ///
    /// # Errors
    ///
    /// A [`SendError`] once retrying is over or pointless.
    pub async fn send(&self, json: impl Into<Bytes>) -> Result<(), SendError> {
        let body: Bytes = json.into();
        let attempts = self.retry.attempts.max(1);
        let mut retry = 0;
        loop {
            let mut request = self
                .client
                .post(self.url.clone())
                .header(CONTENT_TYPE, "application/json")
                .body(body.clone());
            if let Some(token) = &self.token {
                request = request.header(AUTHORIZATION, token.clone());
            }
            let last = retry + 1 >= attempts;
            match request.send().await {
                Ok(response) if response.status().is_success() => return Ok(()),
                Ok(response) => {
                    let status = response.status();
                    let retryable = status.is_server_error()
                        || status == StatusCode::REQUEST_TIMEOUT
                        || status == StatusCode::TOO_MANY_REQUESTS;
                    if !retryable || last {
                        let mut text = response.text().await.unwrap_or_default();
                        if text.len() > 512 {
                            let mut cut = 512;
                            while !text.is_char_boundary(cut) {
                                cut -= 1;
                            }
                            text.truncate(cut);
                        }
                        return Err(SendError::Status {
                            url: self.url.to_string(),
                            status: status.as_u16(),
                            body: text,
                        });
                    }
                    tracing::debug!(url = %self.url, %status, retry, "bubus-http: retrying");
                }
                Err(e) => {
                    if last {
                        return Err(SendError::Request {
                            url: self.url.to_string(),
                            source: e,
                        });
                    }
                    tracing::debug!(url = %self.url, error = %e, retry, "bubus-http: retrying");
                }
            }
            tokio::time::sleep(self.retry.delay(retry)).await;
            retry += 1;
        }
    }
}
