//! The bench's baseline: what the pipeline's workflow does with no engine at
//! all. Axum in, the same filter, decision and JSON body, `202` before it
//! forwards, then a pooled reqwest POST out. Nothing is stored, retried or
//! deduplicated: it is the floor a workflow engine's cost is measured from.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use clap::Parser;
use serde_json::{json, Value};

#[derive(Parser)]
struct Args {
    #[arg(long)]
    listen: SocketAddr,
    /// Where matching events' bodies are POSTed.
    #[arg(long)]
    forward: String,
}

#[derive(Clone)]
struct Relay {
    client: reqwest::Client,
    forward: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let relay = Relay {
        client: reqwest::Client::builder().no_proxy().build()?,
        forward: args.forward,
    };
    let app = Router::new().route("/v1/events", post(receive)).with_state(relay);
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    axum::serve(listener, app).await?;
    Ok(())
}

async fn receive(State(relay): State<Relay>, body: Bytes) -> (StatusCode, String) {
    let Ok(event) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, r#"{"error":"not JSON"}"#.to_owned());
    };
    let data = &event["data"];
    let wanted = event["type"] == "Gameplay.DataCapturedQualified" && data["form_fields"]["consent"] == true;
    let hot = data["gameplay"]["score"].as_f64().is_some_and(|score| score >= 100.0);
    if wanted && hot {
        let body = json!({
            "email": data["contact"]["email"],
            "source": format!("Komo - {}", data["card"]["name"].as_str().unwrap_or_default()),
            "score": data["gameplay"]["score"],
            "seq": data["bench"]["seq"],
            "sent_us": data["bench"]["sent_us"],
        });
        let (client, forward) = (relay.client.clone(), relay.forward.clone());
        tokio::spawn(async move {
            if let Err(err) = client.post(forward).json(&body).send().await {
                eprintln!("relay: forward failed: {err}");
            }
        });
    }
    let id = event["id"].as_str().unwrap_or_default().to_owned();
    (StatusCode::ACCEPTED, json!({ "event_id": id }).to_string())
}
