//! Salesforce (REST API): `SalesforceGetObject`, `SalesforceCreateObject`
//! and `SalesforceUpdateObject`. The connection's OAuth 2.0 client (client
//! credentials, or a refresh token) gets an access token and the org's
//! `instance_url`; both are kept with the credentials (in this process and
//! written back to the vault), and obtained again once when Salesforce
//! answers 401 (`INVALID_SESSION_ID`). `REQUEST_LIMIT_EXCEEDED` is retried
//! like a 429; every other error array fails the step with its codes.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::connector::{self, Sent};
use super::{ActionCall, ActionKind, DryCall, Failure, FailureClass, Outcome, Performed, Rehearsal, StepAction};
use crate::connections::{App, ResolvedConnection};
use crate::ports::{FollowRedirects, HttpCall};
use crate::retry::RetryOn;
use crate::template::{self, TemplateError};

/// The REST API version every call names.
pub const API_VERSION: &str = "v61.0";

/// Creates a record: `POST /services/data/vXX.X/sobjects/{object}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SalesforceCreateObject {
    pub connection: String,
    /// `Lead`, `Contact`, `My_Object__c`.
    pub object: String,
    /// Salesforce field to template: `{"Email": "{{ contact.email }}"}`.
    pub fields: Map<String, Value>,
}

/// Updates a record: `PATCH …/sobjects/{object}/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SalesforceUpdateObject {
    pub connection: String,
    pub object: String,
    /// The record id (a template).
    pub id: String,
    pub fields: Map<String, Value>,
}

/// Reads a record by id, or runs a SOQL query whose `:name` binds are
/// replaced by `params`, each rendered and escaped as a SOQL literal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SalesforceGetObject {
    pub connection: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// With `id`: the fields to read (default all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub params: Map<String, Value>,
}

/// An object or field API name: letters, digits and `_`, from a letter.
fn is_api_name(name: &str) -> bool {
    name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 80
}

fn object_problems(object: &str) -> Vec<(String, String)> {
    if is_api_name(object) {
        vec![]
    } else {
        vec![(
            "object".into(),
            "must be an object's API name, like Lead or My_Object__c".into(),
        )]
    }
}

fn fields_problems(fields: &Map<String, Value>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = fields
        .keys()
        .filter(|name| !is_api_name(name))
        .map(|name| (format!("fields.{name}"), "is not a field API name".into()))
        .collect();
    if fields.is_empty() {
        out.push(("fields".into(), "map at least one field".into()));
    }
    out
}

fn field_templates(fields: &Map<String, Value>, out: &mut Vec<(String, String)>) {
    for (name, value) in fields {
        template::for_each_string_leaf(value, &format!("fields.{name}"), &mut |path, text| {
            out.push((path.to_owned(), text.to_owned()))
        });
    }
}

/// The names a query binds (`:email`), outside its string literals.
fn binds(query: &str) -> Vec<(usize, usize)> {
    let bytes = query.as_bytes();
    let mut out = vec![];
    let mut quoted = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if quoted => i += 1,
            b'\'' => quoted = !quoted,
            b':' if !quoted && bytes.get(i + 1).is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_') => {
                let end = (i + 1..bytes.len())
                    .find(|&j| !(bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_'))
                    .unwrap_or(bytes.len());
                out.push((i, end));
                i = end;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// A value as a SOQL literal: strings quoted with every special character
/// escaped, so a bound value can never end its literal.
pub fn soql_literal(value: &Value) -> String {
    match value {
        Value::String(text) => {
            let mut out = String::with_capacity(text.len() + 2);
            out.push('\'');
            for c in text.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '\'' => out.push_str("\\'"),
                    '"' => out.push_str("\\\""),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    '\u{8}' => out.push_str("\\b"),
                    '\u{c}' => out.push_str("\\f"),
                    other => out.push(other),
                }
            }
            out.push('\'');
            out
        }
        Value::Null => "NULL".into(),
        Value::Bool(true) => "TRUE".into(),
        Value::Bool(false) => "FALSE".into(),
        Value::Number(n) => n.to_string(),
        Value::Array(items) => format!("({})", items.iter().map(soql_literal).collect::<Vec<_>>().join(", ")),
        Value::Object(_) => soql_literal(&Value::String(value.to_string())),
    }
}

/// The query with each bind replaced by its rendered, escaped parameter.
fn bind_query(query: &str, params: &Map<String, Value>, context: &Value) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(query.len());
    let mut from = 0;
    for (start, end) in binds(query) {
        let name = &query[start + 1..end];
        let param = params
            .get(name)
            .ok_or_else(|| TemplateError::Render(format!("query binds :{name}, which params does not set")))?;
        out.push_str(&query[from..start]);
        out.push_str(&soql_literal(&template::render_json(param, context)?));
        from = end;
    }
    out.push_str(&query[from..]);
    Ok(out)
}

