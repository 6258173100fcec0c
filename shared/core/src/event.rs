//! The trigger event envelope: CloudEvents 1.0 plus Hookflow's extension
//! attributes, and the parsing of ingest requests into events.

use chrono::DateTime;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::catalogue::{self, UnknownTriggerType};

pub const SPEC_VERSION: &str = "1.0";
pub const CONTENT_TYPE_SINGLE: &str = "application/cloudevents+json";
pub const CONTENT_TYPE_BATCH: &str = "application/cloudevents-batch+json";
/// Ids and attribute values longer than this are refused (they end up in keys).
pub const MAX_ID_BYTES: usize = 256;
pub const MAX_BATCH_EVENTS: usize = 100;
/// Arrays and objects nested deeper than this are refused before the body is
/// parsed, so serde_json's own recursion limit (128) never answers.
pub const MAX_NESTING_DEPTH: usize = 64;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TriggerEvent {
    pub specversion: String,
    pub id: String,
    pub source: String,
    #[serde(rename = "type")]
    pub event_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datacontenttype: Option<String>,
    #[serde(default)]
    pub data: Value,
    pub workspaceid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub siteid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cardid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contactid: Option<String>,
    /// How many workflow hops produced this event (loop guard).
    #[serde(default)]
    pub depth: u32,
}

/// Why an ingest request was refused. Every variant is the sender's fault
/// (HTTP 4xx); nothing of a refused request is enqueued.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IngestError {
    #[error("request body is empty; send a CloudEvent as a JSON object")]
    EmptyBody,
    #[error("request body is not valid UTF-8 (first invalid byte at offset {0})")]
    InvalidUtf8(usize),
    #[error("request body nests arrays and objects deeper than the limit of {MAX_NESTING_DEPTH} levels")]
    NestingTooDeep,
    #[error("request body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("unsupported content type {0:?}; use application/cloudevents+json, application/json or application/cloudevents-batch+json")]
    UnsupportedMediaType(String),
    #[error("{at}missing required attribute `{attribute}`")]
    MissingAttribute { at: String, attribute: &'static str },
    #[error("{at}invalid attribute `{attribute}`: {reason}")]
    InvalidAttribute {
        at: String,
        attribute: String,
        reason: String,
    },
    /// An id (`id`, `source`, `workspaceid`, `siteid`, `cardid`, `contactid`)
    /// that cannot be used in storage keys and log lines.
    #[error("{at}invalid id `{attribute}`: {reason}")]
    InvalidId {
        at: String,
        attribute: &'static str,
        reason: String,
    },
    #[error("{at}{source}")]
    UnknownTriggerType { at: String, source: UnknownTriggerType },
    #[error("a batch must be a JSON array of 1 to {MAX_BATCH_EVENTS} events; got {0}")]
    BadBatch(String),
    #[error("a batch may hold at most {MAX_BATCH_EVENTS} events; got {0}")]
    BatchTooLarge(usize),
}

impl IngestError {
    /// A stable machine-readable code for the JSON error body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::EmptyBody => "empty_body",
            Self::InvalidUtf8(_) => "invalid_utf8",
            Self::NestingTooDeep => "nesting_too_deep",
            Self::MalformedJson(_) => "malformed_json",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::MissingAttribute { .. } => "missing_attribute",
            Self::InvalidAttribute { .. } => "invalid_attribute",
            Self::InvalidId { .. } => "invalid_id",
            Self::UnknownTriggerType { .. } => "unknown_trigger_type",
            Self::BadBatch(_) => "invalid_batch",
            Self::BatchTooLarge(_) => "batch_too_large",
        }
    }
}

/// Whether a request carries one event or a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Single,
    Batch,
}

