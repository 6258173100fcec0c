//! `{{ … }}` templates, rendered with handlebars in strict mode.
//!
//! Two rules users rely on:
//! - a string that is exactly one `{{ path }}` keeps the value's JSON type, so
//!   `"score": "{{ gameplay.score }}"` sends the number 120;
//! - a missing variable is an error naming it, never a silent empty string.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use handlebars::{Context, Handlebars, RenderContext, RenderErrorReason, Renderable, WriteOutput};
use regex::Regex;
use serde_json::Value;

use crate::path;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("template variable `{0}` is missing")]
    MissingVariable(String),
    #[error("template does not parse: {0}")]
    Syntax(String),
    #[error("template failed to render: {0}")]
    Render(String),
}

fn engine() -> &'static Handlebars<'static> {
    static ENGINE: OnceLock<Handlebars<'static>> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let mut hb = Handlebars::new();
        hb.set_strict_mode(true);
        // Templates build JSON, URLs and headers, not HTML.
        hb.register_escape_fn(handlebars::no_escape);
        // `log` writes its arguments to the process log (`{{log vars.api_secret}}`
        // would put a secret in CloudWatch): `guard` refuses it, and should a
        // spelling slip past, the helper renders nothing and logs nothing.
        hb.register_helper("log", Box::new(RefusedHelper));
        hb.register_helper(TICK_HELPER, Box::new(IterationTick));
        hb
    })
}

/// The most `{{#each}}` iterations one render may run, across all its
/// loops: nested loops over large lists would otherwise stall a worker
/// while rendering nothing, out of the output cap's sight.
pub const MAX_ITERATIONS: usize = 100_000;

/// Counts each iteration of the render in progress: [`with_ticks`] puts a
/// call of it at the start of every `{{#each}}` body.
const TICK_HELPER: &str = "__hookflow_iteration";

thread_local! {
    /// Iterations of the render running on this thread (rendering never
    /// yields, so one render has the thread to itself).
    static ITERATIONS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

struct IterationTick;

impl handlebars::HelperDef for IterationTick {
    fn call<'reg: 'rc, 'rc>(
        &self,
        _: &handlebars::Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc handlebars::Context,
        _: &mut handlebars::RenderContext<'reg, 'rc>,
        _: &mut dyn handlebars::Output,
    ) -> handlebars::HelperResult {
        let done = ITERATIONS.with(|count| {
            count.set(count.get() + 1);
            count.get()
        });
        if done > MAX_ITERATIONS {
            return Err(
                RenderErrorReason::Other(format!("the template iterates more than {MAX_ITERATIONS} times")).into(),
            );
        }
        Ok(())
    }
}

/// What follows `{{` in a mustache, past any `{`, `~` and whitespace, in
/// whatever order handlebars' grammar lets them come.
fn tag_head(after_braces: &str) -> &str {
    after_braces.trim_start_matches(|c: char| c == '{' || c == '~' || c.is_whitespace())
}

/// Whether `text` starts with `word` as a whole word.
fn starts_with_word(text: &str, word: &str) -> bool {
    text.strip_prefix(word)
        .is_some_and(|rest| !rest.starts_with(|c: char| c.is_alphanumeric() || c == '_' || c == '-'))
}

/// Whether a mustache (what lies between `{{` and `}}`) opens an `each`
/// body: `{{#each …}}` however spaced, or an else chain `{{else each …}}`.
fn opens_each(tag: &str) -> bool {
    let head = tag_head(tag);
    match head.strip_prefix('#') {
        Some(block) => starts_with_word(block.trim_start(), "each"),
        None => head
            .strip_prefix("else")
            .is_some_and(|rest| rest.starts_with(char::is_whitespace) && starts_with_word(rest.trim_start(), "each")),
    }
}

