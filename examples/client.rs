//! Creates a session on a CRUS API server and follows it until it completes,
//! as `crus session create` then `crus session watch` do:
//! `cargo run --example client --features client -- http://127.0.0.1:8080`
//! (a token, if the server needs one, in `CRUS_TOKEN`).

use std::time::Duration;

use crus::client::{Client, Update};
use crus::core::session::SessionSpec;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:8080".to_string());
    let client = Client::new(
        &url,
        std::env::var("CRUS_TOKEN").ok(),
        Duration::from_secs(30),
    )?;
    let spec = SessionSpec {
        starting_label: "compute".into(),
        upgrading_label: "crus-upgrading".into(),
        failed_label: "crus-failed".into(),
        upgrade_step_size: 4,
        upgrade_template_id: "compute-image".into(),
        workload_manager_type: "slurm".into(),
        policy: None,
    };
    let id = client
        .create(&spec, None)
        .await?
        .value
        .upgrade_id
        .to_string();
    println!("created session {id}");
    // The session's events as they happen, and the session read again
    // whenever the stream ends (or polled, from a server without streams).
    let mut follow = client.follow(&id, Duration::from_secs(1));
    while let Some(update) = follow.next().await? {
        match update {
            Update::Event(event) => println!("{} {}", event.at, event.kind.name()),
            Update::Session(answer) if answer.value.completed => {
                let session = answer.value;
                println!(
                    "{} {}: {}",
                    session.upgrade_id,
                    session.state,
                    session.messages.join(" ")
                );
            }
            Update::Session(_) => {}
            Update::Removed => println!("session {id} was deleted"),
        }
    }
    Ok(())
}
