//! `snapshot install`: the units, crontab line and CronJob it makes, checked by the real tools
//! (`systemd-analyze security` and `verify`, checkov for Kubernetes, hadolint for the
//! Dockerfile) and against the "restricted" Pod Security Standard as the official document
//! states it.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::support::Bin;

/// The token `Bin` puts in the environment: no install output may contain it.
const TOKEN: &str = "test-token-not-secret";

/// A real executable outside the directories the sandbox hides (`verify` checks that
/// `ExecStart=` exists; the test's own binary may live under /tmp).
const STAND_IN_BINARY: &str = "/usr/bin/true";

/// A test tool installed by `.ci/install` under `$BOOTSTRAP_CI_DIR` (default /opt/bootstrap-ci).
fn ci_tool(rel: &str) -> PathBuf {
    let dir = std::env::var("BOOTSTRAP_CI_DIR").unwrap_or_else(|_| "/opt/bootstrap-ci".to_owned());
    let p = Path::new(&dir).join(rel);
    assert!(
        p.exists(),
        "{} is missing: run `bash .ci/install` as root",
        p.display()
    );
    p
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

/// Runs `systemd-analyze [--user] ARGS` and returns (success, stdout + stderr).
fn systemd_analyze(user: Option<&Path>, args: &[&str]) -> (bool, String) {
    let mut c = Command::new("systemd-analyze");
    if let Some(runtime) = user {
        // The user manager's lookup needs a runtime dir; nothing is started there.
        c.arg("--user").env("XDG_RUNTIME_DIR", runtime);
    }
    let out = c
        .args(args)
        .env("SYSTEMD_LOG_LEVEL", "notice")
        .output()
        .expect("systemd-analyze (Debian package systemd) is installed");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// `systemd-analyze security --offline=yes --threshold=25`: the exposure it prints, and whether
/// it stayed at or under 2.5.
fn exposure(user: Option<&Path>, unit: &Path) -> (f64, bool, String) {
    let (ok, text) = systemd_analyze(
        user,
        &[
            "security",
            "--offline=yes",
            "--threshold=25",
            "--no-pager",
            unit.to_str().unwrap(),
        ],
    );
    let score = text
        .lines()
        .find_map(|l| l.split("Overall exposure level for ").nth(1))
        .and_then(|rest| rest.split(": ").nth(1))
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{text}"));
    (score, ok, text)
}

/// `systemd-analyze verify` of the service and timer: no complaint about our files.
fn assert_verifies(user: Option<&Path>, dir: &Path) {
    let service = dir.join("bootstrap-snapshot.service");
    let timer = dir.join("bootstrap-snapshot.timer");
    let (ok, text) = systemd_analyze(
        user,
        &["verify", service.to_str().unwrap(), timer.to_str().unwrap()],
    );
    let ours: Vec<_> = text
        .lines()
        .filter(|l| l.contains("bootstrap-snapshot"))
        .collect();
    assert!(ok && ours.is_empty(), "systemd-analyze verify: {text}");
}

#[test]
fn systemd_service_scores_at_most_2_5_and_verifies() {
    let b = Bin::new();
    // Neither directory exists yet: --write creates them.
    let dir = b.dir.path().join("etc/systemd/system");
    let env = b.dir.path().join("etc/bootstrap/snapshot.env");
    let args = [
        "snapshot",
        "install",
        "--systemd",
        "--write",
        "--dir",
        dir.to_str().unwrap(),
        "--env-file",
        env.to_str().unwrap(),
        "--binary",
        STAND_IN_BINARY,
    ];
    let r = b.run(&args);
    r.expect_code(0);
    assert!(!r.stdout().contains(TOKEN));
    let service = dir.join("bootstrap-snapshot.service");
    let unit = std::fs::read_to_string(&service).unwrap();
    assert!(unit.contains("ExecStart=/usr/bin/true snapshot run --provider hetzner"));
    assert!(unit.contains(&format!("EnvironmentFile={}", env.display())));
    assert!(unit.contains("DynamicUser=yes"));
    assert_eq!(mode(&dir), 0o755);
    assert_eq!(mode(&service), 0o644);
    assert_eq!(mode(&env), 0o600);
    assert_eq!(mode(env.parent().unwrap()), 0o700);
    let template = std::fs::read_to_string(&env).unwrap();
    assert!(template.lines().any(|l| l == "HCLOUD_TOKEN="), "{template}");
    assert!(!template.contains(TOKEN));

    let (score, ok, text) = exposure(None, &service);
    assert!(ok && score <= 2.5, "exposure {score}:\n{text}");
    assert_verifies(None, &dir);

    // The checker tells a weak unit apart: the sandbox of the old unit scored 8.3.
    let weak_dir = b.dir.path().join("weak");
    std::fs::create_dir_all(&weak_dir).unwrap();
    let weak = weak_dir.join("bootstrap-snapshot.service");
    std::fs::write(
        &weak,
        "[Service]\nType=oneshot\nExecStart=/usr/bin/true\nDynamicUser=yes\nNoNewPrivileges=yes\n\
         PrivateTmp=yes\nProtectSystem=strict\nProtectHome=yes\n",
    )
    .unwrap();
    let (weak_score, weak_ok, _) = exposure(None, &weak);
    assert!(!weak_ok && weak_score > 2.5, "{weak_score}");

    // A second run keeps the credentials file (it holds the token by now) and its mode.
    std::fs::write(&env, "HCLOUD_TOKEN=filled-in\n").unwrap();
    std::fs::set_permissions(&env, std::fs::Permissions::from_mode(0o644)).unwrap();
    let r = b.run(&args);
    r.expect_code(0);
    assert!(
        r.stdout().contains(&format!("kept {}", env.display())),
        "{}",
        r.stdout()
    );
    assert_eq!(
        std::fs::read_to_string(&env).unwrap(),
        "HCLOUD_TOKEN=filled-in\n"
    );
    assert_eq!(mode(&env), 0o600);
}

#[test]
fn systemd_user_units_score_at_most_2_5_and_verify() {
    let b = Bin::new();
    // Bin sets HOME to the test's dir: the defaults land under it.
    let home = b.dir.path();
    let r = b.run(&[
        "snapshot",
        "install",
        "--systemd",
        "--user",
        "--write",
        "--binary",
        STAND_IN_BINARY,
    ]);
    r.expect_code(0);
    let dir = home.join(".config/systemd/user");
    let env = home.join(".config/bootstrap/snapshot.env");
    let service = dir.join("bootstrap-snapshot.service");
    let unit = std::fs::read_to_string(&service).unwrap();
    assert!(!unit.contains("User="), "{unit}");
    assert!(!unit.contains("network-online.target"), "{unit}");
    assert!(unit.contains("ProtectHome=read-only"));
    assert!(unit.contains(&format!("EnvironmentFile={}", env.display())));
    assert_eq!(mode(&env), 0o600);
    assert!(r.stdout().contains("systemctl --user daemon-reload"));

    let runtime = home.join("runtime");
    std::fs::create_dir_all(&runtime).unwrap();
    std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).unwrap();
    let (score, ok, text) = exposure(Some(&runtime), &service);
    assert!(ok && score <= 2.5, "exposure {score}:\n{text}");
    assert_verifies(Some(&runtime), &dir);

    // A binary in a home directory suits a user unit (home stays readable), not a system one.
    let in_home = "/home/alice/.cargo/bin/bootstrap";
    let user = b.run(&[
        "snapshot",
        "install",
        "--systemd",
        "--user",
        "--binary",
        in_home,
    ]);
    user.expect_code(0);
    assert!(
        user.stdout()
            .contains(&format!("ExecStart={in_home} snapshot run"))
    );
    let system = b.run(&["snapshot", "install", "--systemd", "--binary", in_home]);
    system.expect_code(2);
    assert!(
        system.stderr().contains("ProtectHome="),
        "{}",
        system.stderr()
    );
    // --user is for the systemd units only.
    b.run(&["snapshot", "install", "--cron", "--user"])
        .expect_code(2);
}

#[test]
fn install_refuses_a_binary_the_job_could_not_start() {
    let b = Bin::new();
    let dir = b.dir.path().join("units");
    let dir_s = dir.to_str().unwrap();
    let cases: [(&[&str], &str); 6] = [
        (&["--systemd", "--binary", "bin/bootstrap"], "absolute path"),
        (&["--cron", "--binary", "./bootstrap"], "absolute path"),
        (
            &["--systemd", "--binary", "/tmp/x/bootstrap"],
            "PrivateTmp=",
        ),
        (
            &["--systemd", "--binary", "/root/.cargo/bin/bootstrap"],
            "ProtectHome=",
        ),
        (
            &["--systemd", "--user", "--binary", "/var/tmp/bootstrap"],
            "PrivateTmp=",
        ),
        (
            &[
                "--systemd",
                "--binary",
                "/usr/local/bin/no-such-bootstrap",
                "--write",
            ],
            "install bootstrap there first",
        ),
    ];
    for (flags, why) in cases {
        let mut args = vec!["snapshot", "install", "--dir", dir_s];
        args.extend_from_slice(flags);
        let r = b.run(&args);
        r.expect_code(2);
        let err = r.stderr();
        assert!(err.contains(why), "{flags:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{flags:?}: one line: {err}");
        assert!(r.stdout().is_empty());
    }
    // The fix is in the message.
    let r = b.run(&[
        "snapshot",
        "install",
        "--systemd",
        "--binary",
        "/tmp/x/bootstrap",
    ]);
    assert!(
        r.stderr()
            .contains("install -m 0755 /tmp/x/bootstrap /usr/local/bin/bootstrap")
    );
    let r = b.run(&[
        "snapshot",
        "install",
        "--systemd",
        "--binary",
        STAND_IN_BINARY,
        "--env-file",
        "snapshot.env",
    ]);
    r.expect_code(2);
    assert!(r.stderr().contains("--env-file"), "{}", r.stderr());
    assert!(!dir.exists(), "nothing is created on bad input");
}

#[test]
fn cron_line_reads_the_env_file() {
    let b = Bin::new();
    let r = b.run(&[
        "snapshot",
        "install",
        "--cron",
        "--binary",
        "/usr/local/bin/bootstrap",
    ]);
    r.expect_code(0);
    let line = r
        .stdout()
        .lines()
        .find(|l| !l.starts_with('#') && !l.trim().is_empty())
        .unwrap()
        .to_owned();
    let fields: Vec<_> = line.split_whitespace().collect();
    assert_eq!(&fields[..6], ["7", "*", "*", "*", "*", "root"], "{line}");
    assert!(line.contains(". /etc/bootstrap/snapshot.env;"), "{line}");
    assert!(line.contains("/usr/local/bin/bootstrap snapshot run --provider hetzner"));
    assert!(!r.stdout().contains(TOKEN));
}

#[test]
fn install_output_json_lists_the_files_without_secrets() {
    let b = Bin::new();
    let r = b.run(&[
        "snapshot",
        "install",
        "--systemd",
        "--binary",
        "/usr/local/bin/bootstrap",
        "--output",
        "json",
    ]);
    r.expect_code(0);
    assert!(!r.stdout().contains(TOKEN));
    let v: Value = serde_json::from_str(&r.stdout()).unwrap();
    assert_eq!(v["format_version"], 1);
    assert_eq!(v["target"], "systemd");
    assert_eq!(v["scope"], "system");
    assert_eq!(v["written"], false);
    let files = v["files"].as_array().unwrap();
    let by_path = |p: &str| {
        files
            .iter()
            .find(|f| f["path"] == p)
            .unwrap_or_else(|| panic!("{p} in {files:?}"))
    };
    let service = by_path("/etc/systemd/system/bootstrap-snapshot.service");
    assert_eq!(service["mode"], "0644");
    assert!(service["contents"].as_str().unwrap().contains("[Service]"));
    by_path("/etc/systemd/system/bootstrap-snapshot.timer");
    let env = by_path("/etc/bootstrap/snapshot.env");
    assert_eq!(env["mode"], "0600");
    assert!(
        env["contents"]
            .as_str()
            .unwrap()
            .contains("HCLOUD_TOKEN=\n")
    );

    let r = b.run(&[
        "snapshot",
        "install",
        "--kubernetes",
        "--image",
        "registry.example.com/bootstrap:0.1.0",
        "--output",
        "json",
    ]);
    r.expect_code(0);
    let v: Value = serde_json::from_str(&r.stdout()).unwrap();
    assert_eq!(v["files"].as_array().unwrap().len(), 1);
    assert_eq!(v["scope"], Value::Null);
}

/// The pod template's containers (and init containers) of a CronJob.
fn containers(pod: &Value) -> Vec<&Value> {
    ["containers", "initContainers", "ephemeralContainers"]
        .iter()
        .filter_map(|k| pod[k].as_array())
        .flatten()
        .collect()
}

/// The "restricted" profile of the Pod Security Standards, control by control, as written at
/// https://kubernetes.io/docs/concepts/security/pod-security-standards/ (baseline controls
/// included, since restricted builds on them). Returns the controls the pod spec breaks.
fn restricted_violations(pod: &Value) -> Vec<String> {
    let mut v = Vec::new();
    let pod_sc = &pod["securityContext"];
    // Baseline: host namespaces, HostProcess, hostPath volumes, sysctls.
    for k in ["hostNetwork", "hostPID", "hostIPC"] {
        if pod[k] == true {
            v.push(format!("{k} must be unset or false"));
        }
    }
    if pod_sc["windowsOptions"]["hostProcess"] == true {
        v.push("hostProcess".into());
    }
    if pod_sc["sysctls"].as_array().is_some_and(|s| !s.is_empty()) {
        v.push("sysctls outside the safe set".into());
    }
    // Restricted: volume types.
    let allowed_volumes = [
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    ];
    for vol in pod["volumes"].as_array().into_iter().flatten() {
        let ok = vol
            .as_object()
            .unwrap()
            .keys()
            .all(|k| k == "name" || allowed_volumes.contains(&k.as_str()));
        if !ok {
            v.push(format!("volume type not allowed: {vol}"));
        }
    }
    for c in containers(pod) {
        let sc = &c["securityContext"];
        let name = c["name"].as_str().unwrap_or("?");
        if sc["privileged"] == true {
            v.push(format!("{name}: privileged"));
        }
        if c["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p["hostPort"].as_u64().is_some_and(|h| h != 0))
        {
            v.push(format!("{name}: hostPort"));
        }
        if sc["procMount"].as_str().is_some_and(|m| m != "Default") {
            v.push(format!("{name}: procMount"));
        }
        // Privilege escalation must be explicitly false.
        if sc["allowPrivilegeEscalation"] != false {
            v.push(format!("{name}: allowPrivilegeEscalation must be false"));
        }
        // Running as non-root: set on the container or the pod, never false on the container.
        let non_root = sc["runAsNonRoot"] == true
            || (pod_sc["runAsNonRoot"] == true && sc["runAsNonRoot"] != false);
        if !non_root {
            v.push(format!("{name}: runAsNonRoot must be true"));
        }
        if sc["runAsUser"] == 0 || pod_sc["runAsUser"] == 0 {
            v.push(format!("{name}: runAsUser must not be 0"));
        }
        // Seccomp: RuntimeDefault or Localhost, on the container or inherited from the pod.
        let seccomp = sc["seccompProfile"]["type"]
            .as_str()
            .or_else(|| pod_sc["seccompProfile"]["type"].as_str());
        if !matches!(seccomp, Some("RuntimeDefault" | "Localhost")) {
            v.push(format!(
                "{name}: seccompProfile must be RuntimeDefault or Localhost"
            ));
        }
        // Capabilities: drop ALL, add at most NET_BIND_SERVICE.
        let drops = sc["capabilities"]["drop"].as_array();
        if !drops.is_some_and(|d| d.iter().any(|x| x == "ALL")) {
            v.push(format!("{name}: capabilities must drop ALL"));
        }
        if sc["capabilities"]["add"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x != "NET_BIND_SERVICE"))
        {
            v.push(format!("{name}: only NET_BIND_SERVICE may be added"));
        }
    }
    v
}

#[test]
fn cronjob_passes_the_restricted_pod_security_standard() {
    let b = Bin::new();
    // The image is required: there is no default that would not exist.
    let r = b.run(&["snapshot", "install", "--kubernetes"]);
    r.expect_code(2);
    assert!(r.stderr().contains("--image"), "{}", r.stderr());
    b.run(&["snapshot", "install", "--cron", "--image", "x"])
        .expect_code(2);
    b.run(&["snapshot", "install", "--kubernetes", "--image", "a b"])
        .expect_code(2);

    let dir = b.dir.path().join("k8s");
    let image = "registry.example.com/bootstrap:0.1.0";
    let r = b.run(&[
        "snapshot",
        "install",
        "--kubernetes",
        "--image",
        image,
        "--write",
        "--dir",
        dir.to_str().unwrap(),
    ]);
    r.expect_code(0);
    let path = dir.join("bootstrap-snapshot-cronjob.yaml");
    let yaml = std::fs::read_to_string(&path).unwrap();
    assert!(!yaml.contains(TOKEN));
    let doc: Value = serde_saphyr::from_str(&yaml).expect("valid YAML");
    assert_eq!(doc["kind"], "CronJob");
    assert_eq!(doc["apiVersion"], "batch/v1");
    assert_eq!(doc["spec"]["schedule"], "7 * * * *");
    let pod = &doc["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    assert_eq!(c["image"], image);
    assert_eq!(
        c["args"],
        serde_json::json!(["snapshot", "run", "--provider", "hetzner"])
    );
    assert_eq!(
        c["envFrom"][0]["secretRef"]["name"],
        "bootstrap-credentials"
    );
    for k in ["requests", "limits"] {
        for r in ["cpu", "memory"] {
            assert!(c["resources"][k][r].is_string(), "resources.{k}.{r}");
        }
    }
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(restricted_violations(pod), Vec::<String>::new());

    // The same checks catch what the old CronJob lacked.
    let mut old = pod.clone();
    let sc = &mut old["containers"][0]["securityContext"];
    sc.as_object_mut().unwrap().remove("capabilities");
    sc.as_object_mut().unwrap().remove("seccompProfile");
    old["securityContext"]
        .as_object_mut()
        .unwrap()
        .remove("seccompProfile");
    assert_eq!(
        restricted_violations(&old).len(),
        2,
        "{:?}",
        restricted_violations(&old)
    );

    // checkov, an independent checker, on the file as written and on a copy that allows
    // privilege escalation and keeps capabilities: its Kubernetes checks that match the
    // restricted profile, plus requests and limits. One run for both (it starts slowly).
    let weak = b.dir.path().join("weak.yaml");
    std::fs::write(
        &weak,
        yaml.replace(
            "allowPrivilegeEscalation: false",
            "allowPrivilegeEscalation: true",
        )
        .replace("drop: [\"ALL\"]", "drop: [\"NET_RAW\"]"),
    )
    .unwrap();
    let report = checkov_restricted(&[&path, &weak]);
    let ours = &report[path.to_str().unwrap()];
    assert!(ours.failed.is_empty(), "checkov failed: {:?}", ours.failed);
    assert_eq!(
        ours.passed,
        RESTRICTED_CHECKS.len(),
        "checkov checks that ran"
    );
    let failed = &report[weak.to_str().unwrap()].failed;
    assert!(
        failed.contains(&"CKV_K8S_20".to_owned()) && failed.contains(&"CKV_K8S_37".to_owned()),
        "{failed:?}"
    );
}

/// checkov's Kubernetes checks for the restricted profile and resources: CPU and memory requests
/// and limits (10-13), privileged (16), host PID/IPC/network (17-19), privilege escalation (20),
/// read-only root (22), root containers (23), added capabilities (25), NET_RAW (28), security
/// contexts (29, 30), seccomp (31), capabilities dropped (37), service account token (38),
/// CAP_SYS_ADMIN (39), high UID (40).
const RESTRICTED_CHECKS: [&str; 20] = [
    "CKV_K8S_10",
    "CKV_K8S_11",
    "CKV_K8S_12",
    "CKV_K8S_13",
    "CKV_K8S_16",
    "CKV_K8S_17",
    "CKV_K8S_18",
    "CKV_K8S_19",
    "CKV_K8S_20",
    "CKV_K8S_22",
    "CKV_K8S_23",
    "CKV_K8S_25",
    "CKV_K8S_28",
    "CKV_K8S_29",
    "CKV_K8S_30",
    "CKV_K8S_31",
    "CKV_K8S_37",
    "CKV_K8S_38",
    "CKV_K8S_39",
    "CKV_K8S_40",
];

/// What checkov reported for one file.
#[derive(Debug, Default)]
struct Checkov {
    passed: usize,
    failed: Vec<String>,
}

/// Runs checkov's [`RESTRICTED_CHECKS`] on the files, offline; the results by file path.
fn checkov_restricted(files: &[&Path]) -> std::collections::BTreeMap<String, Checkov> {
    let mut c = Command::new(ci_tool("checkov/bin/checkov"));
    c.args(["--compact", "--skip-download", "--framework", "kubernetes"])
        .args(["--output", "json", "--check", &RESTRICTED_CHECKS.join(",")]);
    for f in files {
        c.arg("--file").arg(f);
    }
    // No Prisma Cloud mapping, no version check: nothing leaves the machine.
    let out = c
        .env("BC_SKIP_MAPPING", "TRUE")
        .env("CHECKOV_NO_VERSION_CHECK", "true")
        .output()
        .expect("run checkov");
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "checkov output ({e}): {text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let mut by_file = std::collections::BTreeMap::<String, Checkov>::new();
    for (key, failed) in [("passed_checks", false), ("failed_checks", true)] {
        for check in v["results"][key].as_array().into_iter().flatten() {
            let file = check["file_abs_path"].as_str().unwrap().to_owned();
            let entry = by_file.entry(file).or_default();
            if failed {
                entry
                    .failed
                    .push(check["check_id"].as_str().unwrap().to_owned());
            } else {
                entry.passed += 1;
            }
        }
    }
    by_file
}

#[test]
fn dockerfile_builds_a_small_non_root_image_with_every_provider() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("Dockerfile");
    let text = std::fs::read_to_string(&path).unwrap();
    // hadolint, the Dockerfile linter, finds nothing at its default (info) threshold.
    let out = Command::new(ci_tool("checkov/bin/hadolint"))
        .arg(&path)
        .output()
        .expect("run hadolint");
    assert!(
        out.status.success(),
        "hadolint: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    let froms: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].to_ascii_uppercase().starts_with("FROM "))
        .collect();
    assert!(froms.len() >= 2, "multi-stage: {froms:?}");
    let last = &lines[*froms.last().unwrap()..];
    assert!(last[0].contains("distroless"), "final stage: {}", last[0]);
    // No shell in the final stage: nothing may RUN there.
    assert!(!last.iter().any(|l| l.starts_with("RUN ")), "{last:?}");
    let user = last
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("the final stage sets USER");
    let uid = user.split(':').next().unwrap();
    assert!(
        uid.parse::<u32>().is_ok_and(|u| u != 0),
        "USER {user}: numeric, non-root"
    );
    // The image has all four providers: the default features, AWS included.
    assert!(!text.contains("--no-default-features"));
    assert!(text.contains("cargo build --release --locked"));
}
