//! `bootstrap completions SHELL` and `bootstrap man`: generated from the same clap definitions
//! that parse the command line, so they cannot go stale. The bash script is loaded into a real
//! bash and asked to complete.

use std::process::Command;

use crate::support::Bin;

/// What bash completes for the words `line` (the last one being completed).
fn bash_complete(script: &std::path::Path, line: &[&str]) -> Vec<String> {
    let words = line
        .iter()
        .map(|w| format!("'{w}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let prog = format!(
        "source '{}'; COMP_WORDS=({words}); COMP_CWORD={}; _bootstrap bootstrap '{}' '{}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display(),
        line.len() - 1,
        line[line.len() - 1],
        line[line.len() - 2],
    );
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &prog])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn bash_completion_completes_commands_flags_and_providers() {
    let b = Bin::new();
    let r = b.run(&["completions", "bash"]);
    r.expect_code(0);
    let script = b.dir.path().join("bootstrap.bash");
    std::fs::write(&script, r.stdout()).unwrap();
    let got = bash_complete(&script, &["bootstrap", "cr"]);
    assert_eq!(got, vec!["create"], "{got:?}");
    let got = bash_complete(&script, &["bootstrap", "create", "--ssh-f"]);
    assert_eq!(got, vec!["--ssh-from"], "{got:?}");
    let got = bash_complete(&script, &["bootstrap", "destroy", "--provider", ""]);
    for p in ["hetzner", "digitalocean", "scaleway"] {
        assert!(got.iter().any(|g| g == p), "{p} in {got:?}");
    }
    let got = bash_complete(&script, &["bootstrap", "snapshot", ""]);
    for c in ["run", "list", "set", "install"] {
        assert!(got.iter().any(|g| g == c), "{c} in {got:?}");
    }
}

#[test]
fn every_shell_gets_a_script_for_bootstrap() {
    let b = Bin::new();
    for (shell, marker) in [
        ("zsh", "#compdef bootstrap"),
        ("fish", "complete -c bootstrap"),
        ("powershell", "Register-ArgumentCompleter"),
        ("elvish", "edit:completion:arg-completer[bootstrap]"),
    ] {
        let r = b.run(&["completions", shell]);
        r.expect_code(0);
        let out = r.stdout();
        assert!(out.contains(marker), "{shell}: {out}");
        assert!(
            out.contains("--ssh-from"),
            "{shell} completes create's flags"
        );
    }
    let r = b.run(&["completions", "tcsh"]);
    r.expect_code(2);
    assert!(r.stderr().contains("bash"), "{}", r.stderr());
}

#[test]
fn man_page_is_roff_listing_every_command() {
    let b = Bin::new();
    let r = b.run(&["man"]);
    r.expect_code(0);
    let page = r.stdout();
    assert!(page.contains(".TH bootstrap 1"), "{page}");
    for cmd in [
        "create",
        "render",
        "destroy",
        "list",
        "snapshot",
        "verify",
        "ssh",
        "completions",
    ] {
        assert!(page.contains(cmd), "{cmd} in the man page");
    }
    // When man(1) is there, it must format the page without complaint.
    if let Ok(out) = Command::new("man")
        .args(["-l", "-"])
        .env("MANPAGER", "cat")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write as _;
            c.stdin.take().unwrap().write_all(page.as_bytes())?;
            c.wait_with_output()
        })
    {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("hardened"));
    }
}

#[test]
fn version_names_the_commit_and_the_compiled_providers() {
    let r = Bin::new().run(&["--version"]);
    r.expect_code(0);
    let v = r.stdout();
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    assert!(v.contains("commit "), "{v}");
    if let Some(head) = head {
        // The build script records HEAD at build time; tests build from the same checkout.
        assert!(v.contains(&head), "{v} vs HEAD {head}");
    }
    for p in ["hetzner", "digitalocean", "scaleway"] {
        assert!(v.contains(p), "{v}");
    }
    assert_eq!(v.contains("aws"), cfg!(feature = "aws"), "{v}");
}

#[test]
fn create_help_groups_its_flags_lists_values_and_ends_with_examples() {
    let r = Bin::new().run(&["create", "--help"]);
    r.expect_code(0);
    let h = r.stdout();
    let pos = |s: &str| h.find(s).unwrap_or_else(|| panic!("{s} in {h}"));
    for heading in [
        "Connection:",
        "Server:",
        "Access:",
        "Hardening:",
        "Snapshots:",
    ] {
        pos(heading);
    }
    // Each flag under its heading (a flag's own line, not the usage line).
    let flag = |f: &str| pos(&format!("\n      {f} "));
    assert!(pos("Server:") < flag("--server-type") && flag("--server-type") < pos("Access:"));
    assert!(pos("Access:") < flag("--ssh-from") && flag("--ssh-from") < pos("Hardening:"));
    assert!(pos("Snapshots:") < flag("--snapshot-engine"));
    for value in ["password", "nopasswd", "wireguard"] {
        pos(value);
    }
    let examples = pos("Examples:");
    assert!(examples > flag("--from-snapshot"), "examples come last");
    // The offline example runs as printed.
    let line = h[examples..]
        .lines()
        .find(|l| l.contains("--dry-run"))
        .unwrap()
        .trim();
    let args: Vec<&str> = line.split_whitespace().skip(1).collect();
    let mut b = Bin::new();
    b.unset("HCLOUD_TOKEN");
    let r = b.run(&args);
    r.expect_code(0);
    assert!(r.stdout().contains("#cloud-config"));
}
