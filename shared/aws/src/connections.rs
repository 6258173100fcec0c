//! Connections: their metadata in the workflows table (`WS#<ws>`,
//! `CONN#<name>`), their credentials in AWS Secrets Manager, one secret per
//! reference, named `<prefix><workspace>/<ulid>` under the stack's prefix
//! (which the template's IAM policies are scoped to).

use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnValue;
use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use hookflow_core::connections::{Connection, ConnectionStore, Credentials, SecretVault, MAX_CONNECTIONS};
use hookflow_core::ports::{PortError, PortResult};
use serde::{Deserialize, Serialize};

use crate::dynamo::{
    from_item, get_item, put_if, s, to_item, unless_condition_failed, workspace_items, Item, NOT_EXISTS,
};
use crate::error::{decode_error, port_error};
use crate::lazy_client::LazyClient;

#[derive(Clone)]
pub struct DynamoConnections {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoConnections {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct ConnectionItem {
    pk: String,
    sk: String,
    /// Kept apart so a rotation's write is conditional on it.
    secret_ref: String,
    connection: String,
}

fn key(workspace_id: &str, name: &str) -> (String, String) {
    (format!("WS#{workspace_id}"), format!("CONN#{name}"))
}

fn item(operation: &'static str, connection: &Connection) -> PortResult<Item> {
    let (pk, sk) = key(&connection.workspace_id, &connection.name);
    let json = serde_json::to_string(connection).map_err(|e| PortError::terminal(operation, e.to_string()))?;
    to_item(
        operation,
        &ConnectionItem {
            pk,
            sk,
            secret_ref: connection.secret_ref.clone(),
            connection: json,
        },
    )
}

fn decode(operation: &'static str, item: Item) -> PortResult<Connection> {
    let stored: ConnectionItem = from_item(operation, item)?;
    serde_json::from_str(&stored.connection).map_err(|e| decode_error(operation, e))
}

#[async_trait]
impl ConnectionStore for DynamoConnections {
    async fn create(&self, connection: &Connection) -> PortResult<bool> {
        const OP: &str = "create_connection";
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item(OP, connection)?))
            .condition_expression(NOT_EXISTS);
        put_if(OP, put).await
    }

    async fn get(&self, workspace_id: &str, name: &str) -> PortResult<Option<Connection>> {
        const OP: &str = "get_connection";
        let (pk, sk) = key(workspace_id, name);
        get_item(&self.client, &self.table, OP, pk, sk)
            .await?
            .map(|item| decode(OP, item))
            .transpose()
    }

    async fn list(&self, workspace_id: &str) -> PortResult<Vec<Connection>> {
        const OP: &str = "list_connections";
        let mut all = workspace_items(&self.client, &self.table, OP, workspace_id, "CONN#", |item| {
            decode(OP, item)
        })
        .await?;
        all.truncate(MAX_CONNECTIONS);
        Ok(all)
    }

    async fn replace(&self, connection: &Connection, previous_ref: &str) -> PortResult<bool> {
        const OP: &str = "rotate_connection";
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item(OP, connection)?))
            .condition_expression("secret_ref = :previous")
            .expression_attribute_values(":previous", s(previous_ref));
        put_if(OP, put).await
    }

    async fn delete(&self, workspace_id: &str, name: &str) -> PortResult<Option<Connection>> {
        const OP: &str = "delete_connection";
        let (pk, sk) = key(workspace_id, name);
        let deleted = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .condition_expression("attribute_exists(pk)")
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        match unless_condition_failed(OP, deleted)? {
            Some(output) => output.attributes.map(|item| decode(OP, item)).transpose(),
            None => Ok(None),
        }
    }
}

/// Credentials in AWS Secrets Manager, as JSON secret strings.
#[derive(Clone)]
pub struct SecretsManagerVault {
    client: LazyClient<aws_sdk_secretsmanager::Client>,
    /// `hookflow/<stack>/`: every secret of the stack is under it.
    prefix: String,
}

impl SecretsManagerVault {
    pub fn new(client: impl Into<LazyClient<aws_sdk_secretsmanager::Client>>, prefix: impl Into<String>) -> Self {
        Self {
            client: client.into(),
            prefix: prefix.into(),
        }
    }

    /// The prefix of a stack's secrets.
    pub fn stack_prefix(stack_name: &str) -> String {
        format!("hookflow/{stack_name}/")
    }

    fn name(&self, secret_ref: &str) -> String {
        format!("{}{secret_ref}", self.prefix)
    }
}

#[async_trait]
impl SecretVault for SecretsManagerVault {
    async fn put(&self, secret_ref: &str, credentials: &Credentials) -> PortResult<()> {
        const OP: &str = "put_secret";
        let value = serde_json::to_string(credentials).map_err(|e| PortError::terminal(OP, e.to_string()))?;
        let created = self
            .client
            .create_secret()
            .name(self.name(secret_ref))
            .secret_string(&value)
            .description("Hookflow connection credentials")
            .send()
            .await;
        match created {
            Ok(_) => Ok(()),
            // A retried put after a lost answer: the same reference, so the same value.
            Err(err) if err.as_service_error().is_some_and(|e| e.is_resource_exists_exception()) => {
                self.client
                    .put_secret_value()
                    .secret_id(self.name(secret_ref))
                    .secret_string(value)
                    .send()
                    .await
                    .map_err(|e| port_error(OP, e))?;
                Ok(())
            }
            Err(err) => Err(port_error(OP, err)),
        }
    }

    async fn get(&self, secret_ref: &str) -> PortResult<Option<Credentials>> {
        const OP: &str = "get_secret";
        let got = self
            .client
            .get_secret_value()
            .secret_id(self.name(secret_ref))
            .send()
            .await;
        let output = match got {
            Ok(output) => output,
            // A secret being deleted (a rotation's old one) answers
            // InvalidRequest until it is gone: it is not there either.
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception() || e.is_invalid_request_exception()) =>
            {
                return Ok(None)
            }
            Err(err) => return Err(port_error(OP, err)),
        };
        let text = output
            .secret_string()
            .ok_or_else(|| PortError::terminal(OP, "the secret has no string value"))?;
        // The decode error would quote the value: say only that it failed.
        serde_json::from_str(text)
            .map(Some)
            .map_err(|_| PortError::terminal(OP, "the secret is not a JSON object of strings"))
    }

    async fn replace(&self, secret_ref: &str, credentials: &Credentials) -> PortResult<bool> {
        const OP: &str = "replace_secret";
        let value = serde_json::to_string(credentials).map_err(|e| PortError::terminal(OP, e.to_string()))?;
        // PutSecretValue never creates a secret: a deleted one stays deleted.
        let put = self
            .client
            .put_secret_value()
            .secret_id(self.name(secret_ref))
            .secret_string(value)
            .send()
            .await;
        match put {
            Ok(_) => Ok(true),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                Ok(false)
            }
            Err(err) => Err(port_error(OP, err)),
        }
    }

    async fn delete(&self, secret_ref: &str) -> PortResult<()> {
        const OP: &str = "delete_secret";
        let deleted = self
            .client
            .delete_secret()
            .secret_id(self.name(secret_ref))
            .force_delete_without_recovery(true)
            .send()
            .await;
        match deleted {
            Ok(_) => Ok(()),
            // Not there, or already being deleted.
            Err(err)
                if err.as_service_error().is_some_and(|e| {
                    matches!(e.code(), Some("ResourceNotFoundException" | "InvalidRequestException"))
                }) =>
            {
                Ok(())
            }
            Err(err) => Err(port_error(OP, err)),
        }
    }
}