/// An access token and the org's address.
struct Session {
    access_token: String,
    instance_url: String,
}

impl Session {
    fn of(resolved: &ResolvedConnection) -> Option<Self> {
        Some(Self {
            access_token: resolved.credentials.get("access_token")?.to_owned(),
            instance_url: resolved.credentials.get("instance_url")?.to_owned(),
        })
    }

    fn call(
        &self,
        method: &str,
        tail: &[&str],
        query: Option<(&str, &str)>,
        body: Option<&Value>,
    ) -> Result<HttpCall, String> {
        let mut segments = vec!["services", "data", API_VERSION];
        segments.extend_from_slice(tail);
        let mut url = url::Url::parse(&connector::url(&self.instance_url, &segments)?).map_err(|e| e.to_string())?;
        if let Some((name, value)) = query {
            url.query_pairs_mut().append_pair(name, value);
        }
        Ok(connector::json_call(
            method,
            url.to_string(),
            format!("Bearer {}", self.access_token),
            body,
        ))
    }
}

/// The OAuth 2.0 token request: the refresh token flow when the
/// connection has a refresh token, else client credentials.
fn token_request(resolved: &ResolvedConnection) -> Result<HttpCall, String> {
    let credentials = &resolved.credentials;
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    match credentials.get("refresh_token") {
        Some(token) => form
            .append_pair("grant_type", "refresh_token")
            .append_pair("refresh_token", token),
        None => form.append_pair("grant_type", "client_credentials"),
    };
    form.append_pair("client_id", credentials.get("client_id").unwrap_or_default())
        .append_pair("client_secret", credentials.get("client_secret").unwrap_or_default());
    Ok(HttpCall {
        method: "POST".into(),
        url: connector::url(&resolved.base_url, &["services", "oauth2", "token"])?,
        headers: vec![
            ("Content-Type".into(), "application/x-www-form-urlencoded".into()),
            ("Accept".into(), "application/json".into()),
        ],
        body: Some(form.finish().into_bytes()),
        timeout: std::time::Duration::from_secs_f64(super::DEFAULT_TIMEOUT_S),
        follow_redirects: FollowRedirects::None,
        secret_headers: vec![],
    })
}

/// Gets a token with the connection's OAuth client, keeps it with the
/// credentials, and answers the session.
async fn authenticate(call: &mut ActionCall<'_>, resolved: &ResolvedConnection) -> Result<Session, Performed> {
    let token_call = token_request(resolved).map_err(connector::terminal)?;
    let reply = match call.ports.http.send(token_call).await {
        Ok(reply) => reply,
        Err(err) => return Err(super::http_request::transport_failure(err).into()),
    };
    let answer = connector::body(&reply);
    let field = |name: &str| answer.get(name).and_then(Value::as_str).map(str::to_owned);
    for token in ["access_token", "refresh_token", "id_token"]
        .iter()
        .filter_map(|name| field(name))
    {
        call.secrets.add(&token);
    }
    let (Some(access_token), Some(instance_url)) = (field("access_token"), field("instance_url")) else {
        // The client may have been rotated since it was read: read it again
        // on the next attempt. The token endpoint's body is never recorded.
        call.ports
            .connections
            .forget(call.workspace_id, &resolved.connection.name);
        let mut failure = connector::failure(App::Salesforce, &reply, call.now, explain_oauth);
        failure.message = format!("getting an access token: {}", failure.message);
        failure.output = Some(json!({"status": reply.status, "error": answer.get("error")}));
        return Err(Outcome::Failed(failure).into());
    };
    if let Some(problem) = instance_url_problem(&instance_url, &resolved.base_url) {
        return Err(connector::terminal(format!(
            "Salesforce answered an unusable instance_url: {problem}"
        )));
    }
    // Salesforce may rotate the refresh token with every use.
    let refresh_token = field("refresh_token");
    let mut fields = vec![
        ("access_token", access_token.as_str()),
        ("instance_url", instance_url.as_str()),
    ];
    if let (Some(token), true) = (&refresh_token, resolved.credentials.get("refresh_token").is_some()) {
        fields.push(("refresh_token", token));
    }
    let extended = resolved.credentials.with(&fields);
    if let Err(err) = call.ports.connections.write_back(resolved, extended).await {
        // The token still works here; other functions get their own.
        tracing::warn!(error = %err, connection = %resolved.connection.name, "access token not written back");
    }
    Ok(Session {
        access_token,
        instance_url,
    })
}

