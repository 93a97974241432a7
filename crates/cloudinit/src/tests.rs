#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use serde_json::Value as Json;

/// Hostile strings: each tries to end a scalar, start a key, a comment, a list entry, a
/// template expression, a YAML line break (U+0085, U+2028, U+2029) or an anchor.
const HOSTILE: &[&str] = &[
    "evil\nPermitRootLogin yes",
    "x\n- name: root\n  sudo: ALL",
    "a\r\nb",
    "quote\"d",
    "it's",
    "key: value",
    "# comment",
    "trail #hash",
    "{{ hostname }}",
    "{% if true %}x{% endif %}",
    "- item",
    "line\u{2028}sep\u{2029}para\u{85}nel",
    "del\u{7f}bell\u{7}",
    "tab\there",
    "back\\slash\\n",
    "| block",
    "> folded",
    "&anchor",
    "*alias",
    "!!python/object:os.system",
    "%TAG",
    "@at",
    "`tick`",
    "[a, b]",
    "{a: b}",
    "  leading",
    "trailing  ",
    "null",
    "true",
    "0644",
    "---",
    "...",
    "ünïcødé",
];

fn params() -> HardeningParams {
    HardeningParams {
        hostname: "web1".to_owned(),
        admin_user: "bsadm".to_owned(),
        ssh_authorized_keys: vec![
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHgYWwmS7oOC9Ed6/0hUw0dRpGVnyGtAbdsZ4R0zJ0Cg me@laptop"
                .to_owned(),
        ],
        ssh_from: vec![
            "198.51.100.7/32".parse().unwrap(),
            "2001:db8::/32".parse().unwrap(),
        ],
        reboot_time: "03:30".to_owned(),
        image: ImageProfile::for_image("ubuntu-24.04"),
        host_key: host_key(),
        sudo: Sudo::Password {
            hash: sudo_hash().to_owned(),
        },
        docker: false,
        vpn: None,
        allow_tcp_forwarding: false,
    }
}

/// One host key per test process, so that renderings compare equal.
fn host_key() -> HostKey {
    static KEY: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
    let (private, public) = KEY.get_or_init(|| {
        let pair = bootstrap_keys::KeyPair::generate("host@web1");
        (
            pair.private_openssh().unwrap().to_string(),
            pair.public().to_openssh(),
        )
    });
    HostKey {
        private_openssh: private.clone(),
        public_openssh: public.clone(),
    }
}

fn sudo_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| {
        bootstrap_keys::SudoPassword::generate()
            .sha512_crypt()
            .unwrap()
    })
}

fn vpn() -> WireGuard {
    let server = bootstrap_keys::WgKeyPair::generate();
    let client = bootstrap_keys::WgKeyPair::generate();
    WireGuard::new(
        server.private_base64().to_string(),
        client.public().to_base64(),
    )
}

fn render_embedded(p: &HardeningParams) -> String {
    render(&Template::embedded(), p).unwrap()
}

fn parse(doc: &str) -> Json {
    serde_saphyr::from_str(doc).unwrap()
}

fn template(source: &str) -> Template {
    Template {
        name: "test.j2".to_owned(),
        source: source.to_owned(),
    }
}

/// The document with every scalar replaced by its type: equal shapes mean equal structure
/// (same keys at the same places, same list lengths).
fn shape(value: &Json) -> Json {
    match value {
        Json::Object(map) => Json::Object(map.iter().map(|(k, v)| (k.clone(), shape(v))).collect()),
        Json::Array(items) => Json::Array(items.iter().map(shape).collect()),
        Json::String(_) => Json::from("string"),
        Json::Number(_) => Json::from("number"),
        Json::Bool(_) => Json::from("bool"),
        Json::Null => Json::Null,
    }
}

/// Every (path, key) and (path, string) in the document, to find where a text shows up.
fn walk<'a>(
    value: &'a Json,
    path: String,
    keys: &mut Vec<String>,
    strings: &mut Vec<(String, &'a str)>,
) {
    match value {
        Json::Object(map) => {
            for (k, v) in map {
                keys.push(k.clone());
                walk(v, format!("{path}/{k}"), keys, strings);
            }
        }
        Json::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                walk(v, format!("{path}/{i}"), keys, strings);
            }
        }
        Json::String(s) => strings.push((path, s)),
        _ => {}
    }
}

fn write_file<'a>(doc: &'a Json, path: &str) -> &'a Json {
    doc["write_files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == path)
        .unwrap_or_else(|| panic!("no write_files entry for {path}"))
}

fn content<'a>(doc: &'a Json, path: &str) -> &'a str {
    write_file(doc, path)["content"].as_str().unwrap()
}

const SSHD: &str = "/etc/ssh/sshd_config.d/00-bootstrap-hardening.conf";
const FAIL2BAN: &str = "/etc/fail2ban/jail.d/bootstrap-sshd.local";
const NFT: &str = "/etc/nftables.conf";
const UNATTENDED: &str = "/etc/apt/apt.conf.d/52bootstrap-unattended-upgrades";
const AUTO: &str = "/etc/apt/apt.conf.d/20auto-upgrades";
const SYSCTL: &str = "/etc/sysctl.d/90-bootstrap-hardening.conf";
const WG: &str = "/etc/wireguard/wg0.conf";

