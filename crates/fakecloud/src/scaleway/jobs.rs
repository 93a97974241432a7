//! Serverless Jobs (v1alpha2) and Secret Manager (v1beta1), regional, as far as the
//! `serverless-jobs` snapshot engine uses them. Shapes and statuses follow the live recordings
//! of Scaleway's Terraform provider (`internal/services/jobs/testdata/*.cassette.yaml`): creates
//! answer 200, deletes 204; a job definition's 404 is `{"message": ...}` without a type; a job's
//! secret references live under `/secrets` with its `job_definition_id`, each naming a Secret
//! Manager secret and exactly one of `env_var_name` and `path`; deleting a job definition takes
//! its references. Secret names are unique per project and path (Scaleway's documentation); the
//! fake answers a duplicate with 409 `conflict`, a guess at the live type.

use axum::body::Bytes;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{World, block_tags_match, counted_page, err, json_body, no_content, not_found, ok, q1};

/// Regions that run Serverless Jobs and Secret Manager.
pub const REGIONS: &[&str] = &["fr-par", "nl-ams", "pl-waw"];

fn job_not_found() -> Response {
    // The live API's body: a message, no type.
    (
        axum::http::StatusCode::NOT_FOUND,
        [("content-type", "application/json")],
        json!({"message": "job definition is not found"}).to_string(),
    )
        .into_response()
}

fn str_field<'a>(b: &'a Value, k: &str) -> Option<&'a str> {
    b[k].as_str().filter(|s| !s.is_empty())
}

/// `/serverless-jobs/v1alpha2/regions/{region}/...`.
pub(super) fn serverless_jobs(
    w: &mut World,
    m: &str,
    rest: &[&str],
    q: &[(String, String)],
    body: &Bytes,
    region: &str,
    now: &str,
) -> Response {
    if !REGIONS.contains(&region) {
        return err(400, "invalid_arguments", "unknown region");
    }
    match (m, rest) {
        ("GET", ["job-definitions"]) => {
            let items: Vec<Value> = w
                .job_definitions
                .values()
                .filter(|j| j["region"] == json!(region))
                .filter(|j| q1(q, "project_id").is_none_or(|p| j["project_id"] == json!(p)))
                .cloned()
                .collect();
            counted_page(w, "job_definitions", items, q)
        }
        ("POST", ["job-definitions"]) => {
            let b = match json_body(body) {
                Ok(b) => b,
                Err(e) => return e,
            };
            for k in ["name", "image_uri", "project_id"] {
                if str_field(&b, k).is_none() {
                    return err(400, "invalid_arguments", &format!("{k} is required"));
                }
            }
            for k in ["cpu_limit", "memory_limit"] {
                if b[k].as_u64().is_none_or(|v| v == 0) {
                    return err(400, "invalid_arguments", &format!("{k} is required"));
                }
            }
            if let Some(env) = b["environment_variables"].as_object()
                && env.values().any(|v| !v.is_string())
            {
                return err(
                    400,
                    "invalid_arguments",
                    "environment_variables are strings",
                );
            }
            let cron = &b["cron_schedule"];
            if !cron.is_null() {
                let fields = cron["schedule"]
                    .as_str()
                    .map_or(0, |s| s.split_whitespace().count());
                if fields != 5 || str_field(cron, "timezone").is_none() {
                    return err(
                        400,
                        "invalid_arguments",
                        "cron_schedule needs a 5-field schedule and a timezone",
                    );
                }
            }
            let id = w.uuid();
            let j = json!({
                "id": id, "name": b["name"], "project_id": b["project_id"],
                "created_at": now, "updated_at": now,
                "cpu_limit": b["cpu_limit"], "memory_limit": b["memory_limit"],
                "local_storage_capacity": b["local_storage_capacity"].as_u64().unwrap_or(5120),
                "image_uri": b["image_uri"], "command": "",
                "environment_variables": b["environment_variables"].as_object().cloned().unwrap_or_default(),
                "job_timeout": b["job_timeout"].as_str().unwrap_or("86400s"),
                "description": b["description"].as_str().unwrap_or(""),
                "cron_schedule": cron.clone(),
                "startup_command": b["startup_command"].as_array().cloned().unwrap_or_default(),
                "args": b["args"].as_array().cloned().unwrap_or_default(),
                "region": region,
            });
            w.job_definitions.insert(id, j.clone());
            ok(200, j)
        }
        ("GET", ["job-definitions", id]) => match w.job_definitions.get(*id) {
            Some(j) if j["region"] == json!(region) => ok(200, j.clone()),
            _ => job_not_found(),
        },
        ("DELETE", ["job-definitions", id]) => {
            if !w
                .job_definitions
                .get(*id)
                .is_some_and(|j| j["region"] == json!(region))
            {
                return job_not_found();
            }
            w.job_definitions.remove(*id);
            w.job_secrets
                .retain(|_, r| r["job_definition_id"] != json!(id));
            no_content()
        }
        ("POST", ["secrets"]) => {
            let b = match json_body(body) {
                Ok(b) => b,
                Err(e) => return e,
            };
            let jid = str_field(&b, "job_definition_id").unwrap_or("").to_owned();
            if !w.job_definitions.contains_key(&jid) {
                return job_not_found();
            }
            let Some(wanted) = b["secrets"].as_array().filter(|a| !a.is_empty()).cloned() else {
                return err(400, "invalid_arguments", "secrets is required");
            };
            for s in &wanted {
                let sid = str_field(s, "secret_manager_id").unwrap_or("");
                if !w.secrets.contains_key(sid) {
                    return not_found("secret", sid);
                }
                if str_field(s, "secret_manager_version").is_none()
                    || str_field(s, "env_var_name").is_some() == str_field(s, "path").is_some()
                {
                    return err(
                        400,
                        "invalid_arguments",
                        "a secret reference needs secret_manager_version and exactly one of env_var_name and path",
                    );
                }
            }
            let mut out = Vec::new();
            for s in wanted {
                let id = w.uuid();
                let mut r = json!({
                    "secret_id": id, "secret_manager_id": s["secret_manager_id"],
                    "secret_manager_version": s["secret_manager_version"],
                    "job_definition_id": jid,
                });
                if let Some(e) = str_field(&s, "env_var_name") {
                    r["env_var"] = json!({"name": e});
                } else {
                    r["file"] = json!({"path": s["path"]});
                }
                w.job_secrets.insert(id, r.clone());
                out.push(r);
            }
            ok(200, json!({"secrets": out}))
        }
        ("GET", ["secrets"]) => {
            let jid = q1(q, "job_definition_id").unwrap_or("");
            if !w.job_definitions.contains_key(jid) {
                return job_not_found();
            }
            let items: Vec<Value> = w
                .job_secrets
                .values()
                .filter(|r| r["job_definition_id"] == json!(jid))
                .cloned()
                .collect();
            ok(200, json!({"secrets": items, "total_count": items.len()}))
        }
        ("DELETE", ["secrets", id]) => match w.job_secrets.remove(*id) {
            Some(_) => no_content(),
            None => not_found("secret", id),
        },
        _ => err(404, "not_found", "no such path"),
    }
}

