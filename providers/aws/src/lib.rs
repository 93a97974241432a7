//! # bootstrap-aws: the AWS EC2 adapter
//!
//! Implements [`bootstrap_core::Provider`] on the official SDK (`aws-sdk-ec2`, configured by
//! `aws-config`'s standard chain) and nothing else: ordering, retries beyond the SDK's, polling
//! and rollback are the core's.
//!
//! | core | EC2 |
//! |---|---|
//! | SSH key | key pair (`ImportKeyPair`), id = its name |
//! | firewall | security group with TCP 22 ingress from the given CIDRs (authorized beside `RunInstances`) |
//! | server | instance (`RunInstances`), states polled through [`Provider::get_server`] |
//! | labels | tags, plus a `Name` tag |
//! | operation | none: EC2 answers with states, not actions |
//! | snapshot | AMI of the instance (`CreateImage`, no reboot), deregistered with its EBS snapshots |
//! | native schedule | Data Lifecycle Manager policy on the deployment's tag ([`dlm`]) |
//!
//! The SDK signs requests (SigV4) and retries throttling and 5xx answers itself (standard retry
//! mode, 3 attempts, with its own backoff and client-side rate limiter); an error that outlives
//! those retries reaches the core with its kind (`RateLimited`, `Transient`), and the core's
//! one retry loop decides. The adapter adds no loop of its own.

pub mod cli;
mod config;
pub mod dlm;
mod error;
mod firewall;
pub mod image;
mod server;
mod snapshot;
mod ssh_key;
mod tags;

use async_trait::async_trait;
use aws_sdk_ec2::Client;
use bootstrap_core::describe::{ENGINE_JOB, Limits};
use bootstrap_core::{
    Created, Defaults, Description, Error, ErrorKind, Firewall, FirewallRule, FirewallSpec, Labels,
    NativeSchedule, NativeScheduleSpec, Operation, OperationStatus, OwnershipModel, Provider,
    PublicKeyInfo, Result, Server, ServerSpec, Snapshot, SnapshotToFinish, SshKey, SshKeySpec,
};

pub use config::{AwsOptions, check_instance_type, check_region, check_zone};

/// EC2 takes at most 16 KiB of user-data, counted before base64 encoding.
pub const USER_DATA_MAX_BYTES: usize = 16 * 1024;

/// Defaults that fit a small self-hosted server.
pub mod defaults {
    /// The cheapest current burstable x86 type with 2 vCPUs (1 GiB; free-tier eligible in most
    /// regions). x86 rather than Graviton's cheaper `t4g.micro` so that any image the user
    /// names by AMI id works; `--server-type t4g.small` picks arm64 images by itself.
    pub const SERVER_TYPE: &str = "t3.micro";
    /// Ubuntu 24.04 LTS, Canonical's newest AMI in the region.
    pub const IMAGE: &str = "ubuntu-24.04";
    /// No availability zone: EC2 picks one in the region (or the subnet's).
    pub const LOCATION: &str = "auto";
}

/// The snapshot engine that keeps the schedule in Data Lifecycle Manager (the default here).
pub const ENGINE_DLM: &str = "dlm";

/// `BOOTSTRAP_AWS_DLM_ENDPOINT`: Data Lifecycle Manager's endpoint alone (tests point it at a
/// fake; moto has no DLM).
pub const DLM_ENDPOINT_VAR: &str = "BOOTSTRAP_AWS_DLM_ENDPOINT";

