//! Email and SMS, as the `SendEmail` and `SendSms` actions send them: the
//! `Mailer` and `TextSender` ports (Amazon SES v2 and SNS in Lambda; the
//! built-in sink in `hookflow dev`; [`MemoryOutbox`] in tests). Neither
//! service takes a client token, so a message is sent once per (run, step)
//! by the step's claim and record alone: a crash between the send and its
//! record can send it twice.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::retry::RetryOn;

/// One email, rendered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Email {
    pub from: String,
    pub to: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    pub subject: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    /// `<run_id>:<step_id>`: carried as a tag where the service keeps
    /// tags, so a repeat can be told apart in its logs.
    pub idempotency_key: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmsType {
    /// Delivered with priority (one-time codes, alerts).
    #[default]
    Transactional,
    Promotional,
}

/// One text message, rendered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sms {
    /// E.164: `+` and 8 to 15 digits.
    pub phone_number: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_id: Option<String>,
    pub sms_type: SmsType,
    pub idempotency_key: String,
}

/// A refusal by the service: retryable (throttling, its own faults, the
/// network) with the class the retry policy knows, or terminal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SendError {
    pub message: String,
    pub retry: Option<RetryOn>,
}

impl SendError {
    pub fn terminal(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retry: None,
        }
    }

    pub fn retryable(retry: RetryOn, message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retry: Some(retry),
        }
    }
}

#[async_trait]
pub trait Mailer: Send + Sync {
    /// Sends one email; the service's message id.
    async fn send_email(&self, email: &Email) -> Result<String, SendError>;
}

#[async_trait]
pub trait TextSender: Send + Sync {
    /// Sends one text message; the service's message id.
    async fn send_sms(&self, sms: &Sms) -> Result<String, SendError>;
}

/// Where email and SMS steps send.
#[derive(Clone)]
pub struct Messaging {
    pub mailer: Arc<dyn Mailer>,
    pub texts: Arc<dyn TextSender>,
}

/// A message the twin was given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Sent {
    Email(Email),
    Sms(Sms),
}

impl Sent {
    pub fn idempotency_key(&self) -> &str {
        match self {
            Sent::Email(email) => &email.idempotency_key,
            Sent::Sms(sms) => &sms.idempotency_key,
        }
    }
}

/// The twin of both: keeps every message, in order, and answers ids
/// `outbox-<n>`.
#[derive(Default)]
pub struct MemoryOutbox {
    sent: Mutex<Vec<Sent>>,
}

impl MemoryOutbox {
    pub fn sent(&self) -> Vec<Sent> {
        self.lock().clone()
    }

    fn keep(&self, message: Sent) -> String {
        let mut sent = self.lock();
        sent.push(message);
        format!("outbox-{}", sent.len())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Sent>> {
        self.sent.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn messaging(self: &Arc<Self>) -> Messaging {
        Messaging {
            mailer: self.clone(),
            texts: self.clone(),
        }
    }
}

#[async_trait]
impl Mailer for MemoryOutbox {
    async fn send_email(&self, email: &Email) -> Result<String, SendError> {
        Ok(self.keep(Sent::Email(email.clone())))
    }
}

#[async_trait]
impl TextSender for MemoryOutbox {
    async fn send_sms(&self, sms: &Sms) -> Result<String, SendError> {
        Ok(self.keep(Sent::Sms(sms.clone())))
    }
}

/// `+` and 8 to 15 digits, the first not 0.
pub fn is_e164(number: &str) -> bool {
    number.strip_prefix('+').is_some_and(|digits| {
        (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0')
    })
}

/// A plausible email address: one `@`, something on both sides, no spaces
/// or angle brackets (SES checks the rest).
pub fn is_email_address(address: &str) -> bool {
    let Some((local, domain)) = address.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.contains('@')
        && !address
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '<' | '>' | ',' | ';'))
}
