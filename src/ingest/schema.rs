//! Payload schemas: an event type's `schemas` (one JSON Schema per version, `{"1": {...}}`, as
//! in the Svix API), enforced on message create when `validation.enforce_schemas` is on.
//!
//! - **Which version.** Svix's message has no schema version, so a message is checked against
//!   version [`VERSION`] (`"1"`) of its event type's schemas. An event type without that version,
//!   without schemas, or not registered at all lets any payload through.
//! - **Drafts.** A schema's `$schema` picks the draft (4, 6, 7, 2019-09, 2020-12); without one it
//!   is 2020-12. `$ref`s resolve only inside the schema itself: hookd never fetches a remote or
//!   file reference, so a schema that needs one is refused at write. The checks themselves are
//!   the `hookd-schema` crate (`schema/`), a non-generic wrapper of the `jsonschema` crate.
//! - **When compiled.** Every version is compiled when the event type is written (a schema that
//!   does not compile refuses the write, 422 naming the version). Version `"1"` is then kept in
//!   the [`Schemas`] cache, shared by the shards. After a restart the cache starts empty and
//!   fills lazily, one compile per event type.
//! - **Cache validity.** Entries are keyed by event type name (for version `"1"`) and stamped
//!   with the record's `updated_ms` and a hash of its `schemas` text. Every event type write
//!   bumps a generation counter; an entry of an older generation is checked against the stored
//!   record (one index read) and recompiled only if its stamp changed. So the ingest path does no
//!   index read while no event type changes.
//! - **Bounded.** At most [`CACHE_ENTRIES_MAX`] entries (unregistered event types are cached too,
//!   as "no schema"); when full, the cache is emptied and refills lazily. A refusal lists at
//!   most [`VIOLATIONS_MAX`] problems, each message at most [`REASON_BYTES_MAX`] bytes.
//! - **A stored schema that no longer compiles** (written before hookd checked schemas) fails
//!   closed: its messages are refused with the compile error, so enforcement never silently
//!   stops.

use std::{
    collections::HashMap,
    hash::{DefaultHasher, Hash, Hasher},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, PoisonError, RwLock,
    },
};

use hookd_schema::Schema;
use serde_json::Value;

pub use crate::model::schemas::{check_text, compile, SchemaError, REASON_BYTES_MAX, VERSION};
use crate::model::schemas::{compile_versions, truncate};
use storage::state::{EventTypeRecord, State};

/// Most event types the cache holds before it is emptied.
pub const CACHE_ENTRIES_MAX: usize = 4096;
/// Most problems one refusal lists.
pub const VIOLATIONS_MAX: usize = 10;
/// One way a payload breaks its schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// JSON pointer (RFC 6901) into the payload: `""` for the payload itself, `/items/0/sku`.
    pub pointer: String,
    /// What is wrong there, in the `jsonschema` crate's words.
    pub reason: String,
}

impl Violation {
    /// The pointer's segments, unescaped (`~1` is `/`, `~0` is `~`).
    pub fn segments(&self) -> Vec<String> {
        self.pointer
            .split('/')
            .skip(1)
            .map(|s| s.replace("~1", "/").replace("~0", "~"))
            .collect()
    }
}

/// Why a payload was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// It does not match the schema.
    #[error("the payload does not match the schema of its event type")]
    Violations(Vec<Violation>),
    /// The stored schema does not compile; nothing can match it until the event type is fixed.
    #[error(
        "the schema of event type {event_type} (version {VERSION}) does not compile: {reason}"
    )]
    Broken { event_type: String, reason: String },
    /// Reading the event type failed.
    #[error(transparent)]
    Storage(#[from] storage::Error),
}

/// A compiled schema: what the cache holds for one event type.
#[derive(Clone)]
enum Compiled {
    /// No schema for [`VERSION`]: anything goes.
    None,
    Schema(Arc<Schema>),
    Broken(Arc<str>),
}

/// What a cached entry was compiled from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    /// `updated_ms` of the record; 0 when there is none.
    updated_ms: u64,
    /// Hash of its `schemas` text (0 when none).
    hash: u64,
}