/// The org's address must be Salesforce's (or the host the connection
/// names, such as an imitation): a token endpoint cannot send the token on
/// to anyone else.
fn instance_url_problem(instance_url: &str, base_url: &str) -> Option<String> {
    if let Some(problem) = crate::connections::base_url_problem(instance_url) {
        return Some(problem);
    }
    let host = |url: &str| {
        url::Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
    };
    let instance = host(instance_url)?;
    let salesforce = [".salesforce.com", ".force.com", ".salesforce.mil", ".sfcrmproducts.cn"]
        .iter()
        .any(|suffix| instance.ends_with(suffix));
    if salesforce || host(base_url).as_deref() == Some(instance.as_str()) {
        None
    } else {
        Some(format!(
            "{instance} is neither a Salesforce host nor the connection's own"
        ))
    }
}

/// Sends what `build` makes of a session, getting a token first when the
/// connection has none, and again once when Salesforce refuses it.
async fn send(
    call: &mut ActionCall<'_>,
    connection: &str,
    build: impl Fn(&Session) -> Result<HttpCall, String>,
) -> Result<Sent, Performed> {
    let resolved: Arc<ResolvedConnection> = connector::resolve(call, App::Salesforce, connection).await?;
    let mut session = match Session::of(&resolved) {
        Some(session) => session,
        None => authenticate(call, &resolved).await?,
    };
    let mut refreshed = false;
    loop {
        let sent = connector::send_call(call, build(&session).map_err(connector::terminal)?).await?;
        if sent.reply.status != 401 || refreshed {
            if sent.reply.status == 401 {
                call.ports.connections.forget(call.workspace_id, connection);
            }
            return Ok(sent);
        }
        tracing::info!(connection, "Salesforce refused the access token; getting another");
        session = authenticate(call, &resolved).await?;
        refreshed = true;
    }
}

/// OAuth's `error` and `error_description`.
fn explain_oauth(body: &Value) -> Option<String> {
    let error = body.get("error").and_then(Value::as_str)?;
    let description = body
        .get("error_description")
        .and_then(Value::as_str)
        .unwrap_or_default();
    Some(format!("{error}: {description}"))
}

/// Salesforce's error array: `[{"errorCode", "message", "fields"}]`.
fn explain(body: &Value) -> Option<String> {
    let errors = body.as_array()?;
    let text: Vec<String> = errors
        .iter()
        .map(|e| {
            let code = e.get("errorCode").and_then(Value::as_str).unwrap_or("ERROR");
            let message = e.get("message").and_then(Value::as_str).unwrap_or_default();
            match e.get("fields").and_then(Value::as_array).filter(|f| !f.is_empty()) {
                Some(fields) => format!("{code}: {message} ({})", Value::Array(fields.clone())),
                None => format!("{code}: {message}"),
            }
        })
        .collect();
    (!text.is_empty()).then(|| text.join("; "))
}

/// A refusal; the org's API request limit is waited out like a 429.
fn failure(call: &ActionCall<'_>, sent: &Sent) -> Failure {
    let mut failure = connector::failure(App::Salesforce, &sent.reply, call.now, explain);
    let over_limit = connector::body(&sent.reply)
        .as_array()
        .is_some_and(|errors| errors.iter().any(|e| e["errorCode"] == "REQUEST_LIMIT_EXCEEDED"));
    if over_limit {
        failure.class = FailureClass::Retryable(RetryOn::TooManyRequests);
    }
    failure
}

