//! The contacts API's use case: list, read, create, change and erase
//! contacts of a workspace. Changes made here are people's edits, not a
//! run's: they emit no events.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures_util::{StreamExt, TryStreamExt};

use serde::Deserialize;
use serde_json::{Map, Value};

use super::{
    Contact, ContactChange, ContactEdit, ContactPage, ContactQuery, ContactRefusal, ContactStore, NewContact, MAX_EDITS,
};
use crate::ports::{Clock, PortError, RunLog};
use crate::run::{RunRecord, RunStatus};

#[derive(Debug, thiserror::Error)]
pub enum ContactError {
    #[error("contact {0} does not exist")]
    NotFound(String),
    #[error("{0}")]
    Refused(ContactRefusal),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Port(#[from] PortError),
}

impl ContactError {
    /// The stable `code` of the API's error body.
    pub fn code(&self) -> &'static str {
        match self {
            ContactError::NotFound(_) => "contact_not_found",
            ContactError::Refused(ContactRefusal::EmailTaken { .. }) => "email_taken",
            ContactError::Refused(ContactRefusal::ExternalIdTaken { .. }) => "external_id_taken",
            ContactError::Refused(ContactRefusal::InsufficientPoints { .. }) => "insufficient_points",
            ContactError::Refused(_) | ContactError::Invalid(_) => "invalid_contact",
            ContactError::Port(_) => "store_unavailable",
        }
    }
}

/// `POST …/contacts`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewContactRequest {
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub external_id: Option<String>,
    #[serde(default)]
    pub properties: Map<String, Value>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub lists: Vec<String>,
}

/// `PATCH …/contacts/{id}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactPatch {
    #[serde(default)]
    pub set: Map<String, Value>,
    #[serde(default)]
    pub unset: Vec<String>,
    #[serde(default)]
    pub add_tags: Vec<String>,
    #[serde(default)]
    pub remove_tags: Vec<String>,
    #[serde(default)]
    pub add_lists: Vec<String>,
    #[serde(default)]
    pub remove_lists: Vec<String>,
}

impl ContactPatch {
    fn edits(self) -> Result<Vec<ContactEdit>, ContactError> {
        let mut edits: Vec<ContactEdit> = self
            .set
            .into_iter()
            .map(|(name, value)| ContactEdit::Set { name, value })
            .collect();
        edits.extend(self.unset.into_iter().map(|name| ContactEdit::Unset { name }));
        edits.extend(self.add_tags.into_iter().map(|tag| ContactEdit::AddTag { tag }));
        edits.extend(self.remove_tags.into_iter().map(|tag| ContactEdit::RemoveTag { tag }));
        edits.extend(self.add_lists.into_iter().map(|list| ContactEdit::AddToList { list }));
        edits.extend(
            self.remove_lists
                .into_iter()
                .map(|list| ContactEdit::RemoveFromList { list }),
        );
        check_edits(&edits)?;
        Ok(edits)
    }
}

fn check_edits(edits: &[ContactEdit]) -> Result<(), ContactError> {
    if edits.len() > MAX_EDITS {
        return Err(ContactError::Invalid(format!(
            "at most {MAX_EDITS} changes per request, not {}",
            edits.len()
        )));
    }
    let blank = edits.iter().any(|edit| match edit {
        ContactEdit::Set { name, .. } | ContactEdit::Unset { name } => name.trim().is_empty(),
        ContactEdit::AddTag { tag } | ContactEdit::RemoveTag { tag } => tag.trim().is_empty(),
        ContactEdit::AddToList { list } | ContactEdit::RemoveFromList { list } => list.trim().is_empty(),
        _ => false,
    });
    if blank {
        return Err(ContactError::Invalid(
            "property, tag and list names must not be empty".into(),
        ));
    }
    Ok(())
}

pub struct Contacts {
    store: Arc<dyn ContactStore>,
    runs: Arc<dyn RunLog>,
    clock: Arc<dyn Clock>,
}

/// Runs erased per page of a contact's runs, and at once: each is a few
/// requests, and a contact may have thousands of runs behind one call.
const ERASE_PAGE: usize = 50;
const ERASE_CONCURRENCY: usize = 8;

/// The error a run cancelled by its contact's erasure ends with (erased
/// in turn, like every error of the run).
const CANCELLED_BY_ERASURE: &str = "cancelled: its contact was erased";

impl Contacts {
    pub fn new(store: Arc<dyn ContactStore>, runs: Arc<dyn RunLog>, clock: Arc<dyn Clock>) -> Self {
        Self { store, runs, clock }
    }

