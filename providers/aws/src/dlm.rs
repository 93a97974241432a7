//! The `dlm` snapshot engine: one Data Lifecycle Manager policy per deployment.
//!
//! The policy is an `IMAGE_MANAGEMENT` policy on instances tagged
//! `bootstrap-deployment=<name>`: DLM takes AMIs (no reboot), the same kind of image as the job's
//! snapshots, so `snapshot list`, `create --from-snapshot` and `destroy --delete-snapshots`
//! treat both alike. Its images get our labels (`TagsToAdd`), and the policy itself carries
//! them as tags, which is how `destroy` finds it.
//!
//! | schedule | DLM `CreateRule` |
//! |---|---|
//! | hourly at :MM | `Interval 1 HOURS`, `Times ["00:MM"]` |
//! | Nh from HH:MM (N divides 24) | `Interval N HOURS`, `Times ["HH:MM"]` |
//! | daily at HH:MM | `Interval 24 HOURS`, `Times ["HH:MM"]` |
//! | weekly on DAY at HH:MM | `CronExpression cron(MM HH ? * DAY *)` |
//!
//! `RetainRule.Count` is KEEP. DLM runs the policy as the role
//! `AWSDataLifecycleManagerDefaultRoleForAMIManagement` of the caller's account (its ARN is built
//! from STS `GetCallerIdentity`). DLM refuses a policy whose role is missing; the error then says
//! the one command that creates it.

use std::collections::HashMap;

use aws_sdk_dlm::types::{
    CreateRule, IntervalUnitValues, Parameters, PolicyDetails, PolicyTypeValues,
    ResourceTypeValues, RetainRule, Schedule as DlmSchedule, SettablePolicyStateValues, Tag,
};
use bootstrap_core::model::LABEL_DEPLOYMENT;
use bootstrap_core::schedule::{Every, Schedule};
use bootstrap_core::{Error, ErrorKind, Labels, NativeSchedule, NativeScheduleSpec, Result};
use time::Weekday;

use crate::error::{AwsError, sdk};

/// The role DLM assumes to take and delete AMIs.
pub const ROLE_NAME: &str = "AWSDataLifecycleManagerDefaultRoleForAMIManagement";
/// The command that creates [`ROLE_NAME`].
pub const CREATE_ROLE: &str = "aws dlm create-default-role --resource-type image";

/// DLM's `CreateRule` for a schedule.
pub(crate) fn create_rule(s: &Schedule) -> CreateRule {
    let hm = |h: u8| format!("{h:02}:{:02}", s.at.minute());
    match s.every {
        Every::Hourly => CreateRule::builder()
            .interval(1)
            .interval_unit(IntervalUnitValues::Hours)
            .times(hm(0))
            .build(),
        Every::Hours(n) => CreateRule::builder()
            .interval(i32::from(n))
            .interval_unit(IntervalUnitValues::Hours)
            .times(hm(s.at.hour()))
            .build(),
        Every::Daily => CreateRule::builder()
            .interval(24)
            .interval_unit(IntervalUnitValues::Hours)
            .times(hm(s.at.hour()))
            .build(),
        Every::Weekly(d) => CreateRule::builder()
            .cron_expression(format!(
                "cron({} {} ? * {} *)",
                s.at.minute(),
                s.at.hour(),
                cron_day(d)
            ))
            .build(),
    }
}

fn cron_day(d: Weekday) -> &'static str {
    match d {
        Weekday::Monday => "MON",
        Weekday::Tuesday => "TUE",
        Weekday::Wednesday => "WED",
        Weekday::Thursday => "THU",
        Weekday::Friday => "FRI",
        Weekday::Saturday => "SAT",
        Weekday::Sunday => "SUN",
    }
}

/// DLM descriptions and schedule names take `[0-9A-Za-z _-]` only.
fn dlm_text(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == ' ' || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .take(120)
        .collect()
}

/// The policy's details for `spec`.
pub(crate) fn policy_details(spec: &NativeScheduleSpec) -> PolicyDetails {
    let tags_to_add: Vec<Tag> = spec
        .labels
        .iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect();
    let target = Tag::builder()
        .key(LABEL_DEPLOYMENT)
        .value(spec.deployment.as_str())
        .build();
    PolicyDetails::builder()
        .policy_type(PolicyTypeValues::ImageManagement)
        .resource_types(ResourceTypeValues::Instance)
        .target_tags(target)
        .parameters(Parameters::builder().no_reboot(true).build())
        .schedules(
            DlmSchedule::builder()
                .name(dlm_text(&format!("bootstrap {}", spec.schedule)))
                .copy_tags(false)
                .set_tags_to_add(Some(tags_to_add))
                .create_rule(create_rule(&spec.schedule))
                .retain_rule(
                    RetainRule::builder()
                        .count(i32::try_from(spec.schedule.keep).unwrap_or(1000))
                        .build(),
                )
                .build(),
        )
        .build()
}

