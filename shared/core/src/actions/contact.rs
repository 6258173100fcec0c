//! The contact actions: `CreateContact`, `UpdateContact`, `AddToList`,
//! `RemoveFromList`, `AwardPoints`, `RedeemPoints`, `AddTier` and
//! `RemoveTier`. Each renders a [`ContactChange`], applies it through the
//! [`crate::contacts::ContactStore`] port once per (run, step), and emits
//! one event per real change back through ingest (brief §10).

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::{ActionCall, ActionKind, DryCall, Failure, Outcome, Performed, Rehearsal, StepAction};
use crate::contacts::{
    Applied, ContactChange, ContactEdit, ContactEffect, ContactKey, ContactRefusal, NewContact, MAX_EDITS,
};
use crate::event::{TriggerEvent, SPEC_VERSION};
use crate::path;
use crate::template::{self, TemplateError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateContact {
    /// Upserts by email, or by external id when there is no email.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub properties: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateContact {
    /// A template of the contact id to change; the event's `contactid` by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub set: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unset: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add_tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove_tags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddToList {
    /// A template of the contact id to change; the event's `contactid` by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
    pub list: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoveFromList {
    /// A template of the contact id to change; the event's `contactid` by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
    pub list: String,
}

/// A number of points: a whole number, or a template rendering one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Points {
    Fixed(i64),
    Template(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwardPoints {
    /// A template of the contact id to change; the event's `contactid` by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
    pub program: String,
    pub points: Points,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedeemPoints {
    /// A template of the contact id to change; the event's `contactid` by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
    pub program: String,
    pub points: Points,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddTier {
    /// A template of the contact id to change; the event's `contactid` by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
    pub program: String,
    pub tier: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoveTier {
    /// A template of the contact id to change; the event's `contactid` by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
    pub program: String,
    pub tier: String,
}

/// Why a contact step could not be rendered into a change.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
enum RenderError {
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("no contact to change: the event has no `contactid` and the step names no `contact`")]
    NoContact,
    #[error("`points` rendered {0:?}, not a whole number")]
    BadPoints(String),
    #[error("CreateContact needs an `email` or an `external_id`; both rendered empty")]
    NoIdentity,
}

/// A change ready to apply: which contact, and how to find it if the
/// step upserts by email or external id.
struct Rendered {
    change: ContactChange,
    upsert_by: Option<ContactKey>,
}

/// Which contact a step changes: the step's `contact` (a template of a
/// contact id) or, by default, the event's `contactid`.
struct ContactTarget<'a>(&'a Option<String>);

impl ContactTarget<'_> {
    /// The change of `edits` to the target. The event's own contact is
    /// created from the event's `contact` data when the store does not
    /// know it yet; a contact the step names must exist.
    fn change(&self, context: &Value, edits: Vec<ContactEdit>) -> Result<Rendered, RenderError> {
        let (contact_id, create) = match self.0 {
            Some(named) => (template::render_text(named, context)?, None),
            None => {
                let id = path::lookup(context, "event.contactid")
                    .and_then(Value::as_str)
                    .ok_or(RenderError::NoContact)?;
                (id.to_owned(), Some(new_contact_from_event(context)))
            }
        };
        if contact_id.is_empty() {
            return Err(RenderError::NoContact);
        }
        Ok(Rendered {
            change: ContactChange {
                contact_id,
                create,
                edits,
            },
            upsert_by: None,
        })
    }

    fn templates(&self, out: &mut Vec<(String, String)>) {
        if let Some(contact) = self.0 {
            out.push(("contact".into(), contact.clone()));
        }
    }
}

/// The event's `data.contact` (email and names) as a new contact.
fn new_contact_from_event(context: &Value) -> NewContact {
    let field = |name: &str| {
        path::lookup(context, &format!("contact.{name}"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let mut properties = Map::new();
    for name in ["first_name", "last_name"] {
        if let Some(value) = field(name) {
            properties.insert(name.to_owned(), Value::String(value));
        }
    }
    NewContact {
        email: field("email"),
        external_id: None,
        properties,
    }
}

fn render_points(points: &Points, context: &Value) -> Result<i64, RenderError> {
    match points {
        Points::Fixed(n) => Ok(*n),
        Points::Template(text) => {
            let rendered = template::render_text(text, context)?;
            rendered
                .trim()
                .parse::<i64>()
                .map_err(|_| RenderError::BadPoints(rendered))
        }
    }
}

fn render_names(names: &[String], context: &Value) -> Result<Vec<String>, RenderError> {
    names
        .iter()
        .map(|name| Ok(template::render_text(name, context)?))
        .collect()
}

fn name_problems(field: &str, name: &str, out: &mut Vec<(String, String)>) {
    if name.trim().is_empty() {
        out.push((field.to_owned(), "must not be empty".into()));
    }
}

fn points_problems(points: &Points) -> Vec<(String, String)> {
    match points {
        Points::Fixed(n) if *n <= 0 => vec![("points".into(), format!("must be a positive whole number, not {n}"))],
        Points::Template(text) if !template::is_templated(text) && text.trim().parse::<i64>().is_err() => {
            vec![("points".into(), format!("{text:?} is not a whole number"))]
        }
        _ => vec![],
    }
}

fn points_templates(points: &Points, out: &mut Vec<(String, String)>) {
    if let Points::Template(text) = points {
        out.push(("points".into(), text.clone()));
    }
}

/// The contact id a CreateContact step gives a contact it creates: the
/// same on every delivery of the step, so a repeat finds its own contact.
fn created_contact_id(run_id: &str, step_id: &str) -> String {
    let digest = Sha256::digest(format!("{run_id}\n{step_id}").as_bytes());
    let hex: String = digest.iter().take(10).map(|b| format!("{b:02x}")).collect();
    format!("c_{hex}")
}

/// Applies a rendered change once per (run, step) and emits its events.
async fn perform_change(call: &ActionCall<'_>, rendered: Result<Rendered, RenderError>) -> Performed {
    let Rendered { mut change, upsert_by } = match rendered {
        Ok(rendered) => rendered,
        Err(err) => return Outcome::Failed(Failure::terminal(err)).into(),
    };
    let workspace_id = call.workspace_id.to_owned();
    let store = call.ports.contacts.as_ref();
    let token = call.idempotency_key();
    if let Some(key) = &upsert_by {
        match store.find_contact(&workspace_id, key).await {
            Ok(Some(found)) => change.contact_id = found.id,
            Ok(None) => {}
            Err(err) => return Outcome::Interrupted(err).into(),
        }
    }
    let mut applied = store.apply(&workspace_id, &change, &token, call.now).await;
    // Another run created the contact between the lookup and the write:
    // the upsert becomes an update of that contact.
    if let (
        Ok(Err(ContactRefusal::EmailTaken { owner, .. } | ContactRefusal::ExternalIdTaken { owner, .. })),
        Some(_),
    ) = (&applied, &upsert_by)
    {
        change.contact_id = owner.clone();
        applied = store.apply(&workspace_id, &change, &token, call.now).await;
    }
    let applied = match applied {
        Ok(Ok(applied)) => applied,
        Ok(Err(refusal)) => return Outcome::Failed(Failure::terminal(refusal)).into(),
        Err(err) => return Outcome::Interrupted(err).into(),
    };
    let events = emitted_events(call, &workspace_id, &applied);
    if !events.is_empty() {
        if let Err(err) = call.ports.events.emit(&events).await {
            return Outcome::Interrupted(err).into();
        }
    }
    call.succeeded(step_output(&applied, &events)).into()
}

/// What the run log and the steps after see: the contact's id, what
/// changed, and the loyalty balances.
fn step_output(applied: &Applied, events: &[TriggerEvent]) -> Value {
    json!({
        "contact_id": applied.contact.id,
        "created": applied.effects.contains(&ContactEffect::Created),
        "changes": applied.effects,
        "loyalty": applied.contact.loyalty,
        "emitted": events.iter().map(|e| e.event_type.as_str()).collect::<Vec<_>>(),
    })
}

/// One event per real change, with an identity that is the same on every
/// execution of the step: `source` names the run and step, `id` the kind of
/// change and its count within the step (brief §10).
fn emitted_events(call: &ActionCall<'_>, workspace_id: &str, applied: &Applied) -> Vec<TriggerEvent> {
    let event_field = |name: &str| {
        path::lookup(call.context, &format!("event.{name}"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let depth = path::lookup(call.context, "event.depth")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let extension_data = path::lookup(call.context, "extension_data").cloned();
    let contact = &applied.contact;
    let mut counts: std::collections::HashMap<&str, u32> = std::collections::HashMap::new();
    let mut events = vec![];
    for effect in &applied.effects {
        let Some((event_type, mut data)) = event_of(effect) else {
            continue;
        };
        let count = counts.entry(event_type).or_insert(0);
        *count += 1;
        if let (Value::Object(data), Some(extension)) = (&mut data, &extension_data) {
            data.insert("extension_data".into(), extension.clone());
        }
        if let Value::Object(data) = &mut data {
            data.insert(
                "contact".into(),
                json!({"id": contact.id, "email": contact.email, "external_id": contact.external_id}),
            );
        }
        events.push(TriggerEvent {
            specversion: SPEC_VERSION.to_owned(),
            id: format!("{}-{count}", event_type.to_ascii_lowercase()),
            source: format!("hookflow/runs/{}/steps/{}", call.run_id, call.step_id),
            event_type: event_type.to_owned(),
            time: Some(call.now.to_rfc3339()),
            datacontenttype: Some("application/json".into()),
            data,
            workspaceid: workspace_id.to_owned(),
            siteid: event_field("siteid"),
            cardid: event_field("cardid"),
            contactid: Some(contact.id.clone()),
            depth: u32::try_from(depth).unwrap_or(u32::MAX).saturating_add(1),
        });
    }
    events
}

/// The trigger a change fires, with its data; tag changes and list
/// removals fire none (the catalogue has no such trigger).
fn event_of(effect: &ContactEffect) -> Option<(&'static str, Value)> {
    Some(match effect {
        ContactEffect::Created => ("Contact.Created", json!({})),
        ContactEffect::PropertyUpdated { name, old, new } => (
            "Contact.PropertyUpdated",
            json!({"property": name, "old_value": old, "new_value": new}),
        ),
        ContactEffect::ListAdded { list } => ("Contact.ListAdded", json!({"list": list})),
        ContactEffect::PointsAwarded {
            program,
            points,
            balance,
        } => (
            "Loyalty.PointsAwarded",
            json!({"loyalty": {"program": program, "points": points, "balance": balance}}),
        ),
        ContactEffect::PointsRedeemed {
            program,
            points,
            balance,
        } => (
            "Loyalty.PointsRedeemed",
            json!({"loyalty": {"program": program, "points": points, "balance": balance}}),
        ),
        ContactEffect::TierAdded { program, tier } => (
            "Loyalty.TierAdded",
            json!({"loyalty": {"program": program, "tier": tier}}),
        ),
        ContactEffect::TierRemoved { program, tier } => (
            "Loyalty.TierRemoved",
            json!({"loyalty": {"program": program, "tier": tier}}),
        ),
        ContactEffect::TagAdded { .. } | ContactEffect::TagRemoved { .. } | ContactEffect::ListRemoved { .. } => {
            return None
        }
    })
}

/// A dry run shows the change as rendered, with nothing stored.
fn rehearse_change(rendered: Result<Rendered, RenderError>) -> Rehearsal {
    match rendered {
        Ok(Rendered { change, .. }) => Rehearsal::Rendered {
            request: None,
            output: json!({"contact_id": change.contact_id, "edits": change.edits}),
        },
        Err(err) => Rehearsal::Failed(err.to_string()),
    }
}

/// The plug-in boilerplate every contact action shares: side-effecting,
/// performed and rehearsed from its rendered change.
macro_rules! contact_action {
    ($action:ident) => {
        #[async_trait::async_trait]
        impl StepAction for $action {
            fn kind(&self) -> ActionKind {
                ActionKind::$action
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

            async fn perform(&self, call: ActionCall<'_>) -> Performed {
                perform_change(&call, self.render(call.context, call.run_id, call.step_id)).await
            }

            fn rehearse(&self, call: DryCall<'_>) -> Rehearsal {
                rehearse_change(self.render(call.context, call.run_id, call.step_id))
            }
        }
    };
}

contact_action!(CreateContact);
contact_action!(UpdateContact);
contact_action!(AddToList);
contact_action!(RemoveFromList);
contact_action!(AwardPoints);
contact_action!(RedeemPoints);
contact_action!(AddTier);
contact_action!(RemoveTier);

impl CreateContact {
    fn render(&self, context: &Value, run_id: &str, step_id: &str) -> Result<Rendered, RenderError> {
        let render = |text: &Option<String>| -> Result<Option<String>, RenderError> {
            Ok(match text {
                Some(text) => Some(template::render_text(text, context)?).filter(|s| !s.trim().is_empty()),
                None => None,
            })
        };
        let email = render(&self.email)?;
        let external_id = render(&self.external_id)?;
        let upsert_by = match (&email, &external_id) {
            (Some(email), _) => ContactKey::Email(email.clone()),
            (None, Some(external_id)) => ContactKey::ExternalId(external_id.clone()),
            (None, None) => return Err(RenderError::NoIdentity),
        };
        let properties = match template::render_json(&Value::Object(self.properties.clone()), context)? {
            Value::Object(properties) => properties,
            _ => Map::new(),
        };
        let new = NewContact {
            email,
            external_id,
            properties,
        };
        Ok(Rendered {
            change: ContactChange {
                contact_id: created_contact_id(run_id, step_id),
                edits: new.as_edits(),
                create: Some(new),
            },
            upsert_by: Some(upsert_by),
        })
    }

    fn own_templates(&self, out: &mut Vec<(String, String)>) {
        for (field, text) in [("email", &self.email), ("external_id", &self.external_id)] {
            if let Some(text) = text {
                out.push((field.into(), text.clone()));
            }
        }
        template::for_each_string_leaf(
            &Value::Object(self.properties.clone()),
            "properties",
            &mut |path, text| out.push((path.to_owned(), text.to_owned())),
        );
    }

    fn own_problems(&self) -> Vec<(String, String)> {
        if self.email.is_none() && self.external_id.is_none() {
            return vec![("".into(), "CreateContact needs an `email` or an `external_id`".into())];
        }
        vec![]
    }
}

impl UpdateContact {
    fn render(&self, context: &Value, _run_id: &str, _step_id: &str) -> Result<Rendered, RenderError> {
        let mut edits = vec![];
        for (name, value) in &self.set {
            edits.push(ContactEdit::Set {
                name: name.clone(),
                value: template::render_json(value, context)?,
            });
        }
        edits.extend(self.unset.iter().map(|name| ContactEdit::Unset { name: name.clone() }));
        edits.extend(
            render_names(&self.add_tags, context)?
                .into_iter()
                .map(|tag| ContactEdit::AddTag { tag }),
        );
        edits.extend(
            render_names(&self.remove_tags, context)?
                .into_iter()
                .map(|tag| ContactEdit::RemoveTag { tag }),
        );
        ContactTarget(&self.contact).change(context, edits)
    }

    fn own_templates(&self, out: &mut Vec<(String, String)>) {
        ContactTarget(&self.contact).templates(out);
        template::for_each_string_leaf(&Value::Object(self.set.clone()), "set", &mut |path, text| {
            out.push((path.to_owned(), text.to_owned()))
        });
        for (field, names) in [("add_tags", &self.add_tags), ("remove_tags", &self.remove_tags)] {
            for (i, name) in names.iter().enumerate() {
                out.push((format!("{field}[{i}]"), name.clone()));
            }
        }
    }

    fn own_problems(&self) -> Vec<(String, String)> {
        let mut out = vec![];
        let edits = self.set.len() + self.unset.len() + self.add_tags.len() + self.remove_tags.len();
        if edits == 0 {
            out.push((
                "".into(),
                "UpdateContact changes nothing: give `set`, `unset`, `add_tags` or `remove_tags`".into(),
            ));
        }
        if edits > MAX_EDITS {
            out.push(("".into(), format!("at most {MAX_EDITS} changes per step, not {edits}")));
        }
        for (field, names) in [
            ("unset", &self.unset),
            ("add_tags", &self.add_tags),
            ("remove_tags", &self.remove_tags),
        ] {
            for (i, name) in names.iter().enumerate() {
                name_problems(&format!("{field}[{i}]"), name, &mut out);
            }
        }
        out
    }
}

/// The actions that change one named thing (a list, or a program's points
/// or tier) differ only in the edit they render.
macro_rules! single_edit_action {
    ($action:ident, |$self_:ident, $context:ident| $edit:expr, names: [$($field:ident),*], points: [$($points:ident)?]) => {
        impl $action {
            fn render(&$self_, $context: &Value, _run_id: &str, _step_id: &str) -> Result<Rendered, RenderError> {
                let edit = $edit;
                ContactTarget(&$self_.contact).change($context, vec![edit])
            }

            fn own_templates(&self, out: &mut Vec<(String, String)>) {
                ContactTarget(&self.contact).templates(out);
                $(out.push((stringify!($field).into(), self.$field.clone()));)*
                $(points_templates(&self.$points, out);)?
            }

            fn own_problems(&self) -> Vec<(String, String)> {
                let mut out = vec![];
                $(name_problems(stringify!($field), &self.$field, &mut out);)*
                $(out.extend(points_problems(&self.$points));)?
                out
            }
        }
    };
}

single_edit_action!(AddToList, |self, context| ContactEdit::AddToList {
    list: template::render_text(&self.list, context)?
}, names: [list], points: []);
single_edit_action!(RemoveFromList, |self, context| ContactEdit::RemoveFromList {
    list: template::render_text(&self.list, context)?
}, names: [list], points: []);
single_edit_action!(AwardPoints, |self, context| ContactEdit::AwardPoints {
    program: template::render_text(&self.program, context)?,
    points: render_points(&self.points, context)?,
}, names: [program], points: [points]);
single_edit_action!(RedeemPoints, |self, context| ContactEdit::RedeemPoints {
    program: template::render_text(&self.program, context)?,
    points: render_points(&self.points, context)?,
}, names: [program], points: [points]);
single_edit_action!(AddTier, |self, context| ContactEdit::AddTier {
    program: template::render_text(&self.program, context)?,
    tier: template::render_text(&self.tier, context)?,
}, names: [program, tier], points: []);
single_edit_action!(RemoveTier, |self, context| ContactEdit::RemoveTier {
    program: template::render_text(&self.program, context)?,
    tier: template::render_text(&self.tier, context)?,
}, names: [program, tier], points: []);
