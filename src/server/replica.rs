//! One replica of several `crus serve` sharing sessions in etcd.
//!
//! Every replica serves the whole API: reads come from etcd, and creations,
//! deletions and operator commands are written to etcd (unfenced) by a
//! controller that drives nothing. One replica at a time leads: it holds the
//! leader key on its lease and drives every session with a controller whose
//! writes are fenced on that lease. It learns of what any replica's API
//! wrote through a watch of the sessions ([`SessionFeed`]), which also feeds
//! every replica's event stream, so clients can follow a session anywhere.
//!
//! Leadership ends when the lease is lost (a pause longer than its TTL, etcd
//! out of reach): the leader then stops every session task at once — their
//! writes would be refused by the fence and retried forever — and campaigns
//! again. A replica stopped by a signal gives its lease up, so another takes
//! over without waiting for the TTL.
//!
//! A session the leader's store refuses to save is halted in the leader's
//! memory only; the leader publishes such holds (`<prefix>held`, on its
//! lease) and every follower shows them in place of the stored statuses, so
//! no replica shows a held session as running.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crus_backends::etcd::{Election, EtcdStore, Leader, SessionChange, SessionFeed};
use crus_core::clock::Clock;
use crus_core::controller::{Controller, ControllerConfig, EventLog, events_between};
use crus_core::ports::Ports;
use crus_core::store::{
    FaultyStore, SessionRecord, SessionStore, StatusView, StoreHealth, Versioned,
};
use crus_http::{Leadership, Metrics};
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

use super::config::Config;
use super::webhooks::spawn as spawn_webhooks;
use super::{Background, ServerError, controller_config, ports_for_term};

/// How often a broken watch, a failed read of the sessions or a failed
/// start of a term is tried again.
const RETRY: Duration = Duration::from_millis(500);

/// How long a replica that stops or lost its lease waits for etcd to revoke
/// the lease; past it, the lease expires by itself.
const RESIGN_LIMIT: Duration = Duration::from_secs(2);

/// A started replica: what the HTTP server needs, and its election loop.
pub(super) struct Replica {
    /// The API's controller: stores sessions and requests, drives nothing.
    pub(super) api: Controller,
    /// The statuses the API answers, read from etcd.
    pub(super) statuses: Arc<dyn StatusView>,
    /// This replica's role, told by the election loop.
    pub(super) leadership: Arc<Leadership>,
    /// The election loop, stopped at shutdown.
    pub(super) background: Background,
}

/// The controller driving sessions while this replica leads; `None` while
/// it follows. Shared by the election loop (which sets it) and the relay of
/// store changes (which hands it what other replicas wrote).
type Driver = Arc<Mutex<Option<Controller>>>;

/// Connects to etcd and starts the replica: the watch of the sessions, the
/// API's controller, and the election loop.
pub(super) async fn start(
    settings: &Config,
    ports: Ports,
    clock: Arc<dyn Clock>,
    metrics: &Arc<Metrics>,
) -> Result<Replica, ServerError> {
    let section = &settings.etcd;
    let config = section.to_config().map_err(ServerError::EtcdSettings)?;
    let store = EtcdStore::connect(&config)
        .await
        .map_err(|source| ServerError::EtcdConnect {
            endpoints: section.endpoints.join(","),
            source,
        })?;
    match tokio::time::timeout(section.timeout, store.check()).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => {
            tracing::warn!(%error, "etcd does not answer yet; /readyz says not ready until it does")
        }
        Err(_) => tracing::warn!("etcd does not answer yet; /readyz says not ready until it does"),
    }
    let replica = section
        .replica_name
        .clone()
        .unwrap_or_else(default_replica_name);
    let config = controller_config(settings);
    let statuses: Arc<dyn StatusView> = Arc::new(store.clone());
    let api = Controller::new(
        ports.clone(),
        Arc::new(store.clone()),
        clock.clone(),
        ControllerConfig {
            drive_sessions: false,
            ..config.clone()
        },
    );
    // One log for every term's controller, so webhooks are sent by whichever
    // replica leads, from one subscription.
    let leader_events = Arc::new(EventLog::default());
    spawn_webhooks(settings, &leader_events, metrics)?;
    let leadership = Arc::new(Leadership::follower());
    let driver: Driver = Arc::default();
    let (feed, changes) = SessionFeed::start(store.clone(), RETRY);
    let relay = tokio::spawn(relay(feed, changes, api.clone(), driver.clone()));
    let holds = tokio::spawn(relay_holds(
        store.clone(),
        leadership.clone(),
        config.store_health.clone(),
    ));
    let election = Election::new(
        store,
        replica.clone(),
        section.lease_ttl,
        section.keep_alive_interval(),
    );
    tracing::info!(%replica, endpoints = %section.endpoints.join(","), prefix = %section.prefix, "replica on etcd: campaigning for leadership");
    let (stop, stopped) = watch::channel(false);
    let term = Term {
        settings: settings.clone(),
        metrics: metrics.clone(),
        ports,
        clock,
        config,
        events: leader_events,
        driver,
    };
    let role = leadership.clone();
    let task = tokio::spawn(async move {
        elect_and_lead(election, term, role, stopped).await;
        relay.abort();
        holds.abort();
    });
    Ok(Replica {
        api,
        statuses,
        leadership,
        background: Background { stop, task },
    })
}

