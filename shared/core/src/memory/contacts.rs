//! The contacts store's twin: the same promises as the DynamoDB adapter,
//! with the same indexes (email, external id, tag, list) kept as maps.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::contacts::{
    apply_change, normal_email, Applied, Contact, ContactChange, ContactKey, ContactPage, ContactQuery, ContactRefusal,
    ContactStore, CHANGE_MEMORY,
};
use crate::ports::PortResult;

type Ws = String;

#[derive(Default)]
struct ContactsData {
    contacts: BTreeMap<(Ws, String), Contact>,
    emails: HashMap<(Ws, String), String>,
    external_ids: HashMap<(Ws, String), String>,
    tags: BTreeMap<(Ws, String), BTreeSet<String>>,
    lists: BTreeMap<(Ws, String), BTreeSet<String>>,
    /// What each change did, by workspace, contact and token (as the
    /// DynamoDB adapter keeps them: an erasure takes a contact's).
    changes: BTreeMap<(Ws, String, String), (Applied, DateTime<Utc>)>,
    /// Changes by when they may be forgotten.
    changes_by_expiry: BTreeSet<(DateTime<Utc>, Ws, String, String)>,
}

#[derive(Default)]
pub struct MemoryContacts {
    data: Mutex<ContactsData>,
}

impl MemoryContacts {
    fn lock(&self) -> std::sync::MutexGuard<'_, ContactsData> {
        self.data.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl ContactsData {
    fn forget_changes_before(&mut self, now: DateTime<Utc>) {
        while let Some(first) = self.changes_by_expiry.first().cloned() {
            if first.0 > now {
                break;
            }
            self.changes_by_expiry.remove(&first);
            self.changes.remove(&(first.1, first.2, first.3));
        }
    }

    /// The refusal when `contact`'s email or external id is another's.
    fn identity_taken(&self, ws: &str, contact: &Contact) -> Option<ContactRefusal> {
        if let Some(email) = &contact.email {
            let owner = self.emails.get(&(ws.to_owned(), normal_email(email)));
            if let Some(owner) = owner.filter(|owner| **owner != contact.id) {
                return Some(ContactRefusal::EmailTaken {
                    email: email.clone(),
                    owner: owner.clone(),
                });
            }
        }
        if let Some(external_id) = &contact.external_id {
            let owner = self.external_ids.get(&(ws.to_owned(), external_id.clone()));
            if let Some(owner) = owner.filter(|owner| **owner != contact.id) {
                return Some(ContactRefusal::ExternalIdTaken {
                    external_id: external_id.clone(),
                    owner: owner.clone(),
                });
            }
        }
        None
    }

    /// Writes `contact` and moves its index entries from `before`.
    fn store(&mut self, ws: &str, before: Option<&Contact>, contact: Contact) {
        self.unindex(ws, before);
        let key = |value: &str| (ws.to_owned(), value.to_owned());
        if let Some(email) = &contact.email {
            self.emails.insert(key(&normal_email(email)), contact.id.clone());
        }
        if let Some(external_id) = &contact.external_id {
            self.external_ids.insert(key(external_id), contact.id.clone());
        }
        for tag in &contact.tags {
            self.tags.entry(key(tag)).or_default().insert(contact.id.clone());
        }
        for list in &contact.lists {
            self.lists.entry(key(list)).or_default().insert(contact.id.clone());
        }
        self.contacts.insert(key(&contact.id), contact);
    }

    fn unindex(&mut self, ws: &str, contact: Option<&Contact>) {
        let Some(contact) = contact else { return };
        let key = |value: &str| (ws.to_owned(), value.to_owned());
        if let Some(email) = &contact.email {
            self.emails.remove(&key(&normal_email(email)));
        }
        if let Some(external_id) = &contact.external_id {
            self.external_ids.remove(&key(external_id));
        }
        for tag in &contact.tags {
            if let Some(members) = self.tags.get_mut(&key(tag)) {
                members.remove(&contact.id);
            }
        }
        for list in &contact.lists {
            if let Some(members) = self.lists.get_mut(&key(list)) {
                members.remove(&contact.id);
            }
        }
    }

    /// A page of the contacts whose ids `ids` gives in order (from after
    /// the query's start), each also in the query's list when it names
    /// one: never more than a page is copied.
    fn page_of_ids<'a>(&self, ids: impl Iterator<Item = &'a String>, ws: &str, query: &ContactQuery) -> ContactPage {
        let size = query.page_size();
        let contacts: Vec<Contact> = ids
            .filter_map(|id| self.contacts.get(&(ws.to_owned(), id.clone())))
            .filter(|contact| query.list.as_ref().is_none_or(|list| contact.lists.contains(list)))
            .take(size + 1)
            .cloned()
            .collect();
        ContactPage::from_lookahead(contacts, size)
    }
}

/// The ids of `members` after `after`, in order.
fn ids_after<'a>(members: Option<&'a BTreeSet<String>>, after: &Option<String>) -> impl Iterator<Item = &'a String> {
    let start = match after {
        Some(after) => Bound::Excluded(after.clone()),
        None => Bound::Unbounded,
    };
    members
        .into_iter()
        .flat_map(move |ids| ids.range((start.clone(), Bound::Unbounded)))
}

#[async_trait]
impl ContactStore for MemoryContacts {
    async fn get_contact(&self, workspace_id: &str, contact_id: &str) -> PortResult<Option<Contact>> {
        Ok(self
            .lock()
            .contacts
            .get(&(workspace_id.to_owned(), contact_id.to_owned()))
            .cloned())
    }

