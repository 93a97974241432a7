//! End-to-end tests of the `bootstrap` binary: fakes of each API, Prism for contracts, real tools.

// Tests may panic on a broken fixture; that is how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cli;
mod contract;
mod faults;
mod flow;
mod hetzner_fake;
mod prism;
mod support;
#[cfg(feature = "aws")]
mod aws;
#[cfg(feature = "aws")]
mod aws_proxy;
#[cfg(feature = "aws")]
mod moto;
