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

/// Where email and SMS steps send, and whom they may reach.
#[derive(Clone)]
pub struct Messaging {
    pub mailer: Arc<dyn Mailer>,
    pub texts: Arc<dyn TextSender>,
    pub policy: Arc<MessagingPolicy>,
}

/// Whom the stack's email and SMS steps may use and reach: a workflow's
/// templates come from event data, so without this any workspace could
/// send as any identity the account verified, or text any number on earth.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessagingPolicy {
    /// Sender addresses (`news@acme.example`) or whole domains
    /// (`@acme.example`); `*` allows any. Empty: no email is sent.
    pub senders: Vec<String>,
    /// Calling codes numbers may start with (`+44`, `+1`); `*` allows any.
    /// Empty: no text is sent.
    pub sms_countries: Vec<String>,
}

impl MessagingPolicy {
    /// Anyone, anywhere: for twins and `hookflow dev`, where nothing leaves.
    pub fn open() -> Self {
        Self {
            senders: vec!["*".into()],
            sms_countries: vec!["*".into()],
        }
    }

    /// The policy of comma-separated lists (the template's parameters).
    pub fn from_lists(senders: &str, sms_countries: &str) -> Self {
        let list = |text: &str| -> Vec<String> {
            text.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_ascii_lowercase)
                .collect()
        };
        Self {
            senders: list(senders),
            sms_countries: list(sms_countries),
        }
    }

    pub fn allows_sender(&self, from: &str) -> bool {
        let from = from.to_ascii_lowercase();
        let domain = from.rsplit_once('@').map(|(_, d)| format!("@{d}"));
        self.senders
            .iter()
            .any(|allowed| allowed == "*" || *allowed == from || Some(allowed) == domain.as_ref())
    }

    pub fn allows_number(&self, e164: &str) -> bool {
        self.sms_countries
            .iter()
            .any(|code| code == "*" || (code.starts_with('+') && e164.starts_with(code.as_str())))
    }
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

    /// The twin as both services, reaching anyone (nothing leaves it).
    pub fn messaging(self: &Arc<Self>) -> Messaging {
        Messaging {
            mailer: self.clone(),
            texts: self.clone(),
            policy: Arc::new(MessagingPolicy::open()),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_allows_listed_senders_domains_and_calling_codes_only() {
        let policy = MessagingPolicy::from_lists("news@acme.example, @Loyal.example", "+44,+1");
        assert!(policy.allows_sender("News@Acme.example"));
        assert!(policy.allows_sender("any@loyal.example"));
        assert!(!policy.allows_sender("ceo@acme.example"));
        assert!(!policy.allows_sender("x@notloyal.example"));
        assert!(policy.allows_number("+447700900123") && policy.allows_number("+15550100"));
        assert!(!policy.allows_number("+88212345678"));
        let closed = MessagingPolicy::from_lists("", "");
        assert!(!closed.allows_sender("news@acme.example") && !closed.allows_number("+447700900123"));
    }
}
