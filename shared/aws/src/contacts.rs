//! Contacts, in the workflows table. Every key starts with
//! `CONTACTS#<ws>`, so one IAM `dynamodb:LeadingKeys` pattern covers them:
//!
//! | pk | sk | holds |
//! |---|---|---|
//! | `CONTACTS#<ws>` | `C#<id>` | the contact (listing: one Query, in id order) |
//! | `CONTACTS#<ws>` | `X#<id>#<token>` | what one change did, TTL `expires_at` |
//! | `CONTACTS#<ws>#EMAIL#<email>` | `EMAIL` | the email's contact (unique, lower case) |
//! | `CONTACTS#<ws>#EXT#<external id>` | `EXT` | the external id's contact |
//! | `CONTACTS#<ws>#TAG#<tag>` | `<id>` | a tag's members, for export without a scan |
//! | `CONTACTS#<ws>#LIST#<list>` | `<id>` | a list's members |
//!
//! A change is one transaction: the contact (conditional on the revision
//! it was read at), its outcome (conditional on the token being new), and
//! the index entries it moves (an email or external id conditional on
//! being free or the contact's own).

use std::collections::{BTreeSet, HashMap};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, KeysAndAttributes, Put, TransactWriteItem};
use chrono::{DateTime, Utc};
use hookflow_core::contacts::{
    apply_change, normal_email, Applied, Contact, ContactChange, ContactKey, ContactPage, ContactQuery, ContactRefusal,
    ContactStore, CHANGE_MEMORY,
};
use hookflow_core::ports::{PortError, PortResult};
use serde::{Deserialize, Serialize};

use crate::dynamo::{from_item, get_item, query_pages, s, to_item, transact_racing, Item, NOT_EXISTS};
use crate::error::{decode_error, port_error};

/// How often a change is tried again when another change of the same
/// contact won the race for its revision.
const MAX_WRITE_RACES: usize = 8;

#[derive(Clone)]
pub struct DynamoContacts {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

#[derive(Serialize, Deserialize)]
struct ContactItem {
    pk: String,
    sk: String,
    revision: u64,
    contact: String,
}

#[derive(Serialize, Deserialize)]
struct ChangeItem {
    pk: String,
    sk: String,
    applied: String,
    expires_at: i64,
}

#[derive(Serialize, Deserialize)]
struct IndexItem {
    pk: String,
    sk: String,
    contact_id: String,
}

fn partition(ws: &str) -> String {
    format!("CONTACTS#{ws}")
}

fn contact_key(ws: &str, id: &str) -> (String, String) {
    (partition(ws), format!("C#{id}"))
}

/// The outcome of a change. The contact id is escaped (`%`, `#`), so the
/// prefix of one contact's outcomes is never the prefix of another's
/// (`c1#` against a contact called `c1#x`).
fn change_key(ws: &str, id: &str, token: &str) -> (String, String) {
    (partition(ws), format!("{}{token}", changes_prefix(id)))
}

fn changes_prefix(id: &str) -> String {
    format!("X#{}#", crate::dynamo::key_part(id))
}

fn email_key(ws: &str, email: &str) -> (String, String) {
    (
        format!("CONTACTS#{ws}#EMAIL#{}", normal_email(email)),
        "EMAIL".to_owned(),
    )
}

fn external_key(ws: &str, external_id: &str) -> (String, String) {
    (format!("CONTACTS#{ws}#EXT#{external_id}"), "EXT".to_owned())
}

fn tag_key(ws: &str, tag: &str, id: &str) -> (String, String) {
    (format!("CONTACTS#{ws}#TAG#{tag}"), id.to_owned())
}

fn list_key(ws: &str, list: &str, id: &str) -> (String, String) {
    (format!("CONTACTS#{ws}#LIST#{list}"), id.to_owned())
}

fn decode_contact(operation: &'static str, item: Item) -> PortResult<Contact> {
    let stored: ContactItem = from_item(operation, item)?;
    serde_json::from_str(&stored.contact).map_err(|e| decode_error(operation, e))
}

fn build_error(operation: &'static str) -> impl Fn(aws_sdk_dynamodb::error::BuildError) -> PortError {
    move |e| PortError::terminal(operation, e.to_string())
}

/// The writes of one change, built up item by item.
struct Writes<'a> {
    table: &'a str,
    items: Vec<TransactWriteItem>,
}

