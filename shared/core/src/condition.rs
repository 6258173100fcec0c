//! Conditions are data, not code: trigger filters and Decision branches.
//!
//! `{"all": [...]}`, `{"any": [...]}`, `{"not": …}` and leaves
//! `{"path": "gameplay.score", "op": "gte", "value": 100}`. A type mismatch
//! evaluates to false, except for `ne`, which is always the negation of `eq`
//! (a number is "not equal" to a string); evaluation never panics.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::path;

/// The comparison operators a leaf may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operator {
    Eq,
    Ne,
    Gt,
    Gte,
    Lt,
    Lte,
    Contains,
    StartsWith,
    EndsWith,
    In,
    Exists,
    Empty,
    Matches,
}

/// The operators' names, in [`Operator::ALL`]'s order.
pub const OPERATORS: &[&str] = &[
    "eq",
    "ne",
    "gt",
    "gte",
    "lt",
    "lte",
    "contains",
    "starts_with",
    "ends_with",
    "in",
    "exists",
    "empty",
    "matches",
];

impl Operator {
    pub const ALL: [Operator; 13] = [
        Operator::Eq,
        Operator::Ne,
        Operator::Gt,
        Operator::Gte,
        Operator::Lt,
        Operator::Lte,
        Operator::Contains,
        Operator::StartsWith,
        Operator::EndsWith,
        Operator::In,
        Operator::Exists,
        Operator::Empty,
        Operator::Matches,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Operator::Eq => "eq",
            Operator::Ne => "ne",
            Operator::Gt => "gt",
            Operator::Gte => "gte",
            Operator::Lt => "lt",
            Operator::Lte => "lte",
            Operator::Contains => "contains",
            Operator::StartsWith => "starts_with",
            Operator::EndsWith => "ends_with",
            Operator::In => "in",
            Operator::Exists => "exists",
            Operator::Empty => "empty",
            Operator::Matches => "matches",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|op| op.name() == name)
    }

    /// Operators that take no `value`.
    fn is_unary(self) -> bool {
        matches!(self, Operator::Exists | Operator::Empty)
    }
}

/// A leaf's `op` as written: an unknown name is kept so validation can
/// report it together with every other problem (it evaluates to false).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Known(Operator),
    Unknown(String),
}

impl From<&str> for Op {
    fn from(name: &str) -> Self {
        Operator::parse(name).map_or_else(|| Op::Unknown(name.to_owned()), Op::Known)
    }
}

impl Op {
    pub fn name(&self) -> &str {
        match self {
            Op::Known(op) => op.name(),
            Op::Unknown(name) => name,
        }
    }
}

impl Serialize for Op {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Op {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Ok(Op::from(name.as_str()))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    All(Vec<Condition>),
    Any(Vec<Condition>),
    Not(Box<Condition>),
    Leaf(Leaf),
}

/// One comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Leaf {
    pub path: String,
    pub op: Op,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
}

impl Condition {
    /// Builds a condition from JSON, explaining what shape was expected.
    pub fn from_value(value: &Value) -> Result<Self, String> {
        let Value::Object(map) = value else {
            return Err("a condition must be an object".into());
        };
        let single = |key: &str| map.len() == 1 && map.contains_key(key);
        if single("all") || single("any") {
            let (key, inner) = map.iter().next().ok_or("empty condition")?;
            let Value::Array(items) = inner else {
                return Err(format!("`{key}` must be an array of conditions"));
            };
            let parsed = items
                .iter()
                .enumerate()
                .map(|(i, item)| Condition::from_value(item).map_err(|e| format!("{key}[{i}]: {e}")))
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(if key == "all" {
                Self::All(parsed)
            } else {
                Self::Any(parsed)
            });
        }
        if single("not") {
            let inner = Condition::from_value(&map["not"]).map_err(|e| format!("not: {e}"))?;
            return Ok(Self::Not(Box::new(inner)));
        }
        if map.contains_key("path") || map.contains_key("op") {
            return serde_json::from_value::<Leaf>(value.clone())
                .map(Self::Leaf)
                .map_err(|e| format!("invalid comparison: {e}"));
        }
        Err(
            "a condition is {\"all\": [...]}, {\"any\": [...]}, {\"not\": {...}} or {\"path\", \"op\", \"value\"}"
                .into(),
        )
    }

    pub fn to_value(&self) -> Value {
        match self {
            Self::All(items) => single_key("all", Value::Array(items.iter().map(Self::to_value).collect())),
            Self::Any(items) => single_key("any", Value::Array(items.iter().map(Self::to_value).collect())),
            Self::Not(inner) => single_key("not", inner.to_value()),
            Self::Leaf(leaf) => serde_json::to_value(leaf).unwrap_or(Value::Null),
        }
    }

