//! AMIs: `--image` is an AMI id, or a release name resolved to the publisher's newest AMI in the
//! region with `DescribeImages` on the publisher's account (never "anyone's image of that name").
//!
//! Publishers: Canonical (account 099720109477, names
//! `ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-YYYYMMDD`) and Debian
//! (136693071363, `debian-12-amd64-YYYYMMDD-NNNN`). The architecture follows the instance type:
//! Graviton types (`t4g`, `m7g`, ...) need arm64 images.

use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{DeviceType, Image};
use bootstrap_core::{Error, ErrorKind, Result};

use crate::error::sdk;
use crate::firewall::filter;

/// Canonical's AWS account, which publishes the official Ubuntu AMIs.
pub const CANONICAL: &str = "099720109477";
/// Debian's AWS account, which publishes the official Debian AMIs.
pub const DEBIAN: &str = "136693071363";

/// A release name, its publisher and its AMI name pattern (`{arch}` is `amd64` or `arm64`).
const RELEASES: &[(&str, &str, &str)] = &[
    (
        "ubuntu-24.04",
        CANONICAL,
        "ubuntu/images/*/ubuntu-noble-24.04-{arch}-server-*",
    ),
    (
        "ubuntu-22.04",
        CANONICAL,
        "ubuntu/images/*/ubuntu-jammy-22.04-{arch}-server-*",
    ),
    ("debian-13", DEBIAN, "debian-13-{arch}-*"),
    ("debian-12", DEBIAN, "debian-12-{arch}-*"),
    ("debian-11", DEBIAN, "debian-11-{arch}-*"),
];

/// CPU architecture of an AMI, as EC2 names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// `x86_64` (AMI names say `amd64`).
    X86_64,
    /// `arm64` (Graviton).
    Arm64,
}

impl Arch {
    /// The architecture an instance type runs: arm64 for Graviton families, whose letters after
    /// the generation number contain `g` (`t4g`, `m7gd`, `c6gn`, `hpc7g`, `g5g`) and `a1`;
    /// x86_64 for the rest (`t3`, `m7i`, `g4dn`).
    pub fn of_instance_type(instance_type: &str) -> Self {
        let family = instance_type.split('.').next().unwrap_or_default();
        if family == "a1" {
            return Self::Arm64;
        }
        let after_letters = family.trim_start_matches(|c: char| c.is_ascii_alphabetic());
        let suffix = after_letters.trim_start_matches(|c: char| c.is_ascii_digit());
        if suffix.split('-').next().is_some_and(|s| s.contains('g')) {
            Self::Arm64
        } else {
            Self::X86_64
        }
    }

    fn ec2(self) -> &'static str {
        match self {
            Self::X86_64 => "x86_64",
            Self::Arm64 => "arm64",
        }
    }

    fn in_name(self) -> &'static str {
        match self {
            Self::X86_64 => "amd64",
            Self::Arm64 => "arm64",
        }
    }
}

/// True for an AMI id (`ami-` and 8 or 17 hex digits).
pub fn is_ami_id(s: &str) -> bool {
    crate::config::check_id("--image", "ami-", s).is_ok()
}

/// Checks `--image` offline: an AMI id or a known release name.
pub fn check(image: &str) -> Result<()> {
    if is_ami_id(image) || RELEASES.iter().any(|(n, _, _)| *n == image) {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::InvalidInput,
        format!(
            "invalid --image {image:?} for AWS: give an AMI id (ami-...) or one of {}",
            RELEASES
                .iter()
                .map(|(n, _, _)| *n)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    ))
}

/// What `RunInstances` needs to know about the AMI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Resolved {
    /// The AMI id.
    pub id: String,
    /// Device name of its root volume (`/dev/sda1` on Ubuntu, `/dev/xvda` on Debian).
    pub root_device: String,
    /// Size of its root volume in GiB.
    pub root_size_gib: i32,
}

fn resolved(img: &Image) -> Option<Resolved> {
    let root_device = img.root_device_name()?.to_owned();
    let root_size_gib = img
        .block_device_mappings()
        .iter()
        .find(|m| m.device_name() == Some(root_device.as_str()))
        .and_then(|m| m.ebs())
        .and_then(|e| e.volume_size())
        .unwrap_or(8);
    Some(Resolved {
        id: img.image_id()?.to_owned(),
        root_device,
        root_size_gib,
    })
}

/// The newest of `images` (by creation date, then name) that boots from EBS.
fn newest(images: &[Image]) -> Option<&Image> {
    images
        .iter()
        .filter(|i| i.root_device_type() == Some(&DeviceType::Ebs))
        .max_by(|a, b| (a.creation_date(), a.name()).cmp(&(b.creation_date(), b.name())))
}

