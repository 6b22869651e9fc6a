//! Conformance checks of a [`SessionStore`]'s node claims
//! ([`SessionStore::create_claiming`], [`SessionStore::claims`]): a session
//! is stored together with a claim on each of its nodes in one transaction,
//! a claimed node refuses another session, and the claims go with the write
//! that finishes or removes their session.
//!
//! Every check claims nodes named after a fresh id and removes what it
//! created, so the checks run against a shared store (etcd) too.

use futures::future::join_all;
use uuid::Uuid;

use super::session_store::{MakeRecord, finish, forget, new_record};
use super::{CallResultExt, ConformanceError, expect_error};
use crate::error::Error;
use crate::node::NodeId;
use crate::store::{NodesClaimed, Revision, SessionRecord, SessionStore};

/// How many creations race for one node in [`racing_claims_admit_one`].
const RACERS: usize = 8;

/// Runs every claim check in turn, stopping at the first failure.
pub async fn run_all(
    store: &dyn SessionStore,
    make_record: MakeRecord<'_>,
) -> Result<(), ConformanceError> {
    claimed_nodes_refuse_another_session(store, make_record).await?;
    claims_go_when_the_session_finishes(store, make_record).await?;
    claims_go_when_the_session_is_removed(store, make_record).await?;
    an_existing_id_claims_nothing(store, make_record).await?;
    a_session_stored_without_claims_claims_nothing(store, make_record).await?;
    racing_claims_admit_one(store, make_record).await?;
    Ok(())
}

/// Fresh node ids, unique to one check's run.
fn fresh_nodes(count: usize) -> Vec<NodeId> {
    let run = Uuid::new_v4();
    (0..count)
        .map(|index| NodeId::new(format!("claim-{run}-{index}")))
        .collect()
}

/// `create_claiming(record, nodes)`, which must store it.
async fn claim(
    check: &'static str,
    store: &dyn SessionStore,
    record: &SessionRecord,
    nodes: &[NodeId],
) -> Result<Revision, ConformanceError> {
    let call = format!(
        "create_claiming({}) of {} free node(s)",
        record.upgrade_id(),
        nodes.len()
    );
    match store
        .create_claiming(record, nodes)
        .await
        .or_fail(check, &call)?
    {
        Ok(revision) => Ok(revision),
        Err(claimed) => Err(ConformanceError::new(
            check,
            format!("{call} should store the session, but was refused: {claimed:?}"),
        )),
    }
}

/// Checks that `claims()` gives each of `nodes` to `holder` (`None`: to nobody).
async fn expect_claims(
    check: &'static str,
    store: &dyn SessionStore,
    nodes: &[NodeId],
    holder: Option<Uuid>,
    when: &str,
) -> Result<(), ConformanceError> {
    let claims = store
        .claims()
        .await
        .or_fail(check, format!("claims() {when}"))?;
    for node in nodes {
        let found = claims.get(node).copied();
        if found != holder {
            return Err(ConformanceError::new(
                check,
                format!(
                    "claims() {when} should give node {node} to {holder:?}, but gives it to {found:?}"
                ),
            ));
        }
    }
    Ok(())
}

