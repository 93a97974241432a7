//! `--context`: the provider CLI's context or profile picks the credentials, on every command,
//! and the output names it. Each provider's config-file reader is unit-tested in its crate;
//! this proves the flag reaches it and the request carries that context's token.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use crate::support::Bin;

/// A one-request API on 127.0.0.1 that records the request's headers and answers 401.
struct OneShot {
    url: String,
    headers: mpsc::Receiver<Vec<String>>,
}

impl OneShot {
    fn start() -> Self {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let (tx, headers) = mpsc::channel();
        std::thread::spawn(move || {
            let Ok((s, _)) = l.accept() else { return };
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut lines = Vec::new();
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                lines.push(line.trim_end().to_ascii_lowercase());
            }
            let body = r#"{"error":{"code":"unauthorized","message":"unable to authenticate"},"id":"unauthorized","message":"unable to authenticate","type":"denied_authentication"}"#;
            let _ = write!(
                &s,
                "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = tx.send(lines);
        });
        Self { url, headers }
    }

    fn header(&self, name: &str) -> Option<String> {
        let lines = self.headers.recv_timeout(Duration::from_secs(10)).ok()?;
        let prefix = format!("{name}: ");
        lines
            .iter()
            .find_map(|l| l.strip_prefix(&prefix).map(str::to_owned))
    }
}

/// Per provider: the config file, where it is named, the auth header, the token of context `dev`.
struct Case {
    provider: &'static str,
    file: &'static str,
    var: &'static str,
    config: &'static str,
    header: &'static str,
    dev_token: &'static str,
    named: &'static str,
    endpoint_suffix: &'static str,
}

const CASES: &[Case] = &[
    Case {
        provider: "hetzner",
        file: "cli.toml",
        var: "HCLOUD_CONFIG",
        config: "active_context = \"prod\"\n[[contexts]]\nname = \"prod\"\ntoken = \"tok-prod\"\n[[contexts]]\nname = \"dev\"\ntoken = \"tok-dev\"\n",
        header: "authorization",
        dev_token: "bearer tok-dev",
        named: "using hcloud context \"dev\"",
        endpoint_suffix: "/v1",
    },
    Case {
        provider: "digitalocean",
        file: "config.yaml",
        var: "XDG_CONFIG_HOME",
        config: "access-token: tok-prod\nauth-contexts:\n  dev: tok-dev\ncontext: default\n",
        header: "authorization",
        dev_token: "bearer tok-dev",
        named: "using doctl context \"dev\"",
        endpoint_suffix: "",
    },
    Case {
        provider: "scaleway",
        file: "config.yaml",
        var: "SCW_CONFIG_PATH",
        config: "secret_key: 11111111-1111-1111-1111-111111111111\ndefault_project_id: 22222222-2222-2222-2222-222222222222\nactive_profile: prod\nprofiles:\n  prod:\n    secret_key: 33333333-3333-3333-3333-333333333333\n  dev:\n    secret_key: 44444444-4444-4444-4444-444444444444\n",
        header: "x-auth-token",
        dev_token: "44444444-4444-4444-4444-444444444444",
        named: "using scw profile \"dev\"",
        endpoint_suffix: "",
    },
];

fn bin_for(case: &Case) -> Bin {
    let mut b = Bin::new();
    for v in [
        "HCLOUD_TOKEN",
        "DIGITALOCEAN_TOKEN",
        "DIGITALOCEAN_ACCESS_TOKEN",
        "SCW_SECRET_KEY",
    ] {
        b.unset(v);
    }
    let path = if case.var == "XDG_CONFIG_HOME" {
        let dir = b.dir.path().join("xdg");
        std::fs::create_dir_all(dir.join("doctl")).unwrap();
        b.env(case.var, dir.to_str().unwrap());
        dir.join("doctl").join(case.file)
    } else {
        let p = b.dir.path().join(case.file);
        b.env(case.var, p.to_str().unwrap());
        p
    };
    std::fs::write(path, case.config).unwrap();
    b
}

#[test]
fn context_flag_picks_that_contexts_credentials_and_output_names_it() {
    for case in CASES {
        let b = bin_for(case);
        for cmd in [&["list"][..], &["snapshot", "list", "web1"][..]] {
            let api = OneShot::start();
            let endpoint = format!("{}{}", api.url, case.endpoint_suffix);
            let mut args = cmd.to_vec();
            args.extend(["--provider", case.provider, "--context", "dev"]);
            args.extend(["--endpoint", &endpoint]);
            let r = b.run(&args);
            assert_ne!(r.code(), 0, "{}: the API answered 401", case.provider);
            assert_eq!(
                api.header(case.header).as_deref(),
                Some(case.dev_token),
                "{} {cmd:?}: the request must carry context dev's credentials; stderr: {}",
                case.provider,
                r.stderr()
            );
            assert!(
                r.stderr().contains(case.named),
                "{}: {}",
                case.provider,
                r.stderr()
            );
            for secret in ["tok-dev", "tok-prod", "44444444-4444"] {
                assert!(!r.stderr().contains(secret), "{}", r.stderr());
            }
        }
    }
}

#[test]
fn unknown_context_exits_2_listing_the_ones_that_exist() {
    for case in CASES {
        let b = bin_for(case);
        let r = b.run(&[
            "list",
            "--provider",
            case.provider,
            "--context",
            "staging",
            "--endpoint",
            "http://127.0.0.1:9",
        ]);
        r.expect_code(2);
        let err = r.stderr();
        assert!(err.contains("staging"), "{}: {err}", case.provider);
        assert!(
            // doctl calls the top-level token's context `default`.
            err.contains("dev") && (err.contains("prod") || err.contains("default")),
            "{}: {err}",
            case.provider
        );
    }
}

#[cfg(feature = "aws")]
#[test]
fn aws_refuses_context_naming_its_profile_flag() {
    let b = Bin::new();
    let r = b.run(&["list", "--provider", "aws", "--context", "dev"]);
    r.expect_code(2);
    assert!(r.stderr().contains("--profile"), "{}", r.stderr());
}