/// AWS EC2 as the binary's registry lists it.
pub static DESCRIPTION: Description = Description {
    name: "aws",
    title: "AWS EC2",
    credential_vars: &["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"],
    credential_sources: "the standard AWS chain (AWS_PROFILE, ~/.aws/config, SSO, instance role)",
    defaults: Defaults {
        server_type: defaults::SERVER_TYPE,
        image: defaults::IMAGE,
        location: defaults::LOCATION,
    },
    limits: Limits {
        user_data_max_bytes: USER_DATA_MAX_BYTES,
    },
    // Data Lifecycle Manager by default; the job where DLM cannot be used (no role, or a
    // schedule kept from any machine alongside other providers').
    snapshot_engines: &[ENGINE_DLM, ENGINE_JOB],
    provider_backups: false,
    ownership: OwnershipModel::LABELS,
    key_resource: true,
    unique_key_names: true,
    key_goes_beside_server: true,
    // EC2 is eventually consistent: an instance RunInstances just returned can be unknown to
    // DescribeInstances for a few seconds.
    visibility_grace: std::time::Duration::from_secs(60),
    flags: &["--region", "--profile"],
    create_flags: &["--vpc", "--subnet"],
    context: None,
    location_help: "an availability zone such as eu-central-1a (default: EC2 picks one in --region)",
    location_flag: None,
    default_location: || None,
    check_flags: |c| AwsOptions::from_connect(c).validate(),
    check_server: |server_type, image_name, location, c| {
        check_instance_type(server_type)?;
        image::check(image_name)?;
        check_zone(location)?;
        if c.flag("--subnet").is_some() && location != defaults::LOCATION {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "--location and --subnet both choose the availability zone: give one of them",
            ));
        }
        Ok(())
    },
    connect: |c| {
        Box::pin(async move {
            Ok(Box::new(Aws::connect(AwsOptions::from_connect(&c)).await?) as Box<dyn Provider>)
        })
    },
};

/// The AWS EC2 adapter.
#[derive(Debug, Clone)]
pub struct Aws {
    ec2: Client,
    dlm: dlm::Dlm,
    opts: AwsOptions,
    /// AMIs resolved by the option check, passed on to `RunInstances`.
    images: std::sync::Arc<image::Cache>,
    /// Ingress rules of groups this run created, authorized beside `RunInstances`.
    owed: std::sync::Arc<firewall::Owed>,
    /// Our AMIs as listed, so that pruning one needs no read first.
    seen: std::sync::Arc<snapshot::Seen>,
}

impl Aws {
    /// Loads region and credentials through the standard chain, narrowed by `opts`. A missing
    /// region or credentials is an error here, before any EC2 call.
    pub async fn connect(opts: AwsOptions) -> Result<Self> {
        opts.validate()?;
        let sdk = config::load(&opts).await?;
        let mut dlm_conf = aws_sdk_dlm::config::Builder::from(&sdk);
        if let Some(e) = &opts.dlm_endpoint {
            dlm_conf = dlm_conf.endpoint_url(e);
        }
        Ok(Self {
            ec2: Client::new(&sdk),
            dlm: dlm::Dlm {
                dlm: aws_sdk_dlm::Client::from_conf(dlm_conf.build()),
                sts: aws_sdk_sts::Client::new(&sdk),
            },
            opts,
            images: std::sync::Arc::default(),
            owed: std::sync::Arc::default(),
            seen: std::sync::Arc::default(),
        })
    }

    /// The region the SDK resolved.
    pub fn region(&self) -> Option<String> {
        self.ec2.config().region().map(ToString::to_string)
    }
}