/// `text` with an iteration tick at the start of every `each` body (after
/// its opening tag, keeping that tag's `~}}` whitespace control). Every
/// `{{` is looked at on its own, so an escaped `\{{` before a real tag
/// cannot hide it.
fn with_ticks(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains("each") {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut ticks: Vec<(usize, bool)> = vec![];
    for (start, _) in text.match_indices("{{") {
        let inner = &text[start + 2..];
        let Some(end) = inner.find("}}") else { continue };
        let tag = &inner[..end];
        if opens_each(tag) {
            ticks.push((start + 2 + end + 2, tag.trim_end().ends_with('~')));
        }
    }
    if ticks.is_empty() {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + ticks.len() * 32);
    let mut copied = 0;
    for (at, trim) in ticks {
        out.push_str(&text[copied..at]);
        out.push_str(&format!("{{{{{TICK_HELPER}{}}}}}", if trim { "~" } else { "" }));
        copied = at;
    }
    out.push_str(&text[copied..]);
    std::borrow::Cow::Owned(out)
}

/// Collects a render, refusing to grow past [`MAX_RENDERED_BYTES`]: the
/// render stops at the first write over it.
#[derive(Default)]
struct CappedText {
    bytes: Vec<u8>,
    overflowed: bool,
}

impl std::io::Write for CappedText {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len() + data.len() > MAX_RENDERED_BYTES {
            self.overflowed = true;
            return Err(std::io::Error::other("rendered text over the limit"));
        }
        self.bytes.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct RefusedHelper;

impl handlebars::HelperDef for RefusedHelper {
    fn call<'reg: 'rc, 'rc>(
        &self,
        helper: &handlebars::Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc handlebars::Context,
        _: &mut handlebars::RenderContext<'reg, 'rc>,
        _: &mut dyn handlebars::Output,
    ) -> handlebars::HelperResult {
        Err(handlebars::RenderErrorReason::Other(format!("the {} helper is not allowed", helper.name())).into())
    }
}

/// The most text one template may render: a template that repeats a large
/// value (an `{{#each}}` over a big list) fails instead of filling memory.
pub const MAX_RENDERED_BYTES: usize = 1024 * 1024;

fn single_expression() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        #[allow(clippy::unwrap_used)] // a constant pattern, covered by tests
        Regex::new(r"^\s*\{\{\s*([^{}\s]+)\s*\}\}\s*$").unwrap()
    })
}

/// True when the text contains template syntax at all.
pub fn is_templated(text: &str) -> bool {
    text.contains("{{")
}

/// Block helpers (`{{#if}}`, `{{#each}}`) one template may open: the parser
/// and renderer recurse per level, so unbounded nesting could exhaust the stack.
pub const MAX_BLOCKS: usize = 32;

/// Refuses what a workflow template never needs and could crash a worker
/// with: partials and decorators (which can recurse forever), raw blocks
/// (whose text the iteration count could not see into) and more than
/// [`MAX_BLOCKS`] blocks.
fn guard(text: &str) -> Result<(), TemplateError> {
    if text.contains("{{{{") {
        return Err(TemplateError::Syntax(
            "raw blocks ({{{{raw}}}}) are not supported".into(),
        ));
    }
    let mut blocks = 0;
    for (start, _) in text.match_indices("{{") {
        let rest = tag_head(&text[start + 2..]);
        if rest.starts_with('>') || rest.starts_with("#>") || rest.starts_with("#*") || rest.starts_with('*') {
            return Err(TemplateError::Syntax(
                "partials and decorators ({{> …}}, {{#* …}}) are not supported".into(),
            ));
        }
        let helper = rest.trim_start_matches(['#', '(']).trim_start();
        let name_end = helper.find(|c: char| c.is_whitespace() || c == '}' || c == '~' || c == ')');
        // As a sub-expression too: `{{x (log a)}}`, within this mustache only.
        let inner = &text[start + 2..];
        let expression = &inner[..inner.find("}}").unwrap_or(inner.len())];
        let nested = expression.split('(').skip(1).any(|after| {
            let after = after.trim_start();
            after == "log" || after.starts_with("log ") || after.starts_with("log)")
        });
        if name_end.map_or(helper, |end| &helper[..end]) == "log" || nested {
            return Err(TemplateError::Syntax(
                "the log helper is not allowed: templates may not write to the process log".into(),
            ));
        }
        if rest.starts_with('#') {
            blocks += 1;
            if blocks > MAX_BLOCKS {
                return Err(TemplateError::Syntax(format!(
                    "a template may open at most {MAX_BLOCKS} blocks"
                )));
            }
        }
    }
    Ok(())
}

/// Checks that a template parses, without rendering it.
pub fn check(text: &str) -> Result<(), TemplateError> {
    if !is_templated(text) {
        return Ok(());
    }
    guard(text)?;
    handlebars::Template::compile(text)
        .map(|_| ())
        .map_err(|e| TemplateError::Syntax(e.reason().to_string()))
}

/// Renders a template to text. Values that are not strings render as JSON
/// would print them (`120`, `true`).
pub fn render_text(text: &str, context: &Value) -> Result<String, TemplateError> {
    match render_value(text, context)? {
        Value::String(s) => Ok(s),
        other => Ok(other.to_string()),
    }
}

