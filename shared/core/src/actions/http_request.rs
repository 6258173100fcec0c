//! `HttpRequest`: call an external API and hand its response to later steps.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::ports::{FollowRedirects, HttpCall, HttpErrorKind, HttpReply};
use crate::retry::RetryOn;
use crate::template::{self, TemplateError};

pub const DEFAULT_TIMEOUT_S: f64 = 10.0;
const MAX_TIMEOUT_S: f64 = 120.0;
const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpRequest {
    #[serde(default = "default_method")]
    pub method: String,
    pub url: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub query: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    #[serde(default)]
    pub body_format: BodyFormat,
    #[serde(default)]
    pub auth: Auth,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<f64>,
    /// Statuses that count as success: numbers (`204`) or classes (`"2xx"`). Default: 2xx.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_statuses: Option<Vec<StatusMatch>>,
    /// Which redirects to follow. Default: `same_origin` when the request
    /// has a body (a redirect must not carry it to someone else), `any`
    /// otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow_redirects: Option<FollowRedirects>,
    /// Headers whose values are credentials: never sent to another origin
    /// on a redirect, never shown in the run log.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secret_headers: Vec<String>,
}

fn default_method() -> String {
    "GET".into()
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BodyFormat {
    /// The body is JSON; only its string leaves are templated.
    #[default]
    Json,
    /// The body is an object sent as `application/x-www-form-urlencoded`.
    Form,
    /// The body is one string sent as is (`text/plain` unless a header says otherwise).
    Raw,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Auth {
    #[default]
    None,
    Bearer {
        token: String,
    },
    Basic {
        username: String,
        password: String,
    },
    ApiKey {
        header: String,
        value: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StatusMatch {
    Code(u16),
    Class(String),
}

impl StatusMatch {
    fn matches(&self, status: u16) -> bool {
        match self {
            StatusMatch::Code(code) => *code == status,
            StatusMatch::Class(class) => class_digit(class).is_some_and(|d| status / 100 == d),
        }
    }
}

fn class_digit(class: &str) -> Option<u16> {
    let lower = class.to_ascii_lowercase();
    let digit = lower.strip_suffix("xx")?.parse::<u16>().ok()?;
    (1..=5).contains(&digit).then_some(digit)
}

/// How a response or transport failure is classified for the retry policy.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpFailure {
    pub message: String,
    /// The retry class, or `None` for a failure no policy retries (4xx, bad config).
    pub class: Option<RetryOn>,
    pub retry_after_s: Option<f64>,
    /// The response, when there was one, so on-call engineers see what the peer said.
    pub response: Option<Value>,
}

impl HttpRequest {
    pub fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout_s.unwrap_or(DEFAULT_TIMEOUT_S).clamp(0.001, MAX_TIMEOUT_S))
    }

    /// Renders every template and builds the call. `idempotency_key` lets the
    /// receiver drop the duplicate of the one window we cannot close.
    pub fn prepare(&self, context: &Value, idempotency_key: &str) -> Result<HttpCall, TemplateError> {
        let mut url = url::Url::parse(&template::render_text(&self.url, context)?)
            .map_err(|e| TemplateError::Render(format!("url: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(TemplateError::Render(format!(
                "url scheme {:?} is not allowed; use http or https",
                url.scheme()
            )));
        }
        if !self.query.is_empty() {
            let rendered = self
                .query
                .iter()
                .map(|(k, v)| Ok((k.clone(), template::render_text(v, context)?)))
                .collect::<Result<Vec<_>, TemplateError>>()?;
            url.query_pairs_mut().extend_pairs(rendered);
        }
        let mut headers: Vec<(String, String)> = vec![];
        for (name, value) in &self.headers {
            headers.push((name.clone(), template::render_text(value, context)?));
        }
        match &self.auth {
            Auth::None => {}
            Auth::Bearer { token } => {
                headers.push((
                    "Authorization".into(),
                    format!("Bearer {}", template::render_text(token, context)?),
                ));
            }
            Auth::Basic { username, password } => {
                let pair = format!(
                    "{}:{}",
                    template::render_text(username, context)?,
                    template::render_text(password, context)?
                );
                let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
                headers.push(("Authorization".into(), format!("Basic {encoded}")));
            }
            Auth::ApiKey { header, value } => {
                headers.push((header.clone(), template::render_text(value, context)?));
            }
        }
        let has_header =
            |headers: &[(String, String)], name: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
        let body = match (&self.body, self.body_format) {
            (None, _) => None,
            (Some(body), BodyFormat::Json) => {
                if !has_header(&headers, "content-type") {
                    headers.push(("Content-Type".into(), "application/json".into()));
                }
                Some(template::render_json(body, context)?.to_string().into_bytes())
            }
            (Some(body), BodyFormat::Form) => {
                let rendered = template::render_json(body, context)?;
                let mut form = url::form_urlencoded::Serializer::new(String::new());
                if let Value::Object(map) = &rendered {
                    for (k, v) in map {
                        form.append_pair(k, &scalar_text(v));
                    }
                }
                if !has_header(&headers, "content-type") {
                    headers.push(("Content-Type".into(), "application/x-www-form-urlencoded".into()));
                }
                Some(form.finish().into_bytes())
            }
            (Some(body), BodyFormat::Raw) => {
                let text = match body {
                    Value::String(s) => template::render_text(s, context)?,
                    other => other.to_string(),
                };
                if !has_header(&headers, "content-type") {
                    headers.push(("Content-Type".into(), "text/plain; charset=utf-8".into()));
                }
                Some(text.into_bytes())
            }
        };
        if !has_header(&headers, "idempotency-key") {
            headers.push(("Idempotency-Key".into(), idempotency_key.to_owned()));
        }
        let mut secret_headers = self.secret_headers.clone();
        if let Auth::ApiKey { header, .. } = &self.auth {
            secret_headers.push(header.clone());
        }
        // A header that carries a secret variable is a credential, named or not.
        let secrets = crate::redact::Secrets::of_context(context);
        for (name, value) in &headers {
            if secrets.scrub_text(value) != *value {
                secret_headers.push(name.clone());
            }
        }
        let follow_redirects = self.follow_redirects.unwrap_or(if body.is_some() {
            FollowRedirects::SameOrigin
        } else {
            FollowRedirects::Any
        });
        Ok(HttpCall {
            method: self.method.to_ascii_uppercase(),
            url: url.to_string(),
            headers,
            body,
            timeout: self.timeout(),
            follow_redirects,
            secret_headers,
        })
    }

    /// Success, or a classified failure, from the peer's reply.
    pub fn interpret(&self, reply: &HttpReply) -> Result<Value, HttpFailure> {
        let output = response_output(reply);
        let success = match &self.success_statuses {
            Some(matchers) => matchers.iter().any(|m| m.matches(reply.status)),
            None => (200..300).contains(&reply.status),
        };
        if success {
            return Ok(output);
        }
        let class = match reply.status {
            429 => Some(RetryOn::TooManyRequests),
            500..=599 => Some(RetryOn::ServerError),
            _ => None,
        };
        Err(HttpFailure {
            message: format!("HTTP {} from {}", reply.status, self.method.to_ascii_uppercase()),
            class,
            retry_after_s: reply.header("retry-after").and_then(parse_retry_after),
            response: Some(output),
        })
    }

    fn own_templates(&self, out: &mut Vec<(String, String)>) {
        out.push(("url".into(), self.url.clone()));
        for (k, v) in &self.query {
            out.push((format!("query.{k}"), v.clone()));
        }
        for (k, v) in &self.headers {
            out.push((format!("headers.{k}"), v.clone()));
        }
        if let Some(body) = &self.body {
            template::for_each_string_leaf(body, "body", &mut |path, text| {
                out.push((path.to_owned(), text.to_owned()))
            });
        }
        match &self.auth {
            Auth::None => {}
            Auth::Bearer { token } => out.push(("auth.token".into(), token.clone())),
            Auth::Basic { username, password } => {
                out.push(("auth.username".into(), username.clone()));
                out.push(("auth.password".into(), password.clone()));
            }
            Auth::ApiKey { value, .. } => out.push(("auth.value".into(), value.clone())),
        }
    }

    fn own_problems(&self) -> Vec<(String, String)> {
        let mut out = vec![];
        if !METHODS.contains(&self.method.to_ascii_uppercase().as_str()) {
            out.push((
                "method".into(),
                format!(
                    "unsupported method {:?}; expected one of {}",
                    self.method,
                    METHODS.join(", ")
                ),
            ));
        }
        if !template::is_templated(&self.url) {
            match url::Url::parse(&self.url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => {}
                Ok(u) => out.push((
                    "url".into(),
                    format!("scheme {:?} is not allowed; use http or https", u.scheme()),
                )),
                Err(e) => out.push(("url".into(), format!("invalid URL: {e}"))),
            }
        } else if !(self.url.starts_with("http://") || self.url.starts_with("https://") || self.url.starts_with("{{")) {
            out.push(("url".into(), "must start with http:// or https://".into()));
        }
        if let Some(t) = self.timeout_s {
            if !t.is_finite() || t <= 0.0 || t > MAX_TIMEOUT_S {
                out.push(("timeout_s".into(), format!("must be > 0 and at most {MAX_TIMEOUT_S}")));
            }
        }
        match (&self.body, self.body_format) {
            (Some(body), BodyFormat::Form) if !body.as_object().is_some_and(|m| m.values().all(is_scalar)) => {
                out.push(("body".into(), "a form body must be an object of scalar values".into()));
            }
            (Some(body), BodyFormat::Raw) if !body.is_string() => {
                out.push(("body".into(), "a raw body must be a string".into()));
            }
            _ => {}
        }
        if matches!(self.method.to_ascii_uppercase().as_str(), "GET" | "HEAD") && self.body.is_some() {
            out.push(("body".into(), format!("a {} request cannot have a body", self.method)));
        }
        if let Some(matchers) = &self.success_statuses {
            for (i, m) in matchers.iter().enumerate() {
                let ok = match m {
                    StatusMatch::Code(c) => (100..=599).contains(c),
                    StatusMatch::Class(c) => class_digit(c).is_some(),
                };
                if !ok {
                    out.push((
                        format!("success_statuses[{i}]"),
                        "expected a status code (100-599) or a class like \"2xx\"".into(),
                    ));
                }
            }
        }
        for name in self.headers.keys() {
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
            {
                out.push((format!("headers.{name}"), "invalid header name".into()));
            }
        }
        out
    }
}

