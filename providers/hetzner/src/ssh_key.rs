//! SSH keys (`/ssh_keys`): found by MD5 fingerprint or labels, uploaded with our labels.
//!
//! Hetzner refuses a second key with the same fingerprint (`uniqueness_error`), so the core's
//! flow looks the key up by fingerprint before it uploads one.

use bootstrap_core::{Labels, Result, SshKey, SshKeySpec};
use hcloud::models;

use crate::client::{Client, id_of, labels_map};
use crate::schema::{SshKeyEnvelope, SshKeyList};
use crate::selector::selector;

/// The key with this MD5 colon-hex fingerprint, whoever uploaded it.
pub(crate) async fn get_by_fingerprint(c: &Client, md5: &str) -> Result<Option<SshKey>> {
    let keys = c
        .list_all::<SshKeyList>("/ssh_keys", vec![("fingerprint", md5.to_owned())])
        .await?;
    Ok(keys.into_iter().next().map(Into::into))
}

/// Every key carrying all of `labels`.
pub(crate) async fn list_by_labels(c: &Client, labels: &Labels) -> Result<Vec<SshKey>> {
    let keys = c
        .list_all::<SshKeyList>("/ssh_keys", vec![("label_selector", selector(labels))])
        .await?;
    Ok(keys.into_iter().map(Into::into).collect())
}

/// Uploads the public key with the spec's name and labels.
pub(crate) async fn create(c: &Client, spec: &SshKeySpec) -> Result<SshKey> {
    let body = models::CreateSshKeyRequest {
        labels: Some(labels_map(&spec.labels)),
        name: spec.name.clone(),
        public_key: spec.key.openssh.clone(),
    };
    let r: SshKeyEnvelope = c.post("/ssh_keys", &body).await?;
    Ok(r.ssh_key.into())
}

/// Deletes the key; one already gone is fine.
pub(crate) async fn delete(c: &Client, id: &str) -> Result<()> {
    c.delete::<serde_json::Value>(&format!("/ssh_keys/{}", id_of(id)?))
        .await
        .map(|_| ())
}
