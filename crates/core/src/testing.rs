//! An in-memory [`Provider`] for flow tests: behaves like the contract says (labels kept,
//! missing deletes are fine, firewalls in use refuse deletion, servers start through operations
//! that run for a few polls), and fails the calls a test asks it to.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::describe::{Defaults, Description, Limits, OwnershipModel};
use crate::error::{Error, ErrorKind, Result};
use crate::model::{
    Firewall, FirewallRule, FirewallSpec, Labels, Operation, OperationStatus, PublicKeyInfo,
    Server, ServerSpec, ServerStatus, Snapshot, SnapshotStatus, SshKey, SshKeySpec, merge_rules,
};
use crate::provider::{Created, Provider, SnapshotToFinish};

/// The in-memory cloud's description: labels on everything, a key resource, EC2's grace.
pub static FAKE: Description = FAKE_DESCRIPTION;

/// [`FAKE`] as a constant, for tests that describe variants (`..FAKE_DESCRIPTION`).
pub const FAKE_DESCRIPTION: Description = Description {
    name: "fake",
    title: "in-memory fake",
    credential_vars: &[],
    credential_sources: "nothing",
    defaults: Defaults {
        server_type: "small",
        image: "ubuntu-24.04",
        location: "here",
    },
    limits: Limits {
        user_data_max_bytes: 32 * 1024,
    },
    snapshot_engines: &[crate::describe::ENGINE_JOB],
    provider_backups: false,
    ownership: OwnershipModel::LABELS,
    key_resource: true,
    unique_key_names: true,
    key_goes_beside_server: true,
    visibility_grace: std::time::Duration::from_secs(60),
    flags: &[],
    create_flags: &[],
    context: None,
    location_help: "anything",
    location_flag: None,
    default_location: || None,
    check_flags: |_| Ok(()),
    check_server: |_, _, _, _| Ok(()),
    connect: |_| Box::pin(async { Ok(Box::new(FakeProvider::new()) as Box<dyn Provider>) }),
};

/// How an injected failure behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Fails before doing anything (a 500 that changed nothing).
    Before,
    /// Does the work, then fails (the answer was lost).
    After,
    /// Fails before doing anything with an error worth a retry (a 503).
    Transient,
    /// Refuses the input (an unknown server type): `ErrorKind::InvalidInput`, nothing done.
    Invalid,
}

#[derive(Debug, Default)]
struct State {
    next_id: u64,
    keys: BTreeMap<String, SshKey>,
    firewalls: BTreeMap<String, (Firewall, Vec<String>)>,
    servers: BTreeMap<String, (Server, Vec<String>)>,
    // op id -> (polls left, server to make running / delete when done)
    ops: BTreeMap<String, (u32, OpEffect)>,
    calls: Vec<String>,
    /// Each call's name and when it was sent.
    sent: Vec<(String, tokio::time::Instant)>,
    faults: Vec<(usize, Fault)>,
    named_faults: Vec<(String, Fault)>,
    hidden_gets: u32,
    snapshots: BTreeMap<String, Snapshot>,
    /// Servers that still need `complete_server` (created stopped, without user-data).
    incomplete: Vec<String>,
    /// Snapshot ids that only become known (and labelled) through `finish_snapshots`.
    unfinished: Vec<String>,
    /// Seconds added to the clock of every new snapshot.
    clock: i64,
}

#[derive(Debug, Clone)]
enum OpEffect {
    Start(String),
    Delete(String),
    Snapshot(String),
}

/// The in-memory provider.
#[derive(Debug)]
pub struct FakeProvider {
    state: Mutex<State>,
    /// Polls a server-start operation stays running.
    pub op_polls: u32,
    /// Polls a server-delete operation stays running.
    pub delete_polls: u32,
    /// What it says it is; tests swap in variants (no key resource, a completing step, ...).
    pub description: &'static Description,
    /// Servers come up stopped and need `complete_server` (Scaleway's shape).
    pub needs_completion: bool,
    /// A snapshot's id and labels only appear in `finish_snapshots` (DigitalOcean's shape).
    pub deferred_snapshots: bool,
    /// Server and firewall names need not be unique (DigitalOcean, Scaleway, EC2): racing
    /// runs each get theirs.
    pub duplicate_names: bool,
    /// Every call yields first, so that flows run side by side (racing runs) interleave.
    pub interleave: bool,
    /// Every call takes this long (a network round trip), so that a test on paused time reads
    /// from the clock how many sequential round trips a flow made.
    pub latency: Option<std::time::Duration>,
}