    /// Evaluates over a template context. Never panics; mismatches are false.
    pub fn evaluate(&self, context: &Value) -> bool {
        match self {
            Self::All(items) => items.iter().all(|c| c.evaluate(context)),
            Self::Any(items) => items.iter().any(|c| c.evaluate(context)),
            Self::Not(inner) => !inner.evaluate(context),
            Self::Leaf(leaf) => leaf.evaluate(context),
        }
    }

    /// Every problem in this condition, each with a JSON path under `at`.
    pub fn problems(&self, at: &str) -> Vec<(String, String)> {
        let mut out = vec![];
        self.collect_problems(at, &mut out);
        out
    }

    fn collect_problems(&self, at: &str, out: &mut Vec<(String, String)>) {
        match self {
            Self::All(items) | Self::Any(items) => {
                let key = if matches!(self, Self::All(_)) { "all" } else { "any" };
                for (i, item) in items.iter().enumerate() {
                    item.collect_problems(&format!("{at}.{key}[{i}]"), out);
                }
            }
            Self::Not(inner) => inner.collect_problems(&format!("{at}.not"), out),
            Self::Leaf(leaf) => leaf.collect_problems(at, out),
        }
    }
}

fn single_key(key: &str, value: Value) -> Value {
    let mut map = Map::new();
    map.insert(key.to_owned(), value);
    Value::Object(map)
}

impl Serialize for Condition {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_value().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Condition {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Condition::from_value(&value).map_err(serde::de::Error::custom)
    }
}

impl Leaf {
    fn collect_problems(&self, at: &str, out: &mut Vec<(String, String)>) {
        if !path::is_plain_path(&self.path) {
            out.push((format!("{at}.path"), format!("invalid path {:?}", self.path)));
        }
        let op = match &self.op {
            Op::Known(op) => *op,
            Op::Unknown(name) => {
                out.push((
                    format!("{at}.op"),
                    format!("unknown operator {name:?}; expected one of {}", OPERATORS.join(", ")),
                ));
                return;
            }
        };
        let name = op.name();
        match (&self.value, op.is_unary()) {
            (None, false) => out.push((format!("{at}.value"), format!("operator {name:?} needs a value"))),
            (Some(_), true) => out.push((format!("{at}.value"), format!("operator {name:?} takes no value"))),
            _ => {}
        }
        match (op, &self.value) {
            (Operator::Matches, Some(Value::String(pattern))) => {
                if let Err(e) = regex::Regex::new(pattern) {
                    out.push((format!("{at}.value"), format!("invalid regex: {e}")));
                }
            }
            (Operator::Matches | Operator::StartsWith | Operator::EndsWith, Some(other)) if !other.is_string() => {
                out.push((format!("{at}.value"), format!("operator {name:?} needs a string value")));
            }
            (Operator::In, Some(other)) if !other.is_array() => {
                out.push((format!("{at}.value"), "operator \"in\" needs an array value".into()));
            }
            (Operator::Gt | Operator::Gte | Operator::Lt | Operator::Lte, Some(other))
                if !(other.is_number() || other.is_string()) =>
            {
                out.push((
                    format!("{at}.value"),
                    format!("operator {name:?} needs a number or string value"),
                ));
            }
            _ => {}
        }
    }

