//! Payload filters: an endpoint's `filter`, a JSON object matched against each message's
//! payload; the message reaches the endpoint only if it matches (and its event types and
//! channels do).
//!
//! The syntax and meaning are those of Hookdeck's simple-json-match, which Outpost uses too,
//! with Convoy's `$regex` and dotted paths added:
//!
//! - a key names a field of the value at hand and its value is matched against that field;
//!   several keys must all match; a key with dots is a path (`"data.user.id"`), in which `$`
//!   stands for any element of an array and a number for one element (a field whose name
//!   holds the dots itself is taken first);
//! - a scalar matches an equal scalar (numbers by value, no string-to-number coercion), or an
//!   array that contains one; an array matches an array that contains a match for each of its
//!   elements; an object against an array matches if one element does;
//! - operators, as keys of an object: `$eq $neq` (deep equality), `$gt $gte $lt $lte`
//!   (numbers by value, two strings by their bytes, anything else never), `$in $nin` (the
//!   value is in the operand's array, or the string value contains the operand's string),
//!   `$startsWith $endsWith` (a string, or any of an array of strings), `$exist` (whether the
//!   field is there), `$regex` (the string value matches), and `$or $and $not` over filters.
//!   `$ne` and `$exists` are accepted and stored as `$neq` and `$exist`. Operators other than
//!   `$eq $neq $exist` never match an array (the value must be a scalar).
//!
//! A filter is compiled once, when its endpoint is written (refused with the place of the
//! problem if it is not valid or goes past its bounds), and the compiled form is matched
//! against parsed payloads.

use regex::{Regex, RegexBuilder};
use serde_json::{Map, Value};

/// Nesting of the filter document, at most.
pub const DEPTH_MAX: usize = 8;
/// Conditions (operators and compared values) in a filter, at most.
pub const CONDITIONS_MAX: usize = 64;
/// Bytes of a `$regex` source, at most.
pub const REGEX_BYTES_MAX: usize = 1024;
/// Memory a compiled `$regex` may take, at most.
const REGEX_COMPILED_MAX: usize = 256 * 1024;
/// Segments of a dotted path, at most.
const PATH_SEGMENTS_MAX: usize = 16;

/// Why a filter is refused: where (keys and indexes from the filter's root) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    pub at: Vec<String>,
    pub msg: String,
}

/// A compiled filter.
#[derive(Debug, Clone)]
pub struct Filter {
    root: Node,
}

#[derive(Debug, Clone)]
enum Node {
    /// A scalar: equal, or contained in an array.
    Scalar(Value),
    /// An array: each element matched by some element of an array value.
    Contains(Vec<Node>),
    /// An object: its fields and operators, all of which must match.
    Object {
        fields: Vec<(Path, Node)>,
        ops: Vec<Op>,
    },
    Or(Vec<Node>),
    And(Vec<Node>),
    Not(Box<Node>),
}

#[derive(Debug, Clone)]
struct Path {
    /// The key as written, tried first as one field name.
    whole: String,
    /// Its segments, when it has dots.
    segments: Vec<Segment>,
}

#[derive(Debug, Clone)]
enum Segment {
    Key(String),
    /// `$`: any element.
    Any,
}

#[derive(Debug, Clone)]
enum Op {
    Eq(Value),
    Neq(Value),
    Cmp(Cmp, Value),
    In(Value),
    Nin(Value),
    StartsWith(Vec<String>),
    EndsWith(Vec<String>),
    Exist(bool),
    Regex(Regex),
}

#[derive(Debug, Clone, Copy)]
enum Cmp {
    Gt,
    Gte,
    Lt,
    Lte,
}

struct Compiler {
    conditions: usize,
}

fn err(at: &[String], msg: impl Into<String>) -> FilterError {
    FilterError {
        at: at.to_vec(),
        msg: msg.into(),
    }
}

