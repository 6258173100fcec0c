//! What a hook's body becomes: the event's `data`, by the hook's kind and
//! the request's `Content-Type`. Files are never kept: their names, types
//! and sizes are listed.

use serde_json::{json, Map, Value};

use super::HookKind;
use crate::event::{is_json_media, media_essence, MAX_NESTING_DEPTH};

/// At most this many parts in a multipart body.
const MAX_PARTS: usize = 1000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// 415: this kind of hook does not take this media type.
    #[error("{hook_kind} hooks take {accepted}, not {given:?}")]
    UnsupportedMediaType {
        hook_kind: &'static str,
        accepted: &'static str,
        given: String,
    },
    /// 400: the body does not decode as its media type says.
    #[error("{0}")]
    Invalid(String),
}

/// The event `data` of a body, and the email's `Message-ID` when it has one.
#[derive(Debug, Clone, PartialEq)]
pub struct HookBody {
    pub data: Value,
    pub message_id: Option<String>,
}

/// `text/plain; charset=utf-8` → (`text/plain`, its parameters).
fn media_type(content_type: Option<&str>) -> (String, Vec<(String, String)>) {
    let essence = media_essence(content_type);
    let params = content_type
        .unwrap_or_default()
        .split(';')
        .skip(1)
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().trim_matches('"').to_owned()))
        .collect();
    (essence, params)
}

pub fn parse(kind: HookKind, content_type: Option<&str>, body: &[u8]) -> Result<HookBody, BodyError> {
    let (essence, params) = media_type(content_type);
    let is_json = is_json_media(&essence);
    let plain = |data| Ok(HookBody { data, message_id: None });
    match (kind, essence.as_str()) {
        (HookKind::Webhook, _) if is_json => plain(parse_json(body)?),
        (HookKind::Webhook, "text/plain") => plain(Value::String(utf8(body)?.to_owned())),
        (HookKind::Webhook, "application/x-www-form-urlencoded") => plain(Value::Object(urlencoded(body)?)),
        (HookKind::Form, "application/x-www-form-urlencoded") => {
            plain(json!({"form_fields": urlencoded(body)?, "files": []}))
        }
        (HookKind::Form, "multipart/form-data") => {
            let parts = multipart(body, &boundary(&params)?)?;
            plain(json!({"form_fields": fields_of(&parts), "files": files_of(&parts)}))
        }
        (HookKind::Email, _) if is_json => postmark(&parse_json(body)?),
        (HookKind::Email, "multipart/form-data") => sendgrid(&multipart(body, &boundary(&params)?)?),
        (kind, _) => Err(BodyError::UnsupportedMediaType {
            hook_kind: kind_name(kind),
            accepted: accepted(kind),
            given: content_type.unwrap_or("no Content-Type").chars().take(100).collect(),
        }),
    }
}

fn kind_name(kind: HookKind) -> &'static str {
    match kind {
        HookKind::Webhook => "webhook",
        HookKind::Form => "form",
        HookKind::Email => "email",
    }
}

fn accepted(kind: HookKind) -> &'static str {
    match kind {
        HookKind::Webhook => "application/json, text/plain or application/x-www-form-urlencoded",
        HookKind::Form => "application/x-www-form-urlencoded or multipart/form-data",
        HookKind::Email => "Postmark's inbound JSON or SendGrid's Inbound Parse multipart/form-data",
    }
}

fn utf8(body: &[u8]) -> Result<&str, BodyError> {
    std::str::from_utf8(body).map_err(|e| {
        BodyError::Invalid(format!(
            "the body is not UTF-8 (invalid byte at offset {})",
            e.valid_up_to()
        ))
    })
}

fn parse_json(body: &[u8]) -> Result<Value, BodyError> {
    // As at /v1/events: deeper JSON could not travel inside an event and a
    // step message, and would fail after the sender was told 202.
    if crate::event::nesting_exceeds(body, MAX_NESTING_DEPTH) {
        return Err(BodyError::Invalid(format!(
            "arrays and objects nest more than {MAX_NESTING_DEPTH} levels"
        )));
    }
    serde_json::from_slice(body).map_err(|e| BodyError::Invalid(format!("the body is not valid JSON: {e}")))
}

/// Adds a field; a repeated name collects its values in an array.
fn add_field(fields: &mut Map<String, Value>, name: String, value: Value) {
    match fields.get_mut(&name) {
        None => {
            fields.insert(name, value);
        }
        Some(Value::Array(values)) => values.push(value),
        Some(first) => *first = Value::Array(vec![first.take(), value]),
    }
}

fn urlencoded(body: &[u8]) -> Result<Map<String, Value>, BodyError> {
    utf8(body)?;
    let mut fields = Map::new();
    for (name, value) in url::form_urlencoded::parse(body) {
        add_field(&mut fields, name.into_owned(), Value::String(value.into_owned()));
    }
    Ok(fields)
}

/// One part of a `multipart/form-data` body.
#[derive(Debug, Clone, PartialEq)]
struct Part {
    name: String,
    filename: Option<String>,
    content_type: Option<String>,
    content: Vec<u8>,
}