#[test]
fn embedded_template_renders_the_hardening_steps() {
    let out = render_embedded(&params());
    assert!(out.starts_with("#cloud-config\n"), "{out}");
    let doc = parse(&out);

    assert_eq!(doc["hostname"], "web1");
    // The hostname resolves whatever the image's cloud.cfg says (sudo warns otherwise).
    assert_eq!(doc["manage_etc_hosts"], true);
    assert_eq!(doc["disable_root"], true);
    assert_eq!(doc["ssh_pwauth"], false);
    assert_eq!(doc["ssh_deletekeys"], true);
    assert_eq!(doc["ssh_genkeytypes"], serde_json::json!(["ed25519"]));
    assert_eq!(
        doc["ssh_keys"]["ed25519_private"],
        params().host_key.private_openssh
    );
    assert_eq!(
        doc["ssh_keys"]["ed25519_public"],
        params().host_key.public_openssh
    );
    assert_eq!(doc["package_update"], true);
    assert_eq!(doc["package_upgrade"], true);
    for pkg in [
        "fail2ban",
        "nftables",
        "unattended-upgrades",
        "python3-systemd",
    ] {
        assert!(
            doc["packages"]
                .as_array()
                .unwrap()
                .contains(&Json::from(pkg)),
            "missing package {pkg}"
        );
    }

    let users = doc["users"].as_array().unwrap();
    assert_eq!(users.len(), 1);
    let admin = &users[0];
    assert_eq!(admin["name"], "bsadm");
    assert_eq!(admin["groups"], serde_json::json!(["sudo"]));
    assert_eq!(admin["shell"], "/bin/bash");
    assert_eq!(admin["sudo"], "ALL=(ALL:ALL) ALL");
    assert_eq!(admin["lock_passwd"], false);
    assert_eq!(admin["hashed_passwd"], sudo_hash());
    assert_eq!(
        admin["ssh_authorized_keys"],
        serde_json::json!(params().ssh_authorized_keys)
    );

    let paths: Vec<&str> = doc["write_files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, [SSHD, FAIL2BAN, SYSCTL, AUTO, UNATTENDED, NFT]);

    let sshd = content(&doc, SSHD);
    for line in [
        "PermitRootLogin no",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PubkeyAuthentication yes",
        "AuthenticationMethods publickey",
        "PermitEmptyPasswords no",
        "MaxAuthTries 3",
        "X11Forwarding no",
        "AllowTcpForwarding no",
        "AllowUsers \"bsadm\"",
        "KexAlgorithms sntrup761x25519-sha512@openssh.com,curve25519-sha256,curve25519-sha256@libssh.org",
    ] {
        assert!(
            sshd.lines().any(|l| l == line),
            "sshd drop-in lacks {line:?}:\n{sshd}"
        );
    }
    assert!(
        !sshd.contains("Match"),
        "a Match block would swallow sshd_config's own lines"
    );

    let jail = content(&doc, FAIL2BAN);
    for line in [
        "[sshd]",
        "enabled = true",
        "backend = systemd",
        "banaction = nftables-multiport",
        "banaction_allports = nftables-allports",
        "ignoreip = 127.0.0.1/8 ::1 198.51.100.7/32 2001:db8::/32",
    ] {
        assert!(
            jail.lines().any(|l| l == line),
            "jail lacks {line:?}:\n{jail}"
        );
    }

    let unattended = content(&doc, UNATTENDED);
    assert!(unattended.contains("Unattended-Upgrade::Automatic-Reboot \"true\";"));
    assert!(unattended.contains("Unattended-Upgrade::Automatic-Reboot-Time \"03:30\";"));
    assert!(unattended.contains("Unattended-Upgrade::Remove-Unused-Dependencies \"true\";"));
    let auto = content(&doc, AUTO);
    assert!(auto.contains("APT::Periodic::Update-Package-Lists \"1\";"));
    assert!(auto.contains("APT::Periodic::Unattended-Upgrade \"1\";"));

    let nft = content(&doc, NFT);
    assert!(
        !nft.contains("flush ruleset"),
        "only our own table is replaced, Docker's and fail2ban's stay"
    );
    assert!(nft.lines().any(|l| l == "delete table inet bootstrap"));
    assert!(nft.contains("type filter hook input priority filter; policy drop;"));
    assert!(nft.contains("type filter hook forward priority filter; policy drop;"));
    assert!(nft.contains("type filter hook output priority filter; policy accept;"));
    assert!(nft.contains("elements = { 198.51.100.7/32 }"));
    assert!(nft.contains("elements = { 2001:db8::/32 }"));
    assert!(nft.contains("ip saddr @ssh_allow_v4 tcp dport 22 accept"));
    assert!(nft.contains("ip6 saddr @ssh_allow_v6 tcp dport 22 accept"));
    assert!(nft.contains("nd-neighbor-solicit"));
    assert!(
        !nft.lines().any(|l| l.trim() == "tcp dport 22 accept"),
        "SSH must not be open to all"
    );
    assert!(
        nft.contains("cloud firewall"),
        "the template says the cloud firewall is the outer layer"
    );

    let runcmd: Vec<String> = doc["runcmd"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| match c {
            Json::Array(argv) => argv
                .iter()
                .map(|a| a.as_str().unwrap())
                .collect::<Vec<_>>()
                .join(" "),
            other => other.as_str().unwrap().to_owned(),
        })
        .collect();
    for cmd in [
        "systemctl enable --now nftables",
        "systemctl enable --now fail2ban",
    ] {
        assert!(
            runcmd.iter().any(|c| c == cmd),
            "runcmd lacks {cmd:?}: {runcmd:?}"
        );
    }
    assert!(runcmd.iter().any(|c| c.contains("systemctl restart ssh")));
    assert!(
        runcmd
            .iter()
            .any(|c| c.contains("enable --now unattended-upgrades"))
    );
    let nft_at = runcmd.iter().position(|c| c.contains("nftables")).unwrap();
    let f2b_at = runcmd.iter().position(|c| c.contains("fail2ban")).unwrap();
    assert!(
        nft_at < f2b_at,
        "flush ruleset must run before fail2ban (re)starts"
    );
}

#[test]
fn write_files_permissions_are_quoted_strings() {
    let out = render_embedded(&params());
    let doc = parse(&out);
    let files = doc["write_files"].as_array().unwrap();
    for file in files {
        let perms = &file["permissions"];
        assert!(perms.is_string(), "permissions must be a string: {file}");
        assert_eq!(perms.as_str().unwrap().len(), 4);
        assert!(perms.as_str().unwrap().starts_with('0'));
    }
    // In the text itself too: an unquoted 0644 is an octal int to YAML 1.1 and decimal to 1.2.
    let perm_lines: Vec<&str> = out
        .lines()
        .filter(|l| l.trim_start().starts_with("permissions:"))
        .collect();
    assert_eq!(perm_lines.len(), files.len());
    for line in perm_lines {
        let value = line.trim_start().trim_start_matches("permissions:").trim();
        assert!(value.starts_with('"') && value.ends_with('"'), "{line}");
    }
}

#[test]
fn rendering_is_deterministic() {
    let first = render_embedded(&params());
    for _ in 0..5 {
        assert_eq!(render_embedded(&params()), first);
    }
}

#[test]
fn output_is_ascii_only() {
    let mut p = params();
    p.hostname = "ünï\u{2028}x".to_owned();
    p.admin_user = "ådmin\u{85}".to_owned();
    let out = render_embedded(&p);
    assert!(out.is_ascii(), "non-ASCII would reach PyYAML raw");
    let doc = parse(&out);
    assert_eq!(doc["hostname"], "ünï\u{2028}x");
    assert_eq!(doc["users"][0]["name"], "ådmin\u{85}");
}

#[test]
fn hostile_values_cannot_change_the_document_structure() {
    let benign = parse(&render_embedded(&params()));
    let benign_shape = shape(&benign);
    let benign_sshd_lines = content(&benign, SSHD).lines().count();

    for hostile in HOSTILE {
        let mut p = params();
        p.hostname = (*hostile).to_owned();
        p.admin_user = format!("u{hostile}");
        p.ssh_authorized_keys = vec![
            params().ssh_authorized_keys[0].clone(),
            format!(
                "ssh-ed25519 AAAA {}",
                hostile.replace(['\n', '\r', '\u{7}', '\u{7f}', '\t', '\u{85}'], " ")
            ),
        ];
        let out = render(&Template::embedded(), &p)
            .unwrap_or_else(|e| panic!("{hostile:?} did not render: {e}"));
        let doc = parse(&out);
        let mut expected_shape = benign_shape.clone();
        expected_shape["users"][0]["ssh_authorized_keys"]
            .as_array_mut()
            .unwrap()
            .push(Json::from("string"));
        assert_eq!(
            shape(&doc),
            expected_shape,
            "structure changed by {hostile:?}:\n{out}"
        );

        // Values arrive intact, as values.
        assert_eq!(doc["hostname"], *hostile);
        assert_eq!(doc["users"][0]["name"], p.admin_user);
        assert_eq!(
            doc["users"][0]["ssh_authorized_keys"],
            serde_json::json!(p.ssh_authorized_keys)
        );

        // The hostile text is never a key, and shows up only where the values go.
        let mut keys = Vec::new();
        let mut strings = Vec::new();
        walk(&doc, String::new(), &mut keys, &mut strings);
        if hostile.len() > 3 {
            assert!(
                !keys.iter().any(|k| k.contains(hostile)),
                "{hostile:?} became a key"
            );
            for (path, s) in &strings {
                let already_there = benign
                    .pointer(path)
                    .and_then(Json::as_str)
                    .is_some_and(|b| b.contains(hostile));
                if !s.contains(hostile) || already_there {
                    continue;
                }
                if path == "/write_files/0/content" {
                    // Only as the quoted argument of AllowUsers (checked below).
                    assert!(
                        s.lines()
                            .filter(|l| l.contains(hostile))
                            .all(|l| l.starts_with("AllowUsers \"")),
                        "{hostile:?} leaked into the sshd drop-in: {s:?}"
                    );
                } else {
                    assert!(
                        [
                            "/hostname",
                            "/users/0/name",
                            "/users/0/ssh_authorized_keys/1"
                        ]
                        .contains(&path.as_str()),
                        "{hostile:?} leaked raw into {path}: {s:?}"
                    );
                }
            }
        }

        // Inside the sshd drop-in the user is one quoted argument on one line.
        let sshd = content(&doc, SSHD);
        assert_eq!(
            sshd.lines().count(),
            benign_sshd_lines,
            "{hostile:?} added lines:\n{sshd}"
        );
        let allow: Vec<&str> = sshd
            .lines()
            .filter(|l| l.starts_with("AllowUsers "))
            .collect();
        assert_eq!(allow.len(), 1, "{sshd}");
        let quoted = allow[0].trim_start_matches("AllowUsers ");
        let decoded: String = serde_json::from_str(quoted).unwrap();
        assert_eq!(decoded, p.admin_user);
        assert!(!sshd.lines().any(|l| l.starts_with("PermitRootLogin yes")));
    }
}

#[test]
fn template_variables_in_values_are_not_evaluated() {
    let mut p = params();
    p.hostname = "{{ admin_user }}".to_owned();
    let doc = parse(&render_embedded(&p));
    assert_eq!(doc["hostname"], "{{ admin_user }}");
}

#[test]
fn unknown_variable_is_a_clear_error_with_its_line() {
    let t = template("#cloud-config\nhostname: {{ hostname }}\nfoo: {{ no_such_variable }}\n");
    let err = render(&t, &params()).unwrap_err();
    match &err {
        Error::Template {
            name,
            line,
            message,
        } => {
            assert_eq!(name, "test.j2");
            assert_eq!(*line, Some(3));
            assert!(message.contains("undefined"), "{message}");
            // The line is named by number, never quoted (issue 13, finding 5).
            assert!(!message.contains("no_such_variable }}"), "{message}");
            assert!(
                message.contains("admin_user"),
                "lists the known variables: {message}"
            );
        }
        other => panic!("expected a template error, got {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("test.j2") && text.contains("line 3") && text.contains("undefined"),
        "{text}"
    );
}

#[test]
fn undefined_attribute_and_loop_fail_too() {
    for source in [
        "#cloud-config\nx: {{ hostname.nope }}\n",
        "#cloud-config\nx: [{% for k in nope %}{{ k }}{% endfor %}]\n",
        "#cloud-config\n{% if nope %}x: 1{% endif %}\n",
    ] {
        let err = render(&template(source), &params()).unwrap_err();
        assert!(matches!(err, Error::Template { .. }), "{source}: {err:?}");
    }
}

#[test]
fn syntax_error_is_a_template_error_with_its_line() {
    let err = render(&template("#cloud-config\na: 1\nb: {% for %}\n"), &params()).unwrap_err();
    match err {
        Error::Template { line, .. } => assert_eq!(line, Some(3)),
        other => panic!("expected a template error, got {other:?}"),
    }
}

#[test]
fn output_must_start_with_cloud_config() {
    let err = render(&template("hostname: {{ hostname }}\n"), &params()).unwrap_err();
    assert!(matches!(err, Error::Parse { .. }), "{err:?}");
    assert!(err.to_string().contains("#cloud-config"), "{err}");
}

#[test]
fn output_must_be_a_yaml_mapping() {
    for source in [
        "#cloud-config\n- a\n- b\n",
        "#cloud-config\njust a string\n",
        "#cloud-config\na: [unclosed\n",
        "#cloud-config\na: 1\n a: 2\n",
    ] {
        let err = render(&template(source), &params()).unwrap_err();
        assert!(matches!(err, Error::Parse { .. }), "{source:?}: {err:?}");
    }
}

#[test]
fn tojson_filter_is_ascii_and_safe() {
    let t = template("#cloud-config\nhostname: {{ hostname|tojson }}\n");
    let mut p = params();
    p.hostname = "a\u{2028}b\"c".to_owned();
    let out = render(&t, &p).unwrap();
    assert_eq!(out, "#cloud-config\nhostname: \"a\\u2028b\\\"c\"\n");
}

#[test]
fn from_source_names_the_template_by_its_path() {
    let path = std::path::Path::new("/some/custom.yaml.j2");
    let t = Template::from_source(path, "#cloud-config\nhostname: {{ hostname }}\n".to_owned());
    assert_eq!(t.name(), "/some/custom.yaml.j2");
    assert_eq!(
        render(&t, &params()).unwrap(),
        "#cloud-config\nhostname: \"web1\"\n"
    );
}

// See: issue 13, finding 5 (`--template /etc/shadow` printed its root line).
#[test]
fn no_error_quotes_the_template_or_a_key() {
    const CANARY: &str = "CANARY_7f3a";
    let sources = [
        // Not cloud-config: a shadow-like file.
        format!("root:$y$j9T${CANARY}:19000:0:99999:7:::\n"),
        // YAML errors, whose parser message quotes the lines around them.
        format!("#cloud-config\nroot: [{CANARY}\n  x: {CANARY}: q\n"),
        format!("#cloud-config\na: 1\n a: {CANARY}\n"),
        // Template errors on a line that holds the canary.
        format!("#cloud-config\nx: {CANARY} {{{{ nope }}}}\n"),
        format!("#cloud-config\nx: {CANARY} {{% for %}}\n"),
        format!("#cloud-config\nx: {{{{ hostname | {CANARY}_filter }}}}\n"),
    ];
    for source in &sources {
        let err = render(&template(source), &params()).unwrap_err();
        let text = err.to_string();
        assert!(!text.contains("CANARY_7f3a:"), "{text}");
        assert!(!text.contains("$y$"), "{text}");
        assert!(!text.contains('\n'), "one line: {text}");
        assert!(text.contains("line "), "names the line: {text}");
    }
    // An authorized key of several lines (a PuTTY private key pasted after a .pub line).
    let mut p = params();
    p.ssh_authorized_keys = vec![format!(
        "ssh-ed25519 AAAA x\nPuTTY-User-Key-File-3: ssh-ed25519\nPrivate-Lines: 1\n{CANARY}"
    )];
    let text = render(&Template::embedded(), &p).unwrap_err().to_string();
    assert!(!text.contains(CANARY) && !text.contains("PuTTY"), "{text}");
    assert!(
        !text.contains("hardening.yaml.j2"),
        "not the template's fault: {text}"
    );
}

// See: issue 13, finding 10 (a nested `range(100000)` loop spun forever).
#[test]
fn a_runaway_template_runs_out_of_fuel_quickly() {
    let t = template(
        "#cloud-config\n{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}x: 1\n",
    );
    let started = std::time::Instant::now();
    let err = render(&t, &params()).unwrap_err();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    let text = err.to_string();
    assert!(text.contains("steps") && text.contains("test.j2"), "{text}");
    // The embedded template stays far below the limit, with the largest inputs.
    let mut p = params();
    p.ssh_from = (0..200u32)
        .map(|i| format!("10.{}.{}.0/24", i / 256, i % 256).parse().unwrap())
        .collect();
    render(&Template::embedded(), &p).unwrap();
}

#[test]
fn embedded_template_is_named() {
    assert_eq!(Template::embedded().name(), "hardening.yaml.j2");
}

#[test]
fn ssh_from_empty_opens_ssh_to_the_world() {
    let mut p = params();
    p.ssh_from.clear();
    let doc = parse(&render_embedded(&p));
    let nft = content(&doc, NFT);
    assert!(
        nft.lines().any(|l| l.trim() == "tcp dport 22 accept"),
        "{nft}"
    );
    assert!(!nft.contains("set ssh_allow"), "{nft}");
    let jail = content(&doc, FAIL2BAN);
    assert!(
        jail.lines().any(|l| l == "ignoreip = 127.0.0.1/8 ::1"),
        "{jail}"
    );
}

#[test]
fn ssh_from_only_ipv4_has_no_ipv6_set() {
    let mut p = params();
    p.ssh_from = vec!["203.0.113.0/24".parse().unwrap()];
    let doc = parse(&render_embedded(&p));
    let nft = content(&doc, NFT);
    assert!(nft.contains("ip saddr @ssh_allow_v4 tcp dport 22 accept"));
    assert!(!nft.contains("ssh_allow_v6"), "{nft}");
    assert!(
        !nft.lines().any(|l| l.trim() == "tcp dport 22 accept"),
        "{nft}"
    );
}

#[test]
fn ssh_from_is_truncated_to_networks_and_deduplicated() {
    let mut p = params();
    p.ssh_from = vec![
        "203.0.113.7/24".parse().unwrap(),
        "203.0.113.0/24".parse().unwrap(),
        "198.51.100.7/32".parse().unwrap(),
        "2001:db8::1/64".parse().unwrap(),
    ];
    let doc = parse(&render_embedded(&p));
    let nft = content(&doc, NFT);
    assert!(
        nft.contains("elements = { 203.0.113.0/24, 198.51.100.7/32 }"),
        "{nft}"
    );
    assert!(nft.contains("elements = { 2001:db8::/64 }"), "{nft}");
    let jail = content(&doc, FAIL2BAN);
    assert!(
        jail.contains("ignoreip = 127.0.0.1/8 ::1 203.0.113.0/24 198.51.100.7/32 2001:db8::/64"),
        "{jail}"
    );
}

#[test]
fn output_stays_well_under_the_aws_limit() {
    // AWS takes 16 KiB of raw user-data, the smallest limit of the four clouds.
    const AWS_RAW_LIMIT: usize = 16 * 1024;
    let out = render_embedded(&params());
    assert!(out.len() < AWS_RAW_LIMIT * 5 / 8, "{} bytes", out.len());
    check_size(&out, AWS_RAW_LIMIT, "aws").unwrap();

    // Every option at once with generous inputs still fits: five keys and twenty networks.
    let mut p = params();
    p.docker = true;
    p.vpn = Some(vpn());
    p.allow_tcp_forwarding = true;
    p.image = ImageProfile::for_image("debian-13");
    p.ssh_authorized_keys = (0..5)
        .map(|i| format!("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHgYWwmS7oOC9Ed6/0hUw0dRpGVnyGtAbdsZ4R0zJ0Cg key{i}"))
        .collect();
    p.ssh_from = (0..20)
        .map(|i| format!("203.0.{i}.0/24").parse().unwrap())
        .collect();
    let out = render_embedded(&p);
    assert!(out.len() < AWS_RAW_LIMIT * 7 / 8, "{} bytes", out.len());
}

#[test]
fn check_size_accepts_the_limit_and_rejects_one_byte_more() {
    check_size("", 0, "aws").unwrap();
    check_size(&"x".repeat(16384), 16384, "aws").unwrap();
    let err = check_size(&"x".repeat(16385), 16384, "aws").unwrap_err();
    match &err {
        Error::TooLarge {
            size,
            limit,
            provider,
        } => {
            assert_eq!((*size, *limit, provider.as_str()), (16385, 16384, "aws"));
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("16385") && text.contains("16384") && text.contains("aws"),
        "{text}"
    );
}

#[test]
fn check_size_counts_bytes_not_characters() {
    let err = check_size("ééé", 5, "hetzner").unwrap_err();
    assert!(
        matches!(
            err,
            Error::TooLarge {
                size: 6,
                limit: 5,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn reboot_time_accepts_24h_times() {
    for ok in ["00:00", "03:30", "12:05", "23:59", "09:00"] {
        validate_reboot_time(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
}

#[test]
fn reboot_time_rejects_everything_else() {
    for bad in [
        "",
        "3:30",
        "03:3",
        "24:00",
        "23:60",
        "99:99",
        "03-30",
        "0330",
        "03:30:00",
        " 03:30",
        "03:30 ",
        "now",
        "ab:cd",
        "+3:30",
        "03:+3",
        "０３:３０",
        "03:30\n",
        "-1:00",
    ] {
        let err = validate_reboot_time(bad).unwrap_err();
        assert!(matches!(err, Error::InvalidParam { .. }), "{bad:?}");
        assert!(err.to_string().contains("HH:MM"), "{err}");
    }
}

#[test]
fn render_rejects_a_bad_reboot_time() {
    let mut p = params();
    p.reboot_time = "03:30\";\nAPT::Evil \"1".to_owned();
    assert!(matches!(
        render(&Template::embedded(), &p),
        Err(Error::InvalidParam { .. })
    ));
}

#[test]
fn render_rejects_params_that_lock_everyone_out() {
    let mut p = params();
    p.admin_user = "root".to_owned();
    assert!(matches!(
        render(&Template::embedded(), &p),
        Err(Error::InvalidParam { .. })
    ));

    let mut p = params();
    p.admin_user = String::new();
    assert!(matches!(
        render(&Template::embedded(), &p),
        Err(Error::InvalidParam { .. })
    ));

    let mut p = params();
    p.ssh_authorized_keys.clear();
    assert!(matches!(
        render(&Template::embedded(), &p),
        Err(Error::InvalidParam { .. })
    ));
}

#[test]
fn render_rejects_keys_that_would_add_authorized_keys_lines() {
    for key in [
        "ssh-ed25519 AAAA a\nssh-ed25519 BBBB evil",
        "ssh-ed25519 AAAA a\rcommand=\"sh\"",
        "",
        "   ",
    ] {
        let mut p = params();
        p.ssh_authorized_keys = vec![key.to_owned()];
        assert!(
            matches!(
                render(&Template::embedded(), &p),
                Err(Error::InvalidParam { .. })
            ),
            "{key:?}"
        );
    }
}

#[test]
fn every_listed_variable_is_defined() {
    for name in VARIABLES.split(", ") {
        let t = template(&format!("#cloud-config\nx: {{{{ {name} }}}}\n"));
        render(&t, &params()).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

fn runcmd(doc: &Json) -> Vec<String> {
    doc["runcmd"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| match c {
            Json::Array(argv) => argv
                .iter()
                .map(|a| a.as_str().unwrap())
                .collect::<Vec<_>>()
                .join(" "),
            other => other.as_str().unwrap().to_owned(),
        })
        .collect()
}

fn packages(doc: &Json) -> Vec<&str> {
    doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect()
}

#[test]
fn sudo_nopasswd_has_no_password_at_all() {
    let mut p = params();
    p.sudo = Sudo::NoPasswd;
    let out = render_embedded(&p);
    let doc = parse(&out);
    let admin = &doc["users"][0];
    assert_eq!(admin["sudo"], "ALL=(ALL) NOPASSWD:ALL");
    assert_eq!(admin["lock_passwd"], true);
    assert!(admin.get("hashed_passwd").is_none(), "{admin}");
    assert!(!out.contains("$6$"));
}

#[test]
fn sudo_password_puts_only_the_hash_in_the_user_data() {
    let password = bootstrap_keys::SudoPassword::generate();
    let mut p = params();
    p.sudo = Sudo::Password {
        hash: password.sha512_crypt().unwrap(),
    };
    let out = render_embedded(&p);
    assert!(!out.contains(password.expose()));
    let doc = parse(&out);
    assert_eq!(
        doc["users"][0]["hashed_passwd"],
        password.sha512_crypt().unwrap()
    );
    for bad in ["", "plaintext", "$1$md5$abc", "$6$salt$hash\nroot::0:0"] {
        let mut p = params();
        p.sudo = Sudo::Password {
            hash: bad.to_owned(),
        };
        assert!(
            matches!(
                render(&Template::embedded(), &p),
                Err(Error::InvalidParam { .. })
            ),
            "{bad:?}"
        );
    }
}

#[test]
fn host_key_goes_to_ssh_keys_only_and_is_validated() {
    let out = render_embedded(&params());
    let doc = parse(&out);
    let key = params().host_key;
    // The private key is in ssh_keys and nowhere else.
    let mut keys = Vec::new();
    let mut strings = Vec::new();
    walk(&doc, String::new(), &mut keys, &mut strings);
    let holders: Vec<&String> = strings
        .iter()
        .filter(|(_, s)| s.contains("PRIVATE KEY"))
        .map(|(p, _)| p)
        .collect();
    assert_eq!(holders, ["/ssh_keys/ed25519_private"]);
    assert!(!format!("{:?}", params()).contains(key.private_openssh.lines().nth(1).unwrap()));
    let sshd = content(&doc, SSHD);
    assert!(
        sshd.lines()
            .any(|l| l == "HostKey /etc/ssh/ssh_host_ed25519_key")
    );
    assert!(
        sshd.lines()
            .any(|l| l == "HostKeyAlgorithms ssh-ed25519,ssh-ed25519-cert-v01@openssh.com")
    );

    for (private, public) in [
        ("", key.public_openssh.as_str()),
        (
            "-----BEGIN RSA PRIVATE KEY-----\nx\n-----END RSA PRIVATE KEY-----",
            key.public_openssh.as_str(),
        ),
        (key.private_openssh.as_str(), "ecdsa-sha2-nistp256 AAAA"),
        (
            key.private_openssh.as_str(),
            "ssh-ed25519 AAAA\nssh-ed25519 BBBB",
        ),
    ] {
        let mut p = params();
        p.host_key = HostKey {
            private_openssh: private.to_owned(),
            public_openssh: public.to_owned(),
        };
        assert!(matches!(
            render(&Template::embedded(), &p),
            Err(Error::InvalidParam { .. })
        ));
    }
}

#[test]
fn algorithms_follow_the_image() {
    for image in [
        "ubuntu-24.04",
        "debian-12",
        "debian-13",
        "debian-11",
        "ami-0abc",
    ] {
        let mut p = params();
        p.image = ImageProfile::for_image(image);
        let a = p.image.algorithms();
        let doc = parse(&render_embedded(&p));
        let sshd = content(&doc, SSHD);
        let expect = [
            format!("KexAlgorithms {}", a.kex.join(",")),
            format!("Ciphers {}", a.ciphers.join(",")),
            format!("MACs {}", a.macs.join(",")),
            format!("{} {}", a.pubkey_keyword, a.pubkey.join(",")),
        ];
        for line in &expect {
            assert!(
                sshd.lines().any(|l| l == line),
                "{image}: no {line:?}:\n{sshd}"
            );
        }
        assert_eq!(
            sshd.contains("RequiredRSASize 3072"),
            a.required_rsa_size.is_some(),
            "{image}"
        );
        assert_eq!(
            sshd.contains("mlkem768x25519-sha256"),
            image == "debian-13",
            "{image}"
        );
        assert!(sshd.lines().next().unwrap().contains(image), "{sshd}");
    }
}

#[test]
fn tcp_forwarding_is_off_unless_asked_for_and_then_local_only() {
    let doc = parse(&render_embedded(&params()));
    assert!(
        content(&doc, SSHD)
            .lines()
            .any(|l| l == "AllowTcpForwarding no")
    );
    let mut p = params();
    p.allow_tcp_forwarding = true;
    let doc = parse(&render_embedded(&p));
    let sshd = content(&doc, SSHD);
    assert!(
        sshd.lines().any(|l| l == "AllowTcpForwarding local"),
        "{sshd}"
    );
    assert!(!sshd.lines().any(|l| l == "AllowTcpForwarding no"));
    for line in [
        "AllowAgentForwarding no",
        "X11Forwarding no",
        "PermitTunnel no",
        "GatewayPorts no",
        "AllowStreamLocalForwarding no",
    ] {
        assert!(sshd.lines().any(|l| l == line), "{line}");
    }
}

#[test]
fn without_docker_the_host_does_not_forward() {
    let doc = parse(&render_embedded(&params()));
    assert!(!packages(&doc).contains(&"docker.io"));
    let sysctl = content(&doc, SYSCTL);
    for line in [
        "net.ipv4.ip_forward = 0",
        "net.ipv6.conf.all.forwarding = 0",
        "net.ipv4.conf.all.rp_filter = 1",
        "net.ipv4.conf.all.accept_redirects = 0",
        "net.ipv6.conf.all.accept_redirects = 0",
        "net.ipv4.conf.all.send_redirects = 0",
        "net.ipv4.conf.all.accept_source_route = 0",
        "net.ipv4.tcp_syncookies = 1",
        "kernel.kptr_restrict = 2",
        "kernel.dmesg_restrict = 1",
    ] {
        assert!(sysctl.lines().any(|l| l == line), "{line}:\n{sysctl}");
    }
    let nft = content(&doc, NFT);
    let forward = &nft[nft.find("chain forward").unwrap()..nft.find("chain output").unwrap()];
    assert!(!forward.contains("accept"), "{forward}");
    assert!(
        runcmd(&doc)
            .iter()
            .any(|c| c == "sysctl -p /etc/sysctl.d/90-bootstrap-hardening.conf")
    );
}

#[test]
fn docker_mode_forwards_for_containers_and_filters_published_ports() {
    let mut p = params();
    p.docker = true;
    let doc = parse(&render_embedded(&p));
    assert!(packages(&doc).contains(&"docker.io"));
    let sysctl = content(&doc, SYSCTL);
    assert!(sysctl.lines().any(|l| l == "net.ipv4.ip_forward = 1"));
    assert!(!sysctl.contains("ip_forward = 0"));
    assert!(sysctl.lines().any(|l| l == "kernel.kptr_restrict = 2"));
    let nft = content(&doc, NFT);
    for line in [
        "ip daddr 169.254.169.254 drop",
        "iifname \"docker0\" accept",
        "meta l4proto tcp ct status dnat ct original proto-dst @docker_published_tcp accept",
        "set docker_published_tcp {",
    ] {
        assert!(nft.lines().any(|l| l.trim() == line), "{line}:\n{nft}");
    }
    // Containers cannot reach the metadata service, nor can local users other than root.
    assert!(
        nft.lines()
            .any(|l| l.trim() == "ip daddr 169.254.169.254 meta skuid != 0 drop"),
        "{nft}"
    );
    // The metadata drop comes before the containers' accept.
    assert!(nft.find("169.254.169.254").unwrap() < nft.find("iifname \"docker0\"").unwrap());
    // SSH rules are the same as without Docker.
    assert!(nft.contains("ip saddr @ssh_allow_v4 tcp dport 22 accept"));
}

#[test]
fn vpn_mode_moves_ssh_into_the_tunnel() {
    let mut p = params();
    let wg = vpn();
    p.vpn = Some(wg.clone());
    let out = render_embedded(&p);
    let doc = parse(&out);
    assert!(packages(&doc).contains(&"wireguard-tools"));
    let conf = write_file(&doc, WG);
    assert_eq!(conf["permissions"], "0600");
    let conf = conf["content"].as_str().unwrap();
    for line in [
        "Address = 10.213.7.1/24".to_owned(),
        "ListenPort = 51820".to_owned(),
        format!("PrivateKey = {}", wg.server_private_key),
        format!("PublicKey = {}", wg.client_public_key),
        "AllowedIPs = 10.213.7.2/32".to_owned(),
    ] {
        assert!(conf.lines().any(|l| l == line), "{line}:\n{conf}");
    }
    let sshd = content(&doc, SSHD);
    assert!(
        sshd.lines().any(|l| l == "ListenAddress 10.213.7.1"),
        "{sshd}"
    );
    let nft = content(&doc, NFT);
    assert!(
        nft.contains("ip saddr @ssh_allow_v4 udp dport 51820 accept"),
        "{nft}"
    );
    assert!(
        nft.contains("ip6 saddr @ssh_allow_v6 udp dport 51820 accept"),
        "{nft}"
    );
    assert!(nft.contains("iifname \"wg0\" tcp dport 22 accept"), "{nft}");
    assert_eq!(
        nft.matches("tcp dport 22").count(),
        1,
        "SSH only on wg0:\n{nft}"
    );
    let cmds = runcmd(&doc);
    let wg_at = cmds
        .iter()
        .position(|c| c == "systemctl enable --now wg-quick@wg0")
        .unwrap();
    let ssh_at = cmds
        .iter()
        .position(|c| c.contains("systemctl restart ssh"))
        .unwrap();
    assert!(wg_at < ssh_at, "{cmds:?}");
    assert!(cmds.iter().any(|c| c.contains("disable --now ssh.socket")));
    let unit = content(
        &doc,
        "/etc/systemd/system/ssh.service.d/10-bootstrap-wireguard.conf",
    );
    assert!(unit.contains("After=wg-quick@wg0.service"));

    // Without --ssh-from the tunnel port is open, SSH still is not.
    p.ssh_from.clear();
    let nft = content(&parse(&render_embedded(&p)), NFT).to_owned();
    assert!(
        nft.lines().any(|l| l.trim() == "udp dport 51820 accept"),
        "{nft}"
    );
    assert_eq!(nft.matches("tcp dport 22").count(), 1, "{nft}");
    // The private key never shows in Debug.
    assert!(!format!("{p:?}").contains(&wg.server_private_key));
}

#[test]
fn vpn_keys_and_names_are_validated() {
    let good = vpn();
    let bad_cases: [fn(&mut WireGuard); 7] = [
        |w| w.server_private_key = "x".into(),
        |w| w.client_public_key = format!("{}\n", w.client_public_key),
        |w| w.server_private_key = w.server_private_key.replace('=', "\""),
        |w| w.interface = "wg0\"; drop".into(),
        |w| w.interface = String::new(),
        |w| w.port = 0,
        |w| w.client_address = w.server_address,
    ];
    for (i, adjust) in bad_cases.iter().enumerate() {
        let mut w = good.clone();
        adjust(&mut w);
        let mut p = params();
        p.vpn = Some(w);
        assert!(
            matches!(
                render(&Template::embedded(), &p),
                Err(Error::InvalidParam { .. })
            ),
            "case {i}"
        );
    }
}

// See: issue 13, finding 4: the offline `--ssh-key` check and the rendered sshd config come
// from one table, and this proves they agree on every image.
#[test]
fn key_check_agrees_with_the_rendered_sshd_config_on_every_image() {
    for image in KNOWN_IMAGES
        .iter()
        .map(|(n, _)| *n)
        .chain(["unknown-image"])
    {
        let mut p = params();
        p.image = ImageProfile::for_image(image);
        let algorithms = p.image.algorithms();
        let sshd = content(&parse(&render_embedded(&p)), SSHD).to_owned();
        let accepted: Vec<&str> = sshd
            .lines()
            .find_map(|l| l.trim().strip_prefix(algorithms.pubkey_keyword))
            .unwrap_or_else(|| panic!("{image}: no {} line", algorithms.pubkey_keyword))
            .trim()
            .split(',')
            .collect();
        // Every rendered name belongs to a key type of the table.
        for name in &accepted {
            assert!(
                USER_KEY_TYPES.iter().any(|t| t.accepted_as.contains(name)),
                "{image}: {name} rendered but not in the table"
            );
        }
        for t in USER_KEY_TYPES {
            let login_works = t.accepted_as.iter().any(|a| accepted.contains(a));
            let checked = algorithms.check_user_key(t.key_type, Some(4096));
            assert_eq!(checked.is_ok(), login_works, "{image}: {}", t.key_type);
            if let Err(e) = checked {
                let text = e.to_string();
                assert!(text.contains("ssh-keygen -t ed25519"), "{image}: {text}");
                assert!(text.contains(t.key_type), "{image}: {text}");
            }
        }
        // RSA under the size sshd requires, where it says so, and under our floor everywhere.
        let required = sshd
            .lines()
            .find_map(|l| l.trim().strip_prefix("RequiredRSASize "))
            .map(|n| n.trim().parse::<u32>().unwrap());
        assert_eq!(
            required,
            algorithms.required_rsa_size.map(u32::from),
            "{image}"
        );
        let floor = u32::from(MIN_RSA_BITS);
        assert!(required.is_none_or(|r| r == floor), "{image}");
        assert!(algorithms.check_user_key("ssh-rsa", Some(floor)).is_ok());
        let small = algorithms
            .check_user_key("ssh-rsa", Some(floor - 1))
            .unwrap_err()
            .to_string();
        assert!(small.contains("3071 bits") && small.contains("ssh-keygen -t ed25519"));
        assert!(algorithms.check_user_key("ssh-rsa", None).is_err());
        // A word that is no key type is refused without being quoted.
        let odd = algorithms
            .check_user_key("CANARY-type", None)
            .unwrap_err()
            .to_string();
        assert!(!odd.contains("CANARY"), "{odd}");
    }
}

/// The real key files behind the table: each type it accepts can be read, and the sizes and
/// types it refuses are refused (ECDSA and DSA by type, RSA-1024/2048 by size).
#[test]
fn real_key_files_meet_the_table() {
    let testdata = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../keys/testdata");
    let algorithms = ImageProfile::for_image("ubuntu-24.04").algorithms();
    for (file, ok) in [
        ("ed25519.pub", true),
        ("rsa3072.pub", true),
        ("rsa2048.pub", false),
        ("rsa1024.pub", false),
        ("dsa.pub", false),
        ("ecdsa256.pub", false),
        ("ecdsa384.pub", false),
    ] {
        let checked = match bootstrap_keys::PublicKey::load(&testdata.join(file)) {
            Ok(k) => algorithms.check_user_key(&k.algorithm(), k.rsa_bits()),
            Err(e) => algorithms.check_user_key(e.unsupported_key_type().unwrap(), None),
        };
        assert_eq!(checked.is_ok(), ok, "{file}: {checked:?}");
    }
}
