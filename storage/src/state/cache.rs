//! A read-through cache of apps by id or uid: every ingest request looks its app up, and apps
//! change rarely. Writers bump a generation and clear it; a reader caches what it read only if
//! no write happened since it started, so a stale record is never cached.

use std::{collections::HashMap, sync::Mutex};

/// Entries kept at most; beyond it the cache starts over.
const ENTRIES_MAX: usize = 4096;

pub(crate) struct AppCache<V> {
    inner: Mutex<Inner<V>>,
}

struct Inner<V> {
    generation: u64,
    by_name: HashMap<String, V>,
}

impl<V> Default for AppCache<V> {
    fn default() -> Self {
        Self {
            inner: Mutex::new(Inner {
                generation: 0,
                by_name: HashMap::new(),
            }),
        }
    }
}

impl<V: Clone> AppCache<V> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<V>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The cached app named `s` (id or uid), or the generation to pass to [`AppCache::fill`].
    pub(crate) fn get(&self, s: &str) -> Result<V, u64> {
        let inner = self.lock();
        inner.by_name.get(s).cloned().ok_or(inner.generation)
    }

    /// Caches `app` under `s`, unless apps were written since `generation`.
    pub(crate) fn fill(&self, generation: u64, s: &str, app: &V) {
        let mut inner = self.lock();
        if inner.generation != generation {
            return;
        }
        if inner.by_name.len() >= ENTRIES_MAX {
            inner.by_name.clear();
        }
        inner.by_name.insert(s.to_owned(), app.clone());
    }

    /// Forgets everything: call after every write to an app.
    pub(crate) fn invalidate(&self) {
        let mut inner = self.lock();
        inner.generation += 1;
        inner.by_name.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_that_raced_a_write_is_not_cached() {
        let c = AppCache::<String>::default();
        let generation = c.get("shop").unwrap_err();
        c.invalidate(); // a write lands while the reader reads the old record
        c.fill(generation, "shop", &"old".to_owned());
        assert!(c.get("shop").is_err(), "the old record was not cached");
        let generation = c.get("shop").unwrap_err();
        c.fill(generation, "shop", &"new".to_owned());
        assert_eq!(c.get("shop").unwrap(), "new");
        c.invalidate();
        assert!(c.get("shop").is_err());
    }
}