impl Writes<'_> {
    fn put(&mut self, item: Item, condition: &str, values: &[(&str, AttributeValue)]) -> PortResult<()> {
        let mut put = Put::builder()
            .table_name(self.table)
            .set_item(Some(item))
            .condition_expression(condition);
        for (name, value) in values {
            put = put.expression_attribute_values(*name, value.clone());
        }
        let put = put.build().map_err(build_error("apply_contact_change"))?;
        self.items.push(TransactWriteItem::builder().put(put).build());
        Ok(())
    }

    fn delete(&mut self, (pk, sk): (String, String), owner: &str) -> PortResult<()> {
        let delete = Delete::builder()
            .table_name(self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .condition_expression("attribute_not_exists(pk) OR contact_id = :id")
            .expression_attribute_values(":id", s(owner))
            .build()
            .map_err(build_error("apply_contact_change"))?;
        self.items.push(TransactWriteItem::builder().delete(delete).build());
        Ok(())
    }

    fn index(&mut self, (pk, sk): (String, String), owner: &str) -> PortResult<()> {
        let item = to_item(
            "apply_contact_change",
            &IndexItem {
                pk,
                sk,
                contact_id: owner.to_owned(),
            },
        )?;
        self.put(
            item,
            "attribute_not_exists(pk) OR contact_id = :id",
            &[(":id", s(owner))],
        )
    }

    /// Moves the entries of `key` from the values in `before` to those in `after`.
    fn move_entries(
        &mut self,
        before: &BTreeSet<String>,
        after: &BTreeSet<String>,
        key: impl Fn(&str) -> (String, String),
        owner: &str,
    ) -> PortResult<()> {
        for added in after.difference(before) {
            self.index(key(added), owner)?;
        }
        for removed in before.difference(after) {
            self.delete(key(removed), owner)?;
        }
        Ok(())
    }
}

fn one(value: &Option<String>) -> BTreeSet<String> {
    value.iter().cloned().collect()
}

impl DynamoContacts {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    async fn get(&self, operation: &'static str, (pk, sk): (String, String)) -> PortResult<Option<Item>> {
        get_item(&self.client, &self.table, operation, pk, sk).await
    }

    async fn stored_change(&self, ws: &str, id: &str, token: &str) -> PortResult<Option<Applied>> {
        let Some(item) = self.get("apply_contact_change", change_key(ws, id, token)).await? else {
            return Ok(None);
        };
        let stored: ChangeItem = from_item("apply_contact_change", item)?;
        serde_json::from_str(&stored.applied)
            .map(Some)
            .map_err(|e| decode_error("apply_contact_change", e))
    }

    /// The contact an email or external id index entry names, if another's.
    async fn owner_other_than(&self, key: (String, String), id: &str) -> PortResult<Option<String>> {
        let Some(item) = self.get("apply_contact_change", key).await? else {
            return Ok(None);
        };
        let entry: IndexItem = from_item("apply_contact_change", item)?;
        Ok((entry.contact_id != id).then_some(entry.contact_id))
    }

    async fn identity_taken(&self, ws: &str, contact: &Contact) -> PortResult<Option<ContactRefusal>> {
        if let Some(email) = &contact.email {
            if let Some(owner) = self.owner_other_than(email_key(ws, email), &contact.id).await? {
                return Ok(Some(ContactRefusal::EmailTaken {
                    email: email.clone(),
                    owner,
                }));
            }
        }
        if let Some(external_id) = &contact.external_id {
            if let Some(owner) = self
                .owner_other_than(external_key(ws, external_id), &contact.id)
                .await?
            {
                return Ok(Some(ContactRefusal::ExternalIdTaken {
                    external_id: external_id.clone(),
                    owner,
                }));
            }
        }
        Ok(None)
    }

    /// The transaction that writes `applied` over `stored`.
    fn change_writes(
        &self,
        ws: &str,
        stored: Option<&Contact>,
        applied: &Applied,
        token: &str,
        now: DateTime<Utc>,
    ) -> PortResult<Vec<TransactWriteItem>> {
        const OP: &str = "apply_contact_change";
        let contact = &applied.contact;
        let mut writes = Writes {
            table: &self.table,
            items: vec![],
        };
        let (pk, sk) = change_key(ws, &contact.id, token);
        let expires = now + chrono::Duration::from_std(CHANGE_MEMORY).unwrap_or(chrono::Duration::MAX);
        let applied_json = serde_json::to_string(applied).map_err(|e| PortError::terminal(OP, e.to_string()))?;
        // `expires_at` is the table's TTL attribute.
        let change = to_item(
            OP,
            &ChangeItem {
                pk,
                sk,
                applied: applied_json,
                expires_at: expires.timestamp(),
            },
        )?;
        writes.put(change, NOT_EXISTS, &[])?;
        if applied.effects.is_empty() {
            return Ok(writes.items);
        }
        let (pk, sk) = contact_key(ws, &contact.id);
        let json = serde_json::to_string(contact).map_err(|e| PortError::terminal(OP, e.to_string()))?;
        let item = to_item(
            OP,
            &ContactItem {
                pk,
                sk,
                revision: contact.revision,
                contact: json,
            },
        )?;
        match stored {
            Some(stored) => writes.put(
                item,
                "revision = :revision",
                &[(":revision", AttributeValue::N(stored.revision.to_string()))],
            )?,
            None => writes.put(item, NOT_EXISTS, &[])?,
        }
        let empty = Contact {
            email: None,
            external_id: None,
            tags: BTreeSet::new(),
            lists: BTreeSet::new(),
            ..contact.clone()
        };
        let before = stored.unwrap_or(&empty);
        let id = contact.id.as_str();
        let emails = |c: &Contact| c.email.as_deref().map(normal_email);
        writes.move_entries(
            &emails(before).into_iter().collect(),
            &emails(contact).into_iter().collect(),
            |email| email_key(ws, email),
            id,
        )?;
        writes.move_entries(
            &one(&before.external_id),
            &one(&contact.external_id),
            |ext| external_key(ws, ext),
            id,
        )?;
        writes.move_entries(&before.tags, &contact.tags, |tag| tag_key(ws, tag, id), id)?;
        writes.move_entries(&before.lists, &contact.lists, |list| list_key(ws, list, id), id)?;
        Ok(writes.items)
    }