impl Stamp {
    fn of(et: Option<&EventTypeRecord>) -> Self {
        match et {
            None => Self {
                updated_ms: 0,
                hash: 0,
            },
            Some(et) => Self {
                updated_ms: et.updated_ms,
                hash: et.schemas.as_deref().map_or(0, |s| {
                    let mut h = DefaultHasher::new();
                    s.hash(&mut h);
                    h.finish()
                }),
            },
        }
    }
}

#[derive(Clone)]
struct Entry {
    generation: u64,
    stamp: Stamp,
    compiled: Compiled,
}

/// An event type's schemas, checked and compiled before it is stored (see [`prepare`]).
pub struct Prepared {
    name: String,
    stamp: Stamp,
    compiled: Compiled,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Checks and compiles `et`'s schemas before it is stored; hand the result to
/// [`Schemas::written`] once it is.
pub fn prepare(et: &EventTypeRecord) -> Result<Prepared, SchemaError> {
    let compiled = match et.schemas.as_deref() {
        None => Compiled::None,
        Some(text) => match compile_versions(text)? {
            None => Compiled::None,
            Some(v) => Compiled::Schema(Arc::new(v)),
        },
    };
    Ok(Prepared {
        name: et.name.clone(),
        stamp: Stamp::of(Some(et)),
        compiled,
    })
}

/// Compiled schemas by event type, shared by the shards.
#[derive(Default)]
pub struct Schemas {
    /// Bumped on every event type write.
    generation: AtomicU64,
    cache: RwLock<HashMap<String, Entry>>,
}

impl std::fmt::Debug for Schemas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Schemas")
            .field("generation", &self.generation.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Schemas {
    /// An event type was stored: keep its compiled schema and make every other entry check
    /// its record again.
    pub fn written(&self, prepared: Prepared) {
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        self.insert(
            prepared.name,
            Entry {
                generation,
                stamp: prepared.stamp,
                compiled: prepared.compiled,
            },
        );
    }

    /// Event types were stored by a writer that did not go through [`Schemas::written`] (the
    /// config's `[[event_types]]`): every entry checks its record again on next use.
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// An event type was removed (expunged).
    pub fn removed(&self, name: &str) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.cache
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name);
    }

    fn insert(&self, name: String, entry: Entry) {
        let mut cache = self.cache.write().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= CACHE_ENTRIES_MAX && !cache.contains_key(&name) {
            cache.clear();
        }
        cache.insert(name, entry);
    }

    /// The compiled schema of `event_type`, from the cache or, when the cache may be stale,
    /// from the stored record (compiled again only if it changed).
    fn lookup(&self, state: &State, event_type: &str) -> storage::Result<Compiled> {
        let generation = self.generation.load(Ordering::Acquire);
        let cached = self
            .cache
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(event_type)
            .cloned();
        if let Some(e) = &cached {
            if e.generation == generation {
                return Ok(e.compiled.clone());
            }
        }
        let record = state.event_type(event_type)?;
        let stamp = Stamp::of(record.as_ref());
        let compiled = match cached {
            Some(e) if e.stamp == stamp => e.compiled,
            _ => match record.as_ref().and_then(|et| et.schemas.as_deref()) {
                None => Compiled::None,
                Some(text) => match compile_versions(text) {
                    Ok(None) => Compiled::None,
                    Ok(Some(v)) => Compiled::Schema(Arc::new(v)),
                    Err(e) => {
                        tracing::warn!(event_type, error = %e, "a stored event type schema does not compile; its messages are refused");
                        Compiled::Broken(e.to_string().into())
                    }
                },
            },
        };
        self.insert(
            event_type.to_owned(),
            Entry {
                generation,
                stamp,
                compiled: compiled.clone(),
            },
        );
        Ok(compiled)
    }

