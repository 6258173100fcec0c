//! Fuzz harnesses for every input Hookflow takes from outside: templates,
//! conditions, CloudEvents ingest bodies and workflow documents.
//!
//! Each harness asserts only that nothing panics: every call returns `Ok` or
//! its typed error. They run with the other tests at 256 cases; `make fuzz`
//! runs them long (`PROPTEST_CASES=200000`, release build).
//!
//! Templates are built from at most 16 fragments, so blocks nest only a few
//! levels; long strings repeat units that open no block. No fragment is a
//! partial or a decorator (`{{> x}}`, `{{#*inline}}`). Thousands of nested
//! blocks, or partials that include each other, are expected to overflow the
//! stack inside handlebars. A stack overflow aborts the whole test binary:
//! proptest cannot shrink it or record it as a failing case.

use hookflow_core::actions::{Action, DryCall};
use hookflow_core::catalogue::PLATFORM_TRIGGER_TYPES;
use hookflow_core::condition::{Condition, OPERATORS};
use hookflow_core::event::{self, IngestError, Mode, TriggerEvent};
use hookflow_core::template::{self, TemplateError};
use hookflow_core::validate::{self, Problem};
use hookflow_core::workflow::{DecodeError, WorkflowDefinition};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::FileFailurePersistence;
use serde_json::{json, Map, Value};

/// `PROPTEST_CASES` sets the number of cases; 256 keeps CI fast. A failing
/// seed is saved in `tests/fuzz.proptest-regressions` and replayed first on
/// later runs (the default location needs a `lib.rs` above the test file).
fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(256),
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------
// Arbitrary JSON
// ---------------------------------------------------------------------------

/// Pieces of handlebars syntax, valid and broken. No partials or decorators
/// (see the module comment).
const TEMPLATE_FRAGMENTS: &[&str] = &[
    "{{",
    "}}",
    "{{{",
    "}}}",
    "{",
    "}",
    "{{ a }}",
    "{{a.b}}",
    "{{ a.b.c }}",
    "{{ items.0 }}",
    "{{ items.[0] }}",
    "{{ items[1].id }}",
    "{{ contact.email }}",
    "{{ gameplay.score }}",
    "{{ vars.tags }}",
    "{{ this }}",
    "{{ . }}",
    "{{ ../a }}",
    "{{ @root.a }}",
    "{{ @index }}",
    "{{ @key }}",
    "{{ @first }}",
    "{{#if a}}",
    "{{#if b}}",
    "{{else}}",
    "{{else if b}}",
    "{{^}}",
    "{{/if}}",
    "{{#unless a}}",
    "{{/unless}}",
    "{{#each items}}",
    "{{#each a}}",
    "{{#each items as |x i|}}",
    "{{ x }}",
    "{{ i }}",
    "{{/each}}",
    "{{#with a}}",
    "{{/with}}",
    "{{lookup a \"b\"}}",
    "{{lookup items 0}}",
    "{{ (lookup a \"b\") }}",
    "{{eq a b}}",
    "{{#if (gt gameplay.score 100)}}",
    "{{len items}}",
    "{{ nope a }}",
    "{{{ a }}}",
    "{{& a }}",
    "{{~ a ~}}",
    "{{! comment }}",
    "{{!-- {{ a }} --}}",
    "\\{{ a }}",
    "\\\\{{ a }}",
    "{{{{raw}}}}",
    "{{{{/raw}}}}",
    "{{ a b=c }}",
    "{{ \"str\" }}",
    "{{ 1 }}",
    "{{ -1.5E3 }}",
    "{{ null }}",
    "{{ true }}",
    "{{ [a b] }}",
    "{{ a/b }}",
    "{{ a.",
    "{{#if}}",
    "{{/}}",
    "{{#each}}",
    " ",
    "\n",
    "\t",
    "\u{0}",
    "\u{1b}",
    "x",
    "é",
    "🕴",
    "\u{202e}",
    "\u{feff}",
    "\"",
    "'",
    "\\",
    "(",
    ")",
    "|",
    "=",
    "@",
    "#",
    "/",
    "^",
    "~",
    "&",
    ".",
    "..",
    "[",
    "]",
    "-",
    "0",
    "a",
    "b",
    "items",
];

/// Units repeated into very long strings. None opens a block, so a long
/// string never nests deeply (see the module comment).
const LONG_UNITS: &[&str] = &[
    "x",
    "é",
    "🕴",
    "\u{0}",
    "\n",
    "{{",
    "}}",
    "{{ a }}",
    "{{ items.0.id }}",
    "{{else}}",
    "{{/if}}",
    "\\{{",
    "{{{",
    "}}}",
    "[",
    "{",
    "(",
    "\"",
    "\\",
    "a.",
];