impl Default for FakeProvider {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeProvider {
    /// An empty cloud whose operations take two polls.
    pub fn new() -> Self {
        Self {
            state: Mutex::default(),
            op_polls: 2,
            delete_polls: 2,
            description: &FAKE,
            needs_completion: false,
            deferred_snapshots: false,
            duplicate_names: false,
            interleave: false,
            latency: None,
        }
    }

    /// Every call yields first, so that two flows joined on one task take turns call by call.
    #[must_use]
    pub fn interleaving(mut self) -> Self {
        self.interleave = true;
        self
    }

    /// Server and firewall names need not be unique (DigitalOcean, Scaleway, EC2).
    #[must_use]
    pub fn allowing_duplicate_names(mut self) -> Self {
        self.duplicate_names = true;
        self
    }

    /// Every server, in id order.
    pub fn servers(&self) -> Vec<Server> {
        self.lock().servers.values().map(|x| x.0.clone()).collect()
    }

    /// The firewalls applied to a server.
    pub fn firewalls_of(&self, server: &str) -> Vec<String> {
        self.lock()
            .firewalls
            .iter()
            .filter(|(_, x)| x.1.iter().any(|s| s == server))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// The same cloud describing itself as `description` (no key resource, name ownership...).
    #[must_use]
    pub fn describing(mut self, description: &'static Description) -> Self {
        self.description = description;
        self
    }

    /// Servers come up stopped and need `complete_server` (Scaleway's shape).
    #[must_use]
    pub fn completing(mut self) -> Self {
        self.needs_completion = true;
        self
    }

    /// Snapshot ids appear only in `finish_snapshots` (DigitalOcean's shape).
    #[must_use]
    pub fn deferring_snapshots(mut self) -> Self {
        self.deferred_snapshots = true;
        self
    }

    /// Every snapshot, including unfinished ones, in id order.
    pub fn snapshots(&self) -> Vec<Snapshot> {
        self.lock().snapshots.values().cloned().collect()
    }

    /// Adds a snapshot as if taken earlier (or by someone else), `age_hours` ago.
    pub fn add_snapshot(&self, name: &str, labels: Labels, age_hours: i64) -> String {
        let mut s = self.lock();
        let id = next(&mut s);
        let created = time::OffsetDateTime::now_utc() - time::Duration::hours(age_hours);
        s.snapshots.insert(
            id.clone(),
            Snapshot {
                id: id.clone(),
                name: name.to_owned(),
                created,
                status: SnapshotStatus::Available,
                labels,
            },
        );
        id
    }

    /// Marks a snapshot failed (a provider image that ended in error).
    pub fn break_snapshot(&self, id: &str) {
        if let Some(x) = self.lock().snapshots.get_mut(id) {
            x.status = SnapshotStatus::Other("error".into());
        }
    }

    /// Whether a server still waits for `complete_server`.
    pub fn is_incomplete(&self, id: &str) -> bool {
        self.lock().incomplete.iter().any(|x| x == id)
    }

    /// Finds an unfinished snapshot by name among the images and labels it (DigitalOcean's
    /// shape); one with an id is returned as it is.
    fn finish_one(&self, snapshot: &Snapshot, labels: &Labels) -> Result<Snapshot> {
        let mut s = self.lock();
        if !snapshot.id.is_empty() {
            return Ok(snapshot.clone());
        }
        let Some(id) = s
            .snapshots
            .values()
            .find(|x| x.name == snapshot.name)
            .map(|x| x.id.clone())
        else {
            return Err(Error::new(ErrorKind::NotFound, "snapshot image not found"));
        };
        s.unfinished.retain(|u| *u != id);
        let x = s
            .snapshots
            .get_mut(&id)
            .ok_or_else(|| Error::new(ErrorKind::NotFound, "snapshot image not found"))?;
        x.labels = labels.clone();
        Ok(x.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock only means another test thread panicked; the state is still usable.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// An empty cloud with the given operation lengths (in polls).
    pub fn with_polls(op_polls: u32, delete_polls: u32) -> Self {
        Self {
            op_polls,
            delete_polls,
            ..Self::new()
        }
    }

    /// Makes call number `n` (1-based, in order of arrival) fail.
    pub fn fail_call(&self, n: usize, fault: Fault) {
        self.lock().faults.push((n, fault));
    }

    /// Every call takes `latency` (see [`FakeProvider::latency`]).
    #[must_use]
    pub fn with_latency(mut self, latency: std::time::Duration) -> Self {
        self.latency = Some(latency);
        self
    }

    /// Each call so far with the time it was sent, in the order they were answered.
    pub fn sent(&self) -> Vec<(String, tokio::time::Instant)> {
        self.lock().sent.clone()
    }

    /// Makes the next call named `name` (e.g. `create_server`) fail.
    pub fn fail_next(&self, name: &str, fault: Fault) {
        self.lock().named_faults.push((name.to_owned(), fault));
    }

    /// Names of the calls made so far, in order.
    pub fn calls(&self) -> Vec<String> {
        self.lock().calls.clone()
    }

    /// How many resources carry all of `selector`'s labels (snapshots included).
    pub fn count(&self, selector: &Labels) -> usize {
        let s = self.lock();
        s.snapshots
            .values()
            .filter(|x| x.labels.matches(selector))
            .count()
            + s.keys
                .values()
                .filter(|k| k.labels.matches(selector))
                .count()
            + s.firewalls
                .values()
                .filter(|f| f.0.labels.matches(selector))
                .count()
            + s.servers
                .values()
                .filter(|v| v.0.labels.matches(selector))
                .count()
    }

    /// Adds a key as if someone uploaded it outside this tool.
    pub fn add_foreign_key(&self, key: &PublicKeyInfo, name: &str) -> String {
        let mut s = self.lock();
        let id = next(&mut s);
        s.keys.insert(
            id.clone(),
            SshKey {
                id: id.clone(),
                name: name.to_owned(),
                fingerprint: key.md5.clone(),
                labels: Labels::new(),
            },
        );
        id
    }

    /// The next `n` `get_server` calls answer `None`, as EC2 does for an instance it has just
    /// launched (eventual consistency).
    pub fn hide_servers_for(&self, n: u32) {
        self.lock().hidden_gets = n;
    }

    /// Every firewall, in id order.
    pub fn firewalls(&self) -> Vec<Firewall> {
        self.lock()
            .firewalls
            .values()
            .map(|x| x.0.clone())
            .collect()
    }

    /// Deletes a firewall by hand, detached from its servers first (what a user can do in the
    /// provider's console).
    pub fn remove_firewall_by_hand(&self, id: &str) {
        self.lock().firewalls.remove(id);
    }

    /// Adds a firewall as if someone made it outside this tool.
    pub fn add_foreign_firewall(&self, name: &str) {
        let mut s = self.lock();
        let id = next(&mut s);
        s.firewalls.insert(
            id.clone(),
            (
                Firewall {
                    id,
                    name: name.to_owned(),
                    labels: Labels::new(),
                    inbound: Vec::new(),
                },
                Vec::new(),
            ),
        );
    }

    /// One look at an operation: it finishes (with its effect) once its polls are used up.
    fn check_op(&self, op: &Operation) -> Result<OperationStatus> {
        let mut s = self.lock();
        let Some((left, effect)) = s.ops.get_mut(&op.id) else {
            return Err(Error::new(ErrorKind::NotFound, "no such action"));
        };
        if *left > 0 {
            *left -= 1;
            return Ok(OperationStatus::Running);
        }
        match effect.clone() {
            OpEffect::Start(id) => {
                if let Some(x) = s.servers.get_mut(&id) {
                    x.0.status = ServerStatus::Running;
                }
            }
            OpEffect::Delete(id) => {
                s.servers.remove(&id);
            }
            OpEffect::Snapshot(id) => {
                if let Some(x) = s.snapshots.get_mut(&id)
                    && x.status == SnapshotStatus::Creating
                {
                    x.status = SnapshotStatus::Available;
                }
            }
        }
        Ok(OperationStatus::Succeeded)
    }

    /// Records a call; returns the fault to apply, if any. Interleaving, it first lets every
    /// other task run, as a network round trip would.
    async fn call(&self, name: &str) -> Option<Fault> {
        if self.interleave {
            tokio::task::yield_now().await;
        }
        let sent = tokio::time::Instant::now();
        if let Some(l) = self.latency {
            tokio::time::sleep(l).await;
        }
        let mut s = self.lock();
        s.calls.push(name.to_owned());
        s.sent.push((name.to_owned(), sent));
        let n = s.calls.len();
        if let Some(pos) = s.named_faults.iter().position(|(c, _)| c == name) {
            return Some(s.named_faults.remove(pos).1);
        }
        s.faults.iter().find(|(i, _)| *i == n).map(|(_, f)| *f)
    }
}

fn by_name(how: crate::describe::Ownership) -> bool {
    how == crate::describe::Ownership::Name
}

fn next(s: &mut State) -> String {
    s.next_id += 1;
    s.next_id.to_string()
}

fn injected(name: &str) -> Error {
    Error::new(ErrorKind::Other, format!("injected failure of {name}"))
}

/// Runs `work` honouring the fault: `Before` fails without it, `After` fails after it.
fn faulty<T>(fault: Option<Fault>, name: &str, work: impl FnOnce() -> Result<T>) -> Result<T> {
    match fault {
        Some(Fault::Before) => Err(injected(name)),
        Some(Fault::Transient) => Err(Error::new(
            ErrorKind::Transient,
            format!("injected transient failure of {name}"),
        )),
        Some(Fault::Invalid) => Err(Error::new(
            ErrorKind::InvalidInput,
            format!("--server-type: injected refusal by {name}"),
        )),
        Some(Fault::After) => {
            work()?;
            Err(injected(name))
        }
        None => work(),
    }
}

#[async_trait]
impl Provider for FakeProvider {
    fn description(&self) -> &'static Description {
        self.description
    }

    async fn find_ssh_key(&self, key: &PublicKeyInfo) -> Result<Option<SshKey>> {
        let f = self.call("find_ssh_key").await;
        faulty(f, "find_ssh_key", || {
            Ok(self
                .lock()
                .keys
                .values()
                .find(|k| k.fingerprint == key.md5)
                .cloned())
        })
    }

    async fn list_ssh_keys(&self, selector: &Labels) -> Result<Vec<SshKey>> {
        let f = self.call("list_ssh_keys").await;
        faulty(f, "list_ssh_keys", || {
            Ok(self
                .lock()
                .keys
                .values()
                // A kind owned by name cannot be filtered by the API: the flow filters it.
                .filter(|k| {
                    by_name(self.description.ownership.ssh_key) || k.labels.matches(selector)
                })
                .cloned()
                .collect())
        })
    }

    async fn create_ssh_key(&self, spec: &SshKeySpec) -> Result<SshKey> {
        let f = self.call("create_ssh_key").await;
        faulty(f, "create_ssh_key", || {
            let mut s = self.lock();
            if s.keys.values().any(|k| {
                (!self.duplicate_names && k.name == spec.name) || k.fingerprint == spec.key.md5
            }) {
                return Err(Error::new(ErrorKind::Conflict, "uniqueness_error"));
            }
            let id = next(&mut s);
            let k = SshKey {
                id: id.clone(),
                name: spec.name.clone(),
                fingerprint: spec.key.md5.clone(),
                labels: spec.labels.clone(),
            };
            s.keys.insert(id, k.clone());
            Ok(k)
        })
    }

    async fn delete_ssh_key(&self, id: &str) -> Result<()> {
        let f = self.call("delete_ssh_key").await;
        faulty(f, "delete_ssh_key", || {
            self.lock().keys.remove(id);
            Ok(())
        })
    }

    /// Every option exists in the in-memory cloud.
    async fn check_server_options(&self, _: &str, _: &str, _: &str) -> Result<()> {
        let f = self.call("check_server_options").await;
        faulty(f, "check_server_options", || Ok(()))
    }

    async fn list_firewalls(&self, selector: &Labels) -> Result<Vec<Firewall>> {
        let f = self.call("list_firewalls").await;
        faulty(f, "list_firewalls", || {
            Ok(self
                .lock()
                .firewalls
                .values()
                .filter(|x| {
                    by_name(self.description.ownership.firewall) || x.0.labels.matches(selector)
                })
                .map(|x| x.0.clone())
                .collect())
        })
    }

    async fn create_firewall(&self, spec: &FirewallSpec) -> Result<Created<Firewall>> {
        let f = self.call("create_firewall").await;
        faulty(f, "create_firewall", || {
            let mut s = self.lock();
            if !self.duplicate_names && s.firewalls.values().any(|x| x.0.name == spec.name) {
                return Err(Error::new(ErrorKind::Conflict, "uniqueness_error"));
            }
            let id = next(&mut s);
            let fw = Firewall {
                id: id.clone(),
                name: spec.name.clone(),
                labels: spec.labels.clone(),
                inbound: spec.inbound.clone(),
            };
            s.firewalls.insert(id, (fw.clone(), Vec::new()));
            Ok(Created::ready(fw))
        })
    }

    async fn update_firewall_rules(
        &self,
        firewall: &Firewall,
        inbound: &[FirewallRule],
    ) -> Result<Vec<Operation>> {
        let f = self.call("update_firewall_rules").await;
        faulty(f, "update_firewall_rules", || {
            let mut s = self.lock();
            let Some(x) = s.firewalls.get_mut(&firewall.id) else {
                return Err(Error::new(ErrorKind::NotFound, "not_found"));
            };
            x.0.inbound = merge_rules(&x.0.inbound, inbound);
            Ok(Vec::new())
        })
    }

    async fn delete_firewall(&self, id: &str) -> Result<()> {
        let f = self.call("delete_firewall").await;
        faulty(f, "delete_firewall", || {
            let mut s = self.lock();
            let in_use = s
                .firewalls
                .get(id)
                .is_some_and(|x| x.1.iter().any(|srv| s.servers.contains_key(srv)));
            if in_use {
                return Err(Error::new(ErrorKind::InUse, "resource_in_use"));
            }
            s.firewalls.remove(id);
            Ok(())
        })
    }

    async fn attach_firewall(
        &self,
        server: &Server,
        firewall: &Firewall,
    ) -> Result<Vec<Operation>> {
        let f = self.call("attach_firewall").await;
        faulty(f, "attach_firewall", || {
            let mut s = self.lock();
            if !s.servers.contains_key(&server.id) {
                return Err(Error::new(ErrorKind::NotFound, "no such server"));
            }
            let Some(x) = s.firewalls.get_mut(&firewall.id) else {
                return Err(Error::new(ErrorKind::NotFound, "no such firewall"));
            };
            if !x.1.contains(&server.id) {
                x.1.push(server.id.clone());
            }
            Ok(Vec::new())
        })
    }

    async fn enable_provider_backups(&self, server: &Server) -> Result<Vec<Operation>> {
        let f = self.call("enable_provider_backups").await;
        faulty(f, "enable_provider_backups", || {
            if self.lock().servers.contains_key(&server.id) {
                Ok(Vec::new())
            } else {
                Err(Error::new(ErrorKind::NotFound, "no such server"))
            }
        })
    }

    async fn list_servers(&self, selector: &Labels) -> Result<Vec<Server>> {
        let f = self.call("list_servers").await;
        faulty(f, "list_servers", || {
            Ok(self
                .lock()
                .servers
                .values()
                .filter(|x| x.0.labels.matches(selector) && x.0.status != ServerStatus::Deleting)
                .map(|x| x.0.clone())
                .collect())
        })
    }

    async fn get_server(&self, id: &str) -> Result<Option<Server>> {
        let f = self.call("get_server").await;
        faulty(f, "get_server", || {
            let mut s = self.lock();
            if s.hidden_gets > 0 {
                s.hidden_gets -= 1;
                return Ok(None);
            }
            Ok(s.servers.get(id).map(|x| x.0.clone()))
        })
    }

    async fn create_server(&self, spec: &ServerSpec) -> Result<Created<Server>> {
        let f = self.call("create_server").await;
        let polls = self.op_polls;
        faulty(f, "create_server", || {
            let mut s = self.lock();
            if !self.duplicate_names && s.servers.values().any(|x| x.0.name == spec.name) {
                return Err(Error::new(ErrorKind::Conflict, "uniqueness_error"));
            }
            for k in &spec.ssh_key_ids {
                if !s.keys.contains_key(k) {
                    return Err(Error::new(
                        ErrorKind::InvalidInput,
                        format!("no ssh key {k}"),
                    ));
                }
            }
            let id = next(&mut s);
            let server = Server {
                id: id.clone(),
                name: spec.name.clone(),
                status: if self.needs_completion {
                    ServerStatus::Off
                } else {
                    ServerStatus::Starting
                },
                ipv4: Some(std::net::IpAddr::from([203, 0, 113, 10])),
                ipv6: None,
                labels: spec.labels.clone(),
                // Ids count up, so the order of creation is the order of ids.
                created: None,
            };
            for fw in &spec.firewall_ids {
                if let Some(x) = s.firewalls.get_mut(fw) {
                    x.1.push(id.clone());
                }
            }
            s.servers
                .insert(id.clone(), (server.clone(), spec.firewall_ids.clone()));
            if self.needs_completion {
                // Created stopped, without user-data: `complete_server` must follow.
                s.incomplete.push(id);
                return Ok(Created::ready(server));
            }
            let op = next(&mut s);
            s.ops.insert(op.clone(), (polls, OpEffect::Start(id)));
            Ok(Created {
                resource: server,
                pending: vec![Operation {
                    id: op,
                    what: "create_server".into(),
                }],
            })
        })
    }

    async fn delete_server(&self, id: &str) -> Result<Vec<Operation>> {
        let f = self.call("delete_server").await;
        let polls = self.delete_polls;
        faulty(f, "delete_server", || {
            let mut s = self.lock();
            let Some(x) = s.servers.get_mut(id) else {
                return Ok(Vec::new());
            };
            x.0.status = ServerStatus::Deleting;
            let op = next(&mut s);
            s.ops
                .insert(op.clone(), (polls, OpEffect::Delete(id.to_owned())));
            Ok(vec![Operation {
                id: op,
                what: "delete_server".into(),
            }])
        })
    }

    async fn operation_status(&self, op: &Operation) -> Result<OperationStatus> {
        let f = self.call("operation_status").await;
        faulty(f, "operation_status", || self.check_op(op))
    }

    /// One recorded call for the whole batch, as Hetzner's `GET /actions?id=..`.
    async fn operation_statuses(&self, ops: &[Operation]) -> Result<Vec<OperationStatus>> {
        let f = self.call("operation_statuses").await;
        faulty(f, "operation_statuses", || {
            ops.iter().map(|op| self.check_op(op)).collect()
        })
    }

    async fn complete_server(&self, server: &Server, _spec: &ServerSpec) -> Result<Vec<Operation>> {
        let f = self.call("complete_server").await;
        let polls = self.op_polls;
        faulty(f, "complete_server", || {
            let mut s = self.lock();
            let Some(pos) = s.incomplete.iter().position(|x| *x == server.id) else {
                return Ok(Vec::new());
            };
            s.incomplete.remove(pos);
            if let Some(x) = s.servers.get_mut(&server.id) {
                x.0.status = ServerStatus::Starting;
            }
            let op = next(&mut s);
            s.ops
                .insert(op.clone(), (polls, OpEffect::Start(server.id.clone())));
            Ok(vec![Operation {
                id: op,
                what: "poweron".into(),
            }])
        })
    }

    async fn set_server_labels(&self, server: &Server, labels: &Labels) -> Result<()> {
        let f = self.call("set_server_labels").await;
        faulty(f, "set_server_labels", || {
            match self.lock().servers.get_mut(&server.id) {
                Some(x) => {
                    x.0.labels = labels.clone();
                    Ok(())
                }
                None => Err(Error::new(ErrorKind::NotFound, "not_found")),
            }
        })
    }

    async fn list_snapshots(&self, selector: &Labels) -> Result<Vec<Snapshot>> {
        let f = self.call("list_snapshots").await;
        faulty(f, "list_snapshots", || {
            Ok(self
                .lock()
                .snapshots
                .values()
                .filter(|x| x.labels.matches(selector))
                .cloned()
                .collect())
        })
    }

    async fn get_snapshot(&self, id: &str) -> Result<Option<Snapshot>> {
        let f = self.call("get_snapshot").await;
        faulty(f, "get_snapshot", || {
            Ok(self.lock().snapshots.get(id).cloned())
        })
    }

    async fn create_snapshot(
        &self,
        server: &Server,
        name: &str,
        labels: &Labels,
    ) -> Result<Created<Snapshot>> {
        let f = self.call("create_snapshot").await;
        let polls = self.op_polls;
        let deferred = self.deferred_snapshots;
        faulty(f, "create_snapshot", || {
            let mut s = self.lock();
            if !s.servers.contains_key(&server.id) {
                return Err(Error::new(ErrorKind::NotFound, "no such server"));
            }
            if s.snapshots.values().any(|x| x.name == name) {
                return Err(Error::new(ErrorKind::Conflict, "duplicate image name"));
            }
            let id = next(&mut s);
            s.clock += 1;
            let snap = Snapshot {
                id: id.clone(),
                name: name.to_owned(),
                created: time::OffsetDateTime::now_utc() + time::Duration::seconds(s.clock),
                status: SnapshotStatus::Creating,
                // Deferred: like a DigitalOcean image, untagged until finished.
                labels: if deferred {
                    Labels::new()
                } else {
                    labels.clone()
                },
            };
            s.snapshots.insert(id.clone(), snap.clone());
            let op = next(&mut s);
            s.ops
                .insert(op.clone(), (polls, OpEffect::Snapshot(id.clone())));
            let resource = if deferred {
                s.unfinished.push(id);
                // The action answer carries no image id.
                Snapshot {
                    id: String::new(),
                    ..snap
                }
            } else {
                snap
            };
            Ok(Created {
                resource,
                pending: vec![Operation {
                    id: op,
                    what: "snapshot".into(),
                }],
            })
        })
    }

    /// One recorded call for the whole batch, as DigitalOcean's one listing and one call per tag.
    async fn finish_snapshots(&self, items: &[SnapshotToFinish]) -> Result<Vec<Result<Snapshot>>> {
        let f = self.call("finish_snapshots").await;
        faulty(f, "finish_snapshots", || {
            Ok(items
                .iter()
                .map(|i| self.finish_one(&i.snapshot, &i.labels))
                .collect())
        })
    }

    async fn delete_snapshot(&self, id: &str) -> Result<()> {
        let f = self.call("delete_snapshot").await;
        faulty(f, "delete_snapshot", || {
            let mut s = self.lock();
            if s.snapshots.get(id).is_some_and(|x| x.labels.is_empty()) {
                return Err(Error::new(ErrorKind::InvalidInput, "not our snapshot"));
            }
            s.snapshots.remove(id);
            Ok(())
        })
    }
}