/// Renders a template whose output is HTML: every string the context
/// holds is HTML-escaped first, so no inserted value can add markup.
pub fn render_html(text: &str, context: &Value) -> Result<String, TemplateError> {
    render_text(text, &html_escaped(context))
}

fn html_escaped(value: &Value) -> Value {
    match value {
        Value::String(text) => Value::String(handlebars::html_escape(text)),
        Value::Array(items) => Value::Array(items.iter().map(html_escaped).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (handlebars::html_escape(k), html_escaped(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// A template text as rendering needs it, parsed once.
enum Compiled {
    /// A lone `{{ path }}`: its value, with its JSON type.
    Path(String),
    /// Anything else, with the iteration ticks put in.
    Template(handlebars::Template),
}

/// Compiled templates by text. A workflow's templates are few and rendered
/// on every run: parsing them each time was most of a step's CPU.
const COMPILED_KEPT: usize = 4096;

fn compile(text: &str) -> Result<Arc<Compiled>, TemplateError> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<Compiled>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Mutex::default);
    let lock = || cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(compiled) = lock().get(text) {
        return Ok(compiled.clone());
    }
    guard(text)?;
    let lone_path = single_expression()
        .captures(text)
        .and_then(|captures| captures.get(1))
        .map(|expr| expr.as_str())
        // The shortcut must not accept what the engine would refuse:
        // `check` is what validation promised about this text.
        .filter(|expr| path::is_plain_path(expr) && check(text).is_ok());
    let compiled = Arc::new(match lone_path {
        Some(expr) => Compiled::Path(expr.to_owned()),
        None => Compiled::Template(
            handlebars::Template::compile(&with_ticks(text))
                .map_err(|e| TemplateError::Syntax(e.reason().to_string()))?,
        ),
    });
    let mut cached = lock();
    // A bound, not an LRU: past it the cache starts again, which only costs parsing.
    if cached.len() >= COMPILED_KEPT {
        cached.clear();
    }
    cached.insert(text.to_owned(), compiled.clone());
    Ok(compiled)
}

/// The render context of one document, made from its JSON context once,
/// and only if a leaf needs handlebars.
struct Renderer<'a> {
    context: &'a Value,
    handlebars: Option<Context>,
}

impl<'a> Renderer<'a> {
    fn new(context: &'a Value) -> Self {
        Self {
            context,
            handlebars: None,
        }
    }

    fn value(&mut self, text: &str) -> Result<Value, TemplateError> {
        if !is_templated(text) {
            return Ok(Value::String(text.to_owned()));
        }
        match &*compile(text)? {
            Compiled::Path(expr) => path::lookup(self.context, expr)
                .cloned()
                .ok_or_else(|| TemplateError::MissingVariable(expr.clone())),
            Compiled::Template(template) => {
                let context = self.context;
                let context = self.handlebars.get_or_insert_with(|| Context::from(context.clone()));
                render_compiled(template, context)
            }
        }
    }

    fn json(&mut self, value: &Value) -> Result<Value, TemplateError> {
        Ok(match value {
            Value::String(s) => self.value(s)?,
            Value::Array(items) => Value::Array(items.iter().map(|item| self.json(item)).collect::<Result<_, _>>()?),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| Ok((k.clone(), self.json(v)?)))
                    .collect::<Result<_, TemplateError>>()?,
            ),
            other => other.clone(),
        })
    }
}

fn render_compiled(template: &handlebars::Template, context: &Context) -> Result<Value, TemplateError> {
    let mut rendered = CappedText::default();
    ITERATIONS.with(|count| count.set(0));
    let mut render_context = RenderContext::new(None);
    let outcome = template.render(
        engine(),
        context,
        &mut render_context,
        &mut WriteOutput::new(&mut rendered),
    );
    if rendered.overflowed {
        return Err(TemplateError::Render(format!(
            "the rendered text is over the limit of {MAX_RENDERED_BYTES} bytes"
        )));
    }
    outcome.map_err(|err| match err.reason() {
        RenderErrorReason::MissingVariable(Some(name)) => TemplateError::MissingVariable(name.clone()),
        RenderErrorReason::MissingVariable(None) => TemplateError::MissingVariable(String::from("(unknown)")),
        RenderErrorReason::TemplateError(e) => TemplateError::Syntax(e.to_string()),
        _ => TemplateError::Render(err.to_string()),
    })?;
    String::from_utf8(rendered.bytes)
        .map(Value::String)
        .map_err(|e| TemplateError::Render(format!("the rendered text is not UTF-8: {e}")))
}

