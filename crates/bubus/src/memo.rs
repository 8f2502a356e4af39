//! Process-wide memo tables: values computed once per handler type or registration site, of
//! which a program has finitely many, so the tables never need evicting.

use std::hash::Hash;
use std::sync::OnceLock;

use parking_lot::RwLock;
use rustc_hash::FxHashMap;

/// A `static` map from a key to the value computed for it the first time it was asked for.
pub(crate) struct Memo<K, V>(OnceLock<RwLock<FxHashMap<K, V>>>);

impl<K: Hash + Eq, V: Clone> Memo<K, V> {
    pub(crate) const fn new() -> Self {
        Memo(OnceLock::new())
    }

    /// The value remembered for `key`, or `make()`'s, remembered from now on. Two threads
    /// asking at once may both call `make`; the first value stored wins.
    pub(crate) fn get_or_insert_with(&self, key: K, make: impl FnOnce() -> V) -> V {
        let map = self.0.get_or_init(Default::default);
        if let Some(value) = map.read().get(&key) {
            return value.clone();
        }
        let value = make();
        map.write().entry(key).or_insert(value).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::Memo;

    #[test]
    fn a_value_is_made_once_per_key() {
        static MEMO: Memo<u32, String> = Memo::new();
        let mut made = 0;
        for _ in 0..3 {
            let value = MEMO.get_or_insert_with(7, || {
                made += 1;
                "seven".to_owned()
            });
            assert_eq!(value, "seven");
        }
        assert_eq!(made, 1);
        assert_eq!(MEMO.get_or_insert_with(8, || "eight".to_owned()), "eight");
    }
}
