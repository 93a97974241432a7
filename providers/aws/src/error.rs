//! EC2's errors (an `<Errors><Error><Code>` XML body, surfaced by the SDK as
//! [`ProvideErrorMetadata::code`]) mapped onto the core's kinds by code, never by message text.
//!
//! Codes are those of the EC2 API reference, "Error codes for the Amazon EC2 API". The SDK makes
//! one attempt per call (its retries are off, see `config::load`): the core's retry loop decides
//! by kind, the adapter never retries.

use aws_sdk_ec2::config::http::HttpResponse;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::operation::RequestId;
use bootstrap_core::{Error, ErrorKind};

/// An EC2 call that failed, with what EC2 said.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AwsError {
    /// EC2 answered with an error code.
    #[error("{action}: {message} ({code}{})", request_id.as_ref().map(|r| format!(", request id {r}")).unwrap_or_default())]
    Api {
        /// The EC2 action (`RunInstances`).
        action: &'static str,
        /// EC2's error code (`InvalidKeyPair.Duplicate`).
        code: String,
        /// EC2's message.
        message: String,
        /// `x-amzn-requestid`, for AWS support.
        request_id: Option<String>,
        /// HTTP status of the answer.
        status: Option<u16>,
    },
    /// The request never got an answer: connection refused or reset, DNS, TLS.
    #[error("{action}: cannot reach EC2: {detail}")]
    Dispatch {
        /// The EC2 action.
        action: &'static str,
        /// The SDK's description, with its causes.
        detail: String,
        /// True when the SDK says the failure was a timeout.
        timeout: bool,
    },
    /// The request or the answer timed out.
    #[error("{action}: EC2 did not answer in time")]
    Timeout {
        /// The EC2 action.
        action: &'static str,
    },
    /// An answer that could not be read (not EC2's XML).
    #[error("{action}: unreadable answer from EC2 (HTTP {status}): {detail}")]
    Response {
        /// The EC2 action.
        action: &'static str,
        /// HTTP status.
        status: u16,
        /// The SDK's description.
        detail: String,
    },
    /// The request could not be built or signed (an invalid endpoint, credentials that could
    /// not be refreshed mid-run; missing credentials are refused before any call).
    #[error("{action}: cannot build the request: {detail}")]
    Construction {
        /// The EC2 action.
        action: &'static str,
        /// The SDK's description.
        detail: String,
    },
}

impl AwsError {
    /// Sorts an SDK error of `action`.
    pub(crate) fn from_sdk<E>(action: &'static str, e: SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let detail = chain(&e);
        match &e {
            SdkError::ServiceError(se) => {
                let status = se.raw().status().as_u16();
                match se.err().code() {
                    Some(code) => Self::Api {
                        action,
                        code: code.to_owned(),
                        message: se.err().message().unwrap_or_default().to_owned(),
                        request_id: e.request_id().map(str::to_owned),
                        status: Some(status),
                    },
                    None => Self::Response {
                        action,
                        status,
                        detail,
                    },
                }
            }
            SdkError::ResponseError(re) => Self::Response {
                action,
                status: re.raw().status().as_u16(),
                detail,
            },
            SdkError::TimeoutError(_) => Self::Timeout { action },
            SdkError::DispatchFailure(df) => Self::Dispatch {
                action,
                timeout: df.is_timeout(),
                detail,
            },
            _ => Self::Construction { action, detail },
        }
    }

