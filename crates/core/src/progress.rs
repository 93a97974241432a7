//! Progress events from the flows. The binary draws them (a spinner on a terminal); the core
//! only says what step it is on, so that every provider reports progress the same way.

/// Receives progress from the flows.
pub trait Progress: Send + Sync {
    /// A step started (e.g. "creating firewall").
    fn step(&self, message: &str);
    /// A step finished with a short result (e.g. "firewall 42").
    fn done(&self, message: &str);
    /// Something the user should know but that does not stop the flow.
    fn warn(&self, message: &str);
    /// A warning about the server's exposure (port 22 open to the world): shown even where
    /// other warnings are silenced (`--quiet`).
    fn security_warning(&self, message: &str) {
        self.warn(message);
    }
}

/// Progress that goes nowhere (tests, `--quiet`).
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl Progress for Silent {
    fn step(&self, _: &str) {}
    fn done(&self, _: &str) {}
    fn warn(&self, _: &str) {}
}