    async fn find_contact(&self, workspace_id: &str, key: &ContactKey) -> PortResult<Option<Contact>> {
        let data = self.lock();
        let id = match key {
            ContactKey::Email(email) => data.emails.get(&(workspace_id.to_owned(), normal_email(email))),
            ContactKey::ExternalId(id) => data.external_ids.get(&(workspace_id.to_owned(), id.clone())),
        };
        Ok(id.and_then(|id| data.contacts.get(&(workspace_id.to_owned(), id.clone())).cloned()))
    }

    async fn apply(
        &self,
        workspace_id: &str,
        change: &ContactChange,
        token: &str,
        now: DateTime<Utc>,
    ) -> PortResult<Result<Applied, ContactRefusal>> {
        let mut data = self.lock();
        data.forget_changes_before(now);
        let token_key = (workspace_id.to_owned(), change.contact_id.clone(), token.to_owned());
        if let Some((applied, _)) = data.changes.get(&token_key) {
            return Ok(Ok(applied.clone()));
        }
        let stored = data
            .contacts
            .get(&(workspace_id.to_owned(), change.contact_id.clone()))
            .cloned();
        let applied = match apply_change(workspace_id, stored.as_ref(), change, now) {
            Ok(applied) => applied,
            Err(refusal) => return Ok(Err(refusal)),
        };
        if let Some(refusal) = data.identity_taken(workspace_id, &applied.contact) {
            return Ok(Err(refusal));
        }
        if !applied.effects.is_empty() {
            data.store(workspace_id, stored.as_ref(), applied.contact.clone());
        }
        let expires = now + chrono::Duration::from_std(CHANGE_MEMORY).unwrap_or(chrono::Duration::MAX);
        data.changes_by_expiry.insert((
            expires,
            workspace_id.to_owned(),
            change.contact_id.clone(),
            token.to_owned(),
        ));
        data.changes.insert(token_key, (applied.clone(), expires));
        Ok(Ok(applied))
    }

    async fn list_contacts(&self, workspace_id: &str, query: &ContactQuery) -> PortResult<ContactPage> {
        let data = self.lock();
        let key = |name: &str| (workspace_id.to_owned(), name.to_owned());
        let page = match (&query.tag, &query.list) {
            (Some(tag), _) => data.page_of_ids(ids_after(data.tags.get(&key(tag)), &query.after), workspace_id, query),
            (None, Some(list)) => {
                data.page_of_ids(ids_after(data.lists.get(&key(list)), &query.after), workspace_id, query)
            }
            (None, None) => {
                let start = match &query.after {
                    Some(after) => Bound::Excluded(key(after)),
                    None => Bound::Included(key("")),
                };
                let ids = data
                    .contacts
                    .range((start, Bound::Unbounded))
                    .take_while(|((ws, _), _)| ws == workspace_id)
                    .map(|((_, id), _)| id);
                data.page_of_ids(ids, workspace_id, query)
            }
        };
        Ok(page)
    }

    async fn erase_contact(&self, workspace_id: &str, contact_id: &str) -> PortResult<bool> {
        let mut data = self.lock();
        let Some(contact) = data.contacts.remove(&(workspace_id.to_owned(), contact_id.to_owned())) else {
            return Ok(false);
        };
        data.unindex(workspace_id, Some(&contact));
        let start = (workspace_id.to_owned(), contact_id.to_owned(), String::new());
        let erased: Vec<(Ws, String, String)> = data
            .changes
            .range(start..)
            .take_while(|((ws, id, _), _)| ws == workspace_id && id == contact_id)
            .map(|(key, _)| key.clone())
            .collect();
        for key in erased {
            if let Some((_, expires)) = data.changes.remove(&key) {
                data.changes_by_expiry.remove(&(expires, key.0, key.1, key.2));
            }
        }
        Ok(true)
    }
}

/// A site as the twin holds it: claimed with settings, or released.
enum Site {
    Claimed(crate::sso::SsoSettings),
    Released(crate::sso::SiteRelease),
}

/// Sites' SSO settings, by site id.
#[derive(Default)]
pub struct MemorySites {
    sites: Mutex<HashMap<String, Site>>,
}

#[async_trait]
impl crate::sso::SiteStore for MemorySites {
    async fn put_sso(&self, settings: &crate::sso::SsoSettings) -> PortResult<bool> {
        let mut sites = self.sites.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let may_claim = match sites.get(&settings.site_id) {
            None => true,
            Some(Site::Claimed(held)) => held.workspace_id == settings.workspace_id,
            Some(Site::Released(release)) => release.lets_claim(&settings.workspace_id, settings.updated_at),
        };
        if may_claim {
            sites.insert(settings.site_id.clone(), Site::Claimed(settings.clone()));
        }
        Ok(may_claim)
    }

    async fn get_sso(&self, site_id: &str) -> PortResult<Option<crate::sso::SsoSettings>> {
        let sites = self.sites.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(match sites.get(site_id) {
            Some(Site::Claimed(settings)) => Some(settings.clone()),
            _ => None,
        })
    }

    async fn release_sso(&self, release: &crate::sso::SiteRelease) -> PortResult<bool> {
        let mut sites = self.sites.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let holder = match sites.get(&release.site_id) {
            Some(Site::Claimed(held)) => &held.workspace_id,
            Some(Site::Released(earlier)) => &earlier.workspace_id,
            None => return Ok(false),
        };
        if *holder != release.workspace_id {
            return Ok(false);
        }
        sites.insert(release.site_id.clone(), Site::Released(release.clone()));
        Ok(true)
    }
}
