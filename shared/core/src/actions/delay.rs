//! `Delay`: wait a number of seconds, or until an RFC 3339 time.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{ActionCall, ActionKind, DryCall, Failure, Outcome, Performed, Rehearsal, StepAction};
use crate::template::{self, TemplateError};

/// The longest wait we accept: a year.
pub const MAX_DELAY_S: f64 = 366.0 * 86_400.0;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delay {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
    /// An RFC 3339 timestamp, possibly a template (`{{ vars.send_at }}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DelayError {
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("`until` is not an RFC 3339 time: {0:?}")]
    BadTime(String),
    #[error("`until` is more than a year away: {0:?}")]
    TooFar(String),
}

impl Delay {
    /// When the wait that starts at `now` ends.
    pub fn resume_at(&self, now: DateTime<Utc>, context: &Value) -> Result<DateTime<Utc>, DelayError> {
        if let Some(until) = &self.until {
            let rendered = template::render_text(until, context)?;
            let at = DateTime::parse_from_rfc3339(rendered.trim())
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| DelayError::BadTime(rendered.clone()))?;
            if at > now + chrono::Duration::seconds(MAX_DELAY_S as i64) {
                return Err(DelayError::TooFar(rendered));
            }
            return Ok(at);
        }
        let seconds = self.seconds.unwrap_or(0.0).clamp(0.0, MAX_DELAY_S);
        Ok(now + chrono::Duration::milliseconds((seconds * 1000.0) as i64))
    }

    fn own_problems(&self) -> Vec<(String, String)> {
        let mut out = vec![];
        match (&self.seconds, &self.until) {
            (Some(_), Some(_)) | (None, None) => {
                out.push(("".into(), "a Delay needs exactly one of `seconds` or `until`".into()));
            }
            (Some(s), None) if !s.is_finite() || *s < 0.0 || *s > MAX_DELAY_S => {
                out.push(("seconds".into(), format!("must be between 0 and {MAX_DELAY_S}")));
            }
            (None, Some(until)) if !template::is_templated(until) && DateTime::parse_from_rfc3339(until).is_err() => {
                out.push(("until".into(), format!("not an RFC 3339 time: {until:?}")));
            }
            _ => {}
        }
        out
    }
}

#[async_trait::async_trait]
impl StepAction for Delay {
    fn kind(&self) -> ActionKind {
        ActionKind::Delay
    }

    /// A wait has no effect of its own: it is a queue hop, due later.
    fn has_side_effects(&self) -> bool {
        false
    }

    fn templates(&self, out: &mut Vec<(String, String)>) {
        if let Some(until) = &self.until {
            out.push(("until".into(), until.clone()));
        }
    }

    fn problems(&self) -> Vec<(String, String)> {
        self.own_problems()
    }

    async fn perform(&self, call: ActionCall<'_>) -> Performed {
        // A resumed wait keeps the due time it was given when it started.
        let due = match call.resume_at {
            Some(due) => Ok(due),
            None => self.resume_at(call.now, call.context),
        };
        match due {
            Ok(due) if due > call.now => Outcome::WaitUntil(due),
            Ok(due) => call.succeeded(json!({"resumed_at": due.to_rfc3339()})),
            Err(err) => Outcome::Failed(Failure::terminal(err)),
        }
        .into()
    }

    fn rehearse(&self, _call: DryCall<'_>) -> Rehearsal {
        Rehearsal::Skipped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn seconds_and_until() {
        let now = Utc::now();
        let d = Delay {
            seconds: Some(1.5),
            until: None,
        };
        assert_eq!(
            d.resume_at(now, &json!({})).unwrap(),
            now + chrono::Duration::milliseconds(1500)
        );
        let d = Delay {
            seconds: None,
            until: Some("{{ at }}".into()),
        };
        let tomorrow = (now + chrono::Duration::days(1)).to_rfc3339();
        let at = d.resume_at(now, &json!({ "at": tomorrow })).unwrap();
        assert_eq!(at.to_rfc3339(), tomorrow);
        assert!(matches!(
            d.resume_at(now, &json!({"at": "tomorrow"})),
            Err(DelayError::BadTime(_))
        ));
        assert!(matches!(
            d.resume_at(now, &json!({"at": "9999-01-01T00:00:00Z"})),
            Err(DelayError::TooFar(_))
        ));
        assert!(
            Delay {
                seconds: None,
                until: Some("nope".into())
            }
            .problems()
            .len()
                == 1
        );
        assert!(
            Delay {
                seconds: None,
                until: None
            }
            .problems()
            .len()
                == 1
        );
    }
}
