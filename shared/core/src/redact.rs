//! Secrets stay out of run logs. What counts as secret: the values of
//! credential headers (`Authorization`, `Cookie`, `X-Api-Key`, …), the
//! credentials of an action's `auth`, and every workflow variable whose name
//! contains `secret`. Each such value is replaced by [`REDACTED`] wherever it
//! appears in a stored step output or error, and credential headers in a
//! recorded response are replaced whole.

use base64::Engine as _;
use serde_json::Value;

use crate::ports::HttpCall;

pub const REDACTED: &str = "[REDACTED]";

/// Values shorter than this are not hunted inside other text: redacting
/// every `1` or `on` would garble the log without protecting anything.
const MIN_SECRET_LEN: usize = 4;

/// Header names whose values are credentials. `Idempotency-Key` ends in
/// `-key` but is the run's own `<run_id>:<step_id>`, which on-call matches
/// against the receiver's logs.
pub fn is_sensitive_header(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    if lower == "idempotency-key" {
        return false;
    }
    matches!(
        lower.as_str(),
        "authorization" | "proxy-authorization" | "cookie" | "set-cookie" | "x-api-key" | "x-auth-token"
    ) || lower.contains("secret")
        || lower.contains("apikey")
        || lower.contains("api_key")
        || lower.contains("api-key")
        || lower.contains("password")
        || lower.contains("token")
        || lower.ends_with("-key")
}

/// Query parameter names whose values are credentials (`?api_key=…`).
pub fn is_secret_query_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    is_sensitive_header(&lower)
        || is_secret_name(&lower)
        || ["key", "sig", "pass", "pwd", "cred", "auth", "token", "session"]
            .iter()
            .any(|part| lower.contains(part))
        || lower == "code"
}

/// `url` with the values of credential-named query parameters replaced by
/// [`REDACTED`]; anything that is not a URL comes back unchanged.
pub fn redact_url(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return url.to_owned();
    };
    if parsed.password().is_some() {
        // Sent as Basic auth: never shown.
        let _ = parsed.set_password(Some(REDACTED));
    }
    if parsed.query().is_none() {
        return parsed.to_string();
    }
    let pairs: Vec<(String, String)> = parsed
        .query_pairs()
        .map(|(name, value)| {
            let shown = if is_secret_query_name(&name) {
                REDACTED.to_owned()
            } else {
                value.into_owned()
            };
            (name.into_owned(), shown)
        })
        .collect();
    parsed.query_pairs_mut().clear().extend_pairs(pairs);
    parsed.to_string()
}

/// A variable name that marks its value secret.
pub fn is_secret_name(name: &str) -> bool {
    name.to_ascii_lowercase().contains("secret")
}

/// The secret values that may surface in what one step records.
#[derive(Debug, Default, Clone)]
pub struct Secrets(Vec<String>);

impl Secrets {
    /// Secret-named variables of the run context.
    pub fn of_context(context: &Value) -> Self {
        let mut secrets = Self::default();
        if let Some(vars) = context.get("vars").and_then(Value::as_object) {
            for (name, value) in vars {
                if is_secret_name(name) {
                    secrets.add_value(value);
                }
            }
        }
        secrets
    }

    /// Adds the credentials a prepared request carries.
    pub fn add_call(&mut self, call: &HttpCall) {
        for (name, value) in &call.headers {
            if !call.is_secret_header(name) {
                continue;
            }
            self.add(value);
            let mut parts = value.split_whitespace();
            let scheme = parts.next().unwrap_or_default();
            for part in parts {
                self.add(part);
                if scheme.eq_ignore_ascii_case("basic") {
                    self.add_basic(part);
                }
            }
        }
    }