fn finish(call: &ActionCall<'_>, sent: Sent, output: impl FnOnce(Value) -> Value) -> Performed {
    let outcome = if (200..300).contains(&sent.reply.status) {
        call.succeeded(output(connector::body(&sent.reply)))
    } else {
        Outcome::Failed(failure(call, &sent))
    };
    Performed {
        outcome,
        request: sent.request,
    }
}

fn render_fields(fields: &Map<String, Value>, context: &Value) -> Result<Value, TemplateError> {
    template::render_json(&Value::Object(fields.clone()), context)
}

#[async_trait::async_trait]
impl StepAction for SalesforceCreateObject {
    fn kind(&self) -> ActionKind {
        ActionKind::SalesforceCreateObject
    }

    fn has_side_effects(&self) -> bool {
        true
    }

    fn templates(&self, out: &mut Vec<(String, String)>) {
        field_templates(&self.fields, out);
    }

    fn problems(&self) -> Vec<(String, String)> {
        let mut out = connector::connection_problems(&self.connection);
        out.extend(object_problems(&self.object));
        out.extend(fields_problems(&self.fields));
        out
    }

    async fn perform(&self, mut call: ActionCall<'_>) -> Performed {
        let body = match render_fields(&self.fields, call.context) {
            Ok(body) => body,
            Err(err) => return connector::terminal(err),
        };
        let build = |s: &Session| s.call("POST", &["sobjects", &self.object], None, Some(&body));
        match send(&mut call, &self.connection, build).await {
            Ok(sent) => finish(
                &call,
                sent,
                |answer| json!({"id": answer.get("id"), "object": self.object, "success": answer.get("success")}),
            ),
            Err(performed) => performed,
        }
    }

    fn rehearse(&self, call: DryCall<'_>) -> Rehearsal {
        match render_fields(&self.fields, call.context) {
            Ok(fields) => Rehearsal::Rendered {
                request: None,
                output: json!({"object": self.object, "would_create": fields}),
            },
            Err(err) => Rehearsal::Failed(err.to_string()),
        }
    }
}

#[async_trait::async_trait]
impl StepAction for SalesforceUpdateObject {
    fn kind(&self) -> ActionKind {
        ActionKind::SalesforceUpdateObject
    }

    fn has_side_effects(&self) -> bool {
        true
    }

    fn templates(&self, out: &mut Vec<(String, String)>) {
        out.push(("id".into(), self.id.clone()));
        field_templates(&self.fields, out);
    }

    fn problems(&self) -> Vec<(String, String)> {
        let mut out = connector::connection_problems(&self.connection);
        out.extend(object_problems(&self.object));
        out.extend(connector::required("id", &self.id));
        out.extend(fields_problems(&self.fields));
        out
    }

    async fn perform(&self, mut call: ActionCall<'_>) -> Performed {
        let rendered = template::render_text(&self.id, call.context)
            .and_then(|id| Ok((id, render_fields(&self.fields, call.context)?)));
        let (id, body) = match rendered {
            Ok(rendered) => rendered,
            Err(err) => return connector::terminal(err),
        };
        let build = |s: &Session| s.call("PATCH", &["sobjects", &self.object, &id], None, Some(&body));
        match send(&mut call, &self.connection, build).await {
            Ok(sent) => finish(&call, sent, |_| json!({"id": id, "object": self.object})),
            Err(performed) => performed,
        }
    }

    fn rehearse(&self, call: DryCall<'_>) -> Rehearsal {
        match render_fields(&self.fields, call.context) {
            Ok(fields) => Rehearsal::Rendered {
                request: None,
                output: json!({"object": self.object, "would_update": fields}),
            },
            Err(err) => Rehearsal::Failed(err.to_string()),
        }
    }
}

