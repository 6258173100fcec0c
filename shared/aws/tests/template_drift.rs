//! `template.yaml` and `shared/aws` must describe the same tables and queues:
//! this test fails on any drift in key schema, indexes, TTL or queue settings.

use hookflow_aws::{TableSpec, MAX_RECEIVE_COUNT, RUNS_BY_DUE, RUNS_TABLE, STEPS_MESSAGE_RETENTION, WORKFLOWS_TABLE};
use serde_yaml::Value;

fn template() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml"))
        .expect("read template.yaml");
    serde_yaml::from_str(&text).expect("template.yaml parses")
}

fn resource<'a>(template: &'a Value, logical_id: &str) -> &'a Value {
    let found = &template["Resources"][logical_id];
    assert!(!found.is_null(), "template.yaml has no resource {logical_id}");
    &found["Properties"]
}

fn keys(schema: &Value) -> (String, String) {
    let mut hash = String::new();
    let mut range = String::new();
    for key in schema.as_sequence().expect("KeySchema is a list") {
        let name = key["AttributeName"].as_str().unwrap_or_default().to_owned();
        match key["KeyType"].as_str() {
            Some("HASH") => hash = name,
            Some("RANGE") => range = name,
            other => panic!("unexpected KeyType {other:?}"),
        }
    }
    (hash, range)
}

fn check_table(template: &Value, spec: &TableSpec) {
    let table = resource(template, spec.logical_id);
    assert_eq!(
        keys(&table["KeySchema"]),
        (spec.hash_key.to_owned(), spec.range_key.to_owned()),
        "{}: key schema",
        spec.logical_id
    );
    let indexes: Vec<[String; 4]> = table["GlobalSecondaryIndexes"]
        .as_sequence()
        .map(|list| {
            list.iter()
                .map(|gsi| {
                    let (hash, range) = keys(&gsi["KeySchema"]);
                    let projection = gsi["Projection"]["ProjectionType"].as_str().unwrap_or_default();
                    let name = gsi["IndexName"].as_str().unwrap_or_default();
                    [name.to_owned(), hash, range, projection.to_owned()]
                })
                .collect()
        })
        .unwrap_or_default();
    let expected: Vec<[String; 4]> = spec
        .indexes
        .iter()
        .map(|i| [i.name, i.hash_key, i.range_key, i.projection.as_str()].map(str::to_owned))
        .collect();
    assert_eq!(indexes, expected, "{}: global secondary indexes", spec.logical_id);
    let ttl = &table["TimeToLiveSpecification"];
    let declared = (ttl["Enabled"].as_bool() == Some(true)).then(|| ttl["AttributeName"].as_str().unwrap_or_default());
    assert_eq!(declared, spec.ttl_attribute, "{}: TTL attribute", spec.logical_id);
}

#[test]
fn tables_match() {
    let template = template();
    check_table(&template, &WORKFLOWS_TABLE);
    check_table(&template, &RUNS_TABLE);
}

/// Each queue redrives after `MAX_RECEIVE_COUNT` deliveries and hides a
/// message for at least 6x its consumer's timeout.
#[test]
fn queues_match() {
    let template = template();
    let global_timeout = template["Globals"]["Function"]["Timeout"]
        .as_u64()
        .expect("Globals.Function.Timeout");
    for (queue, consumer) in [("TriggersQueue", "DispatcherFunction"), ("StepsQueue", "StepFunction")] {
        let properties = resource(&template, queue);
        assert_eq!(
            properties["RedrivePolicy"]["maxReceiveCount"].as_u64(),
            Some(u64::from(MAX_RECEIVE_COUNT)),
            "{queue}: maxReceiveCount"
        );
        let timeout = resource(&template, consumer)["Timeout"]
            .as_u64()
            .unwrap_or(global_timeout);
        let visibility = properties["VisibilityTimeout"].as_u64().expect("VisibilityTimeout");
        assert!(
            visibility >= 6 * timeout,
            "{queue}: visibility {visibility} s < 6 x {consumer} timeout {timeout} s"
        );
        let events = &template["Resources"][consumer]["Properties"]["Events"];
        let reports_failures = events.as_mapping().is_some_and(|m| {
            m.values().any(|e| {
                e["Properties"]["FunctionResponseTypes"]
                    .as_sequence()
                    .is_some_and(|t| t.iter().any(|v| v.as_str() == Some("ReportBatchItemFailures")))
            })
        });
        assert!(reports_failures, "{consumer}: ReportBatchItemFailures");
    }
}