/// A session whose nodes overlap an unfinished session's claims is refused,
/// naming the holder and the shared nodes, and nothing of it is stored; a
/// session of the free nodes is stored.
pub async fn claimed_nodes_refuse_another_session(
    store: &dyn SessionStore,
    make_record: MakeRecord<'_>,
) -> Result<(), ConformanceError> {
    const CHECK: &str = "session_claims::claimed_nodes_refuse_another_session";
    let nodes = fresh_nodes(3);
    let first = new_record(CHECK, make_record)?;
    let second = new_record(CHECK, make_record)?;
    let third = new_record(CHECK, make_record)?;
    let result = async {
        claim(CHECK, store, &first, &nodes[..2]).await?;
        let call = format!("create_claiming({}) of a claimed node", second.upgrade_id());
        let refused = store
            .create_claiming(&second, &nodes[1..])
            .await
            .or_fail(CHECK, &call)?;
        let wanted = NodesClaimed {
            holder: first.upgrade_id(),
            nodes: vec![nodes[1].clone()],
        };
        if refused != Err(wanted.clone()) {
            return Err(ConformanceError::new(
                CHECK,
                format!("{call} should be refused with {wanted:?}, but answered {refused:?}"),
            ));
        }
        if let Some(found) = store
            .get(second.upgrade_id())
            .await
            .or_fail(CHECK, "get() of the refused session")?
        {
            return Err(ConformanceError::new(
                CHECK,
                format!("a refused create_claiming() should store nothing, but stored {found:?}"),
            ));
        }
        expect_claims(
            CHECK,
            store,
            &nodes[..2],
            Some(first.upgrade_id()),
            "after a refusal",
        )
        .await?;
        expect_claims(CHECK, store, &nodes[2..], None, "after a refusal").await?;
        claim(CHECK, store, &third, &nodes[2..]).await?;
        expect_claims(
            CHECK,
            store,
            &nodes[2..],
            Some(third.upgrade_id()),
            "after a claim of a free node",
        )
        .await
    }
    .await;
    for record in [&first, &second, &third] {
        forget(store, record.upgrade_id()).await;
    }
    result
}

/// The update that stores a session finished releases its claims: another
/// session may take its nodes.
pub async fn claims_go_when_the_session_finishes(
    store: &dyn SessionStore,
    make_record: MakeRecord<'_>,
) -> Result<(), ConformanceError> {
    const CHECK: &str = "session_claims::claims_go_when_the_session_finishes";
    let nodes = fresh_nodes(2);
    let first = new_record(CHECK, make_record)?;
    let second = new_record(CHECK, make_record)?;
    let result = async {
        let revision = claim(CHECK, store, &first, &nodes).await?;
        store
            .update(&first, revision)
            .await
            .or_fail(CHECK, "update() of an unfinished session")
            .map(|_| ())?;
        expect_claims(
            CHECK,
            store,
            &nodes,
            Some(first.upgrade_id()),
            "after an update of an unfinished session",
        )
        .await?;
        let current = store
            .get(first.upgrade_id())
            .await
            .or_fail(CHECK, "get()")?
            .map_or(revision, |found| found.revision);
        store
            .update(&finish(first.clone()), current)
            .await
            .or_fail(CHECK, "update() finishing the session")?;
        expect_claims(CHECK, store, &nodes, None, "after the session finished").await?;
        claim(CHECK, store, &second, &nodes).await.map(|_| ())
    }
    .await;
    forget(store, first.upgrade_id()).await;
    forget(store, second.upgrade_id()).await;
    result
}

/// Removing a session releases its claims.
pub async fn claims_go_when_the_session_is_removed(
    store: &dyn SessionStore,
    make_record: MakeRecord<'_>,
) -> Result<(), ConformanceError> {
    const CHECK: &str = "session_claims::claims_go_when_the_session_is_removed";
    let nodes = fresh_nodes(2);
    let first = new_record(CHECK, make_record)?;
    let second = new_record(CHECK, make_record)?;
    let result = async {
        let revision = claim(CHECK, store, &first, &nodes).await?;
        store
            .delete(first.upgrade_id(), revision)
            .await
            .or_fail(CHECK, "delete() of a claiming session")?;
        expect_claims(CHECK, store, &nodes, None, "after the session was removed").await?;
        claim(CHECK, store, &second, &nodes).await.map(|_| ())
    }
    .await;
    forget(store, first.upgrade_id()).await;
    forget(store, second.upgrade_id()).await;
    result
}

