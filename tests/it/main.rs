//! End-to-end tests of the `bootstrap` binary: fakes of each API, Prism for contracts, real tools.

// Tests may panic on a broken fixture; that is how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[cfg(feature = "aws")]
mod aws;
#[cfg(feature = "aws")]
mod aws_proxy;
#[cfg(feature = "aws")]
mod aws_snapshots;
mod bench;
mod cli;
mod completions;
mod context;
mod contract;
mod contract_digitalocean;
mod defaults;
mod digitalocean;
#[cfg(feature = "aws")]
mod dlm_fake;
mod faults;
mod flow;
mod hardening_cli;
mod hardening_target;
mod hostile_local;
mod hostile_net;
mod install;
mod json_output;
#[cfg(feature = "aws")]
mod moto;
mod prism;
mod race;
mod readme;
mod remembers;
mod rounds;
mod scaleway;
mod scaleway_prism;
mod scenario;
mod snapshots;
mod status;
mod support;
mod terminal;
mod verify;
