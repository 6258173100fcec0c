//! Mailchimp (Marketing API 3.0): `MailchimpUpsertSubscriber` and
//! `MailchimpTagSubscriber`. A member is addressed by the MD5 of its
//! lower-cased email; both calls are idempotent by nature (a PUT, and tag
//! statuses), which is why Mailchimp needs no idempotency key.

use base64::Engine as _;
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::connector::{self, Sent};
use super::{ActionCall, ActionKind, DryCall, Outcome, Performed, Rehearsal, StepAction};
use crate::connections::{App, ResolvedConnection};
use crate::template::{self, TemplateError};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SubscriberStatus {
    #[default]
    Subscribed,
    Pending,
    Unsubscribed,
    Transactional,
}

/// Adds a member to an audience, or updates it: `PUT /3.0/lists/{list}/members/{hash}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailchimpUpsertSubscriber {
    pub connection: String,
    pub list_id: String,
    pub email: String,
    /// Merge tags (`FNAME`, `COMPANY`, …) to templates.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub merge_fields: Map<String, Value>,
    /// The status of a member the audience did not have; an existing
    /// member's status is left alone.
    #[serde(default)]
    pub status_if_new: SubscriberStatus,
}

/// Adds and removes a member's tags: `POST /3.0/lists/{list}/members/{hash}/tags`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailchimpTagSubscriber {
    pub connection: String,
    pub list_id: String,
    pub email: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

/// A member, as the run log and later steps see it.
#[derive(Debug, Serialize)]
struct Member {
    subscriber_hash: String,
    email_address: String,
    list_id: String,
    /// What Mailchimp answered (`subscribed`, `pending`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
}

/// The member a step addresses, rendered.
struct Address {
    list_id: String,
    email: String,
    hash: String,
}

impl Address {
    fn render(list_id: &str, email: &str, context: &Value) -> Result<Self, TemplateError> {
        let email = template::render_text(email, context)?.trim().to_owned();
        if email.is_empty() {
            return Err(TemplateError::Render("email rendered empty".into()));
        }
        let hash = hex(&Md5::digest(email.to_lowercase().as_bytes()));
        Ok(Self {
            list_id: template::render_text(list_id, context)?,
            email,
            hash,
        })
    }