fn is_scalar(v: &Value) -> bool {
    !(v.is_object() || v.is_array())
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `Retry-After` as delta-seconds or an HTTP date.
pub(crate) fn parse_retry_after(value: &str) -> Option<f64> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0).then_some(seconds);
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let delta = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some((delta.num_milliseconds() as f64 / 1000.0).max(0.0))
}

/// A request that got no answer: whether it may have arrived decides
/// whether it is retried.
pub(super) fn transport_failure(err: crate::ports::HttpError) -> super::Outcome {
    use super::{Failure, FailureClass};
    let class = match err.kind {
        HttpErrorKind::Timeout => FailureClass::Retryable(RetryOn::Timeout),
        HttpErrorKind::Network => FailureClass::Retryable(RetryOn::Network),
        HttpErrorKind::Invalid => FailureClass::Terminal,
    };
    super::Outcome::Failed(Failure {
        class,
        ..Failure::terminal(err)
    })
}

/// `{status, headers, body}` with JSON bodies parsed and header names lower-cased.
fn response_output(reply: &HttpReply) -> Value {
    let headers: Map<String, Value> = reply
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), Value::String(v.clone())))
        .collect();
    let text = String::from_utf8_lossy(&reply.body);
    let body = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| Value::String(text.into_owned()))
    };
    json!({"status": reply.status, "headers": headers, "body": body})
}

