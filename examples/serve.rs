//! Serves the CRUS API from a configuration file, as `crus serve --config`
//! does, until Ctrl-C: `cargo run --example serve -- crus.toml` (without a
//! file, the defaults: a simulated cluster of 64 nodes).

use crus::server::{Config, Server};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = match std::env::args().nth(1) {
        Some(path) => Config::load(path.as_ref())?,
        None => Config::default(),
    };
    let listener = crus::server::bind(config.server.listen).await?;
    println!("crus listening on http://{}", listener.local_addr()?);
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    Server::from_config(config)?.run(listener, ctrl_c).await?;
    Ok(())
}
