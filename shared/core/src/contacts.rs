//! Contacts: the people a workspace's events are about, with their
//! properties, tags, list memberships and loyalty balances.
//!
//! A change is a list of [`ContactEdit`]s applied to one contact as one
//! conditional write, once per idempotency token: the store keeps what a
//! token's change did ([`Applied`]) and answers a repeat with it, so a step
//! delivered twice awards its points once and emits the same events.

mod export;
mod manage;

pub use export::{neutralise, CsvExport, FIXED_COLUMNS, MAX_PROPERTY_COLUMNS};
pub use manage::{ContactError, ContactPatch, Contacts, NewContactRequest};

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ports::PortResult;

/// A page of contacts holds at most this many (brief §7).
pub const MAX_CONTACTS_PAGE: usize = 100;
/// The most edits one change may carry: each tag or list is one more item
/// in the store's transaction (DynamoDB takes 100).
pub const MAX_EDITS: usize = 50;
/// The longest property, tag, list, program or tier name, in bytes: names
/// end up in DynamoDB keys.
pub const MAX_NAME_BYTES: usize = 256;
/// The largest contact, as JSON. Its change outcome holds it again, and
/// both must fit a DynamoDB item (400 KB) with room to spare, so a contact
/// that grew past this is refused the change instead of becoming unwritable.
pub const MAX_CONTACT_BYTES: usize = 100 * 1024;
/// How long a change's outcome is kept to answer a repeat of its token:
/// longer than any redelivery of the step that made it.
pub const CHANGE_MEMORY: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contact {
    pub id: String,
    pub workspace_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// An id from elsewhere, such as an SSO `sub`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    #[serde(default)]
    pub properties: Map<String, Value>,
    #[serde(default)]
    pub tags: BTreeSet<String>,
    #[serde(default)]
    pub lists: BTreeSet<String>,
    /// Balances and tiers per loyalty program.
    #[serde(default)]
    pub loyalty: BTreeMap<String, Loyalty>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Bumped by every change: the store's writes are conditional on it.
    pub revision: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Loyalty {
    pub points: i64,
    #[serde(default)]
    pub tiers: BTreeSet<String>,
}

/// How a contact is looked up besides its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContactKey {
    /// Unique per workspace, compared case-insensitively.
    Email(String),
    ExternalId(String),
}

/// The form an email is unique in.
pub fn normal_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// Who a change creates when its contact does not exist yet.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NewContact {
    pub email: Option<String>,
    pub external_id: Option<String>,
    pub properties: Map<String, Value>,
}

impl NewContact {
    /// The edits that make a contact that exists already what this one
    /// would be: its properties set, its email and external id given where
    /// it has none (an upsert).
    pub fn as_edits(&self) -> Vec<ContactEdit> {
        let mut edits: Vec<ContactEdit> = self
            .properties
            .iter()
            .map(|(name, value)| ContactEdit::Set {
                name: name.clone(),
                value: value.clone(),
            })
            .collect();
        for (key, value) in [
            (IdentityField::Email, &self.email),
            (IdentityField::ExternalId, &self.external_id),
        ] {
            if let Some(value) = value {
                edits.push(ContactEdit::Identify {
                    key,
                    value: value.clone(),
                });
            }
        }
        edits
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "edit", rename_all = "snake_case")]
pub enum ContactEdit {
    Set {
        name: String,
        value: Value,
    },
    Unset {
        name: String,
    },
    AddTag {
        tag: String,
    },
    RemoveTag {
        tag: String,
    },
    AddToList {
        list: String,
    },
    RemoveFromList {
        list: String,
    },
    AwardPoints {
        program: String,
        points: i64,
    },
    RedeemPoints {
        program: String,
        points: i64,
    },
    AddTier {
        program: String,
        tier: String,
    },
    RemoveTier {
        program: String,
        tier: String,
    },
    /// Sets the email or external id of a contact that has none (an upsert
    /// by the other key).
    Identify {
        key: IdentityField,
        value: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentityField {
    Email,
    ExternalId,
}

/// One change to one contact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContactChange {
    pub contact_id: String,
    /// Create the contact with these when it does not exist; without it a
    /// missing contact is refused.
    pub create: Option<NewContact>,
    pub edits: Vec<ContactEdit>,
}

/// What a change really did, in order: an edit that changed nothing (a tag
/// already there) has no effect, and an effect is what emits an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "effect", rename_all = "snake_case")]
pub enum ContactEffect {
    Created,
    PropertyUpdated {
        name: String,
        old: Option<Value>,
        new: Option<Value>,
    },
    TagAdded {
        tag: String,
    },
    TagRemoved {
        tag: String,
    },
    ListAdded {
        list: String,
    },
    ListRemoved {
        list: String,
    },
    PointsAwarded {
        program: String,
        points: i64,
        balance: i64,
    },
    PointsRedeemed {
        program: String,
        points: i64,
        balance: i64,
    },
    TierAdded {
        program: String,
        tier: String,
    },
    TierRemoved {
        program: String,
        tier: String,
    },
}

/// A change as it was applied: the contact after it, and its effects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Applied {
    pub contact: Contact,
    pub effects: Vec<ContactEffect>,
}

