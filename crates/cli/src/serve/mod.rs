//! `crus serve`: the CRUS-compatible REST API with its controller, sessions
//! kept in SQLite (one replica) or etcd (several, one leading), on a
//! simulated cluster or real backends. The flags are applied over the
//! configuration file; the server itself is [`crus::server::Server`].

pub mod logging;

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use crus::server::{BackendsSection, Config, ConfigError, LogFormat, Server, StoreKind};

/// Options of `crus serve`. Flags override the configuration file.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Configuration file (see docs/crus.example.toml).
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long)]
    pub listen: Option<std::net::SocketAddr>,
    /// SQLite file keeping the sessions [default: ./crus.db].
    #[arg(long, value_name = "PATH")]
    pub db: Option<PathBuf>,
    /// Log format [default: text; journald under systemd].
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,

    /// Session store [default: sqlite]; `etcd` lets several replicas share
    /// sessions, one leading (needs a crus built with `--features etcd`).
    #[arg(long, value_enum)]
    pub store: Option<StoreKind>,
    /// Client URLs of the etcd members, comma-separated (e.g. `http://10.0.0.1:2379,http://10.0.0.2:2379`).
    #[arg(long, value_name = "URLS", value_delimiter = ',')]
    pub etcd_endpoints: Vec<String>,
    /// Prefix of every key crus writes in etcd [default: /crus/].
    #[arg(long, value_name = "PREFIX")]
    pub etcd_prefix: Option<String>,
    /// Time to live of the leader's lease: how soon a dead leader is replaced [default: 5s].
    #[arg(long, value_parser = humantime::parse_duration)]
    pub etcd_lease_ttl: Option<Duration>,
    /// How often the leader refreshes its lease [default: a third of the TTL].
    #[arg(long, value_parser = humantime::parse_duration)]
    pub etcd_keep_alive: Option<Duration>,
    /// This replica's name in the leader key [default: <host name>-<process id>].
    #[arg(long, value_name = "NAME")]
    pub replica_name: Option<String>,

    /// Accepted bearer token (repeatable). Also from CRUS_TOKENS, comma-separated.
    #[arg(long = "token", value_name = "TOKEN")]
    pub tokens: Vec<String>,
    /// File with one accepted token per line.
    #[arg(long, value_name = "PATH")]
    pub tokens_file: Option<PathBuf>,
    /// HS256 secret of accepted JWTs (prefer CRUS_JWT_SECRET over the command line).
    #[arg(long, env = "CRUS_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// PEM public key (RS256 or ES256) of accepted JWTs.
    #[arg(long, value_name = "PATH")]
    pub jwt_public_key: Option<PathBuf>,
    /// JWKS document with the keys of accepted JWTs.
    #[arg(long, value_name = "PATH")]
    pub jwks_file: Option<PathBuf>,
    /// JWKS URL publishing the keys of accepted JWTs (Keycloak:
    /// …/protocol/openid-connect/certs), fetched at start and on an unknown `kid`.
    #[arg(long, value_name = "URL")]
    pub jwks_url: Option<String>,
    /// PEM file of the CA that signed the JWKS URL's TLS certificate.
    #[arg(long, value_name = "PATH")]
    pub jwks_ca_file: Option<PathBuf>,
    /// Required `aud` claim of JWTs.
    #[arg(long)]
    pub jwt_audience: Option<String>,
    /// Required `iss` claim of JWTs.
    #[arg(long)]
    pub jwt_issuer: Option<String>,
    /// Accept every request without a token (logs a warning at every start).
    #[arg(long)]
    pub no_auth: bool,

    /// Use the simulated cluster for every port.
    #[arg(long)]
    pub sim: bool,
    /// Nodes of the simulated cluster [default: 64].
    #[arg(long)]
    pub sim_nodes: Option<usize>,
    /// Simulated seconds per wall-clock second [default: 600].
    #[arg(long)]
    pub sim_speed: Option<f64>,
    /// Job trace of the simulated cluster: an SWF file, `nasa`, `synthetic` or `none`.
    #[arg(long, value_name = "PATH|nasa|synthetic|none")]
    pub sim_trace: Option<String>,
    /// Fraction of simulated boots that fail.
    #[arg(long)]
    pub sim_fail_rate: Option<f64>,
    /// Fraction of simulated boots that never finish (the node hangs until
    /// power-restarted).
    #[arg(long, value_name = "0..1")]
    pub sim_never_return_rate: Option<f64>,
    /// Fraction of session store writes that fail (fault injection for
    /// soak tests: the store refuses that share of writes, as a failing disk would).
    #[arg(long, hide = true, value_name = "0..1")]
    pub sim_store_fault_rate: Option<f64>,
    /// Fraction of calls to the simulated backends that fail (half before
    /// reaching the cluster, half as a timeout after taking effect).
    #[arg(long)]
    pub sim_port_fault_rate: Option<f64>,
    /// Typical simulated boot time [default: 4m].
    #[arg(long, value_parser = humantime::parse_duration)]
    pub sim_boot_time: Option<Duration>,
    /// File the simulated cluster keeps its state in, so it outlives a crash.
    #[arg(long, value_name = "PATH")]
    pub sim_state: Option<PathBuf>,
    /// Seed of the simulated cluster.
    #[arg(long)]
    pub sim_seed: Option<u64>,

    /// Default boot timeout of new sessions, over the boot backend's own
    /// [default: the boot backend's `boot_timeout`, e.g. 40m for BOS].
    #[arg(long, value_parser = humantime::parse_duration)]
    pub boot_timeout: Option<Duration>,
    /// How often backends are polled for progress [default: 10s].
    #[arg(long, value_parser = humantime::parse_duration)]
    pub poll_interval: Option<Duration>,
}

