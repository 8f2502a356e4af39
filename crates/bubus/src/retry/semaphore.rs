//! Concurrency limits around retried calls: scopes, acquisition with a timeout (strict or lax),
//! re-entrancy, and the guard that gives the slot back.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::multiprocess::{self, FileSlot, SlotError};
use super::registry::{self, Key, Receiver, Shared};
use super::{Retry, RetryError};

/// Which calls share a semaphore. Calls share one when they use the same scope, the same
/// [name](Retry::semaphore_name) and, for [`Type`](SemaphoreScope::Type) and
/// [`Instance`](SemaphoreScope::Instance), the same receiver type or receiver.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SemaphoreScope {
    /// One semaphore per name in this process.
    #[default]
    Global,
    /// One semaphore per name and receiver type: every instance of a type shares it (the
    /// reference's `class` scope). Needs a receiver ([`Retry::run_on`], [`Retry::method`]);
    /// without one it is the global semaphore of that name.
    #[doc(alias = "class")]
    Type,
    /// One semaphore per name and receiver (the reference's `self`/`instance` scope). It exists
    /// only while calls on that receiver hold or wait for it, so it goes away with its instance.
    /// Without a receiver it is the global semaphore of that name.
    #[doc(alias = "self")]
    Instance,
    /// One semaphore per name shared by every process on this machine — Rust, Python or
    /// TypeScript abxbus alike — through the family's slot files in [`Retry::semaphore_dir`]. A
    /// slot whose process has died is taken over by the next process that looks at it.
    #[doc(alias = "multiprocess")]
    MultiProcess,
}

/// The semaphore part of a policy.
#[derive(Clone, Debug, Default)]
pub(super) struct SemaphoreConfig {
    /// 0: no semaphore.
    pub(super) limit: usize,
    pub(super) name: Option<Arc<str>>,
    pub(super) scope: SemaphoreScope,
    /// `None`: derived from the per-attempt timeout; `Some(None)`: wait forever.
    pub(super) timeout: Option<Option<Duration>>,
    pub(super) strict: bool,
    pub(super) dir: Option<PathBuf>,
}

impl SemaphoreConfig {
    /// The explicit value, else `timeout × max(1, limit − 1)` when attempts have a timeout (long
    /// enough for the calls ahead of us to finish an attempt each), else forever.
    pub(super) fn wait(&self, attempt_timeout: Option<Duration>, limit: usize) -> Option<Duration> {
        match self.timeout {
            Some(explicit) => explicit,
            None => attempt_timeout.map(|t| {
                let factor = u32::try_from(limit.saturating_sub(1).max(1)).unwrap_or(u32::MAX);
                t.checked_mul(factor).unwrap_or(Duration::MAX)
            }),
        }
    }
}

tokio::task_local! {
    /// The semaphores held by the chain of retried calls that led here, with their limits.
    static HELD: Held;
}

#[derive(Clone, Default)]
pub(super) struct Held(Arc<Vec<(Key, usize)>>);

fn held_limit(key: &Key) -> Option<usize> {
    HELD.try_with(|held| held.0.iter().find(|(k, _)| k == key).map(|(_, l)| *l))
        .ok()
        .flatten()
}

/// A slot (or none: no semaphore, re-entered, or lax). Dropping it gives the slot back.
#[derive(Default)]
pub(super) struct Guard {
    local: Option<Arc<Shared>>,
    file: Option<FileSlot>,
    held: Option<Held>,
}

impl Guard {
    /// What nested calls must see as held while this call runs, if it took a slot.
    pub(super) fn held(&self) -> Option<Held> {
        self.held.clone()
    }

    pub(super) async fn scope<F: std::future::Future>(held: Held, fut: F) -> F::Output {
        HELD.scope(held, fut).await
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        drop(self.file.take());
        if let Some(shared) = self.local.take() {
            shared.sem.add_permits(1);
        }
    }
}