#[async_trait::async_trait]
impl super::StepAction for HttpRequest {
    fn kind(&self) -> super::ActionKind {
        super::ActionKind::HttpRequest
    }

    fn has_side_effects(&self) -> bool {
        true
    }

    fn templates(&self, out: &mut Vec<(String, String)>) {
        self.own_templates(out)
    }

    fn problems(&self) -> Vec<(String, String)> {
        self.own_problems()
    }

    async fn perform(&self, call: super::ActionCall<'_>) -> super::Performed {
        use super::{Failure, FailureClass, Outcome, Performed};
        let prepared = match self.prepare(call.context, &call.idempotency_key()) {
            Ok(prepared) => prepared,
            Err(err) => return Outcome::Failed(Failure::terminal(err)).into(),
        };
        call.secrets.add_call(&prepared);
        let request = serde_json::to_value(crate::engine::RenderedRequest::of(&prepared, call.secrets)).ok();
        let outcome = match call.ports.http.send(prepared).await {
            Ok(reply) => match self.interpret(&reply) {
                Ok(output) => call.succeeded(output),
                Err(failure) => Outcome::Failed(Failure {
                    message: failure.message,
                    class: failure.class.map_or(FailureClass::Terminal, FailureClass::Retryable),
                    retry_after_s: failure.retry_after_s,
                    output: failure.response,
                }),
            },
            Err(err) => transport_failure(err),
        };
        Performed { outcome, request }
    }

