//! Email through Amazon SES v2 (`SendEmail`) and text messages through
//! Amazon SNS (`Publish` to a phone number). Neither takes a client token:
//! the step's claim and record make a message go out once per (run, step).

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_sesv2::error::ProvideErrorMetadata;
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message, MessageTag};
use aws_sdk_sns::types::MessageAttributeValue;
use aws_smithy_runtime_api::client::result::SdkError;
use hookflow_core::messaging::{Email, Mailer, Messaging, MessagingPolicy, SendError, Sms, SmsType, TextSender};
use hookflow_core::retry::RetryOn;

use crate::LazyClient;

/// Email and SMS on the stack's account, to whom `policy` allows.
pub fn aws_messaging(
    ses: impl Into<LazyClient<aws_sdk_sesv2::Client>>,
    sns: impl Into<LazyClient<aws_sdk_sns::Client>>,
    policy: MessagingPolicy,
) -> Messaging {
    Messaging {
        mailer: Arc::new(SesMailer { client: ses.into() }),
        texts: Arc::new(SnsTexts { client: sns.into() }),
        policy: Arc::new(policy),
    }
}

/// The template's `EmailSenders` and `SmsCountries` parameters.
pub const EMAIL_SENDERS: &str = "HOOKFLOW_EMAIL_SENDERS";
pub const SMS_COUNTRIES: &str = "HOOKFLOW_SMS_COUNTRIES";

/// The policy the environment sets: nobody when unset.
pub fn messaging_policy_from_env() -> MessagingPolicy {
    let read = |name: &str| std::env::var(name).unwrap_or_default();
    MessagingPolicy::from_lists(&read(EMAIL_SENDERS), &read(SMS_COUNTRIES))
}

/// Throttling and the service's own faults are retried, with the class the
/// retry policy knows; a refusal of the message (an unverified sender, a
/// bad number, a paused account) is not.
fn send_error<E, R>(service: &str, err: SdkError<E, R>) -> SendError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let message = format!("{service}: {}", aws_sdk_sesv2::error::DisplayErrorContext(&err));
    let retry = match &err {
        SdkError::TimeoutError(_) => Some(RetryOn::Timeout),
        SdkError::DispatchFailure(_) => Some(RetryOn::Network),
        SdkError::ResponseError(_) => Some(RetryOn::ServerError),
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or_default();
            if ["TooManyRequests", "Throttl", "LimitExceeded"]
                .iter()
                .any(|c| code.contains(c))
            {
                Some(RetryOn::TooManyRequests)
            } else if ["InternalFailure", "InternalError", "ServiceUnavailable"]
                .iter()
                .any(|c| code.contains(c))
            {
                Some(RetryOn::ServerError)
            } else {
                None
            }
        }
        _ => None,
    };
    SendError { message, retry }
}

struct SesMailer {
    client: LazyClient<aws_sdk_sesv2::Client>,
}

fn content(text: &str) -> Result<Content, SendError> {
    Content::builder()
        .data(text)
        .charset("UTF-8")
        .build()
        .map_err(|e| SendError::terminal(e.to_string()))
}

/// SES tag values take letters, digits, `_`, `-`, `.` and `@`.
fn tag_value(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_-.@".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[async_trait]
impl Mailer for SesMailer {
    async fn send_email(&self, email: &Email) -> Result<String, SendError> {
        let body = Body::builder()
            .set_text(email.text.as_deref().map(content).transpose()?)
            .set_html(email.html.as_deref().map(content).transpose()?)
            .build();
        let message = Message::builder().subject(content(&email.subject)?).body(body).build();
        let tag = MessageTag::builder()
            .name("hookflow_step")
            .value(tag_value(&email.idempotency_key))
            .build()
            .map_err(|e| SendError::terminal(e.to_string()))?;
        let sent = self
            .client
            .send_email()
            .from_email_address(&email.from)
            .destination(Destination::builder().set_to_addresses(Some(email.to.clone())).build())
            .set_reply_to_addresses(email.reply_to.clone().map(|address| vec![address]))
            .content(EmailContent::builder().simple(message).build())
            .email_tags(tag)
            .send()
            .await
            .map_err(|err| send_error("SES", err))?;
        Ok(sent.message_id().unwrap_or_default().to_owned())
    }
}

struct SnsTexts {
    client: LazyClient<aws_sdk_sns::Client>,
}

fn string_attribute(value: &str) -> Result<MessageAttributeValue, SendError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| SendError::terminal(e.to_string()))
}

#[async_trait]
impl TextSender for SnsTexts {
    async fn send_sms(&self, sms: &Sms) -> Result<String, SendError> {
        let kind = match sms.sms_type {
            SmsType::Transactional => "Transactional",
            SmsType::Promotional => "Promotional",
        };
        let mut publish = self
            .client
            .publish()
            .phone_number(&sms.phone_number)
            .message(&sms.message)
            .message_attributes("AWS.SNS.SMS.SMSType", string_attribute(kind)?);
        if let Some(sender) = &sms.sender_id {
            publish = publish.message_attributes("AWS.SNS.SMS.SenderID", string_attribute(sender)?);
        }
        let sent = publish.send().await.map_err(|err| send_error("SNS", err))?;
        Ok(sent.message_id().unwrap_or_default().to_owned())
    }
}