    /// Reads contacts by id, in the order of `ids`; missing ones are skipped.
    async fn get_many(&self, ws: &str, ids: &[String]) -> PortResult<Vec<Contact>> {
        const OP: &str = "list_contacts";
        let mut found: HashMap<String, Contact> = HashMap::new();
        for batch in ids.chunks(100) {
            let mut keys = KeysAndAttributes::builder().consistent_read(true);
            for id in batch {
                let (pk, sk) = contact_key(ws, id);
                keys = keys.keys(HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))]));
            }
            let mut pending = Some(HashMap::from([(
                self.table.clone(),
                keys.build().map_err(build_error(OP))?,
            )]));
            while let Some(request) = pending.take().filter(|r| !r.is_empty()) {
                let answer = self
                    .client
                    .batch_get_item()
                    .set_request_items(Some(request))
                    .send()
                    .await
                    .map_err(|e| port_error(OP, e))?;
                for item in answer
                    .responses
                    .unwrap_or_default()
                    .remove(&self.table)
                    .unwrap_or_default()
                {
                    let contact = decode_contact(OP, item)?;
                    found.insert(contact.id.clone(), contact);
                }
                pending = answer.unprocessed_keys;
            }
        }
        Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
    }

    /// A page of a tag's or a list's members (`index_pk`), each also in
    /// `also_in_list` when given.
    async fn members_page(
        &self,
        ws: &str,
        index_pk: String,
        also_in_list: Option<&str>,
        query: &ContactQuery,
    ) -> PortResult<ContactPage> {
        let size = query.page_size();
        let mut contacts = vec![];
        let mut after = query.after.clone();
        loop {
            let mut request = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(index_pk.clone()))
                .consistent_read(true)
                .limit(i32::try_from(size + 1).unwrap_or(i32::MAX));
            if let Some(after) = &after {
                request = request
                    .exclusive_start_key("pk", s(index_pk.clone()))
                    .exclusive_start_key("sk", s(after.clone()));
            }
            let answer = request.send().await.map_err(|e| port_error("list_contacts", e))?;
            let ids: Vec<String> = answer
                .items
                .unwrap_or_default()
                .into_iter()
                .filter_map(|item| item.get("sk").and_then(|v| v.as_s().ok()).cloned())
                .collect();
            let Some(last) = ids.last().cloned() else { break };
            let found = self.get_many(ws, &ids).await?;
            contacts.extend(
                found
                    .into_iter()
                    .filter(|c| also_in_list.is_none_or(|list| c.lists.contains(list))),
            );
            if contacts.len() > size || answer.last_evaluated_key.is_none() {
                break;
            }
            after = Some(last);
        }
        Ok(ContactPage::from_lookahead(contacts, size))
    }

    async fn all_page(&self, ws: &str, query: &ContactQuery) -> PortResult<ContactPage> {
        let size = query.page_size();
        let mut start = query.after.as_ref().map(|after| contact_key(ws, after));
        let mut contacts = vec![];
        // A page of DynamoDB's may end early (1 MB): read on until one more
        // contact than the page holds tells whether another page follows.
        loop {
            let mut request = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":pk", s(partition(ws)))
                .expression_attribute_values(":prefix", s("C#"))
                .consistent_read(true)
                .limit(i32::try_from(size + 1 - contacts.len()).unwrap_or(i32::MAX));
            if let Some((pk, sk)) = start.take() {
                request = request
                    .exclusive_start_key("pk", s(pk))
                    .exclusive_start_key("sk", s(sk));
            }
            let answer = request.send().await.map_err(|e| port_error("list_contacts", e))?;
            for item in answer.items.unwrap_or_default() {
                contacts.push(decode_contact("list_contacts", item)?);
            }
            match answer.last_evaluated_key {
                Some(key) if contacts.len() <= size && !key.is_empty() => {
                    let field = |name: &str| key.get(name).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
                    start = Some((field("pk"), field("sk")));
                }
                _ => break,
            }
        }
        Ok(ContactPage::from_lookahead(contacts, size))
    }
}