/// The `!GetAtt <resource>.<attribute>` a value names, as (resource, attribute).
fn get_att(value: &Value) -> Option<(String, String)> {
    match value {
        Value::Tagged(tagged) if tagged.tag == "GetAtt" => {
            let (resource, attribute) = tagged.value.as_str()?.split_once('.')?;
            Some((resource.to_owned(), attribute.to_owned()))
        }
        _ => None,
    }
}

/// `hookflow_lambda::DEAD_LETTER_QUEUE_ARN` (this crate does not link the Lambda crate).
const DEAD_LETTER_QUEUE_ARN: &str = "HOOKFLOW_DEAD_LETTER_QUEUE_ARN";

/// Each queue's function also consumes the queue's dead-letter queue (and
/// tells its records apart by that queue's ARN), so every dead letter is
/// parked; the dead-letter queues' alarms watch for one that was not.
#[test]
fn dead_letter_queues_have_consumers() {
    let template = template();
    for (queue, consumer) in [("TriggersQueue", "DispatcherFunction"), ("StepsQueue", "StepFunction")] {
        let dlq = get_att(&resource(&template, queue)["RedrivePolicy"]["deadLetterTargetArn"])
            .expect("a dead-letter queue by !GetAtt")
            .0;
        let properties = resource(&template, consumer);
        let arn = get_att(&properties["Environment"]["Variables"][DEAD_LETTER_QUEUE_ARN]);
        assert_eq!(
            arn,
            Some((dlq.clone(), "Arn".to_owned())),
            "{consumer}: the dead-letter queue's ARN"
        );
        let consumes = properties["Events"].as_mapping().is_some_and(|events| {
            events.values().any(|e| {
                e["Type"].as_str() == Some("SQS")
                    && get_att(&e["Properties"]["Queue"]) == Some((dlq.clone(), "Arn".to_owned()))
                    && e["Properties"]["FunctionResponseTypes"][0].as_str() == Some("ReportBatchItemFailures")
            })
        });
        assert!(consumes, "{consumer} consumes {dlq} reporting batch item failures");
        // Lambda refuses a mapping whose queue hides messages for less than
        // the function's timeout; the main queues' rule (6x) holds here too.
        let global_timeout = template["Globals"]["Function"]["Timeout"]
            .as_u64()
            .expect("Globals timeout");
        let timeout = properties["Timeout"].as_u64().unwrap_or(global_timeout);
        let visibility = resource(&template, &dlq)["VisibilityTimeout"].as_u64().unwrap_or(30);
        assert!(
            visibility >= 6 * timeout,
            "{dlq}: visibility {visibility} s < 6 x {consumer} timeout {timeout} s"
        );
        // Parking writes the runs table: a new item, or a refresh of one parked before.
        let on_runs: Vec<&str> = properties["Policies"][0]["Statement"]
            .as_sequence()
            .into_iter()
            .flatten()
            .filter(|s| get_att(&s["Resource"]) == Some(("RunsTable".to_owned(), "Arn".to_owned())))
            .flat_map(|s| {
                s["Action"]
                    .as_sequence()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
            })
            .collect();
        for action in ["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:GetItem"] {
            assert!(
                on_runs.contains(&action),
                "{consumer} parks dead letters: it needs {action} on RunsTable"
            );
        }
        let alarm = resource(&template, &format!("{dlq}Alarm"));
        assert_eq!(
            alarm["MetricName"].as_str(),
            Some("ApproximateAgeOfOldestMessage"),
            "{dlq}Alarm"
        );
    }
}