/// A media type without its parameters, lowercased: `Application/JSON;
/// charset=utf-8` → `application/json`.
pub(crate) fn media_essence(content_type: Option<&str>) -> String {
    content_type
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// `application/json` or a `+json` type.
pub(crate) fn is_json_media(essence: &str) -> bool {
    essence == "application/json" || essence.ends_with("+json")
}

/// The mode a content type asks for; JSON parameters such as `charset` are ignored.
pub fn mode_for_content_type(content_type: Option<&str>) -> Result<Mode, IngestError> {
    let raw = content_type.unwrap_or("");
    let essence = media_essence(content_type);
    match essence.as_str() {
        CONTENT_TYPE_SINGLE | "application/json" => Ok(Mode::Single),
        CONTENT_TYPE_BATCH => Ok(Mode::Batch),
        _ => Err(IngestError::UnsupportedMediaType(raw.to_owned())),
    }
}

/// Parses and validates a whole request; any bad event refuses the request.
///
/// The raw bytes are checked before serde_json sees them: an empty body,
/// invalid UTF-8 and nesting deeper than [`MAX_NESTING_DEPTH`] each have
/// their own error.
pub fn parse_request(content_type: Option<&str>, body: &[u8]) -> Result<(Mode, Vec<TriggerEvent>), IngestError> {
    let mode = mode_for_content_type(content_type)?;
    if body.iter().all(|b| is_json_whitespace(*b)) {
        return Err(IngestError::EmptyBody);
    }
    let text = std::str::from_utf8(body).map_err(|e| IngestError::InvalidUtf8(e.valid_up_to()))?;
    if nesting_exceeds(body, MAX_NESTING_DEPTH) {
        return Err(IngestError::NestingTooDeep);
    }
    let value: Value = serde_json::from_str(text).map_err(|e| IngestError::MalformedJson(e.to_string()))?;
    let events = match (mode, value) {
        (Mode::Single, Value::Array(_)) => {
            return Err(invalid(
                "",
                "(event)",
                &format!(
                    "an event must be a JSON object, not an array; send a batch of up to {MAX_BATCH_EVENTS} events as {CONTENT_TYPE_BATCH}"
                ),
            ))
        }
        (Mode::Single, value) => vec![TriggerEvent::from_cloudevent(&value, "")?],
        (Mode::Batch, Value::Array(items)) => {
            if items.is_empty() {
                return Err(IngestError::BadBatch("0 events".into()));
            }
            if items.len() > MAX_BATCH_EVENTS {
                return Err(IngestError::BatchTooLarge(items.len()));
            }
            items
                .iter()
                .enumerate()
                .map(|(i, item)| TriggerEvent::from_cloudevent(item, &format!("events[{i}]: ")))
                .collect::<Result<_, _>>()?
        }
        (Mode::Batch, other) => return Err(IngestError::BadBatch(json_kind(&other).into())),
    };
    Ok((mode, events))
}

/// CloudEvents' HTTP binary content mode: the attributes in `ce-*` headers
/// (percent-encoded), the body as `data`. JSON bodies become JSON data,
/// `text/*` bodies a string. Every attribute comes as text; `depth` is read
/// as a number by the same check as in structured mode.
pub fn parse_binary(
    headers: &[(String, String)],
    content_type: Option<&str>,
    body: &[u8],
) -> Result<TriggerEvent, IngestError> {
    let mut event = Map::new();
    for (name, value) in headers {
        let Some(attribute) = name.to_ascii_lowercase().strip_prefix("ce-").map(str::to_owned) else {
            continue;
        };
        event.insert(attribute, Value::String(percent_encoding_decode(value)));
    }
    let essence = media_essence(content_type);
    let data = if body.iter().all(|b| is_json_whitespace(*b)) {
        Value::Null
    } else if is_json_media(&essence) {
        let text = std::str::from_utf8(body).map_err(|e| IngestError::InvalidUtf8(e.valid_up_to()))?;
        if nesting_exceeds(body, MAX_NESTING_DEPTH) {
            return Err(IngestError::NestingTooDeep);
        }
        serde_json::from_str(text).map_err(|e| IngestError::MalformedJson(e.to_string()))?
    } else if essence.starts_with("text/") {
        let text = std::str::from_utf8(body).map_err(|e| IngestError::InvalidUtf8(e.valid_up_to()))?;
        Value::String(text.to_owned())
    } else {
        return Err(IngestError::UnsupportedMediaType(content_type.unwrap_or("").to_owned()));
    };
    if let Some(content_type) = content_type {
        event.insert("datacontenttype".into(), Value::String(content_type.to_owned()));
    }
    event.insert("data".into(), data);
    TriggerEvent::from_cloudevent(&Value::Object(event), "")
}

/// `%XX` escapes decoded (CloudEvents HTTP binding §3.1.3.2); text that
/// does not decode to UTF-8 is kept as sent.
fn percent_encoding_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| value.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| value.to_owned())
}

