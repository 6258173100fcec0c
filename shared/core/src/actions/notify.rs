//! `SendEmail` and `SendSms`: a templated email through the `Mailer` port
//! (Amazon SES v2), a templated text through `TextSender` (Amazon SNS).
//! Values inserted into `html` are HTML-escaped. Each message is sent once
//! per (run, step) by the step's claim and record; neither service takes a
//! client token, so the one window of the guarantees can send it twice.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{ActionCall, ActionKind, DryCall, Failure, FailureClass, Outcome, Performed, Rehearsal, StepAction};
use crate::messaging::{is_e164, is_email_address, Email, SendError, Sms, SmsType};
use crate::template::{self, TemplateError};

/// The most recipients one step sends to (SES takes 50 per message).
pub const MAX_RECIPIENTS: usize = 50;
/// The longest text message (SNS splits over 140 bytes, up to 1,600).
pub const MAX_SMS_CHARS: usize = 1600;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendEmail {
    /// A verified SES identity (template).
    pub from: String,
    /// Recipients (templates), at most 50.
    pub to: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    pub subject: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Every value inserted here is HTML-escaped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendSms {
    /// E.164 after rendering (`+447700900123`).
    pub phone_number: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_id: Option<String>,
    #[serde(default)]
    pub sms_type: SmsType,
}

fn refused(err: SendError) -> Outcome {
    Outcome::Failed(Failure {
        class: err.retry.map_or(FailureClass::Terminal, FailureClass::Retryable),
        ..Failure::terminal(err.message)
    })
}

fn render_optional(text: Option<&String>, context: &Value, html: bool) -> Result<Option<String>, TemplateError> {
    text.map(|t| {
        if html {
            template::render_html(t, context)
        } else {
            template::render_text(t, context)
        }
    })
    .transpose()
}

impl SendEmail {
    fn render(&self, context: &Value, idempotency_key: String) -> Result<Email, TemplateError> {
        let address = |text: &str| -> Result<String, TemplateError> {
            let rendered = template::render_text(text, context)?.trim().to_owned();
            if is_email_address(&rendered) {
                Ok(rendered)
            } else {
                Err(TemplateError::Render(format!("{rendered:?} is not an email address")))
            }
        };
        let to = self.to.iter().map(|t| address(t)).collect::<Result<Vec<_>, _>>()?;
        Ok(Email {
            from: address(&self.from)?,
            to,
            reply_to: self.reply_to.as_deref().map(address).transpose()?,
            subject: template::render_text(&self.subject, context)?.replace(['\r', '\n'], " "),
            text: render_optional(self.text.as_ref(), context, false)?,
            html: render_optional(self.html.as_ref(), context, true)?,
            idempotency_key,
        })
    }
}

#[async_trait::async_trait]
impl StepAction for SendEmail {
    fn kind(&self) -> ActionKind {
        ActionKind::SendEmail
    }

    fn has_side_effects(&self) -> bool {
        true
    }

    fn templates(&self, out: &mut Vec<(String, String)>) {
        out.push(("from".into(), self.from.clone()));
        for (i, to) in self.to.iter().enumerate() {
            out.push((format!("to[{i}]"), to.clone()));
        }
        for (field, text) in [("reply_to", &self.reply_to), ("text", &self.text), ("html", &self.html)] {
            if let Some(text) = text {
                out.push((field.into(), text.clone()));
            }
        }
        out.push(("subject".into(), self.subject.clone()));
    }

    fn problems(&self) -> Vec<(String, String)> {
        let mut out = vec![];
        if self.to.is_empty() || self.to.len() > MAX_RECIPIENTS {
            out.push(("to".into(), format!("name 1 to {MAX_RECIPIENTS} recipients")));
        }
        if self.text.is_none() && self.html.is_none() {
            out.push(("text".into(), "give a text or an html body, or both".into()));
        }
        if self.subject.trim().is_empty() {
            out.push(("subject".into(), "is required".into()));
        }
        if !template::is_templated(&self.from) && !is_email_address(&self.from) {
            out.push((
                "from".into(),
                "must be an email address (a verified SES identity)".into(),
            ));
        }
        out
    }

    async fn perform(&self, call: ActionCall<'_>) -> Performed {
        let email = match self.render(call.context, call.idempotency_key()) {
            Ok(email) => email,
            Err(err) => return Outcome::Failed(Failure::terminal(err)).into(),
        };
        if !call.ports.messaging.policy.allows_sender(&email.from) {
            return Outcome::Failed(Failure::terminal(format!(
                "this stack may not send as {}: add it, or @its-domain, to the EmailSenders parameter",
                email.from
            )))
            .into();
        }
        let request = serde_json::to_value(json!({"to": email.to, "subject": email.subject})).ok();
        let outcome = match call.ports.messaging.mailer.send_email(&email).await {
            Ok(message_id) => call.succeeded(json!({"message_id": message_id, "to": email.to})),
            Err(err) => refused(err),
        };
        Performed { outcome, request }
    }

    fn rehearse(&self, call: DryCall<'_>) -> Rehearsal {
        match self.render(call.context, crate::run::idempotency_key(call.run_id, call.step_id)) {
            Ok(email) => Rehearsal::Rendered {
                request: None,
                output: json!({"would_send": email}),
            },
            Err(err) => Rehearsal::Failed(err.to_string()),
        }
    }
}

impl SendSms {
    fn render(&self, context: &Value, idempotency_key: String) -> Result<Sms, TemplateError> {
        let phone_number: String = template::render_text(&self.phone_number, context)?
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '(' | ')'))
            .collect();
        if !is_e164(&phone_number) {
            return Err(TemplateError::Render(format!(
                "{phone_number:?} is not an E.164 phone number (+ and 8 to 15 digits)"
            )));
        }
        let message = template::render_text(&self.message, context)?;
        if message.trim().is_empty() || message.chars().count() > MAX_SMS_CHARS {
            return Err(TemplateError::Render(format!(
                "the message must have 1 to {MAX_SMS_CHARS} characters"
            )));
        }
        Ok(Sms {
            phone_number,
            message,
            sender_id: self.sender_id.clone(),
            sms_type: self.sms_type,
            idempotency_key,
        })
    }
}