/// Object keys: names the contexts, conditions and templates refer to.
const KEYS: &[&str] = &[
    "a",
    "b",
    "c",
    "x",
    "items",
    "id",
    "this",
    "@index",
    "0",
    "1",
    "",
    " ",
    "contact",
    "email",
    "first_name",
    "gameplay",
    "score",
    "card",
    "name",
    "vars",
    "tags",
    "steps",
    "body",
    "form_fields",
    "consent",
];

/// Strings a workflow author (or an attacker) might put anywhere.
const WORDS: &[&str] = &[
    "",
    " ",
    // Characters SQS refuses in a message body (moto takes them).
    "\u{fffe}",
    "x\u{ffff}y",
    "route",
    "hot",
    "cold",
    "alert",
    "start",
    "a",
    "b",
    "bad id",
    "HttpRequest",
    "Decision",
    "Delay",
    "SetVariables",
    "Teleport",
    "Gameplay.Ended",
    "Gameplay.DataCapturedQualified",
    "Prize.Won",
    "Hook.shopify_order",
    "Hook.",
    "gameplay.ended",
    "GET",
    "POST",
    "HEAD",
    "FETCH",
    "https://crm.example/leads",
    "http://127.0.0.1:3000/dev/sink/crm",
    "ftp://x",
    "https://",
    "http://[::1",
    "{{ vars.url }}/x",
    "https://x/{{ oops",
    "{{ contact.email }}",
    "Komo - {{ card.name }}",
    "{{#if}}",
    "active",
    "draft",
    "paused",
    "archived",
    "workspace",
    "site",
    "card",
    "2xx",
    "9xx",
    "json",
    "form",
    "raw",
    "full",
    "none",
    "bearer",
    "basic",
    "api_key",
    "network",
    "timeout",
    "5xx",
    "429",
    "2026-11-23T10:00:00Z",
    "9999-12-31T23:59:59Z",
    "yesterday",
    "1.0",
];

const EDGE_NUMBERS: &[f64] = &[
    0.0,
    -0.0,
    0.5,
    1.0,
    100.0,
    120.0,
    120.5,
    900.0,
    86_400.0,
    f64::MIN_POSITIVE,
    f64::EPSILON,
    1e308,
    -1e308,
    9_007_199_254_740_992.0,
];

fn object(pairs: Vec<(String, Value)>) -> Value {
    Value::Object(pairs.into_iter().collect())
}

fn single(key: &str, value: Value) -> Value {
    let mut map = Map::new();
    map.insert(key.to_owned(), value);
    Value::Object(map)
}

/// Strings with unicode, control characters, `{{`, `}}` and very long runs.
fn arb_string() -> BoxedStrategy<String> {
    prop_oneof![
        // Any characters: control characters, BOM, RTL override, non-BMP.
        4 => prop::collection::vec(any::<char>(), 0..24).prop_map(|chars| chars.into_iter().collect::<String>()),
        // Template-like text.
        3 => prop::collection::vec(prop::sample::select(TEMPLATE_FRAGMENTS), 0..10).prop_map(|parts| parts.concat()),
        2 => prop::sample::select(WORDS).prop_map(String::from),
        // Very long strings (up to ~32 KiB).
        1 => (prop::sample::select(LONG_UNITS), 64usize..2048).prop_map(|(unit, n)| unit.repeat(n)),
    ]
    .boxed()
}

fn arb_key() -> BoxedStrategy<String> {
    prop_oneof![
        3 => prop::sample::select(KEYS).prop_map(String::from),
        1 => arb_string(),
    ]
    .boxed()
}

fn arb_number() -> BoxedStrategy<Value> {
    prop_oneof![
        3 => (-5i64..200).prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
        1 => any::<u64>().prop_map(Value::from),
        // Non-finite floats become null, as serde_json does.
        1 => any::<f64>().prop_map(Value::from),
        1 => prop::sample::select(EDGE_NUMBERS).prop_map(Value::from),
    ]
    .boxed()
}

/// Any JSON value, a few levels deep.
fn arb_json() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        2 => arb_number(),
        4 => arb_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((arb_key(), inner), 0..6).prop_map(object),
        ]
    })
    .boxed()
}