    fn add_basic(&mut self, encoded: &str) {
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded) else {
            return;
        };
        let text = String::from_utf8_lossy(&decoded).into_owned();
        if let Some((_, password)) = text.split_once(':') {
            self.add(password);
        }
        self.add(&text);
    }

    fn add_value(&mut self, value: &Value) {
        match value {
            Value::String(s) => self.add(s),
            Value::Null | Value::Bool(_) => {}
            other => self.add(&other.to_string()),
        }
    }

    /// Adds one secret value (a connection's credential).
    pub fn add(&mut self, secret: &str) {
        if secret.len() >= MIN_SECRET_LEN && !self.0.iter().any(|s| s == secret) {
            self.0.push(secret.to_owned());
            // Longest first: a secret containing another is replaced whole.
            self.0.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn scrub_text(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in &self.0 {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), REDACTED);
            }
        }
        out
    }

    /// Scrubs every string of a JSON value; credential headers of a recorded
    /// response (`{"headers": {...}}`) and secret-named keys lose their values.
    pub fn scrub_value(&self, value: &mut Value) {
        match value {
            Value::String(s) if !self.0.is_empty() => *s = self.scrub_text(s),
            Value::Array(items) => items.iter_mut().for_each(|v| self.scrub_value(v)),
            Value::Object(map) => {
                for (key, v) in map.iter_mut() {
                    if key == "headers" {
                        if let Value::Object(headers) = v {
                            for (name, header) in headers.iter_mut() {
                                if is_sensitive_header(name) {
                                    *header = Value::String(REDACTED.into());
                                }
                            }
                        }
                    }
                    if is_secret_name(key) && !v.is_null() {
                        *v = Value::String(REDACTED.into());
                    } else {
                        self.scrub_value(v);
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    #[test]
    fn credential_query_values_and_url_passwords_are_redacted() {
        let shown = redact_url("https://bob:hunter2@crm.example/x?hapikey=k1&X-Amz-Signature=s1&team=blue&code=c1");
        assert!(
            !["hunter2", "k1", "s1", "c1"].iter().any(|s| shown.contains(s)),
            "{shown}"
        );
        assert!(shown.contains("team=blue") && shown.contains("bob:"), "{shown}");
        assert!(is_sensitive_header("apikey") && is_sensitive_header("X-Api_Key"));
        assert!(!is_sensitive_header("Idempotency-Key") && !is_sensitive_header("Content-Type"));
    }

    #[test]
    fn secrets_from_vars_and_headers_are_scrubbed_everywhere() {
        let context = json!({"vars": {"api_secret": "s3cr3t-XYZ", "client_secret_n": 123456, "plain": "visible"}});
        let mut secrets = Secrets::of_context(&context);
        secrets.add_call(&HttpCall {
            method: "GET".into(),
            url: "https://example.com".into(),
            headers: vec![
                ("Authorization".into(), "Bearer tok-abc-123".into()),
                ("X-Api-Key".into(), "key-999".into()),
                (
                    "Proxy-Authorization".into(),
                    format!(
                        "Basic {}",
                        base64::engine::general_purpose::STANDARD.encode("me:pa55word")
                    ),
                ),
                ("Accept".into(), "application/json".into()),
            ],
            body: None,
            timeout: Duration::from_secs(1),
            follow_redirects: crate::ports::FollowRedirects::Any,
            secret_headers: vec![],
        });
        let mut output = json!({"status": 200,
            "headers": {"set-cookie": "session=abc", "content-type": "application/json"},
            "body": {"echo": "Bearer tok-abc-123", "k": "key-999 and s3cr3t-XYZ", "n": "123456", "pw": "pa55word",
                     "my_secret": "anything", "plain": "visible"}});
        secrets.scrub_value(&mut output);
        let text = output.to_string();
        for leaked in [
            "tok-abc-123",
            "key-999",
            "s3cr3t-XYZ",
            "123456",
            "pa55word",
            "session=abc",
            "anything",
        ] {
            assert!(!text.contains(leaked), "{leaked} leaked: {text}");
        }
        assert!(text.contains("visible") && text.contains("application/json"));
        assert_eq!(output["body"]["k"], "[REDACTED] and [REDACTED]");
        assert_eq!(secrets.scrub_text("error: Bearer tok-abc-123"), "error: [REDACTED]");
        assert_eq!(secrets.scrub_text("token tok-abc-123"), "token [REDACTED]");
    }

    #[test]
    fn short_values_are_not_hunted() {
        let secrets = Secrets::of_context(&json!({"vars": {"secret_flag": "on"}}));
        assert!(secrets.is_empty());
        assert_eq!(secrets.scrub_text("turn on"), "turn on");
    }
}