    fn evaluate(&self, context: &Value) -> bool {
        let actual = path::lookup(context, &self.path);
        let expected = self.value.as_ref();
        let Op::Known(op) = self.op else { return false };
        match op {
            Operator::Exists => actual.is_some_and(|v| !v.is_null()),
            Operator::Empty => actual.is_none_or(is_empty),
            op => match (actual, expected) {
                (Some(actual), Some(expected)) => compare(op, actual, expected),
                // `ne` against a missing value is true: the value is not equal.
                (None, Some(_)) => op == Operator::Ne,
                _ => false,
            },
        }
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

fn compare(op: Operator, actual: &Value, expected: &Value) -> bool {
    match op {
        Operator::Eq => loosely_equal(actual, expected),
        Operator::Ne => !loosely_equal(actual, expected),
        Operator::Gt => order(actual, expected).is_some_and(|o| o.is_gt()),
        Operator::Gte => order(actual, expected).is_some_and(|o| o.is_ge()),
        Operator::Lt => order(actual, expected).is_some_and(|o| o.is_lt()),
        Operator::Lte => order(actual, expected).is_some_and(|o| o.is_le()),
        Operator::Contains => match actual {
            Value::String(s) => expected.as_str().is_some_and(|e| s.contains(e)),
            Value::Array(items) => items.iter().any(|item| loosely_equal(item, expected)),
            Value::Object(map) => expected.as_str().is_some_and(|key| map.contains_key(key)),
            _ => false,
        },
        Operator::StartsWith => both_str(actual, expected).is_some_and(|(a, e)| a.starts_with(e)),
        Operator::EndsWith => both_str(actual, expected).is_some_and(|(a, e)| a.ends_with(e)),
        Operator::In => expected
            .as_array()
            .is_some_and(|options| options.iter().any(|option| loosely_equal(actual, option))),
        Operator::Matches => {
            both_str(actual, expected).is_some_and(|(a, pattern)| compiled(pattern).is_some_and(|re| re.is_match(a)))
        }
        Operator::Exists | Operator::Empty => false,
    }
}

/// Patterns compiled once per process, not once per evaluation: a trigger
/// filter is evaluated for every event. The cache is bounded (cleared when
/// full), and a pattern that does not compile is not cached.
fn compiled(pattern: &str) -> Option<std::sync::Arc<regex::Regex>> {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex, OnceLock};
    const MAX_CACHED: usize = 1024;
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<regex::Regex>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Mutex::default);
    let mut cache = cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(found) = cache.get(pattern) {
        return Some(found.clone());
    }
    let regex = Arc::new(regex::Regex::new(pattern).ok()?);
    if cache.len() >= MAX_CACHED {
        cache.clear();
    }
    cache.insert(pattern.to_owned(), regex.clone());
    Some(regex)
}

fn both_str<'a>(a: &'a Value, b: &'a Value) -> Option<(&'a str, &'a str)> {
    Some((a.as_str()?, b.as_str()?))
}

/// Numbers compare by value (`100` equals `100.0`); everything else must match
/// exactly, types included.
fn loosely_equal(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) if a.is_number() && b.is_number() => x == y,
        _ => a == b,
    }
}

