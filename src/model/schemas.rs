//! An event type's `schemas` text: one JSON Schema per version (`{"1": {...}}`, as in the
//! Svix API), checked and compiled by the `hookd-schema` crate. What a schema is belongs to
//! the model; `ingest::schema` caches the compiled ones and checks payloads against them.

use hookd_schema::Schema;
use serde_json::Value;

/// The schema version a message is checked against.
pub const VERSION: &str = "1";
/// Longest reason kept per problem (the crate's messages quote the offending value).
pub const REASON_BYTES_MAX: usize = 300;

/// Why an event type's `schemas` were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    /// `schemas` is not a JSON object.
    #[error(
        "must be an object of versioned JSON schemas, e.g. {{\"1\": {{\"type\": \"object\"}}}}"
    )]
    NotAnObject,
    /// One version is not a valid JSON Schema.
    #[error("version {version:?} is not a valid JSON schema: {reason}")]
    Invalid { version: String, reason: String },
}

/// Compiles one JSON Schema: its draft from `$schema` (2020-12 without), no remote or file
/// references, formats as the draft says.
pub fn compile(schema: &Value) -> Result<Schema, String> {
    Schema::compile(schema).map_err(truncate)
}

/// Checks an event type's `schemas` text: a JSON object whose every value compiles. Returns
/// the compiled version [`VERSION`], if there is one.
pub(crate) fn compile_versions(text: &str) -> Result<Option<Schema>, SchemaError> {
    let value: Value = serde_json::from_str(text).map_err(|_| SchemaError::NotAnObject)?;
    let Value::Object(versions) = value else {
        return Err(SchemaError::NotAnObject);
    };
    let mut current = None;
    for (version, schema) in &versions {
        let compiled = compile(schema).map_err(|reason| SchemaError::Invalid {
            version: version.clone(),
            reason,
        })?;
        if version == VERSION {
            current = Some(compiled);
        }
    }
    Ok(current)
}

/// Checks an event type's `schemas` text (a JSON object whose every version compiles), for
/// writers that store event types themselves (the config's `[[event_types]]`).
pub fn check_text(text: &str) -> Result<(), SchemaError> {
    compile_versions(text).map(|_| ())
}

/// Cuts a reason to [`REASON_BYTES_MAX`] bytes (at a character boundary), marking the cut.
pub(crate) fn truncate(mut s: String) -> String {
    if s.len() > REASON_BYTES_MAX {
        let mut end = REASON_BYTES_MAX - 3;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push_str("...");
    }
    s
}
