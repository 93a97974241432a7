//! Progress on stderr: a spinner when stderr is a terminal, plain lines with `-v`, nothing with `-q`.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bootstrap_core::Progress;
use indicatif::{ProgressBar, ProgressStyle};

/// `-q`: set once at start, read by [`note`].
pub static QUIET: AtomicBool = AtomicBool::new(false);

/// The spinner in use, if any, so that a [`note`] can print above it instead of through it.
static SPINNER: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// A one-line note on stderr that is not a step (which context is in use); silent with `-q`.
pub fn note(message: &str) {
    if QUIET.load(Ordering::Relaxed) {
        return;
    }
    match SPINNER.lock().ok().and_then(|s| s.clone()) {
        Some(b) => b.println(message),
        None => eprintln!("{message}"),
    }
}

/// The binary's [`Progress`].
pub struct StderrProgress {
    bar: Option<ProgressBar>,
    lines: bool,
    quiet: bool,
}

impl StderrProgress {
    /// A spinner on a terminal; plain step lines when `verbose` and not a terminal.
    pub fn new(verbose: bool, quiet: bool) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let b = ProgressBar::new_spinner();
            b.set_style(
                ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            b.enable_steady_tick(Duration::from_millis(120));
            if let Ok(mut s) = SPINNER.lock() {
                *s = Some(b.clone());
            }
            b
        });
        Self {
            lines: verbose && bar.is_none(),
            bar,
            quiet,
        }
    }

    /// Clears the spinner before the result is printed.
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

impl Progress for StderrProgress {
    fn step(&self, message: &str) {
        tracing::info!("{message}");
        match &self.bar {
            Some(b) => b.set_message(message.to_owned()),
            None if self.lines => eprintln!("{message}"),
            None => {}
        }
    }

    fn done(&self, message: &str) {
        tracing::info!("{message}");
        match &self.bar {
            Some(b) => b.println(format!("✓ {message}")),
            None if self.lines => eprintln!("✓ {message}"),
            None => {}
        }
    }

    fn warn(&self, message: &str) {
        if self.quiet {
            return;
        }
        self.security_warning(message);
    }

    fn security_warning(&self, message: &str) {
        match &self.bar {
            Some(b) => b.println(format!("warning: {message}")),
            None => eprintln!("warning: {message}"),
        }
    }
}

impl Drop for StderrProgress {
    fn drop(&mut self) {
        self.finish();
    }
}