/// Why a change was refused. None of these gets better by trying again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum ContactRefusal {
    #[error("contact {0} does not exist")]
    NotFound(String),
    #[error("cannot redeem {requested} points of program {program:?}: the balance is {balance}")]
    InsufficientPoints {
        program: String,
        balance: i64,
        requested: i64,
    },
    #[error("email {email:?} belongs to contact {owner}")]
    EmailTaken { email: String, owner: String },
    #[error("external id {external_id:?} belongs to contact {owner}")]
    ExternalIdTaken { external_id: String, owner: String },
    #[error("points must be a positive whole number, not {0}")]
    BadPoints(i64),
    #[error("a change may carry at most {MAX_EDITS} edits")]
    TooManyEdits,
    #[error("{0:?} is longer than {MAX_NAME_BYTES} bytes (or empty)")]
    BadName(String),
    #[error("the contact would be {0} bytes as JSON, over the limit of {MAX_CONTACT_BYTES}")]
    TooLarge(usize),
}

/// The contact `change` makes, from what is stored (`None`: no contact yet).
/// Pure: every store applies changes with this, then writes the result
/// conditionally on the revision it read.
pub fn apply_change(
    workspace_id: &str,
    stored: Option<&Contact>,
    change: &ContactChange,
    now: DateTime<Utc>,
) -> Result<Applied, ContactRefusal> {
    if change.edits.len() > MAX_EDITS {
        return Err(ContactRefusal::TooManyEdits);
    }
    let mut effects = vec![];
    let mut contact = match (stored, &change.create) {
        (Some(stored), _) => stored.clone(),
        (None, Some(new)) => {
            effects.push(ContactEffect::Created);
            Contact {
                id: change.contact_id.clone(),
                workspace_id: workspace_id.to_owned(),
                email: new.email.clone(),
                external_id: new.external_id.clone(),
                properties: new.properties.clone(),
                tags: BTreeSet::new(),
                lists: BTreeSet::new(),
                loyalty: BTreeMap::new(),
                created_at: now,
                updated_at: now,
                revision: 0,
            }
        }
        (None, None) => return Err(ContactRefusal::NotFound(change.contact_id.clone())),
    };
    for edit in &change.edits {
        check_names(edit)?;
        if let Some(effect) = apply_edit(&mut contact, edit)? {
            effects.push(effect);
        }
    }
    let bytes = serde_json::to_vec(&contact).map_or(usize::MAX, |json| json.len());
    if !effects.is_empty() && bytes > MAX_CONTACT_BYTES {
        return Err(ContactRefusal::TooLarge(bytes));
    }
    if !effects.is_empty() {
        contact.revision += 1;
        contact.updated_at = now;
    }
    Ok(Applied { contact, effects })
}

fn check_names(edit: &ContactEdit) -> Result<(), ContactRefusal> {
    let names: Vec<&String> = match edit {
        ContactEdit::Set { name, .. } | ContactEdit::Unset { name } => vec![name],
        ContactEdit::AddTag { tag } | ContactEdit::RemoveTag { tag } => vec![tag],
        ContactEdit::AddToList { list } | ContactEdit::RemoveFromList { list } => vec![list],
        ContactEdit::AwardPoints { program, .. } | ContactEdit::RedeemPoints { program, .. } => vec![program],
        ContactEdit::AddTier { program, tier } | ContactEdit::RemoveTier { program, tier } => vec![program, tier],
        ContactEdit::Identify { value, .. } => vec![value],
    };
    match names
        .into_iter()
        .find(|name| name.is_empty() || name.len() > MAX_NAME_BYTES)
    {
        Some(bad) => Err(ContactRefusal::BadName(bad.chars().take(64).collect())),
        None => Ok(()),
    }
}