/// Every variable a function's `main` requires is set for it by the template.
#[test]
fn functions_get_their_configuration() {
    let template = template();
    let globals = &template["Globals"]["Function"]["Environment"]["Variables"];
    // Every function builds its stores from both tables' names
    // (`hookflow_lambda::tables`; the stack's name goes into the metrics of
    // those that count), then takes the queue it sends to.
    let stores = ["HOOKFLOW_WORKFLOWS_TABLE", "HOOKFLOW_RUNS_TABLE", "HOOKFLOW_STACK_NAME"];
    let cases = [
        ("WebhookFunction", "HOOKFLOW_TRIGGERS_QUEUE_URL"),
        ("EventsFunction", "HOOKFLOW_TRIGGERS_QUEUE_URL"),
        ("DispatcherFunction", "HOOKFLOW_STEPS_QUEUE_URL"),
        ("StepFunction", "HOOKFLOW_STEPS_QUEUE_URL"),
        ("ApiFunction", "HOOKFLOW_STEPS_QUEUE_URL"),
    ];
    for (function, queue) in cases {
        let properties = &template["Resources"][function]["Properties"];
        let own = &properties["Environment"]["Variables"];
        for name in stores.into_iter().chain([queue]) {
            assert!(
                !own[name].is_null() || !globals[name].is_null(),
                "{function} does not get {name}"
            );
        }
        let binary = template["Resources"][function]["Metadata"]["BuildProperties"]["Binary"].as_str();
        assert!(
            binary.is_some_and(|b| b.starts_with("hookflow-")),
            "{function}: BuildProperties.Binary"
        );
        assert_eq!(
            template["Resources"][function]["Metadata"]["BuildMethod"].as_str(),
            Some("rust-cargolambda")
        );
    }
}

/// The HTTP functions cut the API stage off the path themselves
/// (`hookflow_api::for_stage`): `lambda_http` must hand the path over as API
/// Gateway sent it, or the stage's root `/<stage>` arrives as
/// `/<stage>/<stage>` and the dashboard is not found there.
#[test]
fn http_functions_get_the_path_as_sent_and_their_stage() {
    let template = template();
    let globals = &template["Globals"]["Function"]["Environment"]["Variables"];
    assert_eq!(globals["AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH"].as_str(), Some("true"));
    assert_eq!(reference(&globals["HOOKFLOW_API_STAGE"]), Some("Stage"));
}

/// A function builds Secrets Manager, SES and SNS clients (the stores of
/// `stores(&config)` or `step_stores(&config)` in its `main`) exactly when
/// the template grants its role one of them; the others build only stores
/// with no vault, email or SMS at all, so a grant and the code that uses it
/// cannot drift apart unnoticed.
#[test]
fn stack_services_follow_the_roles_grants() {
    let template = template();
    let cases = [
        ("WebhookFunction", "webhook"),
        ("EventsFunction", "events"),
        ("DispatcherFunction", "dispatcher"),
        ("StepFunction", "step"),
        ("ApiFunction", "api"),
    ];
    for (function, crate_dir) in cases {
        let policies = serde_yaml::to_string(&template["Resources"][function]["Properties"]["Policies"])
            .expect("policies serialise");
        let granted = ["secretsmanager:", "ses:", "sns:Publish"]
            .iter()
            .any(|action| policies.contains(action));
        let main = std::fs::read_to_string(format!(
            "{}/../../functions/{crate_dir}/src/main.rs",
            env!("CARGO_MANIFEST_DIR")
        ))
        .expect("the function's main.rs");
        assert_eq!(
            [" stores(&config)?", " step_stores(&config)?"]
                .iter()
                .any(|call| main.contains(call)),
            granted,
            "{function}: builds the stack services iff its role is granted them"
        );
    }
}

/// The logical id a `!Ref` names.
fn reference(value: &Value) -> Option<&str> {
    match value {
        Value::Tagged(tagged) if tagged.tag == "Ref" => tagged.value.as_str(),
        _ => None,
    }
}

/// Alarms that can notify: CloudWatch cannot publish to a topic encrypted
/// with the AWS-managed `alias/aws/sns` key, so the topic's key must be one
/// whose policy lets `cloudwatch.amazonaws.com` use it. Nothing here can
/// publish the way CloudWatch does, so the shape is what is checked.
#[test]
fn alarms_can_publish_to_their_topic() {
    let template = template();
    let resources = template["Resources"].as_mapping().expect("resources");
    for (name, resource) in resources {
        let key = resource["Properties"]["KmsMasterKeyId"].as_str();
        assert_ne!(key, Some("alias/aws/sns"), "{name:?}: CloudWatch cannot publish to it");
    }
    let topic = resource(&template, "AlarmTopic");
    let key_id = reference(&topic["KmsMasterKeyId"]).expect("the topic's key is one of the stack's (!Ref)");
    let key = resource(&template, key_id);
    let statements = key["KeyPolicy"]["Statement"]
        .as_sequence()
        .expect("key policy statements");
    let cloudwatch = statements
        .iter()
        .find(|s| s["Principal"]["Service"].as_str() == Some("cloudwatch.amazonaws.com"))
        .expect("a statement for cloudwatch.amazonaws.com");
    assert_eq!(cloudwatch["Effect"].as_str(), Some("Allow"));
    let actions: Vec<&str> = cloudwatch["Action"]
        .as_sequence()
        .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    for needed in ["kms:Decrypt", "kms:GenerateDataKey*"] {
        assert!(
            actions.contains(&needed),
            "cloudwatch.amazonaws.com needs {needed}: {actions:?}"
        );
    }
    // Every alarm notifies the topic.
    for (name, resource) in resources {
        if resource["Type"].as_str() == Some("AWS::CloudWatch::Alarm") {
            let actions = &resource["Properties"]["AlarmActions"];
            assert_eq!(
                reference(&actions[0]),
                Some("AlarmTopic"),
                "{name:?} notifies the topic"
            );
        }
    }
}