    pub fn store(&self) -> Arc<dyn ContactStore> {
        self.store.clone()
    }

    pub async fn list(&self, workspace_id: &str, query: &ContactQuery) -> Result<ContactPage, ContactError> {
        Ok(self.store.list_contacts(workspace_id, query).await?)
    }

    pub async fn get(&self, workspace_id: &str, contact_id: &str) -> Result<Contact, ContactError> {
        self.store
            .get_contact(workspace_id, contact_id)
            .await?
            .ok_or_else(|| ContactError::NotFound(contact_id.to_owned()))
    }

    pub async fn create(&self, workspace_id: &str, request: NewContactRequest) -> Result<Contact, ContactError> {
        let email = request.email.filter(|e| !e.trim().is_empty());
        let external_id = request.external_id.filter(|e| !e.trim().is_empty());
        if email.as_deref().is_some_and(|e| !e.contains('@')) {
            return Err(ContactError::Invalid("email must contain an @".into()));
        }
        let new = NewContact {
            email,
            external_id,
            properties: request.properties,
        };
        let mut edits: Vec<ContactEdit> = request
            .tags
            .into_iter()
            .map(|tag| ContactEdit::AddTag { tag })
            .collect();
        edits.extend(request.lists.into_iter().map(|list| ContactEdit::AddToList { list }));
        edits.extend(new.as_edits());
        check_edits(&edits)?;
        let id = format!("c_{}", ulid::Ulid::new().to_string().to_lowercase());
        let change = ContactChange {
            contact_id: id.clone(),
            create: Some(new),
            edits,
        };
        self.apply(workspace_id, &change).await
    }

    pub async fn update(
        &self,
        workspace_id: &str,
        contact_id: &str,
        patch: ContactPatch,
    ) -> Result<Contact, ContactError> {
        let change = ContactChange {
            contact_id: contact_id.to_owned(),
            create: None,
            edits: patch.edits()?,
        };
        self.apply(workspace_id, &change).await
    }

    /// Erases the contact whole (GDPR): its properties, tags, lists and
    /// balances. Runs its events started keep only its id. The runs go
    /// first, so a call cut off half-way leaves the contact to be erased
    /// again, and a repeated call (404 once the contact is gone) still
    /// erases what its runs recorded since.
    pub async fn erase(&self, workspace_id: &str, contact_id: &str) -> Result<(), ContactError> {
        let runs = self.erase_runs(workspace_id, contact_id).await?;
        if self.store.erase_contact(workspace_id, contact_id).await? {
            tracing::info!(workspace_id, contact_id, runs, "contact erased");
            Ok(())
        } else {
            Err(ContactError::NotFound(contact_id.to_owned()))
        }
    }

    /// Erases what the contact's runs hold about people, cancelling those
    /// still running first: their next message would carry its data on.
    /// The number of runs.
    async fn erase_runs(&self, workspace_id: &str, contact_id: &str) -> Result<usize, PortError> {
        let now = self.clock.now();
        let mut after = None;
        let mut erased = 0;
        loop {
            let page = self
                .runs
                .list_contact_runs(workspace_id, contact_id, after.as_ref(), ERASE_PAGE)
                .await?;
            erased += page.runs.len();
            // Owned runs: a future borrowing the page is not `Send` enough
            // for the API's handler.
            futures_util::stream::iter(page.runs.into_iter().map(|run| self.erase_run(run, now)))
                .buffer_unordered(ERASE_CONCURRENCY)
                .try_collect::<Vec<()>>()
                .await?;
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(erased),
            }
        }
    }

    async fn erase_run(&self, run: RunRecord, now: DateTime<Utc>) -> Result<(), PortError> {
        if run.status == RunStatus::Running {
            let reason = Some(CANCELLED_BY_ERASURE.to_owned());
            self.runs
                .finish_run(&run.run_id, RunStatus::Cancelled, reason, now)
                .await?;
        }
        self.runs.erase_run_data(&run.run_id, now).await
    }

    async fn apply(&self, workspace_id: &str, change: &ContactChange) -> Result<Contact, ContactError> {
        // Each request is its own change.
        let token = format!("api:{}", ulid::Ulid::new());
        match self.store.apply(workspace_id, change, &token, self.clock.now()).await? {
            Ok(applied) => Ok(applied.contact),
            Err(ContactRefusal::NotFound(id)) => Err(ContactError::NotFound(id)),
            Err(refusal) => Err(ContactError::Refused(refusal)),
        }
    }
}