/// What each leadership term is built from.
struct Term {
    /// The server's settings (a term may reopen the simulated cluster).
    settings: Config,
    /// Where the term's port calls are counted.
    metrics: Arc<Metrics>,
    /// The replica's own ports and clock.
    ports: Ports,
    /// Source of `now` of the replica's own ports.
    clock: Arc<dyn Clock>,
    /// Settings of the term's controller.
    config: ControllerConfig,
    /// Where every term's controller publishes its events (for webhooks).
    events: Arc<EventLog>,
    /// Set to the term's controller while it lasts.
    driver: Driver,
}

/// Campaigns, leads until the lease is lost, and campaigns again; until `stop`.
async fn elect_and_lead(
    election: Election,
    term: Term,
    leadership: Arc<Leadership>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let mut leader = tokio::select! {
            leader = election.campaign() => leader,
            _ = stop.wait_for(|stopping| *stopping) => return,
        };
        tracing::info!(
            lease = leader.lease(),
            "this replica leads: it drives the sessions"
        );
        leadership.set_leader(true);
        let stopping = lead(&mut leader, &term, &mut stop).await;
        leadership.set_leader(false);
        leader.resign(RESIGN_LIMIT).await;
        if stopping {
            return;
        }
    }
}

/// One leadership term: a controller fenced on the lease drives every
/// unfinished session until the lease is lost (returns `false`) or the
/// replica is asked to stop (returns `true`).
async fn lead(leader: &mut Leader, term: &Term, stop: &mut watch::Receiver<bool>) -> bool {
    let (ports, clock) =
        match ports_for_term(&term.settings, &term.metrics, &term.ports, &term.clock).await {
            Ok(built) => built,
            Err(error) => {
                tracing::error!(%error, "cannot start leading; giving leadership up");
                tokio::time::sleep(RETRY).await;
                return false;
            }
        };
    let mut store: Arc<dyn SessionStore> = Arc::new(leader.store().clone());
    let fault_rate = term.settings.sim.store_fault_rate;
    if fault_rate > 0.0 {
        // The hidden test hook: the leader's session writes fail (its
        // published holds and the API's writes do not), as when etcd refuses
        // one session's record.
        tracing::warn!(
            fault_rate,
            "--sim-store-fault-rate: that share of the leader's session writes fails on purpose"
        );
        store = Arc::new(FaultyStore::with_fault_rate(
            store,
            fault_rate,
            term.settings.sim.seed,
        ));
    }
    let driver = Controller::with_events(
        ports,
        store,
        clock,
        term.config.clone(),
        term.events.clone(),
    );
    let publisher = tokio::spawn(publish_holds(
        leader.store().clone(),
        leader.lease(),
        term.config.store_health.clone(),
    ));
    // Set before the stored sessions are read, so a session created
    // meanwhile is handed over by the relay if the read misses it.
    *lock(&term.driver) = Some(driver.clone());
    let resume = async {
        loop {
            match driver.resume_all().await {
                Ok(sessions) => {
                    tracing::info!(sessions, "took up the unfinished sessions");
                    break;
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot read the stored sessions; retrying");
                    tokio::time::sleep(RETRY).await;
                }
            }
        }
        std::future::pending::<()>().await;
    };
    let stopping = tokio::select! {
        () = leader.lost() => {
            tracing::warn!(
                sessions = driver.running(),
                "leadership lost: stopping every session task (the store refuses their writes now)"
            );
            false
        }
        _ = stop.wait_for(|stopping| *stopping) => true,
        () = resume => false,
    };
    *lock(&term.driver) = None;
    publisher.abort();
    driver.stop_all();
    stopping
}

