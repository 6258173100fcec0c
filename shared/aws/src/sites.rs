//! Sites' SSO settings, in the workflows table: `SITE#<site id>`, `SSO`.
//! The item carries its workspace, and a write is conditional on the site
//! being unclaimed, already the writer's, or released in a way that lets the
//! writer claim it. A release replaces the settings with the release (who,
//! when, handed to whom), conditional on the releaser holding the site.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use hookflow_core::ports::{PortError, PortResult};
use hookflow_core::sso::{SiteRelease, SiteStore, SsoSettings, RELEASE_HOLD};
use serde::{Deserialize, Serialize};

use crate::dynamo::{from_item, get_item, put_if, s, to_item};
use crate::error::decode_error;

#[derive(Clone)]
pub struct DynamoSites {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoSites {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct SiteItem {
    pk: String,
    sk: String,
    /// The holder: the claiming workspace, or the releasing one.
    workspace_id: String,
    /// A claimed site's settings (JSON); absent once released.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    settings: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    released_at_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    handed_to: Option<String>,
}

fn key(site_id: &str) -> (String, String) {
    (format!("SITE#{site_id}"), "SSO".to_owned())
}

impl DynamoSites {
    async fn get_site(&self, operation: &'static str, site_id: &str) -> PortResult<Option<SiteItem>> {
        let (pk, sk) = key(site_id);
        get_item(&self.client, &self.table, operation, pk, sk)
            .await?
            .map(|item| from_item(operation, item))
            .transpose()
    }
}

#[async_trait]
impl SiteStore for DynamoSites {
    async fn put_sso(&self, settings: &SsoSettings) -> PortResult<bool> {
        const OP: &str = "put_sso";
        let (pk, sk) = key(&settings.site_id);
        let json = serde_json::to_string(settings).map_err(|e| PortError::terminal(OP, e.to_string()))?;
        let item = to_item(
            OP,
            &SiteItem {
                pk,
                sk,
                workspace_id: settings.workspace_id.clone(),
                settings: Some(json),
                released_at_ms: None,
                handed_to: None,
            },
        )?;
        // The rule of `SiteRelease::lets_claim`, in one conditional write.
        let hold_ended_by = (settings.updated_at - RELEASE_HOLD).timestamp_millis();
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(
                "attribute_not_exists(pk) OR workspace_id = :ws \
                 OR (attribute_exists(released_at_ms) AND (handed_to = :ws OR released_at_ms <= :hold_ended_by))",
            )
            .expression_attribute_values(":ws", s(&settings.workspace_id))
            .expression_attribute_values(":hold_ended_by", AttributeValue::N(hold_ended_by.to_string()));
        put_if(OP, put).await
    }

    async fn get_sso(&self, site_id: &str) -> PortResult<Option<SsoSettings>> {
        let Some(SiteItem {
            settings: Some(settings),
            ..
        }) = self.get_site("get_sso", site_id).await?
        else {
            return Ok(None);
        };
        serde_json::from_str(&settings)
            .map(Some)
            .map_err(|e| decode_error("get_sso", e))
    }

    async fn release_sso(&self, release: &SiteRelease) -> PortResult<bool> {
        const OP: &str = "release_sso";
        let (pk, sk) = key(&release.site_id);
        let item = to_item(
            OP,
            &SiteItem {
                pk,
                sk,
                workspace_id: release.workspace_id.clone(),
                settings: None,
                released_at_ms: Some(release.released_at.timestamp_millis()),
                handed_to: release.handed_to.clone(),
            },
        )?;
        // The holder is the claiming workspace, or the releasing one: either
        // way the same workspace may release (again).
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("workspace_id = :ws")
            .expression_attribute_values(":ws", s(&release.workspace_id));
        put_if(OP, put).await
    }
}