/// `/secret-manager/v1beta1/regions/{region}/...`.
pub(super) fn secret_manager(
    w: &mut World,
    m: &str,
    rest: &[&str],
    q: &[(String, String)],
    body: &Bytes,
    region: &str,
    now: &str,
) -> Response {
    if !REGIONS.contains(&region) {
        return err(400, "invalid_arguments", "unknown region");
    }
    let here = |v: &Value| v["region"] == json!(region);
    match (m, rest) {
        ("GET", ["secrets"]) => {
            let items: Vec<Value> = w
                .secrets
                .values()
                .filter(|s| here(s))
                .filter(|s| q1(q, "project_id").is_none_or(|p| s["project_id"] == json!(p)))
                .filter(|s| q1(q, "name").is_none_or(|n| s["name"] == json!(n)))
                .filter(|s| q1(q, "path").is_none_or(|p| s["path"] == json!(p)))
                .filter(|s| block_tags_match(s, q))
                .cloned()
                .collect();
            counted_page(w, "secrets", items, q)
        }
        ("POST", ["secrets"]) => {
            let b = match json_body(body) {
                Ok(b) => b,
                Err(e) => return e,
            };
            let (Some(name), Some(project)) = (str_field(&b, "name"), str_field(&b, "project_id"))
            else {
                return err(400, "invalid_arguments", "name and project_id are required");
            };
            let path = str_field(&b, "path").unwrap_or("/").to_owned();
            if w.secrets.values().any(|s| {
                here(s)
                    && s["project_id"] == json!(project)
                    && s["name"] == json!(name)
                    && s["path"] == json!(path)
            }) {
                return err(409, "conflict", "cannot have same secret name in same path");
            }
            let id = w.uuid();
            let s = json!({
                "id": id, "project_id": project, "name": name, "status": "ready",
                "created_at": now, "updated_at": now,
                "tags": b["tags"].as_array().cloned().unwrap_or_default(),
                "version_count": 0, "description": b["description"].as_str().unwrap_or(""),
                "managed": false, "type": b["type"].as_str().unwrap_or("opaque"),
                "protected": b["protected"].as_bool().unwrap_or(false), "path": path,
                "ephemeral_policy": null, "used_by": [], "deletion_requested_at": null,
                "key_id": null, "region": region,
            });
            w.secrets.insert(id, s.clone());
            ok(200, s)
        }
        ("GET", ["secrets", id]) => match w.secrets.get(*id) {
            Some(s) if here(s) => ok(200, s.clone()),
            _ => not_found("secret", id),
        },
        ("DELETE", ["secrets", id]) => match w.secrets.get(*id) {
            Some(s) if here(s) => {
                if s["protected"] == json!(true) {
                    return err(412, "precondition_failed", "secret is protected");
                }
                w.secrets.remove(*id);
                w.secret_versions.remove(*id);
                no_content()
            }
            _ => not_found("secret", id),
        },
        ("POST", ["secrets", id, "versions"]) => {
            let b = match json_body(body) {
                Ok(b) => b,
                Err(e) => return e,
            };
            if !w.secrets.get(*id).is_some_and(here) {
                return not_found("secret", id);
            }
            let Some(data) = str_field(&b, "data") else {
                return err(400, "invalid_arguments", "data is required");
            };
            use base64::Engine as _;
            if base64::engine::general_purpose::STANDARD
                .decode(data)
                .is_err()
            {
                return err(400, "invalid_arguments", "data must be base64");
            }
            let versions = w.secret_versions.entry((*id).to_owned()).or_default();
            for v in versions.iter_mut() {
                v["latest"] = json!(false);
            }
            let revision = versions.len() + 1;
            let v = json!({
                "revision": revision, "secret_id": id, "status": "enabled",
                "created_at": now, "updated_at": now, "deleted_at": null, "description": "",
                "latest": true, "ephemeral_properties": null, "deletion_requested_at": null,
                "region": region, "data": data,
            });
            versions.push(v.clone());
            w.secrets.get_mut(*id).unwrap()["version_count"] = json!(revision);
            // The answer never carries the data.
            let mut out = v;
            out.as_object_mut().unwrap().remove("data");
            ok(200, out)
        }
        _ => err(404, "not_found", "no such path"),
    }
}