/// The role's ARN from the caller's: `arn:PARTITION:iam::ACCOUNT:role/ROLE_NAME`.
pub(crate) fn role_arn(caller_arn: &str) -> Option<String> {
    let mut parts = caller_arn.split(':');
    let (Some("arn"), Some(partition), _, _, Some(account)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    (!partition.is_empty() && !account.is_empty())
        .then(|| format!("arn:{partition}:iam::{account}:role/{ROLE_NAME}"))
}

/// The DLM and STS clients.
#[derive(Debug, Clone)]
pub(crate) struct Dlm {
    pub dlm: aws_sdk_dlm::Client,
    pub sts: aws_sdk_sts::Client,
}

impl Dlm {
    /// Our policies carrying every label of `selector` (by `bootstrap-deployment` target tag when
    /// the selector names one, then by the policy's own tags).
    pub(crate) async fn list(&self, selector: &Labels) -> Result<Vec<NativeSchedule>> {
        let mut req = self.dlm.get_lifecycle_policies();
        if let Some(d) = selector.deployment_name() {
            req = req.target_tags(format!("{LABEL_DEPLOYMENT}={d}"));
        }
        let out = sdk("GetLifecyclePolicies", req.send().await)?;
        Ok(out
            .policies()
            .iter()
            .filter_map(|p| {
                let labels: Labels = p
                    .tags()
                    .map(|t| {
                        t.iter()
                            .filter(|(k, _)| !k.starts_with("aws:"))
                            .map(|(k, v)| (k.as_str(), v.as_str()))
                            .collect()
                    })
                    .unwrap_or_default();
                labels.matches(selector).then(|| NativeSchedule {
                    id: p.policy_id().unwrap_or_default().to_owned(),
                    name: p.description().unwrap_or_default().to_owned(),
                    labels,
                })
            })
            .collect())
    }

    /// Creates the deployment's policy, enabled.
    pub(crate) async fn create(&self, spec: &NativeScheduleSpec) -> Result<NativeSchedule> {
        let me = sdk(
            "GetCallerIdentity",
            self.sts.get_caller_identity().send().await,
        )?;
        let role = me.arn().and_then(role_arn).ok_or_else(|| {
            Error::new(
                ErrorKind::Other,
                format!(
                    "STS GetCallerIdentity answered without a usable ARN ({:?})",
                    me.arn()
                ),
            )
        })?;
        let tags: HashMap<String, String> = spec
            .labels
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let description = dlm_text(&spec.name);
        let r = self
            .dlm
            .create_lifecycle_policy()
            .execution_role_arn(&role)
            .description(&description)
            .state(SettablePolicyStateValues::Enabled)
            .policy_details(policy_details(spec))
            .set_tags(Some(tags))
            .send()
            .await;
        let out = match r {
            Ok(out) => out,
            Err(e) => {
                let e = AwsError::from_sdk("CreateLifecyclePolicy", e);
                let invalid = e.code() == Some("InvalidRequestException");
                let mut err: Error = e.into();
                if invalid {
                    err = Error::new(
                        ErrorKind::InvalidInput,
                        format!(
                            "{err}; Data Lifecycle Manager needs the role {role}: if it is missing, create it once with `{CREATE_ROLE}` (or use --snapshot-engine job)"
                        ),
                    );
                }
                return Err(err);
            }
        };
        Ok(NativeSchedule {
            id: out.policy_id().unwrap_or_default().to_owned(),
            name: description,
            labels: spec.labels.clone(),
        })
    }

    /// Deletes a policy; a missing one is fine.
    pub(crate) async fn delete(&self, id: &str) -> Result<()> {
        match self
            .dlm
            .delete_lifecycle_policy()
            .policy_id(id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = AwsError::from_sdk("DeleteLifecyclePolicy", e);
                if e.code() == Some("ResourceNotFoundException") {
                    Ok(())
                } else {
                    Err(e.into())
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bootstrap_core::schedule::{parse_time, parse_weekday};

    fn sched(spec: &str, at: &str) -> Schedule {
        Schedule::parse(spec, parse_time(at).unwrap(), parse_weekday("sun").unwrap())
            .unwrap()
            .unwrap()
    }

    #[test]
    fn schedules_become_create_rules() {
        let r = create_rule(&sched("daily:7", "03:00"));
        assert_eq!(r.interval(), Some(24));
        assert_eq!(r.interval_unit(), Some(&IntervalUnitValues::Hours));
        assert_eq!(r.times(), ["03:00"]);
        let r = create_rule(&sched("hourly:24", "03:15"));
        assert_eq!(
            (r.interval(), r.times()),
            (Some(1), &["00:15".to_owned()][..])
        );
        let r = create_rule(&sched("12h:14", "06:30"));
        assert_eq!(
            (r.interval(), r.times()),
            (Some(12), &["06:30".to_owned()][..])
        );
        let r = create_rule(&sched("weekly:4", "03:05"));
        assert_eq!(r.cron_expression(), Some("cron(5 3 ? * SUN *)"));
        assert_eq!(r.interval(), None);
    }

    #[test]
    fn role_arn_follows_the_caller_partition_and_account() {
        assert_eq!(
            role_arn("arn:aws:iam::123456789012:user/me").as_deref(),
            Some(
                "arn:aws:iam::123456789012:role/AWSDataLifecycleManagerDefaultRoleForAMIManagement"
            )
        );
        assert_eq!(
            role_arn("arn:aws-us-gov:sts::111122223333:assumed-role/x/y").as_deref(),
            Some(
                "arn:aws-us-gov:iam::111122223333:role/AWSDataLifecycleManagerDefaultRoleForAMIManagement"
            )
        );
        assert_eq!(role_arn("nonsense"), None);
        assert_eq!(
            dlm_text("bootstrap web1 daily-0300 keep 7"),
            "bootstrap web1 daily-0300 keep 7"
        );
        assert_eq!(
            dlm_text("daily at 03:00 UTC, keep 7"),
            "daily at 03-00 UTC- keep 7"
        );
    }
}
