//! The process-wide table of named semaphores.
//!
//! An entry lives exactly as long as its semaphore is referenced: by a call that holds or waits
//! for a slot, or by a policy that used it (policies keep their global and per-type semaphores).
//! When the last reference goes, the entry removes itself. So the table never grows with the
//! number of instances or calls, and a per-instance semaphore is gone once its instance has no
//! call in flight — it cannot outlive the instance, nor be inherited by another instance that
//! reuses the address.
//!
//! A semaphore with no holders and no waiters has every slot free, so dropping it and creating a
//! new one later is indistinguishable from keeping it.

use std::any::TypeId;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Weak};

use parking_lot::Mutex;
use tokio::sync::Semaphore;

use super::SemaphoreScope;

/// Which semaphore a call uses: its scope, name and (for per-type and per-instance scopes) the
/// receiver.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(super) enum Key {
    Global(Arc<str>),
    Type {
        ty: TypeId,
        type_name: &'static str,
        name: Arc<str>,
    },
    Instance {
        ty: TypeId,
        type_name: &'static str,
        addr: usize,
        name: Arc<str>,
    },
    MultiProcess {
        name: Arc<str>,
        /// Processes share the semaphore through this directory; another directory is another
        /// semaphore.
        dir: Arc<Path>,
    },
}

/// The receiver of a call, for the per-type and per-instance scopes.
#[derive(Clone, Copy, Debug)]
pub(super) struct Receiver {
    pub(super) ty: TypeId,
    pub(super) type_name: &'static str,
    pub(super) addr: usize,
}

impl Receiver {
    pub(super) fn of<S: ?Sized + 'static>(receiver: &S) -> Self {
        Receiver {
            ty: TypeId::of::<S>(),
            type_name: std::any::type_name::<S>(),
            addr: (receiver as *const S).cast::<()>() as usize,
        }
    }
}

impl Key {
    /// Per-type and per-instance scopes without a receiver fall back to the global scope, as in
    /// the reference runtimes (a free function has no `self`).
    pub(super) fn new(
        scope: SemaphoreScope,
        name: Arc<str>,
        receiver: Option<Receiver>,
        dir: impl FnOnce() -> PathBuf,
    ) -> Self {
        match (scope, receiver) {
            (SemaphoreScope::MultiProcess, _) => Key::MultiProcess {
                name,
                dir: Arc::from(dir()),
            },
            (SemaphoreScope::Type, Some(r)) => Key::Type {
                ty: r.ty,
                type_name: r.type_name,
                name,
            },
            (SemaphoreScope::Instance, Some(r)) => Key::Instance {
                ty: r.ty,
                type_name: r.type_name,
                addr: r.addr,
                name,
            },
            _ => Key::Global(name),
        }
    }

    /// Whether a policy may keep this semaphore alive: not per-instance ones, which must go
    /// away with their instance.
    pub(super) fn is_per_instance(&self) -> bool {
        matches!(self, Key::Instance { .. })
    }
}

fn short(type_name: &str) -> &str {
    let head = type_name.split('<').next().unwrap_or(type_name);
    let start = head.rfind("::").map_or(0, |i| i + 2);
    &type_name[start..]
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Global(name) => f.write_str(name),
            Key::Type {
                type_name, name, ..
            } => write!(f, "{}.{name}", short(type_name)),
            Key::Instance {
                type_name,
                addr,
                name,
                ..
            } => write!(f, "{}@{addr:#x}.{name}", short(type_name)),
            Key::MultiProcess { name, .. } => write!(f, "{name} (multiprocess)"),
        }
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// One named semaphore.
pub(super) struct Shared {
    pub(super) key: Key,
    pub(super) limit: usize,
    pub(super) sem: Semaphore,
}

static REGISTRY: LazyLock<Mutex<HashMap<Key, Weak<Shared>>>> = LazyLock::new(Default::default);

/// The semaphore for `key`, created with `limit` slots if nobody uses one. `Err(existing)` if it
/// is in use with another limit.
pub(super) fn resolve(key: &Key, limit: usize) -> Result<Arc<Shared>, usize> {
    let mut map = REGISTRY.lock();
    if let Some(shared) = map.get(key).and_then(Weak::upgrade) {
        if shared.limit == limit {
            return Ok(shared);
        }
        let existing = shared.limit;
        // `shared` may be the last reference; its drop locks the table, so unlock first.
        drop(map);
        drop(shared);
        return Err(existing);
    }
    let shared = Arc::new(Shared {
        key: key.clone(),
        limit,
        sem: Semaphore::new(limit),
    });
    map.insert(key.clone(), Arc::downgrade(&shared));
    Ok(shared)
}

impl Drop for Shared {
    fn drop(&mut self) {
        let mut map = REGISTRY.lock();
        let ours = map
            .get(&self.key)
            .is_some_and(|w| std::ptr::eq(w.as_ptr(), self as *const Shared));
        if ours {
            map.remove(&self.key);
        }
    }
}

/// How many semaphores exist right now (for tests of the table's growth).
pub(super) fn len() -> usize {
    REGISTRY.lock().len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_live_as_long_as_their_semaphore() {
        let key = Key::Global("registry-unit-test".into());
        let a = resolve(&key, 2).ok();
        assert!(a.is_some());
        assert_eq!(resolve(&key, 3).err(), Some(2));
        let b = resolve(&key, 2).ok();
        assert!(
            a.as_ref()
                .zip(b.as_ref())
                .is_some_and(|(a, b)| Arc::ptr_eq(a, b))
        );
        drop((a, b));
        assert!(!REGISTRY.lock().contains_key(&key));
        // Nobody uses it any more, so another limit is fine now.
        assert!(resolve(&key, 3).is_ok());
    }

    #[test]
    fn keys_read_well() {
        struct Db;
        let r = Receiver::of(&Db);
        let name: Arc<str> = "query".into();
        let key = |scope, receiver| Key::new(scope, Arc::clone(&name), receiver, PathBuf::new);
        assert_eq!(key(SemaphoreScope::Type, Some(r)).to_string(), "Db.query");
        assert_eq!(key(SemaphoreScope::Instance, None).to_string(), "query");
        assert_eq!(
            key(SemaphoreScope::MultiProcess, Some(r)).to_string(),
            "query (multiprocess)"
        );
    }
}