fn apply_edit(contact: &mut Contact, edit: &ContactEdit) -> Result<Option<ContactEffect>, ContactRefusal> {
    let effect = match edit {
        ContactEdit::Set { name, value } => {
            let old = contact.properties.insert(name.clone(), value.clone());
            (old.as_ref() != Some(value)).then(|| ContactEffect::PropertyUpdated {
                name: name.clone(),
                old,
                new: Some(value.clone()),
            })
        }
        ContactEdit::Unset { name } => contact
            .properties
            .remove(name)
            .map(|old| ContactEffect::PropertyUpdated {
                name: name.clone(),
                old: Some(old),
                new: None,
            }),
        ContactEdit::AddTag { tag } => contact
            .tags
            .insert(tag.clone())
            .then(|| ContactEffect::TagAdded { tag: tag.clone() }),
        ContactEdit::RemoveTag { tag } => contact
            .tags
            .remove(tag)
            .then(|| ContactEffect::TagRemoved { tag: tag.clone() }),
        ContactEdit::AddToList { list } => contact
            .lists
            .insert(list.clone())
            .then(|| ContactEffect::ListAdded { list: list.clone() }),
        ContactEdit::RemoveFromList { list } => contact
            .lists
            .remove(list)
            .then(|| ContactEffect::ListRemoved { list: list.clone() }),
        ContactEdit::AwardPoints { program, points } => {
            let points = positive(*points)?;
            let loyalty = contact.loyalty.entry(program.clone()).or_default();
            loyalty.points = loyalty.points.saturating_add(points);
            Some(ContactEffect::PointsAwarded {
                program: program.clone(),
                points,
                balance: loyalty.points,
            })
        }
        ContactEdit::RedeemPoints { program, points } => {
            let points = positive(*points)?;
            let balance = contact.loyalty.get(program).map_or(0, |l| l.points);
            if points > balance {
                return Err(ContactRefusal::InsufficientPoints {
                    program: program.clone(),
                    balance,
                    requested: points,
                });
            }
            let loyalty = contact.loyalty.entry(program.clone()).or_default();
            loyalty.points -= points;
            Some(ContactEffect::PointsRedeemed {
                program: program.clone(),
                points,
                balance: loyalty.points,
            })
        }
        ContactEdit::AddTier { program, tier } => {
            let loyalty = contact.loyalty.entry(program.clone()).or_default();
            loyalty.tiers.insert(tier.clone()).then(|| ContactEffect::TierAdded {
                program: program.clone(),
                tier: tier.clone(),
            })
        }
        ContactEdit::RemoveTier { program, tier } => {
            let removed = contact
                .loyalty
                .get_mut(program)
                .is_some_and(|loyalty| loyalty.tiers.remove(tier));
            removed.then(|| ContactEffect::TierRemoved {
                program: program.clone(),
                tier: tier.clone(),
            })
        }
        ContactEdit::Identify { key, value } => identify(contact, *key, value),
    };
    Ok(effect)
}

/// Gives a contact a missing email or external id; one it has is kept.
fn identify(contact: &mut Contact, key: IdentityField, value: &str) -> Option<ContactEffect> {
    let (field, name) = match key {
        IdentityField::Email => (&mut contact.email, "email"),
        IdentityField::ExternalId => (&mut contact.external_id, "external_id"),
    };
    if field.is_some() || value.is_empty() {
        return None;
    }
    *field = Some(value.to_owned());
    Some(ContactEffect::PropertyUpdated {
        name: name.to_owned(),
        old: None,
        new: Some(Value::String(value.to_owned())),
    })
}

fn positive(points: i64) -> Result<i64, ContactRefusal> {
    if points > 0 {
        Ok(points)
    } else {
        Err(ContactRefusal::BadPoints(points))
    }
}

