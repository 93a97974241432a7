//! Actions (`/v2/actions/{id}`, `/v2/actions`): DigitalOcean's asynchronous operations. A
//! droplet's create answers `202` with its action in `links.actions`; droplet actions
//! (`snapshot`, `enable_backups`, ...) answer `201 {action}`. A `202` is not success: the core
//! polls each action until it is `completed` (or `errored`), one at a time through [`status`],
//! or many at once through [`statuses`].

use std::collections::{HashMap, HashSet};

use bootstrap_core::{Operation, OperationStatus, Result};

use crate::client::{Client, PER_PAGE, id_of};
use crate::schema::{Action, ActionEnvelope};

/// Where the action stands now.
pub(crate) async fn status(c: &Client, op: &Operation) -> Result<OperationStatus> {
    let r: ActionEnvelope = c
        .get(&format!("/v2/actions/{}", id_of(&op.id)?), &[])
        .await?;
    Ok(r.action.status())
}

/// Where each of `ops` stands, in their order. DigitalOcean reads no set of actions by id, but
/// lists the account's actions (`GET /v2/actions`, 200 a page, newest first): a job's pending
/// actions are among the newest, so a page or two answers hundreds of them. The listing stops
/// once all are seen, and after as many pages as the actions would fill plus one (the order is
/// not documented, and the account may have done other things since); an action still unseen
/// then is read alone, as is a single one.
pub(crate) async fn statuses(c: &Client, ops: &[Operation]) -> Result<Vec<OperationStatus>> {
    let ids = ops
        .iter()
        .map(|op| id_of(&op.id))
        .collect::<Result<Vec<i64>>>()?;
    let mut found: HashMap<i64, OperationStatus> = HashMap::with_capacity(ids.len());
    if ids.len() > 1 {
        let wanted: HashSet<i64> = ids.iter().copied().collect();
        let max_pages = ids.len().div_ceil(PER_PAGE as usize) + 1;
        c.list_while(
            "/v2/actions",
            "actions",
            vec![],
            max_pages,
            |page: Vec<Action>| {
                for a in page {
                    if wanted.contains(&a.id) {
                        found.insert(a.id, a.status());
                    }
                }
                found.len() < wanted.len()
            },
        )
        .await?;
    }
    let mut out = Vec::with_capacity(ops.len());
    for (id, op) in ids.iter().zip(ops) {
        out.push(match found.remove(id) {
            Some(s) => s,
            None => status(c, op).await?,
        });
    }
    Ok(out)
}