/// A context shaped like the engine's (`contact`, `gameplay`, `vars`, …).
fn sample_context() -> Value {
    json!({
        "contact": {"email": "ana@example.com", "first_name": "Ana", "last_name": "Li", "phone": null, "name": ""},
        "card": {"name": "Sponsor A Trivia"},
        "gameplay": {"score": 120, "passed": true, "tags": ["vip", "a"]},
        "form_fields": {"consent": true, "company": "ACME"},
        "prize": {"name": "Tote bag"},
        "vars": {"token": "t", "crm_token": "t", "lead_email": "ana@example.com", "sponsor_tag": "s",
                 "tags": ["a", "b"]},
        "error": {"message": "boom"},
        "steps": {"route": {"tier": "hot"}, "hot": {"status": 200, "headers": {}, "body": {"id": 7}}},
        "items": [{"id": "i1"}, 2, "three", null],
        "a": {"b": {"c": 1}},
        "b": [1, 2.5, "x"]
    })
}

/// Template contexts: the engine's shape (mutated), arbitrary objects, or any JSON.
fn arb_context() -> BoxedStrategy<Value> {
    prop_oneof![
        2 => prop::collection::vec(arb_mutation(), 0..4).prop_map(|mutations| {
            let mut context = sample_context();
            for mutation in &mutations {
                apply(&mut context, mutation);
            }
            context
        }),
        2 => prop::collection::vec((arb_key(), arb_json()), 0..8).prop_map(object),
        1 => arb_json(),
    ]
    .boxed()
}

// ---------------------------------------------------------------------------
// Structural mutations of JSON documents
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Seg {
    Key(String),
    At(usize),
}

#[derive(Debug, Clone)]
enum Mutation {
    /// Replace a node with arbitrary JSON.
    Replace(Index, Value),
    /// Replace a node with a string (step ids, type names, templates, junk).
    Retext(Index, String),
    /// Remove an object member or an array element.
    Remove(Index),
    /// Add a member to an object or an element to an array.
    Insert(Index, String, Value),
    /// Rename an object member: dangling references, unknown fields.
    Rename(Index, Index, String),
    /// Copy one node of the document over another.
    Graft(Index, Index),
}

fn arb_word() -> BoxedStrategy<String> {
    prop_oneof![
        3 => prop::sample::select(WORDS).prop_map(String::from),
        1 => prop::sample::select(OPERATORS).prop_map(String::from),
        1 => prop::sample::select(PLATFORM_TRIGGER_TYPES).prop_map(String::from),
        2 => arb_string(),
    ]
    .boxed()
}

fn arb_mutation() -> BoxedStrategy<Mutation> {
    prop_oneof![
        3 => (any::<Index>(), arb_json()).prop_map(|(at, value)| Mutation::Replace(at, value)),
        3 => (any::<Index>(), arb_word()).prop_map(|(at, text)| Mutation::Retext(at, text)),
        2 => any::<Index>().prop_map(Mutation::Remove),
        2 => (any::<Index>(), arb_word(), arb_json()).prop_map(|(at, key, value)| Mutation::Insert(at, key, value)),
        2 => (any::<Index>(), any::<Index>(), arb_word()).prop_map(|(at, which, key)| Mutation::Rename(at, which, key)),
        2 => (any::<Index>(), any::<Index>()).prop_map(|(from, to)| Mutation::Graft(from, to)),
    ]
    .boxed()
}

/// The path of every node, the root (an empty path) included.
fn node_paths(root: &Value) -> Vec<Vec<Seg>> {
    let mut out = vec![];
    let mut stack = vec![(root, Vec::new())];
    while let Some((node, path)) = stack.pop() {
        match node {
            Value::Object(map) => {
                for (key, child) in map {
                    let mut child_path = path.clone();
                    child_path.push(Seg::Key(key.clone()));
                    stack.push((child, child_path));
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    let mut child_path = path.clone();
                    child_path.push(Seg::At(i));
                    stack.push((child, child_path));
                }
            }
            _ => {}
        }
        out.push(path);
    }
    out
}

fn node_mut<'a>(root: &'a mut Value, path: &[Seg]) -> Option<&'a mut Value> {
    let mut current = root;
    for seg in path {
        current = match seg {
            Seg::Key(key) => match current {
                Value::Object(map) => map.get_mut(key)?,
                _ => return None,
            },
            Seg::At(i) => match current {
                Value::Array(items) => items.get_mut(*i)?,
                _ => return None,
            },
        };
    }
    Some(current)
}

