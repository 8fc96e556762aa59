//! JSON Schema checks for hookd's payload schemas: [`Schema::compile`] and
//! [`Schema::problems`], over the `jsonschema` crate.
//!
//! Why a crate of its own: `jsonschema`'s validator is generic over the JSON representation,
//! and outside debug builds generic code is compiled (and optimized) again in every crate that
//! uses it. Behind these non-generic functions it is compiled here, once, so rebuilding
//! `hookd` in release does not optimize the whole validator again (about 90 s of one core on
//! the development machine, measured with a one-line user).
//!
//! What is allowed: a schema's `$schema` picks its draft (4, 6, 7, 2019-09, 2020-12; 2020-12
//! without one); `$ref`s resolve only inside the schema. Nothing is ever fetched: the
//! `jsonschema` crate is built without its HTTP and file retrievers, and [`Schema::compile`]
//! also asks for its offline retriever, so a schema needing a remote document does not compile.

use serde_json::Value;

/// A compiled JSON Schema.
pub struct Schema(jsonschema::Validator);

impl std::fmt::Debug for Schema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Schema").finish_non_exhaustive()
    }
}

/// One way a value breaks a schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// JSON pointer (RFC 6901) into the value: `""` for the value itself, `/items/0/sku`.
    pub pointer: String,
    /// What is wrong there, in the `jsonschema` crate's words (it quotes the offending value).
    pub reason: String,
}

impl Schema {
    /// Compiles `schema`; the error says why it is not a valid schema (or which reference
    /// could not be resolved).
    pub fn compile(schema: &Value) -> Result<Self, String> {
        jsonschema::options()
            .offline()
            .build(schema)
            .map(Schema)
            .map_err(|e| e.to_string())
    }

    /// Where and why `value` breaks the schema, at most `max` problems; empty when it matches.
    pub fn problems(&self, value: &Value, max: usize) -> Vec<Problem> {
        if self.0.is_valid(value) {
            return Vec::new();
        }
        self.0
            .iter_errors(value)
            .take(max)
            .map(|e| Problem {
                pointer: e.instance_path().as_str().to_owned(),
                reason: e.to_string(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn problems_name_pointer_and_reason() {
        let s = Schema::compile(&json!({
            "type": "object", "required": ["id"],
            "properties": {"id": {"type": "string"}, "n": {"type": "integer"}}
        }))
        .unwrap();
        assert!(s.problems(&json!({"id": "a", "n": 1}), 10).is_empty());
        let p = s.problems(&json!({"n": "x"}), 10);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p
            .iter()
            .any(|p| p.pointer.is_empty() && p.reason.contains("id")));
        assert!(p
            .iter()
            .any(|p| p.pointer == "/n" && p.reason.contains("integer")));
        assert_eq!(s.problems(&json!({"n": "x"}), 1).len(), 1);
    }

    #[test]
    fn invalid_and_remote_schemas_do_not_compile() {
        assert!(Schema::compile(&json!({"type": 5})).is_err());
        assert!(Schema::compile(&json!({"$ref": "https://example.com/s.json"})).is_err());
        assert!(Schema::compile(&json!({"$ref": "file:///etc/passwd"})).is_err());
        let draft7 = json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "definitions": {"id": {"type": "string"}},
            "properties": {"id": {"$ref": "#/definitions/id"}}
        });
        let s = Schema::compile(&draft7).unwrap();
        assert_eq!(s.problems(&json!({"id": 1}), 10)[0].pointer, "/id");
    }
}
