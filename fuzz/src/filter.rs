//! `filter`: payload filters (`hookd::model::filter`), compiled from any JSON and matched
//! against any JSON payload.
//!
//! Input: a filter's JSON text, a NUL byte, then a payload's JSON text (inputs that are not two
//! JSON values are still compiled and matched as far as they parse: the filter against `{}`).
//!
//! Checked, beyond "no panic" and bounded work:
//! - a filter is accepted only if it is an object within its bounds, and its canonical form
//!   is a fixed point: it compiles again to itself, with no alias left in it;
//! - the canonical form matches exactly the payloads the original does;
//! - matching is deterministic, and `{"$not": filter}`, when within the bounds, matches
//!   exactly when the filter does not; `{"$and": [filter, filter]}` as the filter does;
//! - a refusal says where: its location is a path that exists in the filter.

use hookd::model::filter::Filter;
use serde_json::{json, Value};

pub fn run(data: &[u8]) {
    let (filter_text, payload_text) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b"{}"[..]),
    };
    let Ok(filter) = serde_json::from_slice::<Value>(filter_text) else {
        return;
    };
    let payload = serde_json::from_slice::<Value>(payload_text).unwrap_or(json!({}));
    let (compiled, canonical) = match Filter::compile(&filter) {
        Ok(ok) => ok,
        Err(e) => {
            assert!(filter.is_object() || e.at.is_empty(), "{e:?}");
            assert!(located(&filter, &e.at), "{e:?} is not a place in {filter}");
            return;
        }
    };
    assert!(filter.is_object());
    let text = canonical.to_string();
    assert!(
        !text.contains("\"$ne\"") && !text.contains("\"$exists\""),
        "{text}"
    );
    let (again, canonical_again) = Filter::compile(&canonical).expect("canonical compiles");
    assert_eq!(canonical_again, canonical);
    let matched = compiled.matches(&payload);
    assert_eq!(compiled.matches(&payload), matched, "deterministic");
    assert_eq!(
        again.matches(&payload),
        matched,
        "canonical form matches the same"
    );
    if let Ok((not, _)) = Filter::compile(&json!({ "$not": filter })) {
        assert_eq!(not.matches(&payload), !matched);
    }
    if let Ok((both, _)) = Filter::compile(&json!({ "$and": [filter, filter] })) {
        assert_eq!(both.matches(&payload), matched);
    }
    // The payload as a filter (when it is one) matches itself, unless it uses operators or
    // paths, whose meaning differs from equality.
    if payload.is_object() && !payload.to_string().contains(['$', '.']) {
        if let Ok((itself, _)) = Filter::compile(&payload) {
            assert!(itself.matches(&payload), "{payload} does not match itself");
        }
    }
}

/// Whether `at` (keys and array indexes) leads somewhere in `v`.
fn located(v: &Value, at: &[String]) -> bool {
    let Some((first, rest)) = at.split_first() else {
        return true;
    };
    match v {
        Value::Object(o) => o.get(first).is_some_and(|c| located(c, rest)),
        Value::Array(a) => first
            .parse::<usize>()
            .ok()
            .and_then(|i| a.get(i))
            .is_some_and(|c| located(c, rest)),
        _ => false,
    }
}
