//! The defaults file: repeated `create` flags per provider; flags win; unknown keys are refused
//! with the file and line, and nothing of the file is echoed.

use serde_json::Value;

use crate::support::Bin;

fn with_config(text: &str) -> Bin {
    let mut b = Bin::new();
    b.unset("HCLOUD_TOKEN");
    let dir = b.dir.path().join("xdg");
    std::fs::create_dir_all(dir.join("bootstrap")).unwrap();
    std::fs::write(dir.join("bootstrap").join("config.toml"), text).unwrap();
    b.env("XDG_CONFIG_HOME", dir.to_str().unwrap());
    b
}

fn plan(b: &Bin, extra: &[&str]) -> Value {
    let mut args = vec![
        "create",
        "--provider",
        "hetzner",
        "--name",
        "d1",
        "--dry-run",
        "-o",
        "json",
    ];
    args.extend_from_slice(extra);
    let r = b.run(&args);
    r.expect_code(0);
    serde_json::from_str(&r.stdout()).unwrap()
}

#[test]
fn the_file_fills_what_the_flags_leave_out() {
    let b = with_config(
        "[hetzner]\nlocation = \"nbg1\"\nserver_type = \"cx23\"\nimage = \"debian-12\"\nssh_from = [\"198.51.100.0/24\"]\nadmin_user = \"ops\"\nsnapshots = \"weekly:4\"\nsnapshot_day = \"wed\"\n\n[digitalocean]\nlocation = \"ams3\"\n",
    );
    let p = plan(&b, &[]);
    assert_eq!(p["server"]["location"], "nbg1", "{p}");
    assert_eq!(p["server"]["server_type"], "cx23", "{p}");
    assert_eq!(p["server"]["image"], "debian-12", "{p}");
    assert_eq!(
        p["firewall"]["inbound"][0]["sources"][0], "198.51.100.0/24",
        "{p}"
    );
    assert_eq!(
        p["server"]["labels"]["bootstrap-snapshot"], "weekly-wed-0300",
        "{p}"
    );
    assert_eq!(p["server"]["labels"]["bootstrap-keep"], "4", "{p}");
    assert!(
        p["user_data"].as_str().unwrap().contains("name: \"ops\""),
        "{p}"
    );
    // Flags win over the file.
    let p = plan(
        &b,
        &[
            "--location",
            "hel1",
            "--ssh-from",
            "203.0.113.7/32",
            "--admin-user",
            "me",
        ],
    );
    assert_eq!(p["server"]["location"], "hel1", "{p}");
    assert_eq!(
        p["firewall"]["inbound"][0]["sources"][0], "203.0.113.7/32",
        "{p}"
    );
    assert!(
        p["user_data"].as_str().unwrap().contains("name: \"me\""),
        "{p}"
    );
    // Without a file, --ssh-from is still required, with the fix.
    let b = Bin::new();
    let r = b.run(&[
        "create",
        "--provider",
        "hetzner",
        "--name",
        "d1",
        "--dry-run",
    ]);
    r.expect_code(2);
    assert!(
        r.stderr().contains("--ssh-from is required"),
        "{}",
        r.stderr()
    );
}

#[test]
fn unknown_keys_and_tables_are_refused_with_file_and_line() {
    for (text, line) in [
        (
            "[hetzner]\nlocation = \"nbg1\"\nlocaton = \"x\"\n",
            "line 3",
        ),
        (
            "[hetzner]\nimage = \"x\"\n[hetzer]\nimage = \"y\"\n",
            "line 3",
        ),
        ("root:$6$CANARYsecret:19000:0:99999:7:::\n", "line 1"),
    ] {
        let b = with_config(text);
        let r = b.run(&[
            "create",
            "--provider",
            "hetzner",
            "--name",
            "d1",
            "--ssh-from",
            "203.0.113.7/32",
            "--dry-run",
        ]);
        r.expect_code(2);
        let err = r.stderr();
        assert!(err.contains("config.toml"), "{err}");
        assert!(err.contains(line), "{line}: {err}");
        assert!(!err.contains("CANARY"), "the file is not echoed: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
}

#[test]
fn state_and_config_follow_the_xdg_spec() {
    // XDG_STATE_HOME when absolute; a relative one is ignored (the spec), so ~/.local/state.
    let mut b = Bin::new();
    b.unset("BOOTSTRAP_STATE_DIR");
    b.unset("HCLOUD_TOKEN");
    let xdg = b.dir.path().join("xdg-state");
    let args = [
        "render",
        "--provider",
        "hetzner",
        "--name",
        "x1",
        "--ssh-from",
        "203.0.113.7/32",
    ];
    b.env("XDG_STATE_HOME", xdg.to_str().unwrap());
    let r = b.run(&args);
    r.expect_code(0);
    assert!(
        r.stderr().contains(&format!(
            "{}/bootstrap/hetzner/x1/id_ed25519",
            xdg.display()
        )),
        "{}",
        r.stderr()
    );
    b.env("XDG_STATE_HOME", "relative/state");
    let r = b.run(&args);
    r.expect_code(0);
    let home_state = b
        .dir
        .path()
        .join(".local/state/bootstrap/hetzner/x1/id_ed25519");
    assert!(
        r.stderr().contains(&home_state.display().to_string()),
        "{}",
        r.stderr()
    );
}