fn apply(doc: &mut Value, mutation: &Mutation) {
    let paths = node_paths(doc);
    if paths.is_empty() {
        return;
    }
    let pick = |index: &Index| index.get(&paths).clone();
    match mutation {
        Mutation::Replace(at, value) => {
            if let Some(node) = node_mut(doc, &pick(at)) {
                *node = value.clone();
            }
        }
        Mutation::Retext(at, text) => {
            if let Some(node) = node_mut(doc, &pick(at)) {
                *node = Value::String(text.clone());
            }
        }
        Mutation::Remove(at) => {
            let path = pick(at);
            if let Some((last, parent)) = path.split_last() {
                match (node_mut(doc, parent), last) {
                    (Some(Value::Object(map)), Seg::Key(key)) => {
                        map.remove(key);
                    }
                    (Some(Value::Array(items)), Seg::At(i)) if *i < items.len() => {
                        items.remove(*i);
                    }
                    _ => {}
                }
            }
        }
        Mutation::Insert(at, key, value) => match node_mut(doc, &pick(at)) {
            Some(Value::Object(map)) => {
                map.insert(key.clone(), value.clone());
            }
            Some(Value::Array(items)) => items.push(value.clone()),
            Some(other) => *other = single(key, value.clone()),
            None => {}
        },
        Mutation::Rename(at, which, new_key) => {
            if let Some(Value::Object(map)) = node_mut(doc, &pick(at)) {
                let keys: Vec<String> = map.keys().cloned().collect();
                if !keys.is_empty() {
                    let old_key = which.get(&keys);
                    if let Some(value) = map.remove(old_key) {
                        map.insert(new_key.clone(), value);
                    }
                }
            }
        }
        Mutation::Graft(from, to) => {
            let copied = node_mut(doc, &pick(from)).cloned();
            if let (Some(copied), Some(node)) = (copied, node_mut(doc, &pick(to))) {
                *node = copied;
            }
        }
    }
}

// ---------------------------------------------------------------------------
// 1. Templates
// ---------------------------------------------------------------------------

fn arb_template() -> BoxedStrategy<String> {
    prop_oneof![
        6 => prop::collection::vec(prop::sample::select(TEMPLATE_FRAGMENTS), 0..16).prop_map(|parts| parts.concat()),
        // A lone expression: the typed-value shortcut and its fallbacks.
        2 => "\\s{0,2}\\{\\{\\s{0,2}[A-Za-z0-9_.@\\[\\]/-]{0,16}\\s{0,2}\\}\\}\\s{0,2}",
        2 => arb_string(),
    ]
    .boxed()
}

proptest! {
    #![proptest_config(config())]

    /// Validation is sound: a template `check` passes never meets a syntax
    /// error when it renders, and one it refuses never renders. Text without
    /// `{{` is no template and comes out unchanged.
    #[test]
    fn templates_that_check_never_fail_to_parse_when_rendered(text in arb_template(), context in arb_context()) {
        let checked = template::check(&text);
        let value = template::render_value(&text, &context);
        match (&checked, &value) {
            (Ok(()), Err(TemplateError::Syntax(reason))) => {
                prop_assert!(false, "check passed {text:?} but rendering refused it: {reason}");
            }
            (Err(refused), Ok(rendered)) => {
                prop_assert!(false, "check refused {text:?} ({refused}) but it rendered {rendered}");
            }
            _ => {}
        }
        if let Err(TemplateError::MissingVariable(name)) = &value {
            prop_assert!(!name.is_empty(), "a missing variable is named");
        }
        if !template::is_templated(&text) {
            prop_assert_eq!(value, Ok(Value::String(text.clone())));
            prop_assert_eq!(template::render_text(&text, &context), Ok(text));
        }
    }

    /// Only string leaves are templated: keys, array lengths and every
    /// non-string leaf come out as they went in, so a body stays valid JSON
    /// of the shape the author wrote.
    #[test]
    fn json_documents_keep_their_shape_when_rendered(doc in arb_json(), context in arb_context()) {
        if let Ok(rendered) = template::render_json(&doc, &context) {
            prop_assert!(same_shape(&doc, &rendered), "{doc} rendered to {rendered}");
        }
    }
}

/// Equal up to templated string leaves, which may render to any value.
fn same_shape(template: &Value, rendered: &Value) -> bool {
    match (template, rendered) {
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len() && a.iter().all(|(k, v)| b.get(k).is_some_and(|w| same_shape(v, w)))
        }
        (Value::Array(a), Value::Array(b)) => a.len() == b.len() && a.iter().zip(b).all(|(v, w)| same_shape(v, w)),
        (Value::String(text), _) if template::is_templated(text) => true,
        (a, b) => a == b,
    }
}

// ---------------------------------------------------------------------------
// 2. Conditions
// ---------------------------------------------------------------------------

const PATHS: &[&str] = &[
    "gameplay.score",
    "gameplay.tags",
    "contact.email",
    "contact.phone",
    "form_fields.consent",
    "items.0",
    "items[0].id",
    "items.[3]",
    "items.99999999999999999999",
    "a",
    "a.b",
    "a.b.c",
    "b",
    "",
    ".a",
    "a..b",
    "[0]",
    "[]",
    "a b",
];

