//! Actions (`/v2/actions/{id}`): DigitalOcean's asynchronous operations, one status check at a
//! time. A droplet's create answers `202` with its action in `links.actions`; droplet actions
//! (`snapshot`, `enable_backups`, ...) answer `201 {action}`. A `202` is not success: the core
//! polls each action until it is `completed` (or `errored`).

use bootstrap_core::{Operation, OperationStatus, Result};

use crate::client::{Client, id_of};
use crate::schema::ActionEnvelope;

/// Where the action stands now.
pub(crate) async fn status(c: &Client, op: &Operation) -> Result<OperationStatus> {
    let r: ActionEnvelope = c
        .get(&format!("/v2/actions/{}", id_of(&op.id)?), &[])
        .await?;
    Ok(r.action.status())
}
