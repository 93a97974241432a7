//! Stateful fakes of the cloud APIs `bootstrap` talks to, and the kit they are built on.
//!
//! # Brief overview
//!
//! A provider fake is an axum [`Router`](axum::Router) over its own state (resources, actions,
//! the documented errors) plus a few calls that tests use to seed and inspect that state. All
//! the rest is the kit, written once for every provider:
//!
//! - [`server`]: [`Builder`] starts the router on a loopback port, served by hyper on its own
//!   thread and runtime; the returned [`Server`] is the tests' handle (faults, rate limit, the
//!   request log) and stops, closing every connection, on drop.
//! - [`fault`]: the one fault vocabulary, [`Fault`]: a status before or after the work, a
//!   dropped connection before or after the work, a delay, a 429; for the n-th request, for a
//!   method and path pattern, or for any predicate.
//! - [`ratelimit`]: a token bucket reported the Hetzner, DigitalOcean or Scaleway way.
//! - [`clock`]: when an action finishes: after a number of polls (tests) or of milliseconds.
//! - [`page`]: one page of a list, rendered as each provider pages.
//! - [`openapi`]: checks answers against the provider's OpenAPI document.
//! - [`client`]: a blocking one-request client for tests.
//!
//! [`scaleway::FakeScaleway`] fakes Scaleway's Instance, Block and Marketplace APIs
//! (`fakecloud scaleway`).
//!
//! [`hetzner::FakeHetzner`] is the Hetzner Cloud fake; the `fakecloud` binary serves it
//! (`fakecloud hetzner --listen 127.0.0.1:8080`) for trying the tool without an account.
//!
//! ```no_run
//! use fakecloud::Fault;
//! use fakecloud::hetzner::FakeHetzner;
//!
//! let fake = FakeHetzner::start_default();
//! fake.fail_matching("POST", "/servers", Fault::DropAfter, 1);
//! // run `bootstrap create --endpoint <fake.url()> ...`, then look:
//! assert_eq!(fake.servers().len(), 1);
//! ```

pub mod cli;
pub mod client;
pub mod clock;
pub mod digitalocean;
pub mod fault;
pub mod hetzner;
pub mod openapi;
pub mod page;
pub mod ratelimit;
pub mod scaleway;
pub mod server;

pub use clock::Pace;
pub use fault::Fault;
pub use server::{Builder, LoggedRequest, Server};