/// While this replica leads: publishes the sessions its store refuses to
/// save (their statuses, halted, saying why) for the followers to show,
/// each time they change, on the term's lease.
async fn publish_holds(store: EtcdStore, lease: i64, health: Arc<StoreHealth>) {
    let mut changes = health.held_changes();
    let mut failing = false;
    loop {
        changes.borrow_and_update();
        let held = health.held_here();
        match store.publish_held(&held, lease).await {
            Ok(()) => {
                failing = false;
                if changes.changed().await.is_err() {
                    return;
                }
            }
            Err(error) => {
                if !failing {
                    tracing::warn!(%error, "cannot publish the held sessions for the followers; retrying");
                }
                failing = true;
                tokio::time::sleep(RETRY).await;
            }
        }
    }
}

/// While this replica follows: shows the sessions the leader's store
/// refuses to save as the leader holds them (see [`publish_holds`]),
/// read from etcd every [`RETRY`]; nothing while it leads (its own holds are
/// its own controller's).
async fn relay_holds(store: EtcdStore, leadership: Arc<Leadership>, health: Arc<StoreHealth>) {
    loop {
        if leadership.is_leader() {
            health.set_relayed(Vec::new());
        } else {
            match store.read_held().await {
                Ok(held) => health.set_relayed(held),
                // Kept as last read: a follower that cannot read etcd
                // answers no session anyway.
                Err(error) => tracing::debug!(%error, "cannot read the leader's held sessions"),
            }
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// Hands the stored changes on: events to this replica's event stream
/// (derived from the records, since the leader's events happen in another
/// process), and new sessions and operator requests to the driving
/// controller while this replica leads.
async fn relay(
    _feed: SessionFeed,
    mut changes: mpsc::Receiver<SessionChange>,
    api: Controller,
    driver: Driver,
) {
    let mut known: HashMap<Uuid, Versioned<SessionRecord>> = HashMap::new();
    // The first read is history, not news: it is remembered, not told.
    let mut first_read = true;
    while let Some(change) = changes.recv().await {
        match change {
            SessionChange::Resync(records) => {
                let stored: HashSet<Uuid> = records
                    .iter()
                    .map(|record| record.value.upgrade_id())
                    .collect();
                known.retain(|upgrade_id, _| stored.contains(upgrade_id));
                for record in records {
                    observe(&mut known, record, !first_read, &api, &driver);
                }
                first_read = false;
            }
            SessionChange::Put(record) => observe(&mut known, *record, true, &api, &driver),
            SessionChange::Deleted(upgrade_id) => {
                known.remove(&upgrade_id);
            }
        }
    }
}

/// Takes one stored record into account; `tell`: publish what changed.
fn observe(
    known: &mut HashMap<Uuid, Versioned<SessionRecord>>,
    record: Versioned<SessionRecord>,
    tell: bool,
    api: &Controller,
    driver: &Driver,
) {
    let upgrade_id = record.value.upgrade_id();
    let before = known.get(&upgrade_id);
    // A watch opened before a full read delivers some records twice.
    if before.is_some_and(|before| before.revision >= record.revision) {
        return;
    }
    if tell {
        api.events().publish(events_between(
            before.map(|before| &before.value.rollout),
            &record.value.rollout,
        ));
    }
    // The leader's own writes change only the rollout; what the API writes
    // (a new session, a request) changes `desired`, or is new.
    let requested = before.is_none_or(|before| before.value.desired != record.value.desired);
    if requested && let Some(driver) = lock(driver).clone() {
        driver.take_up(&record.value);
    }
    known.insert(upgrade_id, record);
}

/// `<host name>-<process id>`: tells operators which process leads.
fn default_replica_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|name| name.trim().to_string())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "crus".to_string());
    format!("{host}-{}", std::process::id())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Only ever replaced whole, so a panic elsewhere cannot leave it half-written.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