    /// EC2's error code, if it sent one.
    pub(crate) fn code(&self) -> Option<&str> {
        match self {
            Self::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    fn kind(&self) -> ErrorKind {
        match self {
            Self::Api { code, status, .. } => {
                kind_for_code(code).unwrap_or_else(|| kind_for_status(*status))
            }
            Self::Dispatch { timeout: true, .. } | Self::Timeout { .. } => ErrorKind::Timeout,
            Self::Dispatch { .. } => ErrorKind::Transient,
            Self::Response { status, .. } => kind_for_status(Some(*status)),
            Self::Construction { .. } => ErrorKind::Other,
        }
    }

    /// A sentence that tells the user what to do, for the codes where EC2's own message does not.
    fn hint(&self) -> Option<&'static str> {
        Some(match self.code()? {
            "UnauthorizedOperation" => {
                "the AWS identity lacks an EC2 permission this tool needs (see the README's IAM policy); the message above names the action"
            }
            "AuthFailure" | "InvalidClientTokenId" | "SignatureDoesNotMatch" => {
                "AWS refused the credentials: check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or the --profile, and that the clock is right"
            }
            "ExpiredToken" | "RequestExpired" => {
                "the AWS session has expired: renew it (`aws sso login`, or new temporary credentials)"
            }
            "OptInRequired" => "the account is not subscribed to EC2 in this region",
            "InsufficientInstanceCapacity" => {
                "EC2 has no capacity for this instance type in this availability zone right now: try another --server-type or --location (zone), or try again later"
            }
            "InstanceLimitExceeded" | "VcpuLimitExceeded" => {
                "the account's EC2 quota for this instance type is used up: terminate instances or ask AWS for a higher limit"
            }
            "InvalidKeyPair.Duplicate" => {
                "a key pair with this name already exists in the region with another key"
            }
            "InvalidAMIID.NotFound" | "InvalidAMIID.Malformed" => {
                "no such AMI in this region: give an AMI id of this region or a name such as ubuntu-24.04"
            }
            "InvalidInstanceType" => {
                "no such instance type in this region: check --server-type (`aws ec2 describe-instance-types` lists them)"
            }
            "InvalidVpcID.NotFound" => "no such VPC in this region: check --vpc",
            "InvalidSubnetID.NotFound" => "no such subnet in this region: check --subnet",
            "VPCIdNotSpecified" => "the region has no default VPC: pass --vpc or --subnet",
            _ => return None,
        })
    }
}

pub(crate) use bootstrap_core::error::chain;

/// The kind for an EC2 error code.
fn kind_for_code(code: &str) -> Option<ErrorKind> {
    Some(match code {
        // Throttling: the core's retry loop backs off.
        "RequestLimitExceeded"
        | "Throttling"
        | "ThrottlingException"
        | "ThrottledException"
        | "RequestThrottled"
        | "RequestThrottledException"
        | "TooManyRequestsException"
        | "SlowDown"
        | "EC2ThrottledException"
        | "BandwidthLimitExceeded"
        | "PriorRequestNotComplete" => ErrorKind::RateLimited { retry_after: None },
        "UnauthorizedOperation"
        | "AuthFailure"
        | "InvalidClientTokenId"
        | "SignatureDoesNotMatch"
        | "ExpiredToken"
        | "RequestExpired"
        | "OptInRequired"
        | "Blocked"
        | "AccessDenied" => ErrorKind::Unauthorized,
        "InvalidKeyPair.Duplicate" | "InvalidGroup.Duplicate" | "InvalidAMIName.Duplicate" => {
            ErrorKind::Conflict
        }
        "InvalidGroup.NotFound"
        | "InvalidKeyPair.NotFound"
        | "InvalidInstanceID.NotFound"
        | "InvalidGroupId.NotFound" => ErrorKind::NotFound,
        "DependencyViolation" | "InvalidGroup.InUse" => ErrorKind::InUse,
        "InternalError" | "InternalFailure" | "ServiceUnavailable" | "Unavailable" => {
            ErrorKind::Transient
        }
        "InsufficientInstanceCapacity" | "InsufficientCapacity" | "IdempotentParameterMismatch" => {
            ErrorKind::Other
        }
        // What the user asked for cannot be: their input, or their quota.
        "InvalidParameter"
        | "InvalidParameterValue"
        | "InvalidParameterCombination"
        | "MissingParameter"
        | "UnknownParameter"
        | "Unsupported"
        | "UnsupportedOperation"
        | "InvalidAMIID.NotFound"
        | "InvalidAMIID.Malformed"
        | "InvalidAMIID.Unavailable"
        | "InvalidVpcID.NotFound"
        | "InvalidSubnetID.NotFound"
        | "VPCIdNotSpecified"
        | "InvalidKeyPair.Format"
        | "InvalidUserData.Malformed"
        | "InvalidBlockDeviceMapping"
        | "InvalidInstanceType"
        | "InstanceLimitExceeded"
        | "VcpuLimitExceeded"
        | "ResourceLimitExceeded"
        | "SecurityGroupLimitExceeded"
        | "RulesPerSecurityGroupLimitExceeded"
        | "KeyPairLimitExceeded" => ErrorKind::InvalidInput,
        _ => return None,
    })
}

/// The kind for an answer without a known code, by HTTP status.
fn kind_for_status(status: Option<u16>) -> ErrorKind {
    match status {
        Some(401 | 403) => ErrorKind::Unauthorized,
        Some(404) => ErrorKind::NotFound,
        Some(429) => ErrorKind::RateLimited { retry_after: None },
        Some(400..=499) => ErrorKind::InvalidInput,
        Some(500..=599) | None => ErrorKind::Transient,
        Some(_) => ErrorKind::Other,
    }
}

impl From<AwsError> for Error {
    fn from(e: AwsError) -> Self {
        let kind = e.kind();
        let mut message = e.to_string();
        if let Some(h) = e.hint() {
            message = format!("{message}; {h}");
        }
        Error::new(kind, message).with_source(e)
    }
}

/// Converts an SDK result of `action` into the core's.
pub(crate) fn sdk<T, E>(
    action: &'static str,
    r: Result<T, SdkError<E, HttpResponse>>,
) -> bootstrap_core::Result<T>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    r.map_err(|e| AwsError::from_sdk(action, e).into())
}