/// JSON's insignificant whitespace (RFC 8259 §2).
fn is_json_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// Whether arrays and objects in `body` nest deeper than `limit`, counting
/// brackets outside strings only (escaped quotes do not end a string). One
/// pass, no allocation, stops at the first level over the limit. Unbalanced
/// input is left to the parser to refuse.
pub(crate) fn nesting_exceeds(body: &[u8], limit: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in body {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl TriggerEvent {
    /// The event's identity (CloudEvents: `source` and `id` together) as one
    /// key: two senders may reuse an id, and a `|`, `#` or `%` inside either
    /// part is escaped so that no two identities share a key.
    pub fn identity(&self) -> String {
        event_identity(&self.source, &self.id)
    }

    /// Reads one CloudEvent in structured JSON, checking every attribute.
    /// `at` prefixes messages (`events[3]: `) for batches.
    pub fn from_cloudevent(value: &Value, at: &str) -> Result<Self, IngestError> {
        let Value::Object(map) = value else {
            return Err(IngestError::InvalidAttribute {
                at: at.into(),
                attribute: "(event)".into(),
                reason: format!("an event must be a JSON object, not {}", json_kind(value)),
            });
        };
        let required = |name: &'static str| -> Result<String, IngestError> {
            match map.get(name) {
                None | Some(Value::Null) => Err(IngestError::MissingAttribute {
                    at: at.into(),
                    attribute: name,
                }),
                Some(Value::String(s)) if s.is_empty() => Err(invalid(at, name, "must not be empty")),
                Some(Value::String(s)) => Ok(s.clone()),
                Some(_) => Err(invalid(at, name, "must be a string")),
            }
        };
        let specversion = required("specversion")?;
        if specversion != SPEC_VERSION {
            return Err(invalid(
                at,
                "specversion",
                &format!("only {SPEC_VERSION:?} is supported"),
            ));
        }
        let id = checked_id(at, "id", required("id")?)?;
        let source = checked_id(at, "source", required("source")?)?;
        let event_type = required("type")?;
        // No catalogue name is this long; refusing early also keeps the
        // suggestion search and the echoed name small.
        if event_type.len() > MAX_ID_BYTES {
            return Err(invalid(at, "type", &format!("must be at most {MAX_ID_BYTES} bytes")));
        }
        catalogue::check_trigger_type(&event_type)
            .map_err(|source| IngestError::UnknownTriggerType { at: at.into(), source })?;
        let workspaceid = checked_id(at, "workspaceid", required("workspaceid")?)?;
        let time = optional_string(map, at, "time")?;
        if let Some(t) = &time {
            DateTime::parse_from_rfc3339(t).map_err(|_| invalid(at, "time", "must be an RFC 3339 timestamp"))?;
        }
        let datacontenttype = optional_string(map, at, "datacontenttype")?;
        let siteid = optional_string(map, at, "siteid")?
            .map(|v| checked_id(at, "siteid", v))
            .transpose()?;
        let cardid = optional_string(map, at, "cardid")?
            .map(|v| checked_id(at, "cardid", v))
            .transpose()?;
        let contactid = optional_string(map, at, "contactid")?
            .map(|v| checked_id(at, "contactid", v))
            .transpose()?;
        let depth = match map.get("depth") {
            None | Some(Value::Null) => 0,
            Some(Value::Number(n)) => n
                .as_u64()
                .and_then(|d| u32::try_from(d).ok())
                .ok_or_else(|| invalid(at, "depth", "must be a non-negative integer"))?,
            // CloudEvents extension values travel as strings in binary mode.
            Some(Value::String(s)) => s
                .parse()
                .map_err(|_| invalid(at, "depth", "must be a non-negative integer"))?,
            Some(_) => return Err(invalid(at, "depth", "must be a non-negative integer")),
        };
        Ok(TriggerEvent {
            specversion,
            id,
            source,
            event_type,
            time,
            datacontenttype,
            data: map.get("data").cloned().unwrap_or(Value::Null),
            workspaceid,
            siteid,
            cardid,
            contactid,
            depth,
        })
    }
}

fn invalid(at: &str, attribute: &str, reason: &str) -> IngestError {
    IngestError::InvalidAttribute {
        at: at.into(),
        attribute: attribute.into(),
        reason: reason.into(),
    }
}

fn optional_string(map: &Map<String, Value>, at: &str, name: &str) -> Result<Option<String>, IngestError> {
    match map.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(invalid(at, name, "must be a string")),
    }
}