/// Images resolved by this adapter, so that `create` passes on the AMI its option check found
/// instead of asking `DescribeImages` again.
#[derive(Debug, Default)]
pub(crate) struct Cache(std::sync::Mutex<Vec<((String, Arch), Resolved)>>);

impl Cache {
    /// `image` for `arch`, resolved once per adapter.
    pub(crate) async fn resolve(&self, ec2: &Client, image: &str, arch: Arch) -> Result<Resolved> {
        let key = (image.to_owned(), arch);
        if let Some(r) = self.lock().iter().find(|(k, _)| *k == key) {
            return Ok(r.1.clone());
        }
        let r = resolve(ec2, image, arch).await?;
        self.lock().push((key, r.clone()));
        Ok(r)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<((String, Arch), Resolved)>> {
        // Poisoned only if a push panicked; the list is still whole.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Resolves `image` (an AMI id or a release name) for an instance of architecture `arch`.
pub(crate) async fn resolve(ec2: &Client, image: &str, arch: Arch) -> Result<Resolved> {
    if is_ami_id(image) {
        let out = sdk(
            "DescribeImages",
            ec2.describe_images().image_ids(image).send().await,
        )?;
        return out.images().first().and_then(resolved).ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("AMI {image} not found in this region: AMI ids differ per region"),
            )
        });
    }
    check(image)?;
    let Some((_, owner, pattern)) = RELEASES.iter().find(|(n, _, _)| *n == image) else {
        // check() above accepted it, so it is in RELEASES.
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("unknown image {image}"),
        ));
    };
    let mut images = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let out = sdk(
            "DescribeImages",
            ec2.describe_images()
                .owners(*owner)
                .filters(filter("name", &pattern.replace("{arch}", arch.in_name())))
                .filters(filter("architecture", arch.ec2()))
                .filters(filter("state", "available"))
                .set_next_token(token.take())
                .send()
                .await,
        )?;
        images.extend(out.images().iter().cloned());
        match out.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_owned()),
            _ => break,
        }
    }
    newest(&images).and_then(resolved).ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidInput,
            format!(
                "no {image} AMI for {} from its publisher (account {owner}) in this region: pass an AMI id with --image",
                arch.ec2()
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ec2::types::{BlockDeviceMapping, EbsBlockDevice};

    #[test]
    fn architecture_follows_the_instance_family() {
        for arm in [
            "t4g.small",
            "m7g.large",
            "m7gd.xlarge",
            "c6gn.medium",
            "hpc7g.4xlarge",
            "g5g.xlarge",
            "a1.large",
            "x2gd.large",
        ] {
            assert_eq!(Arch::of_instance_type(arm), Arch::Arm64, "{arm}");
        }
        for x86 in [
            "t3.micro",
            "t3a.small",
            "m7i.large",
            "m7i-flex.large",
            "g4dn.xlarge",
            "c6in.large",
            "u-6tb1.metal",
            "inf2.xlarge",
        ] {
            assert_eq!(Arch::of_instance_type(x86), Arch::X86_64, "{x86}");
        }
    }

    #[test]
    fn image_argument_shapes() {
        for ok in [
            "ami-12c6146b",
            "ami-0123456789abcdef0",
            "ubuntu-24.04",
            "debian-12",
        ] {
            check(ok).unwrap();
        }
        for bad in ["ubuntu", "ami-XYZ", "ubuntu-24.04 ", "debian-10", ""] {
            assert!(check(bad).is_err(), "{bad:?}");
        }
    }

    fn img(id: &str, date: &str, root_type: DeviceType) -> Image {
        Image::builder()
            .image_id(id)
            .name(format!(
                "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-{date}"
            ))
            .creation_date(format!("{date}T00:00:00.000Z"))
            .root_device_type(root_type)
            .root_device_name("/dev/sda1")
            .block_device_mappings(
                BlockDeviceMapping::builder()
                    .device_name("/dev/sda1")
                    .ebs(EbsBlockDevice::builder().volume_size(8).build())
                    .build(),
            )
            .build()
    }

    #[test]
    fn newest_ebs_image_wins() {
        let images = [
            img("ami-00000001", "2024-04-23", DeviceType::Ebs),
            img("ami-00000003", "2025-06-01", DeviceType::InstanceStore),
            img("ami-00000002", "2025-05-01", DeviceType::Ebs),
        ];
        let r = resolved(newest(&images).unwrap()).unwrap();
        assert_eq!(
            r,
            Resolved {
                id: "ami-00000002".into(),
                root_device: "/dev/sda1".into(),
                root_size_gib: 8
            }
        );
        assert!(newest(&[]).is_none());
    }
}