/// Which contacts to list: all of a workspace's, or those with one tag or
/// in one list, a page at a time in id order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContactQuery {
    pub tag: Option<String>,
    pub list: Option<String>,
    /// 1 to [`MAX_CONTACTS_PAGE`].
    pub limit: usize,
    /// Start after this contact id (the last of the previous page).
    pub after: Option<String>,
}

impl ContactQuery {
    pub fn page_size(&self) -> usize {
        self.limit.clamp(1, MAX_CONTACTS_PAGE)
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContactPage {
    pub contacts: Vec<Contact>,
    /// The id to continue after; absent on the last page.
    pub next: Option<String>,
}

impl ContactPage {
    /// The page from up to `page_size + 1` contacts found in order: the
    /// extra one only tells that another page exists.
    pub fn from_lookahead(mut contacts: Vec<Contact>, page_size: usize) -> Self {
        let more = contacts.len() > page_size;
        contacts.truncate(page_size);
        let next = if more {
            contacts.last().map(|c| c.id.clone())
        } else {
            None
        };
        Self { contacts, next }
    }
}

#[async_trait]
pub trait ContactStore: Send + Sync {
    async fn get_contact(&self, workspace_id: &str, contact_id: &str) -> PortResult<Option<Contact>>;
    async fn find_contact(&self, workspace_id: &str, key: &ContactKey) -> PortResult<Option<Contact>>;
    /// Applies `change` unless a change with `token` was applied before, in
    /// which case what that one did is answered again and nothing changes.
    /// Emails and external ids stay unique per workspace.
    async fn apply(
        &self,
        workspace_id: &str,
        change: &ContactChange,
        token: &str,
        now: DateTime<Utc>,
    ) -> PortResult<Result<Applied, ContactRefusal>>;
    /// One page, in id order; a tag or a list is served by an index, never a scan.
    async fn list_contacts(&self, workspace_id: &str, query: &ContactQuery) -> PortResult<ContactPage>;
    /// Erases a contact whole: properties, tags, lists, balances, its
    /// lookups and the outcomes of its changes. False if it did not exist.
    async fn erase_contact(&self, workspace_id: &str, contact_id: &str) -> PortResult<bool>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn change(edits: Vec<ContactEdit>) -> ContactChange {
        ContactChange {
            contact_id: "c1".into(),
            create: Some(NewContact::default()),
            edits,
        }
    }

    #[test]
    fn an_edit_that_changes_nothing_has_no_effect_and_keeps_the_revision() {
        let now = Utc::now();
        let first = apply_change("ws", None, &change(vec![ContactEdit::AddTag { tag: "a".into() }]), now).unwrap();
        assert_eq!(
            first.effects,
            vec![ContactEffect::Created, ContactEffect::TagAdded { tag: "a".into() }]
        );
        let again = apply_change(
            "ws",
            Some(&first.contact),
            &change(vec![
                ContactEdit::AddTag { tag: "a".into() },
                ContactEdit::Unset { name: "phone".into() },
            ]),
            now,
        )
        .unwrap();
        assert!(again.effects.is_empty());
        assert_eq!(again.contact.revision, first.contact.revision);
    }

    #[test]
    fn redeeming_more_than_the_balance_is_refused_and_property_changes_carry_old_values() {
        let now = Utc::now();
        let awarded = apply_change(
            "ws",
            None,
            &change(vec![
                ContactEdit::AwardPoints {
                    program: "main".into(),
                    points: 50,
                },
                ContactEdit::Set {
                    name: "company".into(),
                    value: json!("ACME"),
                },
            ]),
            now,
        )
        .unwrap();
        let refused = apply_change(
            "ws",
            Some(&awarded.contact),
            &change(vec![ContactEdit::RedeemPoints {
                program: "main".into(),
                points: 51,
            }]),
            now,
        );
        assert_eq!(
            refused,
            Err(ContactRefusal::InsufficientPoints {
                program: "main".into(),
                balance: 50,
                requested: 51
            })
        );
        let renamed = apply_change(
            "ws",
            Some(&awarded.contact),
            &change(vec![ContactEdit::Set {
                name: "company".into(),
                value: json!("Initech"),
            }]),
            now,
        )
        .unwrap();
        assert_eq!(
            renamed.effects,
            vec![ContactEffect::PropertyUpdated {
                name: "company".into(),
                old: Some(json!("ACME")),
                new: Some(json!("Initech"))
            }]
        );
    }
}
