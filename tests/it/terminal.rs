//! A terminal that stays clean: without a TTY each step is one plain line, printed once, with no
//! colour codes in files; on a TTY colours follow `NO_COLOR` (a pseudo-terminal from util-linux
//! `script` stands in for the user's terminal).

use std::process::Command;

use crate::scenario::hetzner::Hetzner;
use crate::scenario::{Cloud as _, create};
use crate::support::Bin;

/// SGR colour sequences (`ESC [ ... m`); cursor movement of the spinner is not colour.
fn has_colour(s: &str) -> bool {
    s.match_indices("\u{1b}[").any(|(i, _)| {
        let rest = &s[i + 2..];
        let end = rest.find(|c: char| !(c.is_ascii_digit() || c == ';'));
        end.is_some_and(|e| rest[e..].starts_with('m'))
    })
}

#[test]
fn without_a_tty_every_step_is_one_plain_line_once() {
    let cloud = Hetzner::start();
    let b = cloud.bin();
    for verbosity in [None, Some("-v"), Some("-vv")] {
        let name = format!("term{}", verbosity.map_or(0, str::len));
        let extra: Vec<&str> = verbosity.into_iter().collect();
        let r = create(&cloud, &b, &name, "203.0.113.7/32", &extra);
        r.expect_code(0);
        let err = r.stderr();
        assert!(
            !has_colour(&err),
            "{verbosity:?}: colour codes in a file: {err:?}"
        );
        let steps: Vec<&str> = err
            .lines()
            .filter(|l| !l.starts_with(' ') && !l.contains("DEBUG") && !l.contains(" INFO "))
            .collect();
        assert!(
            steps.iter().any(|l| l.contains("server")),
            "{verbosity:?}: the steps are shown without a TTY: {err}"
        );
        for l in &steps {
            let n = err.lines().filter(|x| x == l).count();
            assert_eq!(n, 1, "{verbosity:?}: {l:?} printed {n} times:\n{err}");
        }
    }
    // -q: nothing but errors.
    let r = create(&cloud, &b, "termq", "203.0.113.7/32", &["-q"]);
    r.expect_code(0);
    assert_eq!(r.stderr(), "", "-q");
}

/// Runs `bootstrap args` on a pseudo-terminal; returns what the terminal showed.
fn on_a_tty(b: &Bin, args: &[&str], no_color: bool) -> String {
    let cmd = std::iter::once(env!("CARGO_BIN_EXE_bootstrap"))
        .chain(args.iter().copied())
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut c = Command::new("script");
    c.args(["-qec", &cmd, "/dev/null"]).env_clear();
    c.env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", b.dir.path())
        .env("BOOTSTRAP_STATE_DIR", b.state_dir())
        .env("HCLOUD_TOKEN", "t")
        .env("TERM", "xterm");
    if no_color {
        c.env("NO_COLOR", "1");
    }
    let out = c.output().expect("script (util-linux)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn on_a_tty_colours_follow_no_color() {
    let cloud = Hetzner::start();
    let b = cloud.bin();
    let url = cloud.0.url();
    let args = ["-vv", "list", "--provider", "hetzner", "--endpoint", &url];
    let coloured = on_a_tty(&b, &args, false);
    assert!(coloured.contains("DEBUG"), "{coloured:?}");
    assert!(
        has_colour(&coloured),
        "a terminal gets colours: {coloured:?}"
    );
    let plain = on_a_tty(&b, &args, true);
    assert!(plain.contains("DEBUG"), "{plain:?}");
    assert!(!has_colour(&plain), "NO_COLOR: {plain:?}");
}