impl Retry {
    /// Takes a slot of the policy's semaphore for a call on `receiver`.
    pub(super) async fn acquire<E>(
        &self,
        receiver: Option<Receiver>,
        label: &str,
    ) -> Result<Guard, RetryError<E>> {
        let cfg = &self.cfg.semaphore;
        if cfg.limit == 0 {
            return Ok(Guard::default());
        }
        let limit = cfg.limit.min(tokio::sync::Semaphore::MAX_PERMITS);
        let name = cfg
            .name
            .clone()
            .unwrap_or_else(|| Arc::clone(&self.cfg.default_name));
        let key = Key::new(cfg.scope, name, receiver, || {
            cfg.dir.clone().unwrap_or_else(multiprocess::default_dir)
        });

        // A call made while this call chain already holds the semaphore runs in that slot:
        // waiting for a slot our own caller holds could never end at limit 1.
        if let Some(existing) = held_limit(&key) {
            if existing != limit {
                return Err(mismatch(&key, limit, existing));
            }
            return Ok(Guard::default());
        }

        let shared = self
            .resolve(&key, limit)
            .map_err(|existing| mismatch(&key, limit, existing))?;
        let wait = cfg.wait(self.cfg.timeout, limit);
        let deadline = wait.and_then(|w| Instant::now().checked_add(w));
        let acquired = match deadline {
            None => shared.sem.acquire().await.ok(),
            Some(deadline) => tokio::time::timeout_at(deadline, shared.sem.acquire())
                .await
                .ok()
                .and_then(Result::ok),
        }
        // From here the guard owns the slot: `add_permits` in its drop gives it back.
        .map(tokio::sync::SemaphorePermit::forget)
        .is_some();
        if !acquired {
            return self.not_acquired(&key, limit, wait.unwrap_or(Duration::MAX), label);
        }
        let mut guard = Guard {
            local: Some(shared),
            file: None,
            held: None,
        };

        if let Key::MultiProcess { name, dir } = &key {
            match multiprocess::acquire(dir, name, limit, deadline).await {
                Ok(slot) => guard.file = Some(slot),
                Err(SlotError::Timeout) => {
                    drop(guard);
                    return self.not_acquired(&key, limit, wait.unwrap_or(Duration::MAX), label);
                }
                Err(SlotError::Io(source)) => {
                    if cfg.strict {
                        return Err(RetryError::SemaphoreIo {
                            semaphore: key.to_string(),
                            dir: dir.to_path_buf(),
                            source: Arc::new(source),
                        });
                    }
                    tracing::warn!(
                        target: "bubus::retry",
                        retry = label,
                        semaphore = %key,
                        dir = %dir.display(),
                        error = %source,
                        "cross-process semaphore unavailable; proceeding without its limit"
                    );
                    return Ok(Guard::default());
                }
            }
        }

        let mut held = HELD
            .try_with(|held| Vec::clone(&held.0))
            .unwrap_or_default();
        held.push((key, limit));
        guard.held = Some(Held(Arc::new(held)));
        Ok(guard)
    }

    fn not_acquired<E>(
        &self,
        key: &Key,
        limit: usize,
        waited: Duration,
        label: &str,
    ) -> Result<Guard, RetryError<E>> {
        if self.cfg.semaphore.strict {
            return Err(RetryError::SemaphoreTimeout {
                semaphore: key.to_string(),
                limit,
                timeout: waited,
            });
        }
        tracing::warn!(
            target: "bubus::retry",
            retry = label,
            semaphore = %key,
            limit,
            waited = ?waited,
            "no semaphore slot within the semaphore timeout; proceeding without the limit (lax)"
        );
        Ok(Guard::default())
    }

    /// The semaphore for `key`. Global, per-type and cross-process semaphores are kept by the
    /// policy once used, so a second policy using the name with another limit gets
    /// [`RetryError::LimitMismatch`] whenever this one is alive, not only when their calls
    /// happen to overlap.
    fn resolve(&self, key: &Key, limit: usize) -> Result<Arc<Shared>, usize> {
        if !key.is_per_instance() {
            if let Some(shared) = self.cache.lock().as_ref().filter(|s| s.key == *key) {
                return Ok(Arc::clone(shared));
            }
        }
        let shared = registry::resolve(key, limit)?;
        if !key.is_per_instance() {
            let previous = self.cache.lock().replace(Arc::clone(&shared));
            // Dropping a semaphore locks the registry; never while holding the cache lock.
            drop(previous);
        }
        Ok(shared)
    }
}

fn mismatch<E>(key: &Key, limit: usize, existing: usize) -> RetryError<E> {
    RetryError::LimitMismatch {
        semaphore: key.to_string(),
        limit,
        existing,
    }
}