    /// Checks `payload` (the text of a JSON object) against version [`VERSION`] of
    /// `event_type`'s schemas.
    pub fn check(&self, state: &State, event_type: &str, payload: &str) -> Result<(), Refusal> {
        let schema = match self.lookup(state, event_type)? {
            Compiled::None => return Ok(()),
            Compiled::Broken(reason) => {
                return Err(Refusal::Broken {
                    event_type: event_type.to_owned(),
                    reason: reason.to_string(),
                })
            }
            Compiled::Schema(v) => v,
        };
        // A payload that cannot be read for the check (nested deeper than the parser goes,
        // 128 levels) is refused: enforcement fails closed, it never lets one through.
        let value = match serde_json::from_str::<Value>(payload) {
            Ok(v) => v,
            Err(e) => {
                return Err(Refusal::Violations(vec![Violation {
                    pointer: String::new(),
                    reason: truncate(format!(
                        "the payload cannot be checked against its schema: {e}"
                    )),
                }]))
            }
        };
        let problems = schema.problems(&value, VIOLATIONS_MAX);
        if problems.is_empty() {
            return Ok(());
        }
        let violations = problems
            .into_iter()
            .map(|p| Violation {
                pointer: p.pointer,
                reason: truncate(p.reason),
            })
            .collect();
        Err(Refusal::Violations(violations))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn et(name: &str, schemas: Option<&str>, updated_ms: u64) -> EventTypeRecord {
        EventTypeRecord {
            name: name.into(),
            description: String::new(),
            archived: false,
            deprecated: false,
            feature_flags: Vec::new(),
            schemas: schemas.map(str::to_owned),
            config_owned: false,
            created_ms: 1,
            updated_ms,
        }
    }

    const INVOICE: &str = r#"{"1": {"type": "object", "required": ["invoiceId"],
        "properties": {"invoiceId": {"type": "string"},
                       "lines": {"type": "array", "items": {"type": "object",
                                 "properties": {"a/b": {"type": "integer"}}}}}}}"#;

    fn temp_state() -> (tempfile::TempDir, State) {
        let dir = tempfile::tempdir().unwrap();
        let state = State::open(dir.path(), 1 << 20).unwrap();
        (dir, state)
    }

    #[test]
    fn invalid_schemas_are_refused_naming_the_version() {
        assert_eq!(
            prepare(&et("a", Some("[1]"), 1)).unwrap_err(),
            SchemaError::NotAnObject
        );
        let e = prepare(&et(
            "a",
            Some(r#"{"1": {"type": "object"}, "2": {"type": 5}}"#),
            1,
        ))
        .unwrap_err();
        assert!(
            matches!(&e, SchemaError::Invalid { version, .. } if version == "2"),
            "{e}"
        );
        // Remote references are never fetched: a schema that needs one does not compile.
        let e = prepare(&et(
            "a",
            Some(r#"{"1": {"$ref": "https://example.com/schema.json"}}"#),
            1,
        ))
        .unwrap_err();
        assert!(matches!(e, SchemaError::Invalid { .. }), "{e}");
        // Draft 7 by `$schema`, and local references, are fine.
        prepare(&et(
            "a",
            Some(
                r##"{"1": {"$schema": "http://json-schema.org/draft-07/schema#",
                "definitions": {"id": {"type": "string"}},
                "properties": {"id": {"$ref": "#/definitions/id"}}}}"##,
            ),
            1,
        ))
        .unwrap();
    }

    #[test]
    fn violations_name_the_pointer_and_the_reason() {
        let (_dir, state) = temp_state();
        let s = Schemas::default();
        s.written(prepare(&et("invoice.paid", Some(INVOICE), 1)).unwrap());
        s.check(&state, "invoice.paid", r#"{"invoiceId": "i1"}"#)
            .unwrap();
        let Err(Refusal::Violations(v)) = s.check(
            &state,
            "invoice.paid",
            r#"{"invoiceId": 5, "lines": [{"a/b": 1}, {"a/b": "x"}]}"#,
        ) else {
            panic!("accepted")
        };
        let pointers: Vec<&str> = v.iter().map(|v| v.pointer.as_str()).collect();
        assert!(pointers.contains(&"/invoiceId"), "{v:?}");
        assert!(pointers.contains(&"/lines/1/a~1b"), "{v:?}");
        let nested = v.iter().find(|v| v.pointer == "/lines/1/a~1b").unwrap();
        assert_eq!(nested.segments(), ["lines", "1", "a/b"]);
        assert!(nested.reason.contains("integer"), "{nested:?}");
        let Err(Refusal::Violations(v)) = s.check(&state, "invoice.paid", "{}") else {
            panic!("accepted")
        };
        assert_eq!(v[0].pointer, "");
        assert!(v[0].reason.contains("invoiceId"), "{v:?}");
    }

    #[test]
    fn a_payload_too_deep_to_check_is_refused_not_let_through() {
        let (_dir, state) = temp_state();
        let s = Schemas::default();
        s.written(prepare(&et("invoice.paid", Some(INVOICE), 1)).unwrap());
        // Valid JSON that breaks the schema at any depth, nested past the parser's 128
        // levels: it was accepted, since the check could not read it.
        for depth in [127, 128, 200, 10_000] {
            let payload = format!(
                r#"{{"invoiceId": 5, "deep": {}{}}}"#,
                "[".repeat(depth),
                "]".repeat(depth)
            );
            let Err(Refusal::Violations(v)) = s.check(&state, "invoice.paid", &payload) else {
                panic!("a payload nested {depth} deep was accepted")
            };
            assert!(!v.is_empty(), "{depth}");
        }
    }

    #[test]
    fn the_cache_follows_the_stored_record() {
        let (_dir, state) = temp_state();
        let s = Schemas::default();
        // Not registered, or no version "1": anything goes.
        s.check(&state, "nobody", r#"{"x": 1}"#).unwrap();
        let v2_only = et(
            "t",
            Some(r#"{"2": {"type": "object", "required": ["x"]}}"#),
            1,
        );
        state.put_event_type(&v2_only).unwrap();
        s.written(prepare(&v2_only).unwrap());
        s.check(&state, "t", "{}").unwrap();
        // Lazily, after a restart (a fresh cache), from the stored record.
        let strict = et(
            "t",
            Some(r#"{"1": {"type": "object", "required": ["x"]}}"#),
            2,
        );
        state.put_event_type(&strict).unwrap();
        let fresh = Schemas::default();
        assert!(fresh.check(&state, "t", "{}").is_err());
        fresh.check(&state, "t", r#"{"x": 0}"#).unwrap();
        // A write elsewhere bumps the generation; the entry is checked against the record.
        state.put_event_type(&v2_only).unwrap();
        fresh.written(prepare(&et("other", None, 3)).unwrap());
        fresh.check(&state, "t", "{}").unwrap();
        // Removed: nothing to enforce.
        state.delete_event_type("t").unwrap();
        fresh.removed("t");
        fresh.check(&state, "t", "{}").unwrap();
    }

    #[test]
    fn a_stored_schema_that_does_not_compile_fails_closed() {
        let (_dir, state) = temp_state();
        state
            .put_event_type(&et("t", Some(r#"{"1": {"type": 5}}"#), 1))
            .unwrap();
        let s = Schemas::default();
        assert!(matches!(
            s.check(&state, "t", "{}"),
            Err(Refusal::Broken { .. })
        ));
    }

    #[test]
    fn the_cache_is_bounded() {
        let (_dir, state) = temp_state();
        let s = Schemas::default();
        for i in 0..CACHE_ENTRIES_MAX + 10 {
            s.check(&state, &format!("t{i}"), "{}").unwrap();
        }
        let len = s.cache.read().unwrap().len();
        assert!(len <= CACHE_ENTRIES_MAX, "{len}");
    }

    #[test]
    fn reasons_are_cut_on_a_character_boundary() {
        let long = "é".repeat(REASON_BYTES_MAX);
        let cut = truncate(long);
        assert!(cut.len() <= REASON_BYTES_MAX && cut.ends_with("..."));
    }
}