/// The engine's alarms read the metrics the engine writes: its namespace,
/// its names, its one dimension.
#[test]
fn engine_alarms_watch_the_emitted_metrics() {
    use hookflow_core::metrics::{Counter, NAMESPACE, STACK_DIMENSION};
    let template = template();
    let rate = resource(&template, "FailedRunRateAlarm");
    let queries = rate["Metrics"].as_sequence().expect("metric math");
    let watched: Vec<&str> = queries
        .iter()
        .filter_map(|q| {
            let metric = &q["MetricStat"]["Metric"];
            assert!(metric.is_null() || metric["Namespace"].as_str() == Some(NAMESPACE));
            assert!(metric.is_null() || metric["Dimensions"][0]["Name"].as_str() == Some(STACK_DIMENSION));
            metric["MetricName"].as_str()
        })
        .collect();
    assert_eq!(watched, vec![Counter::RunsFailed.name(), Counter::RunsSucceeded.name()]);
    let disabled = resource(&template, "WebhookEndpointDisabledAlarm");
    assert_eq!(disabled["Namespace"].as_str(), Some(NAMESPACE));
    assert_eq!(
        disabled["MetricName"].as_str(),
        Some(Counter::WebhookEndpointsDisabled.name())
    );
    let moves = resource(&template, "DeadLetterMovesAlarm");
    assert_eq!(moves["Namespace"].as_str(), Some(NAMESPACE));
    assert_eq!(moves["MetricName"].as_str(), Some(Counter::DeadLetterMoves.name()));
    assert_eq!(moves["Dimensions"][0]["Name"].as_str(), Some(STACK_DIMENSION));
}

/// The reaper runs: the step function has a schedule whose input is the
/// reap request its handler understands (`events/lambda/schedule-reap.json`),
/// and it may query the index the reaper reads, and nothing more on it.
#[test]
fn the_reaper_is_scheduled_and_may_read_its_index() {
    let template = template();
    let step = resource(&template, "StepFunction");
    let schedule = step["Events"]
        .as_mapping()
        .and_then(|events| events.values().find(|e| e["Type"].as_str() == Some("ScheduleV2")))
        .expect("a ScheduleV2 event on the step function");
    let input: serde_json::Value =
        serde_json::from_str(schedule["Properties"]["Input"].as_str().expect("an Input")).expect("JSON input");
    let sample: serde_json::Value =
        serde_json::from_str(include_str!("../../../events/lambda/schedule-reap.json")).expect("the sample reap input");
    assert_eq!(input, sample, "the schedule sends what the handler's test feeds it");
    let rate = schedule["Properties"]["ScheduleExpression"]
        .as_str()
        .unwrap_or_default();
    assert!(rate.starts_with("rate("), "{rate}");
    let statements = step["Policies"][0]["Statement"].as_sequence().expect("statements");
    let on_index: Vec<&Value> = statements
        .iter()
        .filter(|s| match &s["Resource"] {
            Value::Tagged(tagged) if tagged.tag == "Sub" => tagged
                .value
                .as_str()
                .is_some_and(|r| r.ends_with(&format!("/index/{RUNS_BY_DUE}"))),
            _ => false,
        })
        .collect();
    assert_eq!(on_index.len(), 1, "one statement on the by_due index");
    let actions: Vec<&str> = on_index[0]["Action"]
        .as_sequence()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert_eq!(actions, ["dynamodb:Query"]);
    // The reaper waits out the steps queue's retention (a backlog).
    assert_eq!(
        resource(&template, "StepsQueue")["MessageRetentionPeriod"].as_u64(),
        Some(STEPS_MESSAGE_RETENTION.as_secs())
    );
}