fn boundary(params: &[(String, String)]) -> Result<String, BodyError> {
    params
        .iter()
        .find(|(k, _)| k == "boundary")
        .map(|(_, v)| v.clone())
        .filter(|b| !b.is_empty() && b.len() <= 200)
        .ok_or_else(|| BodyError::Invalid("multipart/form-data without a boundary".into()))
}

/// Linear in the body whatever the boundary (a naive scan is body × boundary).
fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    memchr::memmem::find(haystack.get(from..)?, needle).map(|at| at + from)
}

/// RFC 7578: parts between `--boundary` lines, the last one closed by
/// `--boundary--`; each part's headers end at an empty line.
fn multipart(body: &[u8], boundary: &str) -> Result<Vec<Part>, BodyError> {
    let invalid = |what: &str| BodyError::Invalid(format!("malformed multipart body: {what}"));
    let opening = format!("--{boundary}");
    let delimiter = format!("\r\n--{boundary}");
    let start = find(body, opening.as_bytes(), 0).ok_or_else(|| invalid("no opening boundary"))?;
    let mut at = start + opening.len();
    let mut parts = vec![];
    loop {
        if body.get(at..at + 2) == Some(b"--") {
            return Ok(parts);
        }
        if body.get(at..at + 2) != Some(b"\r\n") {
            return Err(invalid("a boundary line does not end with CRLF"));
        }
        let part_start = at + 2;
        let end = find(body, delimiter.as_bytes(), part_start).ok_or_else(|| invalid("no closing boundary"))?;
        parts.push(part(&body[part_start..end]).ok_or_else(|| invalid("a part without a form-data name"))?);
        if parts.len() > MAX_PARTS {
            return Err(invalid("more than 1000 parts"));
        }
        at = end + delimiter.len();
    }
}

fn part(raw: &[u8]) -> Option<Part> {
    let split = find(raw, b"\r\n\r\n", 0)
        .map(|at| (at, at + 4))
        .or_else(|| raw.starts_with(b"\r\n").then_some((0, 2)))?;
    let head = std::str::from_utf8(&raw[..split.0]).ok()?;
    let mut name = None;
    let mut filename = None;
    let mut content_type = None;
    for line in head.split("\r\n") {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        if key.trim().eq_ignore_ascii_case("content-disposition") {
            let (_, params) = media_type(Some(value));
            name = params.iter().find(|(k, _)| k == "name").map(|(_, v)| v.clone());
            filename = params.iter().find(|(k, _)| k == "filename").map(|(_, v)| v.clone());
        } else if key.trim().eq_ignore_ascii_case("content-type") {
            content_type = Some(value.trim().to_owned());
        }
    }
    Some(Part {
        name: name?,
        filename,
        content_type,
        content: raw[split.1..].to_vec(),
    })
}

fn fields_of(parts: &[Part]) -> Map<String, Value> {
    let mut fields = Map::new();
    for part in parts.iter().filter(|p| p.filename.is_none()) {
        let value = String::from_utf8_lossy(&part.content).into_owned();
        add_field(&mut fields, part.name.clone(), Value::String(value));
    }
    fields
}

fn files_of(parts: &[Part]) -> Vec<Value> {
    parts
        .iter()
        .filter(|p| p.filename.is_some())
        .map(|p| {
            json!({"field": p.name, "name": p.filename, "content_type": p.content_type,
                   "size": p.content.len()})
        })
        .collect()
}

/// `Ana Silva <ana@example.com>` → `ana@example.com`.
fn address(text: &str) -> String {
    let text = text.trim();
    match (text.rfind('<'), text.rfind('>')) {
        (Some(open), Some(close)) if open < close => text[open + 1..close].trim().to_owned(),
        _ => text.trim_matches('"').to_owned(),
    }
}

/// A header list of addresses. Commas inside quoted display names do not split.
fn addresses(text: &str) -> Vec<String> {
    let mut out = vec![];
    let mut current = String::new();
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            ',' if !quoted => out.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    out.push(current);
    out.iter()
        .filter(|a| !a.trim().is_empty())
        .map(|a| address(a))
        .collect()
}

fn header_value<'a>(headers: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.as_str())
}

/// `provider_id`, when the provider assigns one (Postmark), identifies the
/// delivery: a sender cannot choose it, as it can its own `Message-ID`
/// (and so cannot suppress another email by reusing one).
fn email_body(email: Value, headers: &Map<String, Value>, provider_id: Option<&str>) -> HookBody {
    let message_id = provider_id
        .or(header_value(headers, "Message-ID"))
        .map(|id| id.trim().to_owned())
        .filter(|id| !id.is_empty());
    let mut email = email;
    email["message_id"] = json!(header_value(headers, "Message-ID").map(str::trim));
    email["in_reply_to"] = json!(header_value(headers, "In-Reply-To").map(str::trim));
    email["headers"] = Value::Object(headers.clone());
    HookBody {
        data: json!({ "email": email }),
        message_id,
    }
}

