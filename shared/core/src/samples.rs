//! The sample trigger events of `events/triggers/`, one per catalogue
//! family, built into the binary: `POST …/workflows/{id}/test` uses the one
//! of the workflow's trigger type when the request names no event.

use serde_json::Value;

const SAMPLES: [&str; 11] = [
    include_str!("../../../events/triggers/card.completed.json"),
    include_str!("../../../events/triggers/contact.created.json"),
    include_str!("../../../events/triggers/contact.identified.json"),
    include_str!("../../../events/triggers/coupon.redeemed.json"),
    include_str!("../../../events/triggers/form.submitted.json"),
    include_str!("../../../events/triggers/gameplay.data-captured-qualified.json"),
    include_str!("../../../events/triggers/gameplay.data-captured.json"),
    include_str!("../../../events/triggers/gameplay.ended.json"),
    include_str!("../../../events/triggers/loyalty.points-awarded.json"),
    include_str!("../../../events/triggers/prize.won.json"),
    include_str!("../../../events/triggers/site.published.json"),
];

/// The sample CloudEvent of a trigger type, moved into `workspace_id`.
pub fn sample_event(trigger_type: &str, workspace_id: &str) -> Option<Value> {
    SAMPLES
        .iter()
        .filter_map(|text| serde_json::from_str::<Value>(text).ok())
        .find(|sample| sample["type"] == trigger_type)
        .map(|mut sample| {
            sample["workspaceid"] = Value::String(workspace_id.to_owned());
            sample
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::TriggerEvent;

    #[test]
    fn every_sample_is_a_valid_event_found_by_its_type() {
        for text in SAMPLES {
            let sample: Value = serde_json::from_str(text).expect("sample parses");
            let trigger_type = sample["type"].as_str().expect("a type");
            let found = sample_event(trigger_type, "ws_x").expect("found by its type");
            let event = TriggerEvent::from_cloudevent(&found, "sample").expect("a valid CloudEvent");
            assert_eq!(event.workspaceid, "ws_x");
        }
        assert_eq!(sample_event("No.Such", "ws_x"), None);
    }
}
