//! End-to-end tests of the `bootstrap` binary: fakes of each API, Prism for contracts, real tools.

mod cli;
mod hetzner_fake;
mod support;
