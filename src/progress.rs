//! Progress on stderr: a spinner when stderr is a terminal, else one plain line per step (no
//! ANSI codes); nothing with `-q`. The spinner steps aside for prompts and is gone before
//! anything is written to stdout.

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

/// Runs `f` (a prompt) with the spinner hidden, so it does not redraw over what the user types.
pub fn suspend<R>(f: impl FnOnce() -> R) -> R {
    match SPINNER.lock().ok().and_then(|s| s.clone()) {
        Some(b) => b.suspend(f),
        None => f(),
    }
}

/// Removes the spinner for good, before a result goes to stdout (the same terminal).
pub fn clear() {
    if let Some(b) = SPINNER.lock().ok().and_then(|mut s| s.take()) {
        b.finish_and_clear();
    }
}

/// Whether stderr gets colours: a terminal, and `NO_COLOR` unset or empty (no-color.org).
pub fn color() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

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
    /// A spinner on a terminal, else plain step lines (each once, whatever `-v` says).
    pub fn new(quiet: bool) -> Self {
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
            lines: !quiet && bar.is_none(),
            bar,
            quiet,
        }
    }

    /// Clears the spinner before the result is printed.
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
        clear();
    }
}

impl Progress for StderrProgress {
    // Steps go to the spinner or as lines, not also through tracing: one line per step, once.
    fn step(&self, message: &str) {
        match &self.bar {
            Some(b) => b.set_message(message.to_owned()),
            None if self.lines => eprintln!("{message}"),
            None => {}
        }
    }

    fn done(&self, message: &str) {
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
