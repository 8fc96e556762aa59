//! Reading what a request carries: JSON bodies into typed structs, query parameters, and the
//! field rules Svix applies (name patterns, lengths).

use serde::Deserialize;

use super::error::{ApiError, FieldError};

/// Parses a JSON body into `T`. Every refusal is a 422 located under `body`, as Svix answers
/// it: a missing, non-UTF-8 or malformed body (`value_error.jsondecode`, at `["body"]`), or a
/// wrong shape (a missing field or a wrong type, at the field).
pub fn json<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ApiError> {
    if body.is_empty() {
        return Err(undecodable("a JSON body is required".into()));
    }
    if let Err(e) = std::str::from_utf8(body) {
        return Err(undecodable(format!("body is not UTF-8: {e}")));
    }
    // The common case, parsed without tracking paths (about half the work); an error is
    // parsed again with paths to say where it is.
    if let Ok(v) = serde_json::from_slice(body) {
        return Ok(v);
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    match serde_path_to_error::deserialize::<_, T>(&mut *de) {
        // Only whitespace may follow the value, as with `serde_json::from_slice`: a body with
        // more after it is not one JSON document (found by the `api_json` fuzz target).
        Ok(v) => match de.end() {
            Ok(()) => Ok(v),
            Err(e) => Err(undecodable(format!("invalid JSON: {e}"))),
        },
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if inner.is_syntax() || inner.is_eof() {
                return Err(undecodable(format!("invalid JSON: {inner}")));
            }
            let msg = inner.to_string();
            // serde reports a missing field at its parent; put it on the field.
            let (field, kind) = match msg
                .strip_prefix("missing field `")
                .and_then(|r| r.split('`').next())
            {
                Some(f) if path == "." => (f.to_owned(), "missing"),
                Some(f) => (format!("{path}.{f}"), "missing"),
                None => (path, "type_error"),
            };
            let msg = msg.split(" at line ").next().unwrap_or(&msg).to_owned();
            Err(ApiError::Validation(vec![FieldError {
                kind,
                ..FieldError::body(&field, msg)
            }]))
        }
    }
}

/// The 422 for a body that is not one JSON document.
fn undecodable(msg: String) -> ApiError {
    ApiError::Validation(vec![FieldError {
        kind: "value_error.jsondecode",
        ..FieldError::body("", msg)
    }])
}

/// Query parameters, percent-decoded.
#[derive(Debug, Default)]
pub struct Query(Vec<(String, String)>);