/// `create_claiming` of an id that exists is [`Error::Conflict`] and claims
/// nothing.
pub async fn an_existing_id_claims_nothing(
    store: &dyn SessionStore,
    make_record: MakeRecord<'_>,
) -> Result<(), ConformanceError> {
    const CHECK: &str = "session_claims::an_existing_id_claims_nothing";
    let nodes = fresh_nodes(1);
    let record = new_record(CHECK, make_record)?;
    let result = async {
        store
            .create(&record)
            .await
            .or_fail(CHECK, "create() of a new id")?;
        expect_error(
            CHECK,
            format!(
                "create_claiming({}) of an id that exists",
                record.upgrade_id()
            ),
            store.create_claiming(&record, &nodes).await,
            "Conflict",
            |error| matches!(error, Error::Conflict { .. }),
        )?;
        expect_claims(CHECK, store, &nodes, None, "after a refused claim").await
    }
    .await;
    forget(store, record.upgrade_id()).await;
    result
}

/// A session stored by `create` (as a release before claims stored every
/// session) claims no node, and a finished session's claims do not count.
pub async fn a_session_stored_without_claims_claims_nothing(
    store: &dyn SessionStore,
    make_record: MakeRecord<'_>,
) -> Result<(), ConformanceError> {
    const CHECK: &str = "session_claims::a_session_stored_without_claims_claims_nothing";
    let nodes = fresh_nodes(1);
    let plain = new_record(CHECK, make_record)?;
    let claiming = new_record(CHECK, make_record)?;
    let result = async {
        store
            .create(&plain)
            .await
            .or_fail(CHECK, "create() of a new id")?;
        let claims = store.claims().await.or_fail(CHECK, "claims()")?;
        if let Some((node, _)) = claims
            .iter()
            .find(|(_, holder)| **holder == plain.upgrade_id())
        {
            return Err(ConformanceError::new(
                CHECK,
                format!("a session stored by create() should claim nothing, but claims {node}"),
            ));
        }
        claim(CHECK, store, &claiming, &nodes).await.map(|_| ())
    }
    .await;
    forget(store, plain.upgrade_id()).await;
    forget(store, claiming.upgrade_id()).await;
    result
}

/// Creations racing for one node: exactly one is stored, and every other is
/// told that one holds the node.
pub async fn racing_claims_admit_one(
    store: &dyn SessionStore,
    make_record: MakeRecord<'_>,
) -> Result<(), ConformanceError> {
    const CHECK: &str = "session_claims::racing_claims_admit_one";
    let nodes = fresh_nodes(RACERS + 1);
    let records = (0..RACERS)
        .map(|_| new_record(CHECK, make_record))
        .collect::<Result<Vec<_>, _>>()?;
    // Each racer claims the shared node 0 and one of its own.
    let claims: Vec<Vec<NodeId>> = (0..RACERS)
        .map(|index| vec![nodes[index + 1].clone(), nodes[0].clone()])
        .collect();
    let outcomes = join_all(
        records
            .iter()
            .zip(&claims)
            .map(|(record, nodes)| store.create_claiming(record, nodes)),
    )
    .await;
    let result = (|| {
        let mut winners = Vec::new();
        let mut refusals = Vec::new();
        for (record, outcome) in records.iter().zip(outcomes) {
            match outcome.or_fail(CHECK, "a racing create_claiming()")? {
                Ok(_) => winners.push(record.upgrade_id()),
                Err(claimed) => refusals.push(claimed),
            }
        }
        let [winner] = winners[..] else {
            return Err(ConformanceError::new(
                CHECK,
                format!(
                    "{RACERS} creations racing for one node should store exactly one, but stored {}",
                    winners.len()
                ),
            ));
        };
        let wanted = vec![nodes[0].clone()];
        if let Some(wrong) = refusals
            .iter()
            .find(|claimed| claimed.holder != winner || claimed.nodes != wanted)
        {
            return Err(ConformanceError::new(
                CHECK,
                format!(
                    "each refused racer should be told that {winner} holds {}, but one was told {wrong:?}",
                    nodes[0]
                ),
            ));
        }
        Ok(())
    })();
    for record in &records {
        forget(store, record.upgrade_id()).await;
    }
    result
}