/// Postmark's inbound webhook JSON.
fn postmark(body: &Value) -> Result<HookBody, BodyError> {
    let text = |key: &str| body[key].as_str().unwrap_or_default().to_owned();
    if !body.is_object() || body["From"].as_str().is_none() {
        return Err(BodyError::Invalid(
            "an email hook's JSON body must be Postmark's inbound format (no `From`)".into(),
        ));
    }
    let listed = |full: &str, plain: &str| -> Vec<String> {
        match body[full].as_array() {
            Some(people) => people
                .iter()
                .filter_map(|p| p["Email"].as_str().map(str::to_owned))
                .collect(),
            None => addresses(&text(plain)),
        }
    };
    let mut headers = Map::new();
    for header in body["Headers"].as_array().map(Vec::as_slice).unwrap_or_default() {
        if let (Some(name), Some(value)) = (header["Name"].as_str(), header["Value"].as_str()) {
            add_field(&mut headers, name.to_owned(), Value::String(value.to_owned()));
        }
    }
    let attachments: Vec<Value> = body["Attachments"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|a| json!({"name": a["Name"], "content_type": a["ContentType"], "size": a["ContentLength"]}))
        .collect();
    let from = body["FromFull"]["Email"]
        .as_str()
        .map_or_else(|| address(&text("From")), str::to_owned);
    let email = json!({"from": from, "to": listed("ToFull", "To"), "cc": listed("CcFull", "Cc"),
        "subject": text("Subject"), "text": text("TextBody"), "html": text("HtmlBody"),
        "attachments": attachments});
    Ok(email_body(email, &headers, body["MessageID"].as_str()))
}

/// A raw header block (`Name: value` lines, folded lines continued).
fn header_block(raw: &str) -> Map<String, Value> {
    let mut headers = Map::new();
    let mut current: Option<(String, String)> = None;
    for line in raw.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = current.as_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
            continue;
        }
        if let Some((name, value)) = current.take() {
            add_field(&mut headers, name, Value::String(value));
        }
        if let Some((name, value)) = line.split_once(':') {
            current = Some((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    if let Some((name, value)) = current {
        add_field(&mut headers, name, Value::String(value));
    }
    headers
}

/// SendGrid's Inbound Parse (`multipart/form-data`, not the raw MIME mode).
fn sendgrid(parts: &[Part]) -> Result<HookBody, BodyError> {
    let fields = fields_of(parts);
    let text = |key: &str| fields.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
    if !fields.contains_key("from") {
        return Err(BodyError::Invalid(
            "an email hook's form body must be SendGrid's Inbound Parse format (no `from`)".into(),
        ));
    }
    let headers = header_block(&text("headers"));
    let attachments: Vec<Value> = files_of(parts)
        .into_iter()
        .map(|f| json!({"name": f["name"], "content_type": f["content_type"], "size": f["size"]}))
        .collect();
    let email = json!({"from": address(&text("from")), "to": addresses(&text("to")), "cc": addresses(&text("cc")),
        "subject": text("subject"), "text": text("text"), "html": text("html"), "attachments": attachments});
    Ok(email_body(email, &headers, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_form_fields_become_arrays() {
        let parsed = parse(
            HookKind::Form,
            Some("application/x-www-form-urlencoded"),
            b"name=Ana&topic=a&topic=b&note=hi+there",
        )
        .expect("parses");
        assert_eq!(
            parsed.data,
            json!({"form_fields": {"name": "Ana", "topic": ["a", "b"], "note": "hi there"}, "files": []})
        );
    }

    #[test]
    fn multipart_fields_and_files_are_listed_without_content() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nAna\r\n--XyZ\r\nContent-Disposition: form-data; name=\"cv\"; filename=\"cv.pdf\"\r\nContent-Type: application/pdf\r\n\r\n%PDF-1\r\n--XyZ--\r\n";
        let parsed = parse(HookKind::Form, Some("multipart/form-data; boundary=XyZ"), body).expect("parses");
        assert_eq!(
            parsed.data,
            json!({"form_fields": {"name": "Ana"},
                   "files": [{"field": "cv", "name": "cv.pdf", "content_type": "application/pdf", "size": 6}]})
        );
        assert!(parse(
            HookKind::Form,
            Some("multipart/form-data; boundary=XyZ"),
            b"--XyZ\r\nbroken"
        )
        .is_err());
    }

    #[test]
    fn media_types_a_kind_does_not_take_are_named() {
        let refused = parse(HookKind::Form, Some("application/json"), b"{}");
        assert!(
            matches!(refused, Err(BodyError::UnsupportedMediaType { .. })),
            "{refused:?}"
        );
        assert!(parse(HookKind::Webhook, None, b"{}").is_err());
    }

    #[test]
    fn addresses_keep_quoted_commas() {
        assert_eq!(
            addresses("\"Silva, Ana\" <ana@example.com>, bo@example.com"),
            vec!["ana@example.com", "bo@example.com"]
        );
    }
}