const REGEXES: &[&str] = &[
    "(",
    "[",
    "^[a-z]+@example\\.com$",
    "(?i)ANA",
    "\\p{L}+",
    "(a*)*b",
    "a{100000}",
    "\\",
    "",
];

const OPERATOR_TYPOS: &[&str] = &["EQ", "==", "", "exist", "matches "];

const CONDITION_KEYS: &[&str] = &["all", "any", "not", "path", "op", "value", "extra"];

fn arb_path() -> BoxedStrategy<String> {
    prop_oneof![
        3 => prop::sample::select(PATHS).prop_map(String::from),
        1 => "[a-c](\\.[a-c0-9]){0,3}",
        1 => arb_string(),
    ]
    .boxed()
}

fn arb_op() -> BoxedStrategy<String> {
    prop_oneof![
        5 => prop::sample::select(OPERATORS).prop_map(String::from),
        1 => prop::sample::select(OPERATOR_TYPOS).prop_map(String::from),
        1 => arb_string(),
    ]
    .boxed()
}

fn arb_operand() -> BoxedStrategy<Value> {
    prop_oneof![
        4 => arb_json(),
        1 => prop::sample::select(REGEXES).prop_map(Value::from),
    ]
    .boxed()
}

/// Condition-shaped JSON: well-formed leaves and combinators, wrong types,
/// stray and duplicate keys, and anything at all.
fn arb_condition_json() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        6 => (arb_path(), arb_op(), prop::option::of(arb_operand())).prop_map(|(path, op, value)| {
            let mut map = Map::new();
            map.insert("path".into(), Value::String(path));
            map.insert("op".into(), Value::String(op));
            if let Some(value) = value {
                map.insert("value".into(), value);
            }
            Value::Object(map)
        }),
        2 => prop::collection::vec((prop::sample::select(CONDITION_KEYS).prop_map(String::from), arb_json()), 0..4)
            .prop_map(object),
        1 => arb_json(),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            3 => prop::collection::vec(inner.clone(), 0..4).prop_map(|items| single("all", Value::Array(items))),
            3 => prop::collection::vec(inner.clone(), 0..4).prop_map(|items| single("any", Value::Array(items))),
            2 => inner.clone().prop_map(|condition| single("not", condition)),
            1 => (
                prop::sample::select(CONDITION_KEYS),
                prop::sample::select(CONDITION_KEYS),
                inner.clone(),
                inner,
            )
                .prop_map(|(k1, k2, a, b)| object(vec![(k1.to_owned(), a), (k2.to_owned(), b)])),
        ]
    })
    .boxed()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_conditions_decode_and_evaluate_without_panicking(
        raw in arb_condition_json(),
        context in arb_context(),
    ) {
        let decoded: Result<Condition, String> = Condition::from_value(&raw);
        let via_serde: Result<Condition, serde_json::Error> = serde_json::from_value(raw.clone());
        let via_text: Result<Condition, serde_json::Error> = serde_json::from_str(&raw.to_string());
        if let Err(err) = &via_text {
            let _ = err.to_string();
        }
        for condition in [decoded.ok(), via_serde.ok(), via_text.ok()].into_iter().flatten() {
            let _ = condition.evaluate(&context);
            let _ = condition.evaluate(&raw);
            let _ = condition.problems("$.trigger.filter");
            let _ = Condition::from_value(&condition.to_value());
        }
    }
}

// ---------------------------------------------------------------------------
// 3. CloudEvents ingest
// ---------------------------------------------------------------------------

const CONTENT_TYPES: &[&str] = &[
    "application/cloudevents+json",
    "application/cloudevents+json; charset=utf-8",
    "application/json",
    "APPLICATION/JSON",
    " application/json ;",
    "application/cloudevents-batch+json",
    "application/cloudevents-batch+json;charset=utf-8",
    "text/plain",
    "",
    ";",
];

const TIMES: &[&str] = &[
    "2026-11-23T10:00:00Z",
    "2026-11-23T10:00:00.123456789+05:30",
    "2026-11-23t10:00:00z",
    "2026-02-30T10:00:00Z",
    "2026-11-23T24:00:00Z",
    "2016-12-31T23:59:60Z",
    "0000-01-01T00:00:00Z",
    "9999-12-31T23:59:59-23:59",
    "2026-11-23",
    "yesterday",
];