fn order(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        // RFC 3339 timestamps and other strings order lexically.
        (Value::String(x), Value::String(y)) => Some(x.as_str().cmp(y.as_str())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cond(v: Value) -> Condition {
        Condition::from_value(&v).unwrap()
    }

    fn ctx() -> Value {
        json!({"gameplay": {"score": 120, "tags": ["vip", "a"]}, "contact": {"email": "ana@x.io", "phone": null, "name": ""},
               "form_fields": {"consent": true, "company": "ACME"}})
    }

    #[test]
    fn operator_names_are_their_serde_names_in_order() {
        for (op, &name) in Operator::ALL.iter().zip(OPERATORS) {
            assert_eq!(Operator::ALL.len(), OPERATORS.len());
            assert_eq!(op.name(), name);
            assert_eq!(serde_json::to_value(op).unwrap(), json!(name));
            assert_eq!(Op::from(name), Op::Known(*op));
        }
    }

    #[test]
    fn every_operator() {
        let c = ctx();
        let cases = [
            (json!({"path": "gameplay.score", "op": "eq", "value": 120}), true),
            (json!({"path": "gameplay.score", "op": "eq", "value": 120.0}), true),
            (json!({"path": "gameplay.score", "op": "eq", "value": "120"}), false),
            (json!({"path": "gameplay.score", "op": "ne", "value": 5}), true),
            (json!({"path": "gameplay.missing", "op": "ne", "value": 5}), true),
            (json!({"path": "gameplay.score", "op": "gt", "value": 100}), true),
            (json!({"path": "gameplay.score", "op": "gte", "value": 120}), true),
            (json!({"path": "gameplay.score", "op": "lt", "value": 120}), false),
            (json!({"path": "gameplay.score", "op": "lte", "value": 120}), true),
            (json!({"path": "gameplay.score", "op": "gt", "value": "100"}), false),
            (json!({"path": "gameplay.tags", "op": "contains", "value": "vip"}), true),
            (json!({"path": "contact.email", "op": "contains", "value": "@x"}), true),
            (
                json!({"path": "contact.email", "op": "starts_with", "value": "ana"}),
                true,
            ),
            (
                json!({"path": "contact.email", "op": "ends_with", "value": ".io"}),
                true,
            ),
            (
                json!({"path": "form_fields.company", "op": "in", "value": ["ACME", "Initech"]}),
                true,
            ),
            (json!({"path": "contact.email", "op": "exists"}), true),
            (json!({"path": "contact.phone", "op": "exists"}), false),
            (json!({"path": "contact.nope", "op": "exists"}), false),
            (json!({"path": "contact.name", "op": "empty"}), true),
            (json!({"path": "contact.nope", "op": "empty"}), true),
            (json!({"path": "gameplay.tags", "op": "empty"}), false),
            (
                json!({"path": "contact.email", "op": "matches", "value": "^[a-z]+@x\\.io$"}),
                true,
            ),
            (json!({"path": "contact.email", "op": "matches", "value": "("}), false),
            (json!({"path": "form_fields.consent", "op": "eq", "value": true}), true),
        ];
        for (leaf, expected) in cases {
            assert_eq!(cond(leaf.clone()).evaluate(&c), expected, "{leaf}");
        }
    }

    #[test]
    fn combinators() {
        let c = ctx();
        let hot = json!({"path": "gameplay.score", "op": "gte", "value": 100});
        let cold = json!({"path": "gameplay.score", "op": "lt", "value": 100});
        assert!(cond(json!({"all": [hot, {"not": cold}]})).evaluate(&c));
        assert!(cond(json!({"any": [cold, hot]})).evaluate(&c));
        assert!(!cond(json!({"any": []})).evaluate(&c));
        assert!(cond(json!({"all": []})).evaluate(&c));
    }

    #[test]
    fn round_trips_through_serde() {
        let v = json!({"all": [{"path": "a", "op": "eq", "value": 1}, {"not": {"path": "b", "op": "exists"}}]});
        let parsed: Condition = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(serde_json::to_value(&parsed).unwrap(), v);
    }

    #[test]
    fn malformed_shapes_are_explained() {
        assert!(Condition::from_value(&json!([1])).unwrap_err().contains("object"));
        assert!(Condition::from_value(&json!({"all": 3})).unwrap_err().contains("array"));
        assert!(Condition::from_value(&json!({"foo": 3})).is_err());
        assert!(Condition::from_value(&json!({"path": "a", "op": "eq", "value": 1, "extra": 2})).is_err());
    }

    #[test]
    fn problems_are_listed_with_paths() {
        let c = cond(json!({"all": [
            {"path": "a", "op": "bogus", "value": 1},
            {"path": "b", "op": "matches", "value": "("},
            {"path": "c", "op": "gt"},
            {"path": "d", "op": "exists", "value": 1},
            {"path": "e", "op": "in", "value": 3}
        ]}));
        let problems = c.problems("$.trigger.filter");
        let paths: Vec<_> = problems.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            vec![
                "$.trigger.filter.all[0].op",
                "$.trigger.filter.all[1].value",
                "$.trigger.filter.all[2].value",
                "$.trigger.filter.all[3].value",
                "$.trigger.filter.all[4].value"
            ]
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn arb_json() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                any::<i64>().prop_map(|n| json!(n)),
                any::<f64>().prop_map(|f| json!(f)),
                ".{0,8}".prop_map(Value::String),
            ];
            leaf.prop_recursive(3, 24, 4, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                    prop::collection::btree_map("[a-c]", inner, 0..4)
                        .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        fn arb_condition() -> impl Strategy<Value = Condition> {
            let leaf = (
                "[a-c](\\.[a-c0-9]){0,2}",
                prop::sample::select(OPERATORS.to_vec()),
                prop::option::of(arb_json()).prop_map(|v| v.filter(|x| !x.is_null())),
            )
                .prop_map(|(path, op, value)| {
                    Condition::Leaf(Leaf {
                        path,
                        op: op.into(),
                        value,
                    })
                });
            leaf.prop_recursive(3, 16, 4, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..4).prop_map(Condition::All),
                    prop::collection::vec(inner.clone(), 0..4).prop_map(Condition::Any),
                    inner.prop_map(|c| Condition::Not(Box::new(c))),
                ]
            })
        }

        proptest! {
            #[test]
            fn evaluation_never_panics(condition in arb_condition(), context in arb_json()) {
                let _ = condition.evaluate(&context);
            }

            #[test]
            fn not_inverts(condition in arb_condition(), context in arb_json()) {
                let negated = Condition::Not(Box::new(condition.clone()));
                prop_assert_eq!(negated.evaluate(&context), !condition.evaluate(&context));
            }

            #[test]
            fn serde_round_trip(condition in arb_condition()) {
                let back = Condition::from_value(&condition.to_value()).unwrap();
                prop_assert_eq!(back, condition);
            }

            #[test]
            fn eq_and_ne_are_complements_when_present(value in arb_json(), expected in arb_json()) {
                let context = json!({"x": value});
                let eq = Condition::Leaf(Leaf { path: "x".into(), op: "eq".into(), value: Some(expected.clone()) });
                let ne = Condition::Leaf(Leaf { path: "x".into(), op: "ne".into(), value: Some(expected) });
                prop_assert_ne!(eq.evaluate(&context), ne.evaluate(&context));
            }
        }
    }
}