impl Query {
    /// Parses `a=1&b=2`.
    pub fn parse(q: Option<&str>) -> Self {
        let Some(q) = q else { return Self::default() };
        Self(
            q.split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (query_decode(k), query_decode(v))
                })
                .collect(),
        )
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`, also comma-separated ones (`event_types=a,b&event_types=c`).
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .flat_map(|(_, v)| v.split(',').map(str::to_owned))
            .filter(|v| !v.is_empty())
            .collect()
    }

    /// A boolean parameter; absent means `default`.
    pub fn bool(&self, name: &str, default: bool) -> Result<bool, ApiError> {
        match self.get(name) {
            None => Ok(default),
            Some("true" | "1") => Ok(true),
            Some("false" | "0") => Ok(false),
            Some(v) => Err(ApiError::Validation(vec![FieldError::query(
                name,
                format!("expected true or false, got {v:?}"),
            )])),
        }
    }

    /// An RFC 3339 date-time parameter, in Unix milliseconds; absent is `None`, anything
    /// else is a 422 at the parameter.
    pub fn time(&self, name: &str) -> Result<Option<u64>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(t) => crate::time::parse_rfc3339(t).map(Some).ok_or_else(|| {
                ApiError::Validation(vec![FieldError::query(
                    name,
                    format!("{t:?} is not an RFC 3339 date-time"),
                )])
            }),
        }
    }
}

/// Decodes a path segment's `%XX` escapes (`+` stays a plus: that rule is the query's).
/// Invalid escapes are kept as they are; bytes that are not UTF-8 become U+FFFD.
pub fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Decodes a query key or value: `+` is a space, then `%XX` escapes.
pub fn query_decode(s: &str) -> String {
    percent_decode(&s.replace('+', " "))
}

/// Svix's rule for uids, event type names and event ids: `^[a-zA-Z0-9\-_.]+$`, at most 256.
pub fn check_name(field: &str, value: &str, errors: &mut Vec<FieldError>) {
    if value.is_empty() || value.len() > 256 {
        errors.push(FieldError::body(field, "must be 1 to 256 characters"));
    } else if !value
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
    {
        errors.push(FieldError::body(
            field,
            "may contain only letters, digits, '-', '_' and '.'",
        ));
    }
}

/// A uid must also not look like one of our ids, so that id-or-uid lookups stay unambiguous.
pub fn check_uid(field: &str, value: &str, prefix: &str, errors: &mut Vec<FieldError>) {
    check_name(field, value, errors);
    if value.starts_with(prefix) {
        errors.push(FieldError::body(
            field,
            format!("must not start with {prefix:?}, which is reserved for ids"),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct T {
        name: String,
        inner: Option<Inner>,
    }
    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Inner {
        n: u16,
    }

    fn loc(e: ApiError) -> Vec<String> {
        match e {
            ApiError::Validation(v) => v[0].loc.clone(),
            other => panic!("not a validation error: {other:?}"),
        }
    }

    #[test]
    fn shape_errors_are_located() {
        assert_eq!(loc(json::<T>(b"{}").unwrap_err()), vec!["body", "name"]);
        assert_eq!(
            loc(json::<T>(br#"{"name": 5}"#).unwrap_err()),
            vec!["body", "name"]
        );
        assert_eq!(
            loc(json::<T>(br#"{"name": "a", "inner": {"n": 70000}}"#).unwrap_err()),
            vec!["body", "inner", "n"]
        );
        for body in [&b"{"[..], b"\xff", b"", b"nul"] {
            assert!(undecodable_body(json::<T>(body).unwrap_err()), "{body:?}");
        }
    }

    /// A 422 at `["body"]` saying the body is not one JSON document, as Svix answers it.
    fn undecodable_body(e: ApiError) -> bool {
        matches!(e, ApiError::Validation(ref v)
            if v.len() == 1 && v[0].loc == ["body"] && v[0].kind == "value_error.jsondecode")
    }

    #[test]
    fn only_whitespace_may_follow_the_value() {
        assert_eq!(json::<T>(b" {\"name\": \"a\"}\r\n\t ").unwrap().name, "a");
        for body in [
            &b"{\"name\": \"a\"} {}"[..],
            b"{\"name\": \"a\"}x",
            b"{\"name\": \"a\"}}",
        ] {
            assert!(
                undecodable_body(json::<T>(body).unwrap_err()),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn queries_decode() {
        let q = Query::parse(Some(
            "a=1&b=x%20y&c=p+q&event_types=a,b&event_types=c&bad=%zz",
        ));
        assert_eq!(q.get("a"), Some("1"));
        assert_eq!(q.get("b"), Some("x y"));
        assert_eq!(q.get("c"), Some("p q"));
        assert_eq!(q.all("event_types"), vec!["a", "b", "c"]);
        assert_eq!(q.get("bad"), Some("%zz"));
        assert_eq!(percent_decode("%4"), "%4");
        // In a path a plus is a plus (it was decoded to a space, as in a query).
        assert_eq!(percent_decode("a+b%2Bc"), "a+b+c");
        assert_eq!(query_decode("a+b%2Bc"), "a b+c");
        assert!(q.bool("a", false).unwrap());
        assert!(q.bool("b", false).is_err());
    }

    #[test]
    fn names_follow_svix_rules() {
        let mut e = Vec::new();
        check_name("eventType", "user.created-v1_x", &mut e);
        assert!(e.is_empty());
        check_name("eventType", "user created", &mut e);
        check_name("eventType", "", &mut e);
        check_uid("uid", "app_x", "app_", &mut e);
        assert_eq!(e.len(), 3);
    }
}