#[async_trait]
impl ContactStore for DynamoContacts {
    async fn get_contact(&self, workspace_id: &str, contact_id: &str) -> PortResult<Option<Contact>> {
        self.get("get_contact", contact_key(workspace_id, contact_id))
            .await?
            .map(|item| decode_contact("get_contact", item))
            .transpose()
    }

    async fn find_contact(&self, workspace_id: &str, key: &ContactKey) -> PortResult<Option<Contact>> {
        let index = match key {
            ContactKey::Email(email) => email_key(workspace_id, email),
            ContactKey::ExternalId(id) => external_key(workspace_id, id),
        };
        let Some(item) = self.get("find_contact", index).await? else {
            return Ok(None);
        };
        let entry: IndexItem = from_item("find_contact", item)?;
        self.get_contact(workspace_id, &entry.contact_id).await
    }

    async fn apply(
        &self,
        workspace_id: &str,
        change: &ContactChange,
        token: &str,
        now: DateTime<Utc>,
    ) -> PortResult<Result<Applied, ContactRefusal>> {
        for _ in 0..MAX_WRITE_RACES {
            if let Some(applied) = self.stored_change(workspace_id, &change.contact_id, token).await? {
                return Ok(Ok(applied));
            }
            let stored = self.get_contact(workspace_id, &change.contact_id).await?;
            let applied = match apply_change(workspace_id, stored.as_ref(), change, now) {
                Ok(applied) => applied,
                Err(refusal) => return Ok(Err(refusal)),
            };
            if let Some(refusal) = self.identity_taken(workspace_id, &applied.contact).await? {
                return Ok(Err(refusal));
            }
            let writes = self.change_writes(workspace_id, stored.as_ref(), &applied, token, now)?;
            if transact_racing(&self.client, "apply_contact_change", writes).await? {
                return Ok(Ok(applied));
            }
            // A condition failed or a concurrent transaction touched the
            // same items: another change of the contact, a repeat of this
            // one, or an email taken meanwhile. Read again.
        }
        Err(PortError::retryable(
            "apply_contact_change",
            format!(
                "contact {} changed under {MAX_WRITE_RACES} attempts in a row",
                change.contact_id
            ),
        ))
    }

    async fn list_contacts(&self, workspace_id: &str, query: &ContactQuery) -> PortResult<ContactPage> {
        match (&query.tag, &query.list) {
            (Some(tag), list) => {
                let (pk, _) = tag_key(workspace_id, tag, "");
                self.members_page(workspace_id, pk, list.as_deref(), query).await
            }
            (None, Some(list)) => {
                let (pk, _) = list_key(workspace_id, list, "");
                self.members_page(workspace_id, pk, None, query).await
            }
            (None, None) => self.all_page(workspace_id, query).await,
        }
    }

    async fn erase_contact(&self, workspace_id: &str, contact_id: &str) -> PortResult<bool> {
        const OP: &str = "erase_contact";
        let Some(contact) = self.get_contact(workspace_id, contact_id).await? else {
            return Ok(false);
        };
        let mut keys = vec![];
        keys.extend(contact.email.iter().map(|email| email_key(workspace_id, email)));
        keys.extend(contact.external_id.iter().map(|ext| external_key(workspace_id, ext)));
        keys.extend(contact.tags.iter().map(|tag| tag_key(workspace_id, tag, contact_id)));
        keys.extend(
            contact
                .lists
                .iter()
                .map(|list| list_key(workspace_id, list, contact_id)),
        );
        let changes = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(partition(workspace_id)))
            .expression_attribute_values(":prefix", s(changes_prefix(contact_id)))
            .projection_expression("pk, sk")
            .consistent_read(true);
        query_pages(OP, changes, |item| {
            let field = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
            keys.push((field("pk"), field("sk")));
            Ok(true)
        })
        .await?;
        // The contact goes last: an erasure cut off half way is found and
        // finished by the next one.
        keys.push(contact_key(workspace_id, contact_id));
        for (pk, sk) in keys {
            self.client
                .delete_item()
                .table_name(&self.table)
                .key("pk", s(pk))
                .key("sk", s(sk))
                .send()
                .await
                .map_err(|e| port_error(OP, e))?;
        }
        Ok(true)
    }
}