#[async_trait::async_trait]
impl StepAction for SendSms {
    fn kind(&self) -> ActionKind {
        ActionKind::SendSms
    }

    fn has_side_effects(&self) -> bool {
        true
    }

    fn templates(&self, out: &mut Vec<(String, String)>) {
        out.push(("phone_number".into(), self.phone_number.clone()));
        out.push(("message".into(), self.message.clone()));
    }

    fn problems(&self) -> Vec<(String, String)> {
        let mut out = vec![];
        let sender_ok = |id: &str| (1..=11).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric());
        if self.sender_id.as_deref().is_some_and(|id| !sender_ok(id)) {
            out.push(("sender_id".into(), "1 to 11 letters and digits".into()));
        }
        if !template::is_templated(&self.phone_number) && !is_e164(&self.phone_number) {
            out.push(("phone_number".into(), "must be E.164: + and 8 to 15 digits".into()));
        }
        out
    }

    async fn perform(&self, call: ActionCall<'_>) -> Performed {
        let sms = match self.render(call.context, call.idempotency_key()) {
            Ok(sms) => sms,
            Err(err) => return Outcome::Failed(Failure::terminal(err)).into(),
        };
        if !call.ports.messaging.policy.allows_number(&sms.phone_number) {
            return Outcome::Failed(Failure::terminal(format!(
                "this stack may not text {}: add its calling code to the SmsCountries parameter",
                sms.phone_number
            )))
            .into();
        }
        let request = Some(json!({"phone_number": sms.phone_number}));
        let outcome = match call.ports.messaging.texts.send_sms(&sms).await {
            Ok(message_id) => call.succeeded(json!({"message_id": message_id, "phone_number": sms.phone_number})),
            Err(err) => refused(err),
        };
        Performed { outcome, request }
    }

    fn rehearse(&self, call: DryCall<'_>) -> Rehearsal {
        match self.render(call.context, crate::run::idempotency_key(call.run_id, call.step_id)) {
            Ok(sms) => Rehearsal::Rendered {
                request: None,
                output: json!({"would_send": sms}),
            },
            Err(err) => Rehearsal::Failed(err.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_inserted_into_html_are_escaped_and_text_is_left_alone() {
        let step: SendEmail = serde_json::from_value(json!({"from": "news@example.com", "to": ["{{ contact.email }}"],
            "subject": "Hi {{ contact.first_name }}\r\nBcc: x@evil.test", "text": "Hi {{ contact.first_name }}",
            "html": "<p>Hi {{ contact.first_name }}</p>"}))
        .unwrap();
        let context = json!({"contact": {"email": "ana@example.com", "first_name": "<script>alert('x')</script>"}});
        let email = step.render(&context, "r:s".into()).unwrap();
        assert_eq!(
            email.html.as_deref(),
            Some("<p>Hi &lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;</p>")
        );
        assert_eq!(email.text.as_deref(), Some("Hi <script>alert('x')</script>"));
        assert!(
            !email.subject.contains('\n'),
            "a subject cannot add headers: {}",
            email.subject
        );
    }

    #[test]
    fn phone_numbers_are_normalised_to_e164_or_refused() {
        let step: SendSms =
            serde_json::from_value(json!({"phone_number": "{{ phone }}", "message": "Code {{ code }}"})).unwrap();
        let sms = step
            .render(&json!({"phone": "+44 7700-900123", "code": 42}), "r:s".into())
            .unwrap();
        assert_eq!(sms.phone_number, "+447700900123");
        assert!(step
            .render(&json!({"phone": "07700 900123", "code": 1}), "r:s".into())
            .is_err());
    }
}