    fn rehearse(&self, call: super::DryCall<'_>) -> super::Rehearsal {
        match self.prepare(call.context, &crate::run::idempotency_key(call.run_id, call.step_id)) {
            Ok(prepared) => {
                call.secrets.add_call(&prepared);
                super::Rehearsal::Rendered {
                    request: Some(crate::engine::RenderedRequest::of(&prepared, call.secrets)),
                    output: Value::Null,
                }
            }
            Err(err) => super::Rehearsal::Failed(err.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(v: Value) -> HttpRequest {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn prepares_json_with_auth_query_and_idempotency_key() {
        let r = request(
            json!({"method": "post", "url": "https://crm.example/{{ path }}", "query": {"q": "{{ contact.email }}"},
            "auth": {"type": "basic", "username": "u", "password": "{{ vars.pw }}"},
            "body": {"score": "{{ score }}", "who": "x-{{ contact.email }}"}}),
        );
        let ctx = json!({"path": "leads", "contact": {"email": "a+b@x.io"}, "vars": {"pw": "p"}, "score": 7});
        let call = r.prepare(&ctx, "run1:hot").unwrap();
        assert_eq!(call.method, "POST");
        assert_eq!(call.url, "https://crm.example/leads?q=a%2Bb%40x.io");
        assert!(call.headers.contains(&("Authorization".into(), "Basic dTpw".into())));
        assert!(call.headers.contains(&("Idempotency-Key".into(), "run1:hot".into())));
        assert!(call
            .headers
            .contains(&("Content-Type".into(), "application/json".into())));
        let body: Value = serde_json::from_slice(call.body.as_deref().unwrap()).unwrap();
        assert_eq!(body, json!({"score": 7, "who": "x-a+b@x.io"}));
        assert_eq!(call.timeout, Duration::from_secs(10));
    }

    #[test]
    fn redirects_default_by_body_and_secret_headers_include_the_api_key() {
        let ctx = json!({});
        let get = request(
            json!({"url": "https://a.example/x", "auth": {"type": "api_key", "header": "X-Partner", "value": "k"},
            "secret_headers": ["X-Signature"], "headers": {"X-Signature": "s"}}),
        );
        let call = get.prepare(&ctx, "run:step").unwrap();
        assert_eq!(call.follow_redirects, FollowRedirects::Any);
        let signed = request(json!({"url": "https://a.example/x", "headers": {"X-Sig": "v1={{ vars.api_secret }}"}}));
        let with_secret = json!({"vars": {"api_secret": "s3cr3t-value"}});
        assert!(
            signed.prepare(&with_secret, "k").unwrap().is_secret_header("x-sig"),
            "it carries a secret variable"
        );
        assert!(call.is_secret_header("x-partner") && call.is_secret_header("X-SIGNATURE"));
        assert!(call.is_secret_header("Authorization") && !call.is_secret_header("Idempotency-Key"));
        let post = request(json!({"method": "POST", "url": "https://a.example/x", "body": {"a": 1}}));
        assert_eq!(
            post.prepare(&ctx, "k").unwrap().follow_redirects,
            FollowRedirects::SameOrigin
        );
        let chosen =
            request(json!({"method": "POST", "url": "https://a.example/x", "body": {}, "follow_redirects": "none"}));
        assert_eq!(
            chosen.prepare(&ctx, "k").unwrap().follow_redirects,
            FollowRedirects::None
        );
        let shown = crate::engine::RenderedRequest::of(&call, &crate::redact::Secrets::default());
        let shown = serde_json::to_string(&shown).unwrap();
        assert!(
            !shown.contains("\"s\"") && !shown.contains("\"k\""),
            "secret headers are not recorded: {shown}"
        );
        assert!(
            serde_json::from_value::<HttpRequest>(json!({"url": "https://a", "follow_redirects": "sometimes"}))
                .is_err()
        );
    }

    #[test]
    fn form_and_raw_bodies() {
        let r = request(
            json!({"method": "POST", "url": "http://h/x", "body_format": "form", "body": {"a": "{{ n }}", "b": "x y"},
            "auth": {"type": "api_key", "header": "X-Api-Key", "value": "k"}}),
        );
        let call = r.prepare(&json!({"n": 1}), "k").unwrap();
        assert_eq!(call.body.unwrap(), b"a=1&b=x+y");
        assert!(call.headers.contains(&("X-Api-Key".into(), "k".into())));
        let r = request(json!({"method": "PUT", "url": "http://h/x", "body_format": "raw", "body": "hi {{ n }}"}));
        assert_eq!(r.prepare(&json!({"n": 2}), "k").unwrap().body.unwrap(), b"hi 2");
    }

    #[test]
    fn a_rendered_url_must_be_http() {
        let r = request(json!({"url": "{{ target }}"}));
        let err = r.prepare(&json!({"target": "file:///etc/passwd"}), "k").unwrap_err();
        assert!(err.to_string().contains("scheme \"file\" is not allowed"), "{err}");
    }

    #[test]
    fn interprets_statuses() {
        let r = request(json!({"url": "http://h"}));
        let reply = |status: u16, headers: Vec<(&str, &str)>, body: &str| HttpReply {
            status,
            headers: headers.into_iter().map(|(a, b)| (a.to_owned(), b.to_owned())).collect(),
            body: body.as_bytes().to_vec(),
        };
        let ok = r
            .interpret(&reply(200, vec![("Content-Type", "application/json")], r#"{"id": 5}"#))
            .unwrap();
        assert_eq!(ok["body"]["id"], 5);
        assert_eq!(ok["headers"]["content-type"], "application/json");
        let busy = r.interpret(&reply(429, vec![("Retry-After", "3")], "")).unwrap_err();
        assert_eq!(
            (busy.class, busy.retry_after_s),
            (Some(RetryOn::TooManyRequests), Some(3.0))
        );
        assert_eq!(
            r.interpret(&reply(503, vec![], "down")).unwrap_err().class,
            Some(RetryOn::ServerError)
        );
        assert_eq!(r.interpret(&reply(404, vec![], "")).unwrap_err().class, None);
        let custom = request(json!({"url": "http://h", "success_statuses": [404, "2xx"]}));
        assert!(custom.interpret(&reply(404, vec![], "")).is_ok());
        assert!(custom.interpret(&reply(302, vec![], "")).is_err());
    }

    #[test]
    fn problems_are_found() {
        let r = request(
            json!({"method": "FETCH", "url": "ftp://x", "timeout_s": 0, "body_format": "raw", "body": {"a": 1},
            "success_statuses": ["9xx"], "headers": {"bad header": "x"}}),
        );
        let fields: Vec<_> = r.own_problems().into_iter().map(|(f, _)| f).collect();
        assert_eq!(
            fields,
            vec![
                "method",
                "url",
                "timeout_s",
                "body",
                "success_statuses[0]",
                "headers.bad header"
            ]
        );
    }
}
