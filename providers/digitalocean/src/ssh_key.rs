//! SSH keys (`/v2/account/keys`): looked up by MD5 fingerprint, uploaded as `bootstrap-<name>`.
//!
//! Listing keys is limited to 10 requests a minute, so this module never lists them: a key is
//! read by fingerprint or by id (`GET /v2/account/keys/{id|fingerprint}`). Keys carry no tags;
//! which key a deployment uses is the droplet's `bootstrap-ssh-key:<id>` tag, and the adapter
//! remembers the keys it saw or made (see [`crate::DigitalOcean`]). A 422 "already in use" on
//! upload means the key is there (another upload won the race): the core's flow looks it up
//! again by fingerprint.

use bootstrap_core::{ErrorKind, Result, SshKey, SshKeySpec};
use serde_json::json;

use crate::client::{Client, id_of};
use crate::schema::SshKeyEnvelope;

/// The key with this MD5 colon-hex fingerprint (or numeric id), whoever uploaded it.
pub(crate) async fn get(c: &Client, id_or_fingerprint: &str) -> Result<Option<SshKey>> {
    let r = c
        .get_opt::<SshKeyEnvelope>(&format!("/v2/account/keys/{id_or_fingerprint}"))
        .await?;
    Ok(r.map(|e| e.ssh_key.into()))
}

/// Uploads the public key with the spec's name; a duplicate is `ErrorKind::Conflict` (see
/// [`crate::error::ApiError::is_key_in_use`]).
///
/// An upload whose answer was lost (the connection dropped, a 5xx) may have worked: the key
/// is then read back by fingerprint, and one with the spec's name is this upload's, returned
/// so that a rollback removes it.
pub(crate) async fn create(c: &Client, spec: &SshKeySpec) -> Result<SshKey> {
    let body = json!({ "name": spec.name, "public_key": spec.key.openssh });
    match c.post::<SshKeyEnvelope, _>("/v2/account/keys", &body).await {
        Ok(r) => Ok(r.ssh_key.into()),
        Err(e) if matches!(e.kind(), ErrorKind::Transient | ErrorKind::Timeout) => {
            match get(c, &spec.key.md5).await {
                Ok(Some(k)) if k.name == spec.name => Ok(k),
                _ => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

/// Deletes the key; one already gone is fine.
pub(crate) async fn delete(c: &Client, id: &str) -> Result<()> {
    c.delete(&format!("/v2/account/keys/{}", id_of(id)?)).await
}