#[async_trait]
impl Provider for Aws {
    fn description(&self) -> &'static Description {
        &DESCRIPTION
    }

    async fn check_server_options(
        &self,
        server_type: &str,
        image: &str,
        location: &str,
    ) -> Result<()> {
        server::check_options(&self.ec2, &self.images, server_type, image, location).await
    }

    async fn find_ssh_key(&self, key: &PublicKeyInfo) -> Result<Option<SshKey>> {
        ssh_key::find(&self.ec2, key).await
    }

    async fn list_ssh_keys(&self, selector: &Labels) -> Result<Vec<SshKey>> {
        ssh_key::list(&self.ec2, selector).await
    }

    async fn create_ssh_key(&self, spec: &SshKeySpec) -> Result<SshKey> {
        ssh_key::create(&self.ec2, spec).await
    }

    async fn delete_ssh_key(&self, id: &str) -> Result<()> {
        ssh_key::delete(&self.ec2, id).await
    }

    async fn list_firewalls(&self, selector: &Labels) -> Result<Vec<Firewall>> {
        firewall::list(&self.ec2, selector).await
    }

    async fn create_firewall(&self, spec: &FirewallSpec) -> Result<Created<Firewall>> {
        Ok(Created::ready(
            firewall::create(&self.ec2, &self.opts, &self.owed, spec).await?,
        ))
    }

    async fn update_firewall_rules(
        &self,
        firewall: &Firewall,
        inbound: &[FirewallRule],
    ) -> Result<Vec<Operation>> {
        firewall::update(&self.ec2, firewall, inbound).await?;
        Ok(Vec::new())
    }

    async fn delete_firewall(&self, id: &str) -> Result<()> {
        firewall::delete(&self.ec2, id).await
    }

    async fn attach_firewall(&self, server: &Server, fw: &Firewall) -> Result<Vec<Operation>> {
        firewall::attach(&self.ec2, &server.id, &fw.id).await?;
        Ok(Vec::new())
    }

    async fn list_servers(&self, selector: &Labels) -> Result<Vec<Server>> {
        server::list(&self.ec2, selector).await
    }

    async fn get_server(&self, id: &str) -> Result<Option<Server>> {
        server::get(&self.ec2, id).await
    }

    async fn create_server(&self, spec: &ServerSpec) -> Result<Created<Server>> {
        // The new group's rules beside the launch: a failure there leaves them owed, for
        // `complete_server`; the instance is not reachable before it runs anyway.
        let rules = async {
            match spec.firewall_ids.first() {
                Some(g) => firewall::pay(&self.ec2, &self.owed, g).await,
                None => Ok(()),
            }
        };
        let (server, _) = futures::join!(
            server::create(&self.ec2, &self.images, &self.opts, spec),
            rules
        );
        Ok(Created::ready(server?))
    }

    async fn complete_server(&self, _server: &Server, spec: &ServerSpec) -> Result<Vec<Operation>> {
        if let Some(g) = spec.firewall_ids.first() {
            firewall::pay(&self.ec2, &self.owed, g).await?;
        }
        Ok(Vec::new())
    }

    async fn delete_server(&self, id: &str) -> Result<Vec<Operation>> {
        server::delete(&self.ec2, id).await?;
        Ok(Vec::new())
    }

    async fn operation_status(&self, op: &Operation) -> Result<OperationStatus> {
        // Never called: no method here returns an operation to wait for.
        Err(Error::new(
            ErrorKind::Other,
            format!("EC2 has no operations to poll ({} {})", op.what, op.id),
        ))
    }

    async fn set_server_labels(&self, server: &Server, labels: &Labels) -> Result<()> {
        snapshot::set_labels(&self.ec2, server, labels).await
    }

    async fn list_snapshots(&self, selector: &Labels) -> Result<Vec<Snapshot>> {
        snapshot::list(&self.ec2, &self.seen, selector).await
    }

    async fn get_snapshot(&self, id: &str) -> Result<Option<Snapshot>> {
        snapshot::get(&self.ec2, id).await
    }

    async fn get_snapshots(&self, ids: &[String]) -> Result<Vec<Option<Snapshot>>> {
        snapshot::get_many(&self.ec2, ids).await
    }

    async fn finish_snapshots(&self, items: &[SnapshotToFinish]) -> Result<Vec<Result<Snapshot>>> {
        snapshot::finish_many(&self.ec2, items).await
    }

    async fn create_snapshot(
        &self,
        server: &Server,
        name: &str,
        labels: &Labels,
    ) -> Result<Created<Snapshot>> {
        snapshot::create(&self.ec2, server, name, labels).await
    }

    async fn delete_snapshot(&self, id: &str) -> Result<()> {
        snapshot::delete(&self.ec2, &self.seen, id).await
    }

    async fn list_native_schedules(&self, selector: &Labels) -> Result<Vec<NativeSchedule>> {
        self.dlm.list(selector).await
    }

    async fn create_native_schedule(&self, spec: &NativeScheduleSpec) -> Result<NativeSchedule> {
        self.dlm.create(spec).await
    }

    async fn delete_native_schedule(&self, id: &str) -> Result<()> {
        self.dlm.delete(id).await
    }
}
