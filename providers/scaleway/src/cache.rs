//! What the adapter learned in one run and passes on instead of asking again (issue 12): the
//! server a create answered with, for `complete_server`; the rules a new security group still
//! owes, sent beside the server's create; what the option check found an image id to be; and
//! which steps of `complete_server` are done, so that a retry sends only the rest.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

use bootstrap_core::FirewallRule;

use crate::schema::ScwServer;

/// The rules a security group this run created has not been given yet.
#[derive(Debug, Clone)]
pub(crate) struct Owed {
    /// The rules, as the spec gave them.
    pub rules: Vec<FirewallRule>,
    /// No attempt at them failed: the group has no rules of ours, so they are only added. After
    /// a failure some may exist; then they are made exact (read, add, remove).
    pub fresh: bool,
}

/// A step of `complete_server` that needs no repeating once it answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Step {
    /// The volume (and older IPs) tagged with the server's id.
    Marked,
    /// The user-data set.
    UserData,
}

/// The adapter's memory for one run.
#[derive(Debug, Default)]
pub(crate) struct Cache {
    made: Mutex<HashMap<String, ScwServer>>,
    owed: Mutex<HashMap<String, Owed>>,
    snapshots: Mutex<HashMap<String, bool>>,
    done: Mutex<HashSet<(String, Step)>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Poisoned only if a thread panicked while inserting; the map is still whole.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Cache {
    /// A server this run's create call made, as it answered.
    pub(crate) fn made(&self, s: &ScwServer) {
        lock(&self.made).insert(s.id.clone(), s.clone());
    }

    /// The create's answer for `id`, taken: a second `complete_server` (a retry) reads the
    /// server afresh, since the first may have changed it.
    pub(crate) fn take_made(&self, id: &str) -> Option<ScwServer> {
        lock(&self.made).remove(id)
    }

    /// Group `id` was created without its rules.
    pub(crate) fn owe(&self, id: &str, rules: Vec<FirewallRule>) {
        lock(&self.owed).insert(id.to_owned(), Owed { rules, fresh: true });
    }

    /// The rules group `id` still owes.
    pub(crate) fn owed(&self, id: &str) -> Option<Owed> {
        lock(&self.owed).get(id).cloned()
    }

    /// Group `id` has its rules (`Ok`), or an attempt failed and some may exist (`Err`).
    pub(crate) fn settle<T, E>(&self, id: &str, r: &std::result::Result<T, E>) {
        let mut owed = lock(&self.owed);
        match r {
            Ok(_) => {
                owed.remove(id);
            }
            Err(_) => {
                if let Some(o) = owed.get_mut(id) {
                    o.fresh = false;
                }
            }
        }
    }

    /// `step` of completing server `id` answered.
    pub(crate) fn did(&self, id: &str, step: Step) {
        lock(&self.done).insert((id.to_owned(), step));
    }

    /// Whether `step` of completing server `id` already answered in this run.
    pub(crate) fn done(&self, id: &str, step: Step) -> bool {
        lock(&self.done).contains(&(id.to_owned(), step))
    }

    /// The option check found image id `id` to be a Block snapshot (`true`) or an image.
    pub(crate) fn image_kind(&self, id: &str, is_snapshot: bool) {
        lock(&self.snapshots).insert(id.to_owned(), is_snapshot);
    }

    /// What the option check found `id` to be, if it looked.
    pub(crate) fn is_snapshot(&self, id: &str) -> Option<bool> {
        lock(&self.snapshots).get(id).copied()
    }
}