const JSON_TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ":",
    ",",
    "\"",
    "\\",
    "null",
    "true",
    "false",
    "0",
    "-0",
    "1e999",
    "-1",
    "1.5",
    "18446744073709551616",
    "\"specversion\"",
    "\"1.0\"",
    "\"id\"",
    "\"type\"",
    "\"Gameplay.Ended\"",
    "\"workspaceid\"",
    "\"ws\"",
    "\"source\"",
    "\"time\"",
    "\"data\"",
    "\"depth\"",
    "\"steps\"",
    "\"start\"",
    "\"action\"",
    "\"\\u0000\"",
    "\"\\ud800\"",
    "\"\\uDFFF\\uD800\"",
    " ",
    "\n",
    "\u{feff}",
    "\u{0}",
    "é",
];

/// Timestamps shaped like RFC 3339, with out-of-range fields and lowercase `t`/`z`.
const RFC3339_ISH: &str =
    "[0-9]{4}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9](\\.[0-9]{1,12})?(Z|z|[+-][0-2][0-9]:[0-5][0-9])";

const SPEC_VERSION_TYPOS: &[&str] = &["0.3", "1.0 ", "1", ""];

const TRIGGER_TYPE_TYPOS: &[&str] = &["gameplay.ended", "Gameplay.Endd", "Hook.", "Hook.bad name", ""];

const DATA_CONTENT_TYPES: &[&str] = &["application/json", "text/plain", ""];

/// Units repeated into bodies nested far deeper than serde_json's recursion limit.
const NESTING_UNITS: &[&str] = &["[", "{\"a\":", "{\"all\":["];

fn arb_content_type() -> BoxedStrategy<Option<String>> {
    prop_oneof![
        1 => Just(None::<String>),
        6 => prop::sample::select(CONTENT_TYPES).prop_map(|ct| Some(ct.to_owned())),
        2 => arb_string().prop_map(Some),
    ]
    .boxed()
}

/// Raw bytes, JSON token soup, any JSON document, and very deep nesting.
fn arb_body() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        3 => prop::collection::vec(any::<u8>(), 0..512),
        3 => prop::collection::vec(prop::sample::select(JSON_TOKENS), 0..64)
            .prop_map(|tokens| tokens.concat().into_bytes()),
        2 => arb_json().prop_map(|value| value.to_string().into_bytes()),
        1 => (prop::sample::select(NESTING_UNITS), 100usize..20_000)
            .prop_map(|(unit, n)| unit.repeat(n).into_bytes()),
    ]
    .boxed()
}

fn arb_id_value() -> BoxedStrategy<Value> {
    prop_oneof![
        6 => "[A-Za-z0-9_-]{1,32}".prop_map(Value::String),
        1 => (250usize..260).prop_map(|n| Value::String("x".repeat(n))),
        1 => (120usize..135).prop_map(|n| Value::String("é".repeat(n))),
        1 => "[a-z]{0,3}[\\x00-\\x1f\\x7f\\u{85}][a-z]{0,3}".prop_map(Value::String),
        1 => Just(Value::String(String::new())),
    ]
    .boxed()
}

fn arb_trigger_type_value() -> BoxedStrategy<Value> {
    prop_oneof![
        4 => prop::sample::select(PLATFORM_TRIGGER_TYPES).prop_map(Value::from),
        2 => "Hook\\.[A-Za-z0-9_.-]{0,70}".prop_map(Value::String),
        1 => prop::sample::select(TRIGGER_TYPE_TYPOS).prop_map(Value::from),
    ]
    .boxed()
}

fn arb_depth_value() -> BoxedStrategy<Value> {
    prop_oneof![
        3 => (0u32..20).prop_map(Value::from),
        1 => any::<u32>().prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
        1 => any::<u64>().prop_map(Value::from),
        1 => any::<f64>().prop_map(Value::from),
        1 => "-?[0-9 +]{0,12}".prop_map(Value::String),
    ]
    .boxed()
}

/// One attribute: absent, valid, null, a string of any kind, or any JSON.
fn attribute(name: &'static str, valid: BoxedStrategy<Value>) -> BoxedStrategy<Option<(String, Value)>> {
    prop_oneof![
        1 => Just(None::<Value>),
        12 => valid.prop_map(Some),
        1 => Just(Some(Value::Null)),
        1 => arb_string().prop_map(|s| Some(Value::String(s))),
        1 => arb_json().prop_map(Some),
    ]
    .prop_map(move |value| value.map(|value| (name.to_owned(), value)))
    .boxed()
}