/// Ids end up in storage keys and log lines: bounded, no control characters.
fn checked_id(at: &str, attribute: &'static str, value: String) -> Result<String, IngestError> {
    let refuse = |reason: String| IngestError::InvalidId {
        at: at.into(),
        attribute,
        reason,
    };
    if value.is_empty() {
        return Err(refuse("must not be empty".into()));
    }
    if value.len() > MAX_ID_BYTES {
        return Err(refuse(format!(
            "must be at most {MAX_ID_BYTES} bytes; got {}",
            value.len()
        )));
    }
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        return Err(refuse(format!(
            "must not contain control characters; found U+{:04X}",
            u32::from(c)
        )));
    }
    Ok(value)
}

/// [`TriggerEvent::identity`] of a `source` and an `id`.
pub fn event_identity(source: &str, id: &str) -> String {
    let escape = |part: &str| part.replace('%', "%25").replace('|', "%7C").replace('#', "%23");
    format!("{}|{}", escape(source), escape(id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Value {
        json!({"specversion": "1.0", "id": "evt-1", "source": "komo/cards", "type": "Gameplay.Ended",
               "time": "2026-11-23T10:00:00Z", "workspaceid": "ws_demo", "cardid": "card_1", "depth": 0,
               "data": {"gameplay": {"score": 120}}})
    }

    #[test]
    fn parses_and_round_trips() {
        let (mode, events) = parse_request(
            Some("application/cloudevents+json; charset=utf-8"),
            sample().to_string().as_bytes(),
        )
        .unwrap();
        assert_eq!(mode, Mode::Single);
        let e = &events[0];
        assert_eq!(
            (e.id.as_str(), e.cardid.as_deref(), e.depth),
            ("evt-1", Some("card_1"), 0)
        );
        let back: TriggerEvent = serde_json::from_value(serde_json::to_value(e).unwrap()).unwrap();
        assert_eq!(&back, e);
    }

    #[test]
    fn batches() {
        let body = json!([sample(), sample()]).to_string();
        let (mode, events) = parse_request(Some(CONTENT_TYPE_BATCH), body.as_bytes()).unwrap();
        assert_eq!((mode, events.len()), (Mode::Batch, 2));
        let mut bad = sample();
        bad["type"] = json!("Nope");
        let body = json!([sample(), bad]).to_string();
        let err = parse_request(Some(CONTENT_TYPE_BATCH), body.as_bytes()).unwrap_err();
        assert!(err.to_string().starts_with("events[1]: unknown trigger type"), "{err}");
        assert_eq!(
            parse_request(Some(CONTENT_TYPE_BATCH), b"[]").unwrap_err().code(),
            "invalid_batch"
        );
    }

    #[test]
    fn refusals_have_codes() {
        let cases: Vec<(Option<&str>, String, &str)> = vec![
            (Some("text/plain"), sample().to_string(), "unsupported_media_type"),
            (None, sample().to_string(), "unsupported_media_type"),
            (Some("application/json"), "{nope".into(), "malformed_json"),
            (
                Some("application/json"),
                json!({"id": "x"}).to_string(),
                "missing_attribute",
            ),
            (
                Some("application/json"),
                {
                    let mut v = sample();
                    v["specversion"] = json!("0.3");
                    v.to_string()
                },
                "invalid_attribute",
            ),
            (
                Some("application/json"),
                {
                    let mut v = sample();
                    v["time"] = json!("yesterday");
                    v.to_string()
                },
                "invalid_attribute",
            ),
            (
                Some("application/json"),
                {
                    let mut v = sample();
                    v["id"] = json!("a\nb");
                    v.to_string()
                },
                "invalid_id",
            ),
            (
                Some("application/json"),
                {
                    let mut v = sample();
                    v["id"] = json!("x".repeat(257));
                    v.to_string()
                },
                "invalid_id",
            ),
            (
                Some("application/json"),
                {
                    let mut v = sample();
                    v["source"] = json!("s".repeat(257));
                    v.to_string()
                },
                "invalid_id",
            ),
            (Some("application/json"), " \r\n\t".into(), "empty_body"),
            (Some("application/json"), String::new(), "empty_body"),
            (
                Some("application/json"),
                format!(
                    "{}{}",
                    "[".repeat(MAX_NESTING_DEPTH + 1),
                    "]".repeat(MAX_NESTING_DEPTH + 1)
                ),
                "nesting_too_deep",
            ),
            (
                Some(CONTENT_TYPE_BATCH),
                Value::Array(vec![sample(); MAX_BATCH_EVENTS + 1]).to_string(),
                "batch_too_large",
            ),
            (
                Some("application/json"),
                {
                    let mut v = sample();
                    v["type"] = json!("Gameplay.Endd");
                    v.to_string()
                },
                "unknown_trigger_type",
            ),
            (
                Some("application/json"),
                {
                    let mut v = sample();
                    v.as_object_mut().unwrap().remove("workspaceid");
                    v.to_string()
                },
                "missing_attribute",
            ),
            (
                Some("application/json"),
                {
                    let mut v = sample();
                    v["depth"] = json!(-1);
                    v.to_string()
                },
                "invalid_attribute",
            ),
            (Some("application/json"), "[1]".into(), "invalid_attribute"),
        ];
        for (ct, body, code) in cases {
            let err = parse_request(ct, body.as_bytes()).unwrap_err();
            assert_eq!(err.code(), code, "{body}: {err}");
        }
        let err = parse_request(
            Some("application/json"),
            json!({"specversion": "1.0", "id": "x", "source": "s", "type": "Gameplay.Endd", "workspaceid": "w"})
                .to_string()
                .as_bytes(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("did you mean Gameplay.Ended"), "{err}");
        let err = parse_request(Some("application/json"), b"{\"id\": \"\xff\"}").unwrap_err();
        assert_eq!(err, IngestError::InvalidUtf8(8));
        let mut v = sample();
        v["cardid"] = json!("card\u{1b}[31m");
        let err = parse_request(Some("application/json"), v.to_string().as_bytes()).unwrap_err();
        assert_eq!(err.code(), "invalid_id");
        assert!(
            err.to_string().contains("`cardid`") && err.to_string().contains("U+001B"),
            "{err}"
        );
    }

    #[test]
    fn nesting_is_counted_outside_strings_only() {
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(!nesting_exceeds(deep(64).as_bytes(), 64));
        assert!(nesting_exceeds(deep(65).as_bytes(), 64));
        // Brackets inside strings, also after escaped quotes and backslashes, do not count.
        let in_string = format!(r#"{{"a": "\"{}\\", "b": [1]}}"#, "[{".repeat(100));
        assert!(!nesting_exceeds(in_string.as_bytes(), 2));
        assert!(serde_json::from_str::<Value>(&in_string).is_ok(), "{in_string}");
        // An unterminated string hides what follows; the parser refuses it.
        assert!(!nesting_exceeds(b"\"[[[[", 2));
        // Unbalanced closers do not underflow.
        assert!(!nesting_exceeds(b"]]]]}}[[", 2));
        assert!(nesting_exceeds(b"]]]]}}[[[", 2));
        // Within the limit, serde_json parses what the scanner let through.
        let mut v = sample();
        v["data"] = serde_json::from_str(&deep(MAX_NESTING_DEPTH - 1)).unwrap();
        assert!(parse_request(Some("application/json"), v.to_string().as_bytes()).is_ok());
        v["data"] = serde_json::from_str(&deep(MAX_NESTING_DEPTH)).unwrap();
        let err = parse_request(Some("application/json"), v.to_string().as_bytes()).unwrap_err();
        assert_eq!(err.code(), "nesting_too_deep");
        // Far past serde_json's own limit (128): still our error, not serde's.
        let err = parse_request(Some("application/json"), "[".repeat(100_000).as_bytes()).unwrap_err();
        assert_eq!(err, IngestError::NestingTooDeep);
    }
}
