//! Actions (`/actions/{id}`, `/actions?id=1&id=2`): Hetzner's asynchronous operations.
//!
//! Creating a server, a snapshot or changing firewall rules answers with `action` /
//! `next_actions`; the core polls them through [`status`], or many at once through
//! [`statuses`], with its own backoff and deadline.

use std::collections::HashMap;

use futures::{StreamExt as _, TryStreamExt as _};

use bootstrap_core::{Error, ErrorKind, Operation, OperationStatus, Result};

use crate::client::{Client, id_of};
use crate::schema::{ActionEnvelope, ActionList};

/// Ids per `GET /actions?id=..`: the document sets no limit, but the answer is one page, and a
/// page holds 25 items unless asked otherwise; 25 ids never need a second page.
const IDS_PER_CALL: usize = 25;

/// Where the action stands now: running, succeeded, or failed with Hetzner's reason.
pub(crate) async fn status(c: &Client, op: &Operation) -> Result<OperationStatus> {
    let r: ActionEnvelope = c.get(&format!("/actions/{}", id_of(&op.id)?), &[]).await?;
    Ok(r.action.status())
}

/// Where each of `ops` stands, in their order: one `GET /actions?id=..&id=..` per 25. An action
/// the answer leaves out is an error (as hcloud-go's waiter says "actions not found"), never
/// taken for running.
async fn read_actions(c: &Client, ids: Vec<i64>) -> Result<ActionList> {
    let query: Vec<(&str, String)> = ids.iter().map(|i| ("id", i.to_string())).collect();
    c.get("/actions", &query).await
}

pub(crate) async fn statuses(c: &Client, ops: &[Operation]) -> Result<Vec<OperationStatus>> {
    let ids = ops
        .iter()
        .map(|op| id_of(&op.id))
        .collect::<Result<Vec<i64>>>()?;
    let mut found: HashMap<i64, OperationStatus> = HashMap::with_capacity(ids.len());
    // The calls side by side, a few at a time: a thousand pending actions are 40 calls.
    let chunks: Vec<Vec<i64>> = ids.chunks(IDS_PER_CALL).map(<[i64]>::to_vec).collect();
    let answers: Vec<ActionList> = futures::stream::iter(chunks)
        .map(|q| read_actions(c, q))
        .buffered(bootstrap_core::http::CALLS_AT_ONCE)
        .try_collect()
        .await?;
    for r in answers {
        found.extend(r.actions.iter().map(|a| (a.id(), a.status())));
    }
    ids.iter()
        .zip(ops)
        .map(|(i, op)| {
            found.remove(i).ok_or_else(|| {
                Error::new(
                    ErrorKind::NotFound,
                    format!("hetzner action {} ({}) not found", op.id, op.what),
                )
            })
        })
        .collect()
}
