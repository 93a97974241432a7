//! `cargo bench --bench speed`: how fast `bootstrap` is at the limit the clouds allow.
//!
//! The real binary runs `create` -> `destroy` and the snapshot job against `fakecloud`'s fakes
//! (in this process, with latency on every call and operations that take their time) and moto
//! behind a latency proxy (AWS). Every number comes from the cloud's own request log:
//! `analysis.rs` says how. `--quick` is what the test suite runs (tests/it/bench.rs), so the
//! bench keeps working; the full run appends a dated table to BENCHMARKS.md.

// Shared with tests/it/bench.rs, where each module is `super::`'s child too.
mod analysis;
#[cfg(feature = "aws")]
mod aws;
mod clouds;
mod report;
mod run;

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run::main(&args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("speed: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
