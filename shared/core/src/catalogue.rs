//! The trigger catalogue: every event type a workflow can subscribe to.
//!
//! Platform types come from the seed documents (brief §6). Inbound hooks define
//! their own names under `Hook.<name>`.

/// Every platform trigger type, grouped by family in catalogue order.
pub const PLATFORM_TRIGGER_TYPES: &[&str] = &[
    "Contact.Created",
    "Contact.Identified",
    "Contact.PropertyUpdated",
    "Contact.Verified.Sso",
    "Contact.ListAdded",
    "Gameplay.Started",
    "Gameplay.Action",
    "Gameplay.Ended",
    "Gameplay.DataCaptured",
    "Gameplay.DataCapturedQualified",
    "Gameplay.ReceiptValidationSuccess",
    "Gameplay.ReceiptValidationRejected",
    "Gameplay.TreasureHuntCheckpointCompleted",
    "Gameplay.UploadApproved",
    "Gameplay.UploadRejected",
    "Gameplay.LiveSurveyQuestionAsked",
    "Gameplay.LiveSurveyQuestionApproved",
    "Gameplay.LiveSurveyQuestionRejected",
    "Prize.Awarded",
    "Prize.Won",
    "Prize.Claimed",
    "Prize.DrawCompleted",
    "Prize.ExtraDataCaptured",
    "Card.CoverClicked",
    "Card.Completed",
    "Coupon.Issued",
    "Coupon.Redeemed",
    "Loyalty.PointsAwarded",
    "Loyalty.PointsRedeemed",
    "Loyalty.TierAdded",
    "Loyalty.TierRemoved",
    "Site.Published",
    "Site.Unpublished",
    "Form.Submitted",
];

/// The families of the catalogue (the part before the first dot).
pub const FAMILIES: &[&str] = &[
    "Contact", "Gameplay", "Prize", "Card", "Coupon", "Loyalty", "Site", "Form", "Hook",
];

const HOOK_PREFIX: &str = "Hook.";

/// Why a trigger type was refused, with the catalogue names closest to it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown trigger type {given:?}{}", suggestion_text(.suggestions))]
pub struct UnknownTriggerType {
    pub given: String,
    pub suggestions: Vec<&'static str>,
}

fn suggestion_text(suggestions: &[&'static str]) -> String {
    if suggestions.is_empty() {
        String::new()
    } else {
        format!("; did you mean {}?", suggestions.join(", "))
    }
}

/// Accepts a catalogue type or a well-formed `Hook.<name>`.
pub fn check_trigger_type(name: &str) -> Result<(), UnknownTriggerType> {
    if PLATFORM_TRIGGER_TYPES.contains(&name) || is_hook_type(name) {
        return Ok(());
    }
    Err(UnknownTriggerType {
        given: name.to_owned(),
        suggestions: closest_trigger_types(name, 3),
    })
}

/// `Hook.<name>` where name is 1..=64 characters of `[A-Za-z0-9_.-]`.
pub fn is_hook_type(name: &str) -> bool {
    name.strip_prefix(HOOK_PREFIX).is_some_and(|rest| {
        !rest.is_empty()
            && rest.len() <= 64
            && rest
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    })
}

/// The catalogue names nearest to `name`, best first; case is ignored so that
/// `gameplay.ended` suggests `Gameplay.Ended`.
pub fn closest_trigger_types(name: &str, limit: usize) -> Vec<&'static str> {
    let wanted = name.to_ascii_lowercase();
    let mut scored: Vec<(f64, &'static str)> = PLATFORM_TRIGGER_TYPES
        .iter()
        .map(|candidate| {
            let score = strsim::jaro_winkler(&wanted, &candidate.to_ascii_lowercase());
            (score, *candidate)
        })
        .filter(|(score, _)| *score >= 0.75)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored.into_iter().take(limit).map(|(_, name)| name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_every_catalogue_type_and_hooks() {
        for name in PLATFORM_TRIGGER_TYPES {
            assert_eq!(check_trigger_type(name), Ok(()), "{name}");
        }
        assert!(check_trigger_type("Hook.shopify_order").is_ok());
        assert!(check_trigger_type("Hook.").is_err());
        assert!(check_trigger_type("Hook.bad name").is_err());
    }

    #[test]
    fn every_family_is_represented() {
        for family in FAMILIES.iter().filter(|f| **f != "Hook") {
            assert!(
                PLATFORM_TRIGGER_TYPES
                    .iter()
                    .any(|t| t.starts_with(&format!("{family}."))),
                "{family}"
            );
        }
    }

    #[test]
    fn unknown_type_suggests_close_names() {
        let err = check_trigger_type("Gameplay.DataCapture").unwrap_err();
        assert_eq!(err.suggestions[0], "Gameplay.DataCaptured");
        assert!(err.to_string().contains("did you mean Gameplay.DataCaptured"));
        let err = check_trigger_type("prize.won").unwrap_err();
        assert_eq!(err.suggestions[0], "Prize.Won");
        let err = check_trigger_type("zzzzzz").unwrap_err();
        assert!(err.suggestions.is_empty());
    }
}