/// A JSON object with CloudEvents keys, each valid most of the time.
fn arb_cloudevent() -> BoxedStrategy<Value> {
    let attributes = vec![
        attribute(
            "specversion",
            prop_oneof![
                6 => Just(Value::from("1.0")),
                1 => prop::sample::select(SPEC_VERSION_TYPOS).prop_map(Value::from),
            ]
            .boxed(),
        ),
        attribute("id", arb_id_value()),
        attribute(
            "source",
            prop_oneof![
                4 => "[a-z/]{1,24}".prop_map(Value::String),
                1 => (1020usize..1030).prop_map(|n| Value::String("s".repeat(n))),
                1 => "komo/[a-z]{0,4}[\\x00-\\x1f]".prop_map(Value::String),
            ]
            .boxed(),
        ),
        attribute("type", arb_trigger_type_value()),
        attribute("workspaceid", arb_id_value()),
        attribute(
            "time",
            prop_oneof![
                1 => prop::sample::select(TIMES).prop_map(Value::from),
                1 => RFC3339_ISH.prop_map(Value::String),
            ]
            .boxed(),
        ),
        attribute(
            "datacontenttype",
            prop::sample::select(DATA_CONTENT_TYPES).prop_map(Value::from).boxed(),
        ),
        attribute("siteid", arb_id_value()),
        attribute("cardid", arb_id_value()),
        attribute("contactid", arb_id_value()),
        attribute("depth", arb_depth_value()),
        attribute("data", arb_json()),
    ];
    (attributes, prop::collection::vec((arb_key(), arb_json()), 0..3))
        .prop_map(|(attributes, extras)| {
            let mut map: Map<String, Value> = extras.into_iter().collect();
            for (name, value) in attributes.into_iter().flatten() {
                map.insert(name, value);
            }
            Value::Object(map)
        })
        .boxed()
}

fn arb_batch() -> BoxedStrategy<Value> {
    prop_oneof![
        4 => prop::collection::vec(arb_cloudevent(), 0..5).prop_map(Value::Array),
        // Around the batch limit.
        1 => (arb_cloudevent(), 98usize..=102).prop_map(|(event, n)| Value::Array(vec![event; n])),
        1 => arb_json(),
    ]
    .boxed()
}

