//! The VM tier: the user-data `bootstrap create` sent, booted for real (QEMU, Debian 12 from
//! Debian packages, cloud-init from a NoCloud seed), and `bootstrap verify` passing every check
//! with none skipped, over SSH forwarded from 127.0.0.1.
//!
//! Not part of `cargo test --workspace` (`test = false` in Cargo.toml: each boot takes minutes
//! under software emulation); `.ci/run` runs it with `cargo test --locked --test vm`. Needs root,
//! the tools and the base image `.ci/install` sets up, and the Debian mirror (the guest's
//! `package_update`/`package_upgrade`/`packages` reach it through QEMU's user-mode network; nothing
//! else outside is asked). The tests take a lock so that only one VM runs at a time.

// Tests may panic on a broken fixture; that is how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

// Shared with tests/it; not every helper is used here.
#[allow(unused_imports)]
#[path = "../it/support.rs"]
mod support;

#[cfg(feature = "aws")]
#[path = "../it/moto.rs"]
mod moto;

mod guest;
mod machine;
mod story;
#[cfg(feature = "aws")]
mod variants;

use std::sync::{Mutex, MutexGuard};

/// One VM at a time: each is CPU-heavy under TCG.
static ONE_VM: Mutex<()> = Mutex::new(());

/// Takes the one-VM lock (a panicked holder does not poison the next test).
fn one_vm() -> MutexGuard<'static, ()> {
    ONE_VM.lock().unwrap_or_else(|e| e.into_inner())
}