/// Like [`sdk`], but a "not found" answer is `Ok(None)` (a delete of something gone, a get of
/// something missing).
pub(crate) fn sdk_opt<T, E>(
    action: &'static str,
    r: Result<T, SdkError<E, HttpResponse>>,
) -> bootstrap_core::Result<Option<T>>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) => {
            let e = AwsError::from_sdk(action, e);
            if e.kind() == ErrorKind::NotFound {
                Ok(None)
            } else {
                Err(e.into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: &str, status: u16) -> AwsError {
        AwsError::Api {
            action: "RunInstances",
            code: code.to_owned(),
            message: "m".to_owned(),
            request_id: Some("r-1".to_owned()),
            status: Some(status),
        }
    }

    #[test]
    fn codes_map_to_kinds() {
        for (code, kind) in [
            (
                "RequestLimitExceeded",
                ErrorKind::RateLimited { retry_after: None },
            ),
            ("UnauthorizedOperation", ErrorKind::Unauthorized),
            ("AuthFailure", ErrorKind::Unauthorized),
            ("InvalidKeyPair.Duplicate", ErrorKind::Conflict),
            ("InvalidGroup.Duplicate", ErrorKind::Conflict),
            ("InvalidGroup.NotFound", ErrorKind::NotFound),
            ("InvalidKeyPair.NotFound", ErrorKind::NotFound),
            ("InvalidInstanceID.NotFound", ErrorKind::NotFound),
            ("DependencyViolation", ErrorKind::InUse),
            ("InsufficientInstanceCapacity", ErrorKind::Other),
            ("InternalError", ErrorKind::Transient),
            ("InvalidParameterValue", ErrorKind::InvalidInput),
        ] {
            assert_eq!(api(code, 400).kind(), kind, "{code}");
        }
        assert_eq!(api("Whatever", 503).kind(), ErrorKind::Transient);
        assert_eq!(api("Whatever", 400).kind(), ErrorKind::InvalidInput);
        assert_eq!(api("Whatever", 403).kind(), ErrorKind::Unauthorized);
    }

    #[test]
    fn messages_name_the_action_code_request_id_and_fix() {
        let e: Error = api("InsufficientInstanceCapacity", 500).into();
        let m = e.to_string();
        assert!(
            m.starts_with("RunInstances: m (InsufficientInstanceCapacity, request id r-1)"),
            "{m}"
        );
        assert!(m.contains("try another --server-type"), "{m}");
        let e: Error = api("UnauthorizedOperation", 403).into();
        assert_eq!(e.kind(), &ErrorKind::Unauthorized);
        assert!(e.to_string().contains("lacks an EC2 permission"));
    }
}