impl ServeArgs {
    /// The configuration file (or the defaults) with the flags applied, checked.
    pub fn settings(&self) -> Result<Config, ConfigError> {
        let mut config = match &self.config {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        let server = &mut config.server;
        if let Some(listen) = self.listen {
            server.listen = listen;
        }
        if let Some(db) = &self.db {
            server.db = db.clone();
        }
        if let Some(format) = self.log_format {
            server.log_format = format;
        }
        if let Some(kind) = self.store {
            config.store.kind = kind;
        }
        let etcd = &mut config.etcd;
        if !self.etcd_endpoints.is_empty() {
            etcd.endpoints.clone_from(&self.etcd_endpoints);
        }
        if let Some(prefix) = &self.etcd_prefix {
            etcd.prefix.clone_from(prefix);
        }
        if let Some(ttl) = self.etcd_lease_ttl {
            etcd.lease_ttl = ttl;
        }
        if self.etcd_keep_alive.is_some() {
            etcd.keep_alive = self.etcd_keep_alive;
        }
        if self.replica_name.is_some() {
            etcd.replica_name.clone_from(&self.replica_name);
        }
        let auth = &mut config.auth;
        auth.tokens.extend(self.tokens.iter().cloned());
        if let Ok(tokens) = std::env::var("CRUS_TOKENS") {
            auth.tokens.extend(
                tokens
                    .split(',')
                    .map(str::trim)
                    .filter(|token| !token.is_empty())
                    .map(str::to_string),
            );
        }
        if self.tokens_file.is_some() {
            auth.tokens_file = self.tokens_file.clone();
        }
        if self.jwt_public_key.is_some() {
            auth.jwt_public_key_file = self.jwt_public_key.clone();
        }
        if self.jwks_file.is_some() {
            auth.jwks_file = self.jwks_file.clone();
        }
        if self.jwks_url.is_some() {
            auth.jwks_url = self.jwks_url.clone();
        }
        if self.jwks_ca_file.is_some() {
            auth.jwks_ca_file = self.jwks_ca_file.clone();
        }
        if self.jwt_audience.is_some() {
            auth.audience = self.jwt_audience.clone();
        }
        if self.jwt_issuer.is_some() {
            auth.issuer = self.jwt_issuer.clone();
        }
        auth.no_auth |= self.no_auth;
        if self.sim {
            config.backends = BackendsSection::default();
        }
        let sim = &mut config.sim;
        if let Some(nodes) = self.sim_nodes {
            sim.nodes = nodes;
        }
        if let Some(speed) = self.sim_speed {
            sim.speed = speed;
        }
        if let Some(trace) = &self.sim_trace {
            sim.trace = trace.clone().into();
        }
        if let Some(rate) = self.sim_fail_rate {
            sim.fail_rate = rate;
        }
        if let Some(rate) = self.sim_never_return_rate {
            sim.never_return_rate = rate;
        }
        if let Some(rate) = self.sim_store_fault_rate {
            sim.store_fault_rate = rate;
        }
        if let Some(rate) = self.sim_port_fault_rate {
            sim.port_fault_rate = rate;
        }
        if let Some(boot_time) = self.sim_boot_time {
            sim.boot_time = boot_time;
        }
        if self.sim_state.is_some() {
            sim.state = self.sim_state.clone();
        }
        if let Some(seed) = self.sim_seed {
            sim.seed = seed;
        }
        if let Some(timeout) = self.boot_timeout {
            config.rollout.boot_timeout = Some(timeout);
        }
        if let Some(interval) = self.poll_interval {
            config.rollout.poll_interval = interval;
        }
        config.check()?;
        Ok(config)
    }
}

/// Runs the server until SIGINT or SIGTERM.
pub fn run(args: ServeArgs) -> Result<(), String> {
    let settings = args.settings().map_err(|error| error.to_string())?;
    let log_level = logging::init(settings.server.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|error| format!("cannot start the async runtime: {error}"))?;
    runtime.block_on(serve(settings, args.jwt_secret, log_level))
}

/// Starts the server (store, backends, sessions), then listens and serves
/// until a signal asks to stop.
async fn serve(
    settings: Config,
    jwt_secret: Option<String>,
    log_level: Option<crus::server::LogLevelControl>,
) -> Result<(), String> {
    let listen = settings.server.listen;
    let mut server = Server::from_config(settings)
        .map_err(|error| error.to_string())?
        .with_jwt_secret(jwt_secret);
    if let Some(control) = log_level {
        server = server.with_log_level_control(control);
    }
    let server = server.start().await.map_err(|error| error.to_string())?;
    let listener = crus::server::bind(listen)
        .await
        .map_err(|error| error.to_string())?;
    let address = listener
        .local_addr()
        .map_err(|error| format!("cannot read the listening address: {error}"))?;
    let shutdown = shutdown_signal();
    // Tests and scripts read this line to learn the port when listening on port 0.
    println!("crus listening on http://{address}");
    server
        .run(listener, shutdown)
        .await
        .map_err(|error| error.to_string())
}

/// Resolves at SIGINT or SIGTERM. SIGTERM is watched from this call on, not
/// from the first poll: the service manager may stop the server as soon as
/// it says it listens, and that stop must be graceful too.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
    async move {
        let interrupt = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            match terminate {
                Ok(mut terminate) => {
                    tokio::select! {
                        _ = interrupt => {}
                        _ = terminate.recv() => {}
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot watch SIGTERM; stopping on Ctrl-C only");
                    let _ = interrupt.await;
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = interrupt.await;
        }
        tracing::info!("shutdown requested: no longer accepting requests");
    }
}