/// Renders one string leaf. A lone `{{ path }}` returns the value itself with
/// its JSON type; anything else renders to a string.
pub fn render_value(text: &str, context: &Value) -> Result<Value, TemplateError> {
    Renderer::new(context).value(text)
}

/// Renders every string leaf of a JSON document; keys and non-string leaves
/// are left as they are, so the result is always valid JSON.
pub fn render_json(value: &Value, context: &Value) -> Result<Value, TemplateError> {
    Renderer::new(context).json(value)
}

/// Calls `visit` with every string leaf of a JSON document and its JSON path.
pub fn for_each_string_leaf(value: &Value, path: &str, visit: &mut dyn FnMut(&str, &str)) {
    match value {
        Value::String(s) => visit(path, s),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                for_each_string_leaf(item, &format!("{path}[{i}]"), visit);
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                for_each_string_leaf(v, &format!("{path}.{k}"), visit);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx() -> Value {
        json!({
            "contact": {"email": "ana@example.com", "first_name": "Ana"},
            "card": {"name": "Sponsor A Trivia"},
            "gameplay": {"score": 120, "passed": true},
            "items": [{"id": "i1"}],
            "html": "<b>&</b>"
        })
    }

    #[test]
    fn single_expression_keeps_json_type() {
        let c = ctx();
        assert_eq!(render_value("{{ gameplay.score }}", &c), Ok(json!(120)));
        assert_eq!(render_value("{{gameplay.passed}}", &c), Ok(json!(true)));
        assert_eq!(render_value(" {{ contact }} ", &c), Ok(c["contact"].clone()));
        assert_eq!(render_value("{{ items.0.id }}", &c), Ok(json!("i1")));
    }

    #[test]
    fn mixed_text_renders_as_string_without_html_escaping() {
        let c = ctx();
        assert_eq!(
            render_value("Komo - {{ card.name }}", &c),
            Ok(json!("Komo - Sponsor A Trivia"))
        );
        assert_eq!(render_value("score={{ gameplay.score }}", &c), Ok(json!("score=120")));
        assert_eq!(render_value("x {{ html }}", &c), Ok(json!("x <b>&</b>")));
        assert_eq!(render_text("{{ gameplay.score }}", &c), Ok("120".into()));
    }

    #[test]
    fn missing_variables_are_named() {
        let c = ctx();
        assert_eq!(
            render_value("{{ contact.phone }}", &c),
            Err(TemplateError::MissingVariable("contact.phone".into()))
        );
        let err = render_value("Hi {{ contact.last_name }}!", &c).unwrap_err();
        assert!(err.to_string().contains("last_name"), "{err}");
    }

    #[test]
    fn json_bodies_stay_json() {
        let body = json!({"properties": {"email": "{{ contact.email }}", "komo_score": "{{ gameplay.score }}",
            "lead_source": "Komo - {{ card.name }}", "fixed": 3, "list": ["{{ contact.first_name }}"]}});
        let out = render_json(&body, &ctx()).unwrap();
        assert_eq!(
            out,
            json!({"properties": {"email": "ana@example.com", "komo_score": 120,
                "lead_source": "Komo - Sponsor A Trivia", "fixed": 3, "list": ["Ana"]}})
        );
    }

    #[test]
    fn syntax_is_checked() {
        assert!(check("{{ a.b }}").is_ok());
        assert!(check("plain").is_ok());
        assert!(matches!(check("{{#if x}}"), Err(TemplateError::Syntax(_))));
        assert!(matches!(check("{{ a"), Err(TemplateError::Syntax(_))));
    }

    #[test]
    fn leaves_are_visited_with_paths() {
        let mut seen = vec![];
        for_each_string_leaf(&json!({"a": ["x", {"b": "y"}], "n": 1}), "$.body", &mut |p, s| {
            seen.push(format!("{p}={s}"))
        });
        assert_eq!(seen, vec!["$.body.a[0]=x", "$.body.a[1].b=y"]);
    }

    #[test]
    fn rendering_is_capped() {
        let big = serde_json::json!({"items": vec!["x".repeat(1000); 2000]});
        let err = render_text("{{#each items}}{{this}}{{/each}}", &big).unwrap_err();
        assert!(matches!(err, TemplateError::Render(m) if m.contains("over the limit")));
        let small = serde_json::json!({"items": ["a", "b"]});
        assert_eq!(render_text("{{#each items}}{{this}}{{/each}}", &small), Ok("ab".into()));
    }

    #[test]
    fn partials_decorators_and_deep_nesting_are_refused() {
        for text in [
            "{{> a}}",
            "{{~> a}}",
            "{{#*inline \"a\"}}{{> a}}{{/inline}}{{> a}}",
            "{{#> layout}}x{{/layout}}",
            "{{{> a}}}",
        ] {
            assert!(matches!(check(text), Err(TemplateError::Syntax(_))), "{text}");
            assert!(render_value(text, &serde_json::json!({"a": 1})).is_err(), "{text}");
        }
        for text in [
            "{{log vars.api_secret}}",
            "{{~log a}}",
            "{{#log a}}x{{/log}}",
            "{{x (log a)}}",
            "{{log}}",
        ] {
            assert!(
                matches!(check(text), Err(TemplateError::Syntax(m)) if m.contains("log helper")),
                "{text}"
            );
            assert!(render_value(text, &serde_json::json!({"a": 1})).is_err(), "{text}");
        }
        assert_eq!(
            check("{{ logo }} {{ login.name }}"),
            Ok(()),
            "names that start with log are fine"
        );
        assert_eq!(
            check("Please (log in) as {{ name }}"),
            Ok(()),
            "text outside a mustache is text"
        );
        let deep = "{{#if a}}".repeat(10_000);
        assert!(matches!(check(&deep), Err(TemplateError::Syntax(m)) if m.contains("at most")));
        let fine = format!("{}x{}", "{{#if a}}".repeat(MAX_BLOCKS), "{{/if}}".repeat(MAX_BLOCKS));
        assert_eq!(check(&fine), Ok(()));
        assert_eq!(render_text(&fine, &serde_json::json!({"a": true})), Ok("x".into()));
    }

    #[test]
    fn iteration_is_bounded_and_each_still_behaves() {
        // Nested loops over one list: a million iterations that render nothing.
        let list: Vec<u32> = (0..1000).collect();
        let ctx = serde_json::json!({"a": list, "small": [{"n": 1, "tags": ["x", "y"]}, {"n": 2, "tags": []}]});
        let nested = "{{#each a}}{{#each ../a}}{{/each}}{{/each}}";
        let err = render_value(nested, &ctx).unwrap_err();
        assert!(
            matches!(&err, TemplateError::Render(m) if m.contains("iterates more than")),
            "{err}"
        );
        assert_eq!(
            render_value("{{#each a}}{{/each}}done", &ctx),
            Ok(serde_json::json!("done")),
            "a thousand iterations are fine"
        );
        // The tick changes nothing a template renders: indexes, block
        // params, parents, else, whitespace control.
        let cases = [
            ("{{#each small}}{{@index}}:{{n}};{{/each}}", "0:1;1:2;"),
            ("{{#each small as |item i|}}{{i}}={{item.n}} {{/each}}", "0=1 1=2 "),
            (
                "{{#each small}}{{#each tags}}{{this}}{{else}}-{{/each}}|{{/each}}",
                "xy|-|",
            ),
            ("[ {{~#each small~}} {{n}} {{~/each~}} ]", "[12]"),
            ("{{#each small}}{{#if @first}}first {{/if}}{{/each}}", "first "),
        ];
        for (template, expected) in cases {
            assert_eq!(
                render_value(template, &ctx),
                Ok(serde_json::json!(expected)),
                "{template}"
            );
        }
        for spelled in [
            "{{# each a}}{{#each ../a}}{{/each}}{{/each}}",
            "{{ ~#each a}}{{~ # each ../a ~}}{{/each}}{{/each}}",
            "{{#each [a]}}{{#each ../a}}{{/each}}{{/each}}",
            "{{#if false}}{{else each a}}{{#each ../a}}{{/each}}{{/if}}",
            "\\{{ {{#each a}}{{#each ../a}}{{/each}}{{/each}}",
        ] {
            let err = render_value(spelled, &ctx);
            assert!(
                matches!(&err, Err(TemplateError::Render(m)) if m.contains("iterates more than"))
                    || matches!(&err, Err(TemplateError::Syntax(_))),
                "{spelled}: {err:?}"
            );
        }
        assert_eq!(
            render_value("[ {{#each small ~ }} {{n}} {{~/each~}} ]", &ctx),
            Ok(serde_json::json!("[ 12]")),
            "a spaced ~ keeps trimming"
        );
        for hidden in ["{{ ~>p}}", "{{ ~#*inline \"p\"}}x{{/inline}}"] {
            assert!(matches!(check(hidden), Err(TemplateError::Syntax(_))), "{hidden}");
        }
        assert!(matches!(
            check("{{{{raw}}}}{{#each a}}{{{{/raw}}}}"),
            Err(TemplateError::Syntax(_))
        ));
    }
}
