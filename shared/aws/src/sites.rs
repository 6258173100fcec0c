//! Sites' SSO settings, in the workflows table: `SITE#<site id>`, `SSO`.
//! The item carries its workspace, and a write is conditional on the site
//! being unclaimed or already the writer's; so is its deletion, which frees
//! the site.

use async_trait::async_trait;
use hookflow_core::ports::{PortError, PortResult};
use hookflow_core::sso::{SiteStore, SsoSettings};
use serde::{Deserialize, Serialize};

use crate::dynamo::{from_item, get_item, put_if, s, to_item, unless_condition_failed};
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
    workspace_id: String,
    settings: String,
}

fn key(site_id: &str) -> (String, String) {
    (format!("SITE#{site_id}"), "SSO".to_owned())
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
                settings: json,
            },
        )?;
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk) OR workspace_id = :ws")
            .expression_attribute_values(":ws", s(&settings.workspace_id));
        put_if(OP, put).await
    }

    async fn get_sso(&self, site_id: &str) -> PortResult<Option<SsoSettings>> {
        let (pk, sk) = key(site_id);
        let Some(item) = get_item(&self.client, &self.table, "get_sso", pk, sk).await? else {
            return Ok(None);
        };
        let stored: SiteItem = from_item("get_sso", item)?;
        serde_json::from_str(&stored.settings)
            .map(Some)
            .map_err(|e| decode_error("get_sso", e))
    }

    async fn release_sso(&self, workspace_id: &str, site_id: &str) -> PortResult<bool> {
        let (pk, sk) = key(site_id);
        let delete = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .condition_expression("workspace_id = :ws")
            .expression_attribute_values(":ws", s(workspace_id))
            .send()
            .await;
        Ok(unless_condition_failed("release_sso", delete)?.is_some())
    }
}