impl Filter {
    /// Compiles `value` (which must be an object); also returns its canonical form (aliases
    /// replaced), which is what is stored and shown.
    pub fn compile(value: &Value) -> Result<(Filter, Value), FilterError> {
        if !value.is_object() {
            return Err(err(&[], "a filter is a JSON object"));
        }
        let mut c = Compiler { conditions: 0 };
        let (root, canonical) = c.node(value, &mut Vec::new(), 1)?;
        Ok((Filter { root }, canonical))
    }

    /// Whether `payload` matches.
    pub fn matches(&self, payload: &Value) -> bool {
        matches(&self.root, Some(payload))
    }
}

impl Compiler {
    fn count(&mut self, at: &[String]) -> Result<(), FilterError> {
        self.conditions += 1;
        if self.conditions > CONDITIONS_MAX {
            return Err(err(
                at,
                format!("more than {CONDITIONS_MAX} conditions in the filter"),
            ));
        }
        Ok(())
    }

    /// A value in the position of a filter: scalar, array or object.
    fn node(
        &mut self,
        v: &Value,
        at: &mut Vec<String>,
        depth: usize,
    ) -> Result<(Node, Value), FilterError> {
        if depth > DEPTH_MAX {
            return Err(err(at, format!("nested deeper than {DEPTH_MAX} levels")));
        }
        match v {
            Value::Array(items) => {
                let (nodes, canon) = self.nodes(items, at, depth + 1)?;
                Ok((Node::Contains(nodes), canon))
            }
            Value::Object(map) => self.object(map, at, depth),
            scalar => {
                self.count(at)?;
                Ok((Node::Scalar(scalar.clone()), scalar.clone()))
            }
        }
    }

    /// The elements of an array, each a filter at `depth`, located by their index.
    fn nodes(
        &mut self,
        items: &[Value],
        at: &mut Vec<String>,
        depth: usize,
    ) -> Result<(Vec<Node>, Value), FilterError> {
        let mut nodes = Vec::with_capacity(items.len());
        let mut canon = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            at.push(i.to_string());
            let (n, c) = self.node(item, at, depth)?;
            at.pop();
            nodes.push(n);
            canon.push(c);
        }
        Ok((nodes, Value::Array(canon)))
    }

    fn object(
        &mut self,
        map: &Map<String, Value>,
        at: &mut Vec<String>,
        depth: usize,
    ) -> Result<(Node, Value), FilterError> {
        let mut fields = Vec::new();
        let mut ops = Vec::new();
        let mut logic = Vec::new();
        let mut canon = Map::new();
        for (key, v) in map {
            at.push(key.clone());
            let canonical_key = match key.as_str() {
                "$ne" => "$neq",
                "$exists" => "$exist",
                k => k,
            };
            let c = match canonical_key {
                "$or" | "$and" => {
                    self.count(at)?;
                    let Value::Array(items) = v else {
                        return Err(err(at, format!("{key} takes an array of filters")));
                    };
                    if items.is_empty() {
                        return Err(err(at, format!("{key} needs at least one filter")));
                    }
                    let (nodes, canon_items) = self.nodes(items, at, depth + 2)?;
                    logic.push(match canonical_key {
                        "$or" => Node::Or(nodes),
                        _ => Node::And(nodes),
                    });
                    canon_items
                }
                "$not" => {
                    self.count(at)?;
                    let (n, c) = self.node(v, at, depth + 1)?;
                    logic.push(Node::Not(Box::new(n)));
                    c
                }
                k if k.starts_with('$') => {
                    self.count(at)?;
                    ops.push(operator(k, v, at)?);
                    v.clone()
                }
                _ => {
                    let path = path(key, at)?;
                    let (n, c) = self.node(v, at, depth + 1)?;
                    fields.push((path, n));
                    c
                }
            };
            at.pop();
            if canon.insert(canonical_key.to_owned(), c).is_some() {
                return Err(err(
                    at,
                    format!("{canonical_key} is given twice (once by an alias)"),
                ));
            }
        }
        let object = Node::Object { fields, ops };
        let node = if logic.is_empty() {
            object
        } else {
            logic.push(object);
            Node::And(logic)
        };
        Ok((node, Value::Object(canon)))
    }
}

