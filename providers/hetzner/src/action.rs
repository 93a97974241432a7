//! Actions (`/actions/{id}`): Hetzner's asynchronous operations, one status check at a time.
//!
//! Creating a server, a snapshot or changing firewall rules answers with `action` /
//! `next_actions`; the core polls them through [`status`] with its own backoff and deadline.

use bootstrap_core::{Operation, OperationStatus, Result};

use crate::client::{Client, id_of};
use crate::schema::ActionEnvelope;

/// Where the action stands now: running, succeeded, or failed with Hetzner's reason.
pub(crate) async fn status(c: &Client, op: &Operation) -> Result<OperationStatus> {
    let r: ActionEnvelope = c.get(&format!("/actions/{}", id_of(&op.id)?), &[]).await?;
    Ok(r.action.status())
}
