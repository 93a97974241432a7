//! Key pairs: `ImportKeyPair` of the deployment's ed25519 key, found again by fingerprint.
//!
//! The key pair's name is its id here: `RunInstances` takes the name (`KeyName`), names are
//! unique per region, and `DeleteKeyPair` accepts it. AWS reports an imported ed25519 key's
//! fingerprint as the padded base64 SHA256 of the key blob (`ssh-keygen -l` prints the same
//! digest unpadded, after `SHA256:`).

use aws_sdk_ec2::Client;
use aws_sdk_ec2::primitives::Blob;
use aws_sdk_ec2::types::{KeyPairInfo, ResourceType};
use bootstrap_core::{Labels, PublicKeyInfo, Result, SshKey, SshKeySpec};

use crate::error::{sdk, sdk_opt};
use crate::tags;

/// The fingerprint EC2 shows for an imported ed25519 key, from the `SHA256:...` form:
/// the same base64 digest, padded to a multiple of four with `=`.
pub(crate) fn aws_fingerprint(key: &PublicKeyInfo) -> String {
    let b64 = key.sha256.strip_prefix("SHA256:").unwrap_or(&key.sha256);
    let mut s = b64.to_owned();
    while !s.len().is_multiple_of(4) {
        s.push('=');
    }
    s
}

/// The base64 key blob of an OpenSSH line (`ssh-ed25519 AAAA... comment` -> `AAAA...`).
fn blob(openssh: &str) -> Option<&str> {
    openssh.split_whitespace().nth(1)
}

fn from_info(k: &KeyPairInfo) -> SshKey {
    let name = k.key_name().unwrap_or_default().to_owned();
    SshKey {
        id: name.clone(),
        name,
        fingerprint: k.key_fingerprint().unwrap_or_default().to_owned(),
        labels: tags::labels(k.tags()),
    }
}

/// The key pair holding `key`, under any name. Matched by fingerprint, or by the key material
/// itself (EC2 returns it with `IncludePublicKey`), so that an emulator computing fingerprints
/// differently still finds it.
pub(crate) async fn find(ec2: &Client, key: &PublicKeyInfo) -> Result<Option<SshKey>> {
    let fp = aws_fingerprint(key);
    let ours = blob(&key.openssh);
    // DescribeKeyPairs is not paginated: one call returns every key pair of the region.
    let out = sdk(
        "DescribeKeyPairs",
        ec2.describe_key_pairs()
            .include_public_key(true)
            .send()
            .await,
    )?;
    Ok(out
        .key_pairs()
        .iter()
        .find(|k| {
            k.key_fingerprint() == Some(fp.as_str())
                || (ours.is_some() && k.public_key().and_then(blob) == ours)
        })
        .map(from_info))
}

/// Key pairs carrying every label of `selector`.
pub(crate) async fn list(ec2: &Client, selector: &Labels) -> Result<Vec<SshKey>> {
    let out = sdk(
        "DescribeKeyPairs",
        ec2.describe_key_pairs()
            .set_filters(Some(tags::filters(selector)))
            .send()
            .await,
    )?;
    Ok(out
        .key_pairs()
        .iter()
        .map(from_info)
        .filter(|k| k.labels.matches(selector))
        .collect())
}

/// Imports the key, tagged; an existing name is `Conflict` (`InvalidKeyPair.Duplicate`).
pub(crate) async fn create(ec2: &Client, spec: &SshKeySpec) -> Result<SshKey> {
    let out = sdk(
        "ImportKeyPair",
        ec2.import_key_pair()
            .key_name(&spec.name)
            .public_key_material(Blob::new(spec.key.openssh.as_bytes()))
            .tag_specifications(tags::spec(ResourceType::KeyPair, &spec.labels, &spec.name))
            .send()
            .await,
    )?;
    Ok(SshKey {
        id: out.key_name().unwrap_or(&spec.name).to_owned(),
        name: out.key_name().unwrap_or(&spec.name).to_owned(),
        fingerprint: out.key_fingerprint().unwrap_or_default().to_owned(),
        labels: tags::labels(out.tags()),
    })
}

/// Deletes the key pair named `name`; a missing one is fine (EC2 itself answers success).
pub(crate) async fn delete(ec2: &Client, name: &str) -> Result<()> {
    sdk_opt(
        "DeleteKeyPair",
        ec2.delete_key_pair().key_name(name).send().await,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_fingerprint_is_the_padded_sha256() {
        let k = PublicKeyInfo {
            openssh: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB x".into(),
            md5: String::new(),
            sha256: "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU".into(),
        };
        assert_eq!(
            aws_fingerprint(&k),
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
        assert_eq!(blob(&k.openssh), Some("AAAAC3NzaC1lZDI1NTE5AAAAIB"));
    }
}