    fn url(&self, base_url: &str, tail: &[&str]) -> Result<String, String> {
        let mut segments = vec!["3.0", "lists", &self.list_id, "members", &self.hash];
        segments.extend_from_slice(tail);
        connector::url(base_url, &segments)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Mailchimp takes any user name with the API key as the password.
fn authorization(connection: &ResolvedConnection) -> String {
    let key = connection.credentials.get("api_key").unwrap_or_default();
    let pair = base64::engine::general_purpose::STANDARD.encode(format!("hookflow:{key}"));
    format!("Basic {pair}")
}

/// Mailchimp's problem document: `title`, `detail`, and per-field `errors`.
fn explain(body: &Value) -> Option<String> {
    let title = body.get("title").and_then(Value::as_str);
    let detail = body.get("detail").and_then(Value::as_str);
    let mut text = [title, detail].into_iter().flatten().collect::<Vec<_>>().join(": ");
    if let Some(errors) = body.get("errors").and_then(Value::as_array) {
        let fields: Vec<String> = errors
            .iter()
            .map(|e| {
                let field = e.get("field").and_then(Value::as_str).unwrap_or("?");
                let message = e.get("message").and_then(Value::as_str).unwrap_or("?");
                format!("{field}: {message}")
            })
            .collect();
        if !fields.is_empty() {
            text = format!("{text} ({})", fields.join("; "));
        }
    }
    (!text.is_empty()).then_some(text)
}

impl MailchimpUpsertSubscriber {
    fn body(&self, address: &Address, context: &Value) -> Result<Value, TemplateError> {
        let merge_fields = template::render_json(&Value::Object(self.merge_fields.clone()), context)?;
        Ok(json!({
            "email_address": address.email,
            "status_if_new": self.status_if_new,
            "merge_fields": merge_fields,
        }))
    }
}

#[async_trait::async_trait]
impl StepAction for MailchimpUpsertSubscriber {
    fn kind(&self) -> ActionKind {
        ActionKind::MailchimpUpsertSubscriber
    }

    fn has_side_effects(&self) -> bool {
        true
    }

    fn templates(&self, out: &mut Vec<(String, String)>) {
        out.push(("list_id".into(), self.list_id.clone()));
        out.push(("email".into(), self.email.clone()));
        for (name, value) in &self.merge_fields {
            template::for_each_string_leaf(value, &format!("merge_fields.{name}"), &mut |path, text| {
                out.push((path.to_owned(), text.to_owned()))
            });
        }
    }

    fn problems(&self) -> Vec<(String, String)> {
        let mut out = connector::connection_problems(&self.connection);
        out.extend(connector::required("list_id", &self.list_id));
        out.extend(connector::required("email", &self.email));
        out
    }

    async fn perform(&self, mut call: ActionCall<'_>) -> Performed {
        let rendered = Address::render(&self.list_id, &self.email, call.context)
            .and_then(|address| Ok((self.body(&address, call.context)?, address)));
        let (body, address) = match rendered {
            Ok(rendered) => rendered,
            Err(err) => return Outcome::Failed(super::Failure::terminal(err)).into(),
        };
        let build = |c: &ResolvedConnection| {
            let url = address.url(&c.base_url, &[])?;
            Ok(connector::json_call("PUT", url, authorization(c), Some(&body)))
        };
        let Sent { reply, request } = match connector::send(&mut call, App::Mailchimp, &self.connection, build).await {
            Ok(sent) => sent,
            Err(performed) => return performed,
        };
        let outcome = if (200..300).contains(&reply.status) {
            let answer = connector::body(&reply);
            let text = |name: &str| answer.get(name).and_then(Value::as_str).map(str::to_owned);
            let member = Member {
                subscriber_hash: address.hash.clone(),
                email_address: text("email_address").unwrap_or_else(|| address.email.clone()),
                list_id: address.list_id.clone(),
                status: text("status"),
                id: text("id"),
            };
            call.succeeded(serde_json::to_value(member).unwrap_or(Value::Null))
        } else {
            Outcome::Failed(connector::failure(App::Mailchimp, &reply, call.now, explain))
        };
        Performed { outcome, request }
    }

    fn rehearse(&self, call: DryCall<'_>) -> Rehearsal {
        match Address::render(&self.list_id, &self.email, call.context) {
            Ok(address) => Rehearsal::Rendered {
                request: None,
                output: json!({"subscriber_hash": address.hash, "email_address": address.email, "list_id": address.list_id}),
            },
            Err(err) => Rehearsal::Failed(err.to_string()),
        }
    }
}

impl MailchimpTagSubscriber {
    fn tags(&self, context: &Value) -> Result<(Vec<String>, Vec<String>), TemplateError> {
        let render = |tags: &[String]| {
            tags.iter()
                .map(|t| template::render_text(t, context).map(|t| t.trim().to_owned()))
                .filter(|t| t.as_ref().map_or(true, |t| !t.is_empty()))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok((render(&self.add)?, render(&self.remove)?))
    }
}

#[async_trait::async_trait]
impl StepAction for MailchimpTagSubscriber {
    fn kind(&self) -> ActionKind {
        ActionKind::MailchimpTagSubscriber
    }

    fn has_side_effects(&self) -> bool {
        true
    }

    fn templates(&self, out: &mut Vec<(String, String)>) {
        out.push(("list_id".into(), self.list_id.clone()));
        out.push(("email".into(), self.email.clone()));
        for (field, tags) in [("add", &self.add), ("remove", &self.remove)] {
            for (i, tag) in tags.iter().enumerate() {
                out.push((format!("{field}[{i}]"), tag.clone()));
            }
        }
    }

    fn problems(&self) -> Vec<(String, String)> {
        let mut out = connector::connection_problems(&self.connection);
        out.extend(connector::required("list_id", &self.list_id));
        out.extend(connector::required("email", &self.email));
        if self.add.is_empty() && self.remove.is_empty() {
            out.push(("add".into(), "add or remove at least one tag".into()));
        }
        out
    }

    async fn perform(&self, mut call: ActionCall<'_>) -> Performed {
        let rendered = Address::render(&self.list_id, &self.email, call.context)
            .and_then(|address| Ok((self.tags(call.context)?, address)));
        let ((added, removed), address) = match rendered {
            Ok(rendered) => rendered,
            Err(err) => return Outcome::Failed(super::Failure::terminal(err)).into(),
        };
        let tags: Vec<Value> = added
            .iter()
            .map(|name| json!({"name": name, "status": "active"}))
            .chain(removed.iter().map(|name| json!({"name": name, "status": "inactive"})))
            .collect();
        let body = json!({"tags": tags});
        let build = |c: &ResolvedConnection| {
            let url = address.url(&c.base_url, &["tags"])?;
            Ok(connector::json_call("POST", url, authorization(c), Some(&body)))
        };
        let Sent { reply, request } = match connector::send(&mut call, App::Mailchimp, &self.connection, build).await {
            Ok(sent) => sent,
            Err(performed) => return performed,
        };
        let outcome = if (200..300).contains(&reply.status) {
            call.succeeded(json!({
                "subscriber_hash": address.hash,
                "email_address": address.email,
                "list_id": address.list_id,
                "added": added,
                "removed": removed,
            }))
        } else {
            Outcome::Failed(connector::failure(App::Mailchimp, &reply, call.now, explain))
        };
        Performed { outcome, request }
    }

    fn rehearse(&self, call: DryCall<'_>) -> Rehearsal {
        let rendered = Address::render(&self.list_id, &self.email, call.context)
            .and_then(|address| Ok((self.tags(call.context)?, address)));
        match rendered {
            Ok(((added, removed), address)) => Rehearsal::Rendered {
                request: None,
                output: json!({"subscriber_hash": address.hash, "email_address": address.email,
                    "list_id": address.list_id, "added": added, "removed": removed}),
            },
            Err(err) => Rehearsal::Failed(err.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_is_addressed_by_the_md5_of_its_lower_cased_email() {
        // Mailchimp's documented example hash for "Urist.McVankab@freddiesjokes.com".
        let address = Address::render("L1", "Urist.McVankab@freddiesjokes.com", &json!({})).unwrap();
        assert_eq!(address.hash, "62eeb292278cc15f5817cb78f7790b08");
        assert_eq!(
            address.url("https://us21.api.mailchimp.com/", &["tags"]).unwrap(),
            "https://us21.api.mailchimp.com/3.0/lists/L1/members/62eeb292278cc15f5817cb78f7790b08/tags"
        );
    }

    #[test]
    fn a_rendered_list_id_cannot_leave_its_path_segment() {
        let address = Address::render("{{ l }}", "a@b.c", &json!({"l": "../../x?y"})).unwrap();
        let url = address.url("https://h", &[]).unwrap();
        assert!(url.starts_with("https://h/3.0/lists/..%2F..%2Fx%3Fy/members/"), "{url}");
    }
}
