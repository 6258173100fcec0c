use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use hookflow_core::event::TriggerEvent;
use hookflow_core::Ingest;
use lambda_runtime::{Error, LambdaEvent};
use serde_json::{json, Value};

/// Turns the EventBridge envelope into a CloudEvent, validates it like any
/// other ingest, and enqueues it. An invalid event is an error, so
/// EventBridge's retry policy and dead-letter target keep it.
pub async fn handle(ingest: &Ingest, event: LambdaEvent<EventBridgeEvent<Value>>) -> Result<Value, Error> {
    let trigger = to_trigger_event(&event.payload)?;
    let receipts = ingest.accept(std::slice::from_ref(&trigger)).await?;
    Ok(
        json!({"event_id": receipts.first().map(|r| r.event_id.clone()), "duplicate": receipts.first().map(|r| r.duplicate)}),
    )
}

fn to_trigger_event(event: &EventBridgeEvent<Value>) -> Result<TriggerEvent, Error> {
    let detail = event
        .detail
        .as_object()
        .ok_or("EventBridge detail must be a JSON object")?;
    let mut cloud_event = json!({
        "specversion": "1.0",
        "id": event.id.clone().unwrap_or_default(),
        "source": event.source.clone(),
        "type": event.detail_type.clone(),
        "time": event.time.map(|t| t.to_rfc3339()),
        "datacontenttype": "application/json",
        "data": detail.get("data").cloned().unwrap_or(Value::Null),
    });
    for attribute in ["workspaceid", "siteid", "cardid", "contactid", "depth"] {
        if let Some(value) = detail.get(attribute) {
            cloud_event[attribute] = value.clone();
        }
    }
    Ok(TriggerEvent::from_cloudevent(&cloud_event, "")?)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use hookflow_core::memory::{MemoryBackend, QueueSettings};
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn the_sample_event_is_ingested_once() {
        let backend = MemoryBackend::new(QueueSettings {
            visibility_timeout: Duration::from_secs(30),
            max_receive_count: 5,
        });
        let stores =
            hookflow_core::wiring::Stores::memory(&backend, std::sync::Arc::new(hookflow_core::ports::SystemClock));
        let ingest = crate::wire(stores.dedupe.clone(), backend.triggers.clone());
        let event: EventBridgeEvent<Value> =
            serde_json::from_str(include_str!("../../../events/lambda/eventbridge-prize-won.json")).unwrap();
        let reply = handle(&ingest, LambdaEvent::new(event.clone(), Default::default()))
            .await
            .unwrap();
        assert_eq!(reply["duplicate"], false);
        let again = handle(&ingest, LambdaEvent::new(event.clone(), Default::default()))
            .await
            .unwrap();
        assert_eq!(again["duplicate"], true);
        assert_eq!(backend.triggers.len(), 1);
        let trigger = to_trigger_event(&event).unwrap();
        assert_eq!(
            (trigger.event_type.as_str(), trigger.cardid.as_deref()),
            ("Prize.Won", Some("card_sponsor_a"))
        );
        let _ = Arc::new(());
    }

    #[tokio::test]
    async fn an_unknown_detail_type_is_refused() {
        let mut event: EventBridgeEvent<Value> =
            serde_json::from_str(include_str!("../../../events/lambda/eventbridge-prize-won.json")).unwrap();
        event.detail_type = "Prize.Wonn".into();
        let err = to_trigger_event(&event).unwrap_err();
        assert!(err.to_string().contains("did you mean Prize.Won"), "{err}");
    }
}