/// An accepted event must survive the triggers queue: its message body is
/// text SQS accepts, and it decodes to the same event. A refusal names its
/// problem with a stable code.
fn check_ingest(result: Result<(Mode, Vec<TriggerEvent>), IngestError>) -> Result<(), TestCaseError> {
    match result {
        Ok((_, events)) => {
            for event in events {
                let body = hookflow_core::ports::message_body(&event)
                    .map_err(|e| TestCaseError::fail(format!("accepted event does not encode: {e}")))?;
                prop_assert!(hookflow_core::ports::sqs_accepts(&body), "SQS would refuse {body:?}");
                let decoded: TriggerEvent = serde_json::from_str(&body)
                    .map_err(|e| TestCaseError::fail(format!("accepted event does not decode from the queue: {e}")))?;
                prop_assert_eq!(decoded, event);
            }
        }
        Err(err) => {
            prop_assert!(!err.code().is_empty(), "refusal without a code: {err}");
            prop_assert!(!err.to_string().is_empty(), "refusal without a message");
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bodies_parse_or_are_refused(content_type in arb_content_type(), body in arb_body()) {
        check_ingest(event::parse_request(content_type.as_deref(), &body))?;
    }

    #[test]
    fn cloudevent_like_objects_parse_or_are_refused(content_type in arb_content_type(), raw in arb_cloudevent()) {
        check_ingest(event::parse_request(content_type.as_deref(), raw.to_string().as_bytes()))?;
        let direct: Result<TriggerEvent, IngestError> = TriggerEvent::from_cloudevent(&raw, "events[0]: ");
        if let Err(err) = direct {
            let _ = (err.code(), err.to_string());
        }
    }

    #[test]
    fn cloudevent_batches_parse_or_are_refused(content_type in arb_content_type(), batch in arb_batch()) {
        check_ingest(event::parse_request(content_type.as_deref(), batch.to_string().as_bytes()))?;
        check_ingest(event::parse_request(Some(event::CONTENT_TYPE_BATCH), batch.to_string().as_bytes()))?;
    }
}

// ---------------------------------------------------------------------------
// 4. Workflow documents
// ---------------------------------------------------------------------------

const EXAMPLES: &[(&str, &str)] = &[
    (
        "crm_push_hubspot",
        include_str!("../../../examples/workflows/crm_push_hubspot.json"),
    ),
    (
        "score_decision",
        include_str!("../../../examples/workflows/score_decision.json"),
    ),
    (
        "sponsor_lead_routing",
        include_str!("../../../examples/workflows/sponsor_lead_routing.json"),
    ),
    (
        "winner_notification",
        include_str!("../../../examples/workflows/winner_notification.json"),
    ),
];

/// The example as JSON; an example that does not parse is a broken seed.
fn seed(which: usize) -> Value {
    let (name, text) = EXAMPLES[which];
    serde_json::from_str(text).unwrap_or_else(|err| panic!("examples/workflows/{name}.json: {err}"))
}

#[derive(Debug, Clone)]
enum Edit {
    Delete(Index, usize),
    Insert(Index, String),
    Overwrite(Index, u8),
}

fn arb_edit() -> BoxedStrategy<Edit> {
    prop_oneof![
        (any::<Index>(), 1usize..16).prop_map(|(at, len)| Edit::Delete(at, len)),
        (
            any::<Index>(),
            prop_oneof![
                prop::sample::select(JSON_TOKENS).prop_map(String::from),
                arb_word().prop_map(|word| Value::String(word).to_string()),
            ]
        )
            .prop_map(|(at, text)| Edit::Insert(at, text)),
        (any::<Index>(), any::<u8>()).prop_map(|(at, byte)| Edit::Overwrite(at, byte)),
    ]
    .boxed()
}

fn apply_edit(bytes: &mut Vec<u8>, edit: &Edit) {
    match edit {
        Edit::Delete(at, len) => {
            if !bytes.is_empty() {
                let start = at.index(bytes.len());
                let end = (start + len).min(bytes.len());
                let tail = bytes.split_off(end);
                bytes.truncate(start);
                bytes.extend(tail);
            }
        }
        Edit::Insert(at, text) => {
            let position = at.index(bytes.len() + 1);
            let tail = bytes.split_off(position);
            bytes.extend_from_slice(text.as_bytes());
            bytes.extend(tail);
        }
        Edit::Overwrite(at, byte) => {
            if !bytes.is_empty() {
                let i = at.index(bytes.len());
                bytes[i] = *byte;
            }
        }
    }
}

/// Validates a decoded workflow. A valid one is what the engine runs, so its
/// filter and every step must also survive any context.
fn exercise(workflow: &WorkflowDefinition, context: &Value) {
    let problems: Vec<Problem> = validate::validate(workflow);
    for problem in &problems {
        let _ = problem.to_string();
    }
    let _ = serde_json::to_string(workflow);
    if !problems.is_empty() {
        return;
    }
    if let Some(filter) = &workflow.trigger.filter {
        let _ = filter.evaluate(context);
    }
    for step in workflow.steps.values() {
        let _ = step.edges();
        let _ = step.retry_policy();
        // Every action renders from any context without panicking.
        let mut secrets = hookflow_core::redact::Secrets::default();
        let _ = step.action.plugin().rehearse(DryCall {
            run_id: "run",
            step_id: "step",
            context,
            next: step.next.as_deref(),
            secrets: &mut secrets,
        });
        if let Action::Delay(delay) = &step.action {
            let _ = delay.resume_at(chrono::Utc::now(), context);
        }
    }
}

fn check_decoded(result: Result<WorkflowDefinition, DecodeError>, context: &Value) {
    match result {
        Ok(workflow) => exercise(&workflow, context),
        Err(err) => {
            let _ = err.to_string();
        }
    }
}

#[test]
fn example_workflows_are_usable_seeds() {
    for (which, (name, text)) in EXAMPLES.iter().enumerate() {
        let _ = seed(which);
        if let Err(err) = WorkflowDefinition::from_json(text) {
            panic!("examples/workflows/{name}.json does not decode: {err}");
        }
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_decode_or_are_refused(body in arb_body(), context in arb_context()) {
        check_decoded(WorkflowDefinition::from_json(&String::from_utf8_lossy(&body)), &context);
    }

    #[test]
    fn mutated_examples_decode_and_validate_without_panicking(
        which in 0..EXAMPLES.len(),
        mutations in prop::collection::vec(arb_mutation(), 1..6),
        context in arb_context(),
    ) {
        let mut doc = seed(which);
        for mutation in &mutations {
            apply(&mut doc, mutation);
        }
        check_decoded(WorkflowDefinition::from_json(&doc.to_string()), &context);
        check_decoded(WorkflowDefinition::from_value(doc), &context);
    }

    #[test]
    fn byte_edited_examples_decode_or_are_refused(
        which in 0..EXAMPLES.len(),
        edits in prop::collection::vec(arb_edit(), 1..8),
        context in arb_context(),
    ) {
        let mut bytes = EXAMPLES[which].1.as_bytes().to_vec();
        for edit in &edits {
            apply_edit(&mut bytes, edit);
        }
        check_decoded(WorkflowDefinition::from_json(&String::from_utf8_lossy(&bytes)), &context);
    }
}