/// Where a read goes: the path after the API version, and its query string.
struct Read {
    segments: Vec<String>,
    query: Option<(&'static str, String)>,
}

impl SalesforceGetObject {
    fn target(&self, context: &Value) -> Result<Read, TemplateError> {
        if let Some(query) = &self.query {
            let soql = bind_query(query, &self.params, context)?;
            return Ok(Read {
                segments: vec!["query".into()],
                query: Some(("q", soql)),
            });
        }
        let object = self.object.clone().unwrap_or_default();
        let id = template::render_text(self.id.as_deref().unwrap_or_default(), context)?;
        Ok(Read {
            segments: vec!["sobjects".into(), object, id],
            query: (!self.fields.is_empty()).then(|| ("fields", self.fields.join(","))),
        })
    }
}

#[async_trait::async_trait]
impl StepAction for SalesforceGetObject {
    fn kind(&self) -> ActionKind {
        ActionKind::SalesforceGetObject
    }

    // A read, but of another system: it is claimed and recorded alone so a
    // replay sees what the query answered then.
    fn has_side_effects(&self) -> bool {
        true
    }

    fn templates(&self, out: &mut Vec<(String, String)>) {
        if let Some(id) = &self.id {
            out.push(("id".into(), id.clone()));
        }
        for (name, value) in &self.params {
            template::for_each_string_leaf(value, &format!("params.{name}"), &mut |path, text| {
                out.push((path.to_owned(), text.to_owned()))
            });
        }
    }

    fn problems(&self) -> Vec<(String, String)> {
        let mut out = connector::connection_problems(&self.connection);
        match (&self.query, &self.object, &self.id) {
            (Some(query), None, None) => {
                for (start, end) in binds(query) {
                    let name = &query[start + 1..end];
                    if !self.params.contains_key(name) {
                        out.push((
                            format!("params.{name}"),
                            format!("the query binds :{name}; set it in params"),
                        ));
                    }
                }
            }
            (None, Some(object), Some(_)) => {
                out.extend(object_problems(object));
                for (i, field) in self.fields.iter().enumerate() {
                    if !is_api_name(field) {
                        out.push((format!("fields[{i}]"), "is not a field API name".into()));
                    }
                }
            }
            _ => out.push((
                "query".into(),
                "read by object and id, or by query (with params), not both".into(),
            )),
        }
        out
    }

    async fn perform(&self, mut call: ActionCall<'_>) -> Performed {
        let read = match self.target(call.context) {
            Ok(read) => read,
            Err(err) => return connector::terminal(err),
        };
        let tail: Vec<&str> = read.segments.iter().map(String::as_str).collect();
        let query = read.query.as_ref().map(|(name, value)| (*name, value.as_str()));
        let build = |s: &Session| s.call("GET", &tail, query, None);
        match send(&mut call, &self.connection, build).await {
            Ok(sent) => finish(&call, sent, |answer| answer),
            Err(performed) => performed,
        }
    }

    fn rehearse(&self, call: DryCall<'_>) -> Rehearsal {
        match self.target(call.context) {
            Ok(read) => Rehearsal::Rendered {
                request: None,
                output: json!({"path": read.segments.join("/"), "query": read.query.map(|(_, q)| q)}),
            },
            Err(err) => Rehearsal::Failed(err.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bound_values_cannot_leave_their_literal() {
        let params: Map<String, Value> =
            serde_json::from_value(json!({"email": "{{ email }}", "n": "{{ n }}", "ids": ["a", "b'c"]})).unwrap();
        let context = json!({"email": "x' OR Name != '\\", "n": 3});
        let soql = bind_query(
            "SELECT Id FROM Lead WHERE Email = :email AND Score__c > :n AND Id IN :ids AND Note = 'a :b'",
            &params,
            &context,
        )
        .unwrap();
        assert_eq!(
            soql,
            "SELECT Id FROM Lead WHERE Email = 'x\\' OR Name != \\'\\\\' AND Score__c > 3 AND Id IN ('a', 'b\\'c') AND Note = 'a :b'"
        );
        let unbound = bind_query("SELECT Id FROM Lead WHERE Email = :missing", &params, &context);
        assert!(unbound.is_err());
    }

    #[test]
    fn times_in_a_query_are_not_binds() {
        assert!(binds("SELECT Id FROM Lead WHERE CreatedDate > 2026-01-01T00:00:00Z").is_empty());
    }
}