fn path(key: &str, at: &[String]) -> Result<Path, FilterError> {
    let segments = if key.contains('.') {
        let parts: Vec<&str> = key.split('.').collect();
        if parts.len() > PATH_SEGMENTS_MAX {
            return Err(err(
                at,
                format!("a path has at most {PATH_SEGMENTS_MAX} segments"),
            ));
        }
        if parts.iter().any(|p| p.is_empty()) {
            return Err(err(at, "a path has an empty segment"));
        }
        parts
            .into_iter()
            .map(|p| match p {
                "$" => Segment::Any,
                k => Segment::Key(k.to_owned()),
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(Path {
        whole: key.to_owned(),
        segments,
    })
}

fn operator(name: &str, v: &Value, at: &[String]) -> Result<Op, FilterError> {
    let strings = |what: &str| -> Result<Vec<String>, FilterError> {
        match v {
            Value::String(s) => Ok(vec![s.clone()]),
            Value::Array(items) if !items.is_empty() => items
                .iter()
                .map(|i| i.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| err(at, format!("{what} takes a string or an array of strings"))),
            _ => Err(err(
                at,
                format!("{what} takes a string or an array of strings"),
            )),
        }
    };
    let cmp = |c: Cmp| match v {
        Value::Number(_) | Value::String(_) => Ok(Op::Cmp(c, v.clone())),
        _ => Err(err(at, format!("{name} takes a number or a string"))),
    };
    let membership = || match v {
        Value::String(_) => Ok(v.clone()),
        Value::Array(items) if items.iter().all(|i| i.is_string() || i.is_number()) => {
            Ok(v.clone())
        }
        _ => Err(err(
            at,
            format!("{name} takes an array of strings and numbers, or a string"),
        )),
    };
    match name {
        "$eq" => Ok(Op::Eq(v.clone())),
        "$neq" => Ok(Op::Neq(v.clone())),
        "$gt" => cmp(Cmp::Gt),
        "$gte" => cmp(Cmp::Gte),
        "$lt" => cmp(Cmp::Lt),
        "$lte" => cmp(Cmp::Lte),
        "$in" => membership().map(Op::In),
        "$nin" => membership().map(Op::Nin),
        "$startsWith" => strings(name).map(Op::StartsWith),
        "$endsWith" => strings(name).map(Op::EndsWith),
        "$exist" => v
            .as_bool()
            .map(Op::Exist)
            .ok_or_else(|| err(at, "$exist takes true or false")),
        "$regex" => {
            let Some(src) = v.as_str() else {
                return Err(err(at, "$regex takes a string"));
            };
            if src.len() > REGEX_BYTES_MAX {
                return Err(err(
                    at,
                    format!("a $regex is at most {REGEX_BYTES_MAX} bytes"),
                ));
            }
            RegexBuilder::new(src)
                .size_limit(REGEX_COMPILED_MAX)
                .dfa_size_limit(REGEX_COMPILED_MAX)
                .build()
                .map(Op::Regex)
                .map_err(|e| err(at, format!("invalid $regex: {e}")))
        }
        other => Err(err(
            at,
            format!(
                "unknown operator {other}; the operators are $eq $neq $gt $gte $lt $lte $in \
                 $nin $startsWith $endsWith $exist $regex $or $and $not"
            ),
        )),
    }
}

/// Whether `v` (`None`: the field is not there) matches `node`.
fn matches(node: &Node, v: Option<&Value>) -> bool {
    match node {
        Node::Scalar(s) => match v {
            Some(Value::Array(items)) => items.iter().any(|i| matches(node, Some(i))),
            Some(v) => scalar_eq(v, s),
            None => false,
        },
        Node::Contains(nodes) => match v {
            Some(Value::Array(items)) => nodes
                .iter()
                .all(|n| items.iter().any(|i| matches(n, Some(i)))),
            _ => false,
        },
        Node::Object { fields, ops } => match v {
            Some(Value::Array(items)) if !fields.is_empty() => {
                items.iter().any(|i| matches(node, Some(i)))
            }
            _ => {
                ops.iter().all(|op| op_matches(op, v))
                    && fields.iter().all(|(p, n)| field_matches(p, n, v))
            }
        },
        Node::Or(nodes) => nodes.iter().any(|n| matches(n, v)),
        Node::And(nodes) => nodes.iter().all(|n| matches(n, v)),
        Node::Not(n) => !matches(n, v),
    }
}

fn field_matches(path: &Path, node: &Node, v: Option<&Value>) -> bool {
    let obj = v.and_then(Value::as_object);
    if let Some(child) = obj.and_then(|o| o.get(&path.whole)) {
        return matches(node, Some(child));
    }
    if path.segments.is_empty() {
        return matches(node, None);
    }
    walk(&path.segments, node, v)
}

/// Follows a dotted path from `v`: through objects by key, into arrays by index, through any
/// element for `$` (and for a key met at an array, as nested filters do).
fn walk(segments: &[Segment], node: &Node, v: Option<&Value>) -> bool {
    let Some((first, rest)) = segments.split_first() else {
        return matches(node, v);
    };
    match (first, v) {
        (Segment::Any, Some(Value::Array(items))) => {
            items.iter().any(|i| walk(rest, node, Some(i)))
        }
        (Segment::Any, _) => false,
        (Segment::Key(k), Some(Value::Object(o))) => walk(rest, node, o.get(k)),
        (Segment::Key(k), Some(Value::Array(items))) => match k.parse::<usize>() {
            Ok(i) => walk(rest, node, items.get(i)),
            Err(_) => items.iter().any(|i| walk(segments, node, Some(i))),
        },
        (Segment::Key(_), _) => walk(rest, node, None),
    }
}

fn op_matches(op: &Op, v: Option<&Value>) -> bool {
    match op {
        Op::Exist(want) => v.is_some() == *want,
        Op::Eq(x) => v.is_some_and(|v| deep_eq(v, x)),
        Op::Neq(x) => !v.is_some_and(|v| deep_eq(v, x)),
        Op::Cmp(c, x) => {
            let ord = match (v, x) {
                (Some(Value::Number(a)), Value::Number(b)) => num_cmp(a, b),
                (Some(Value::String(a)), Value::String(b)) => Some(a.as_bytes().cmp(b.as_bytes())),
                _ => None,
            };
            ord.is_some_and(|o| match c {
                Cmp::Gt => o.is_gt(),
                Cmp::Gte => o.is_ge(),
                Cmp::Lt => o.is_lt(),
                Cmp::Lte => o.is_le(),
            })
        }
        Op::In(x) => membership(v, x) == Some(true),
        Op::Nin(x) => membership(v, x) == Some(false),
        Op::StartsWith(p) => v
            .and_then(Value::as_str)
            .is_some_and(|s| p.iter().any(|p| s.starts_with(p.as_str()))),
        Op::EndsWith(p) => v
            .and_then(Value::as_str)
            .is_some_and(|s| p.iter().any(|p| s.ends_with(p.as_str()))),
        Op::Regex(r) => v.and_then(Value::as_str).is_some_and(|s| r.is_match(s)),
    }
}

/// `$in`: the scalar `v` is one of the array `x`, or the string `v` contains the string `x`;
/// `None` when the types do not apply (then `$nin` does not match either).
fn membership(v: Option<&Value>, x: &Value) -> Option<bool> {
    let v = v.filter(|v| !v.is_array() && !v.is_object())?;
    match x {
        Value::Array(items) => Some(items.iter().any(|i| scalar_eq(v, i))),
        Value::String(needle) => v.as_str().map(|s| s.contains(needle.as_str())),
        _ => None,
    }
}

fn num_cmp(a: &serde_json::Number, b: &serde_json::Number) -> Option<std::cmp::Ordering> {
    match (a.as_i64(), b.as_i64()) {
        (Some(x), Some(y)) => Some(x.cmp(&y)),
        _ => match (a.as_u64(), b.as_u64()) {
            (Some(x), Some(y)) => Some(x.cmp(&y)),
            _ => a.as_f64()?.partial_cmp(&b.as_f64()?),
        },
    }
}

fn scalar_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => num_cmp(x, y).is_some_and(|o| o.is_eq()),
        (Value::Array(_) | Value::Object(_), _) | (_, Value::Array(_) | Value::Object(_)) => false,
        _ => a == b,
    }
}

fn deep_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| deep_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, a)| y.get(k).is_some_and(|b| deep_eq(a, b)))
        }
        _ => scalar_eq(a, b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn m(filter: Value, payload: Value) -> bool {
        Filter::compile(&filter)
            .unwrap_or_else(|e| panic!("{filter}: {e:?}"))
            .0
            .matches(&payload)
    }

    fn refused(filter: Value) -> FilterError {
        Filter::compile(&filter).expect_err(&filter.to_string())
    }

    #[test]
    fn scalars_objects_and_arrays() {
        let order = json!({"type": "order/created", "order": {"id": 123, "total": 10.5},
                           "tags": ["gift", "sale"], "items": [{"sku": "A", "qty": 2}, {"sku": "B"}],
                           "nothing": null});
        assert!(m(json!({"type": "order/created"}), order.clone()));
        assert!(!m(json!({"type": "order/updated"}), order.clone()));
        assert!(m(json!({"order": {"id": 123}}), order.clone()));
        assert!(
            m(json!({"order": {"id": 123.0}}), order.clone()),
            "numbers by value"
        );
        assert!(
            !m(json!({"order": {"id": "123"}}), order.clone()),
            "no coercion"
        );
        assert!(m(
            json!({"type": "order/created", "order": {"id": 123}}),
            order.clone()
        ));
        assert!(!m(
            json!({"type": "order/created", "order": {"id": 9}}),
            order.clone()
        ));
        assert!(
            m(json!({"tags": "gift"}), order.clone()),
            "a scalar against an array"
        );
        assert!(
            m(json!({"tags": ["sale", "gift"]}), order.clone()),
            "contains all"
        );
        assert!(!m(json!({"tags": ["gift", "new"]}), order.clone()));
        assert!(
            m(json!({"items": {"sku": "B"}}), order.clone()),
            "an object in an array"
        );
        assert!(!m(json!({"items": {"sku": "C"}}), order.clone()));
        assert!(m(json!({"nothing": null}), order.clone()));
        assert!(!m(json!({"missing": null}), order.clone()));
        assert!(!m(json!({"order": 123}), order.clone()));
        assert!(m(json!({}), order), "an empty filter matches everything");
    }

    #[test]
    fn operators() {
        let p = json!({"n": 5, "s": "hello world", "b": true, "a": [1, 2], "o": {"k": 1}});
        for (filter, want) in [
            (json!({"n": {"$eq": 5}}), true),
            (json!({"a": {"$eq": [1, 2]}}), true),
            (json!({"o": {"$eq": {"k": 1.0}}}), true),
            (json!({"n": {"$neq": 5}}), false),
            (json!({"x": {"$neq": 5}}), true),
            (json!({"n": {"$gt": 4, "$lte": 5}}), true),
            (json!({"n": {"$gt": 5}}), false),
            (json!({"n": {"$lt": "6"}}), false),
            (json!({"s": {"$gte": "hello"}}), true),
            (json!({"s": {"$lt": "hello"}}), false),
            (json!({"a": {"$gt": 0}}), false),
            (json!({"n": {"$in": [1, 5]}}), true),
            (json!({"n": {"$nin": [1, 5]}}), false),
            (json!({"s": {"$in": "lo wo"}}), true),
            (json!({"s": {"$nin": "xyz"}}), true),
            (json!({"n": {"$in": "5"}}), false),
            (json!({"n": {"$nin": "5"}}), false),
            (json!({"a": {"$in": [1, 2]}}), false),
            (json!({"s": {"$startsWith": "hell"}}), true),
            (json!({"s": {"$startsWith": ["x", "he"]}}), true),
            (json!({"s": {"$endsWith": "world"}}), true),
            (json!({"n": {"$endsWith": "5"}}), false),
            (json!({"x": {"$exist": false}}), true),
            (json!({"n": {"$exist": false}}), false),
            (json!({"s": {"$regex": "^h.*d$"}}), true),
            (json!({"s": {"$regex": "^world"}}), false),
            (json!({"$or": [{"n": 1}, {"b": true}]}), true),
            (json!({"$and": [{"n": 5}, {"b": false}]}), false),
            (json!({"$not": {"n": 1}}), true),
            (json!({"n": {"$or": [1, 5]}}), true),
            (json!({"n": {"$not": {"$in": [5]}}}), false),
        ] {
            assert_eq!(m(filter.clone(), p.clone()), want, "{filter}");
        }
    }

    #[test]
    fn dotted_paths_and_wildcards() {
        let p = json!({"data": {"user": {"id": 7}, "items": [{"sku": "A"}, {"sku": "B"}]},
                       "a.b": 1});
        assert!(m(json!({"data.user.id": 7}), p.clone()));
        assert!(!m(json!({"data.user.id": 8}), p.clone()));
        assert!(m(json!({"data.items.$.sku": "B"}), p.clone()));
        assert!(m(json!({"data.items.1.sku": "B"}), p.clone()));
        assert!(!m(json!({"data.items.0.sku": "B"}), p.clone()));
        assert!(
            m(json!({"data.items.sku": "A"}), p.clone()),
            "through an array"
        );
        assert!(
            m(json!({"a.b": 1}), p.clone()),
            "a field with dots in its name first"
        );
        assert!(m(json!({"data.nope.id": {"$exist": false}}), p.clone()));
        assert!(!m(json!({"data.user.$": 7}), p));
    }

    #[test]
    fn aliases_are_stored_canonical() {
        let (_, canon) =
            Filter::compile(&json!({"a": {"$ne": 1}, "b": {"$exists": true}})).unwrap();
        assert_eq!(canon, json!({"a": {"$neq": 1}, "b": {"$exist": true}}));
        assert!(refused(json!({"a": {"$ne": 1, "$neq": 2}}))
            .msg
            .contains("twice"));
    }

    #[test]
    fn bad_filters_are_located() {
        let e = refused(json!({"a": {"b": {"$near": 1}}}));
        assert_eq!(e.at, vec!["a", "b", "$near"]);
        assert!(e.msg.contains("unknown operator"), "{e:?}");
        assert_eq!(refused(json!([1])).at, Vec::<String>::new());
        assert_eq!(refused(json!({"$or": {"a": 1}})).at, vec!["$or"]);
        assert_eq!(refused(json!({"$or": []})).at, vec!["$or"]);
        assert_eq!(refused(json!({"x": {"$gt": true}})).at, vec!["x", "$gt"]);
        assert_eq!(refused(json!({"x": {"$in": 5}})).at, vec!["x", "$in"]);
        assert_eq!(refused(json!({"x": {"$exist": 1}})).at, vec!["x", "$exist"]);
        assert_eq!(
            refused(json!({"x": {"$regex": "("}})).at,
            vec!["x", "$regex"]
        );
        assert_eq!(refused(json!({"x..y": 1})).at, vec!["x..y"]);
        let long = "a".repeat(REGEX_BYTES_MAX + 1);
        assert!(refused(json!({"x": {"$regex": long}}))
            .msg
            .contains("at most"));
        // A regex whose compiled form is too big.
        assert!(refused(json!({"x": {"$regex": "\\w{500}\\w{500}"}}))
            .msg
            .contains("invalid $regex"));
        let mut deep = json!(1);
        for _ in 0..DEPTH_MAX {
            deep = json!({ "k": deep });
        }
        assert!(refused(deep).msg.contains("deeper"));
        let many: Map<String, Value> = (0..=CONDITIONS_MAX)
            .map(|i| (format!("k{i}"), json!(i)))
            .collect();
        assert!(refused(Value::Object(many)).msg.contains("conditions"));
    }
}
