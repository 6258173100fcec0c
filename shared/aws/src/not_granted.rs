//! The connections' vault, email and SMS for a function whose role is not
//! granted Secrets Manager, SES or SNS (the template grants them to the step
//! and api functions only). Building no client for them keeps three SDK
//! crates out of the other functions' packages and start-up; a call that
//! reaches one anyway fails terminally, naming what is missing, as the
//! role's AccessDenied would.

use async_trait::async_trait;
use hookflow_core::connections::{Credentials, SecretVault};
use hookflow_core::messaging::{Email, Mailer, SendError, Sms, TextSender};
use hookflow_core::ports::{PortError, PortResult};

#[derive(Debug, Clone, Copy)]
pub(crate) struct NotGranted;

impl NotGranted {
    fn vault_error(operation: &'static str) -> PortError {
        PortError::terminal(
            operation,
            "this function is not granted the connections' vault (only the step and api functions are)",
        )
    }

    fn send_error(service: &str) -> SendError {
        SendError::terminal(format!(
            "this function is not granted {service} (only the step function sends messages)"
        ))
    }
}

#[async_trait]
impl SecretVault for NotGranted {
    async fn put(&self, _: &str, _: &Credentials) -> PortResult<()> {
        Err(Self::vault_error("vault.put"))
    }

    async fn get(&self, _: &str) -> PortResult<Option<Credentials>> {
        Err(Self::vault_error("vault.get"))
    }

    async fn replace(&self, _: &str, _: &Credentials) -> PortResult<bool> {
        Err(Self::vault_error("vault.replace"))
    }

    async fn delete(&self, _: &str) -> PortResult<()> {
        Err(Self::vault_error("vault.delete"))
    }
}

#[async_trait]
impl Mailer for NotGranted {
    async fn send_email(&self, _: &Email) -> Result<String, SendError> {
        Err(Self::send_error("SES"))
    }
}

#[async_trait]
impl TextSender for NotGranted {
    async fn send_sms(&self, _: &Sms) -> Result<String, SendError> {
        Err(Self::send_error("SNS"))
    }
}
