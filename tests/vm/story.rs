//! Boot 1, the whole story on Hetzner: `create` against the Hetzner fake with `--ssh-from
//! 10.0.2.2/32` (where QEMU's forwarded connections come from), the user-data it sent booted,
//! `verify` passing every check with none skipped (host-key rotation included), `ssh -- uptime`
//! on the rotated key, real fail2ban bans, a reboot, and `verify` passing again.

use std::time::Instant;

use fakecloud::hetzner::FakeHetzner;
use serde_json::Value;

use crate::guest::{Deployment, Reach};
use crate::machine::{Image, Vm};
use crate::support::Bin;

/// Where connections through QEMU's user-mode forwards come from, inside the guest.
pub const SLIRP_HOST: &str = "10.0.2.2";
/// The guest's own address on QEMU's user-mode network.
pub const GUEST_IP: &str = "10.0.2.15";

#[test]
fn hetzner_user_data_boots_verifies_bans_and_survives_a_reboot() {
    let _one = crate::one_vm();
    let image = Image::get();
    let started = Instant::now();
    let fake = FakeHetzner::start_default();
    let url = fake.url();
    let d = Deployment {
        bin: Bin::new(),
        provider: "hetzner",
        name: "vmtest",
    };
    let mut args = crate::support::hetzner_create(&url, d.name, "10.0.2.2/32");
    args.extend(["--image", "debian-12", "--output", "json"]);
    let r = d.run(&args);
    r.expect_code(0);
    let out: Value = serde_json::from_str(&r.stdout()).expect("create's JSON");
    let id: u64 = out["server"]["id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("server id");
    // Exactly what create sent, as the fake received it.
    let user_data = fake.server_user_data(id).expect("the fake keeps user_data");
    assert!(user_data.starts_with("#cloud-config"));
    // The next providers' Debian 12 images get this same user-data: `render` for DigitalOcean and
    // Scaleway differs from what Hetzner's create sent only in the per-run secrets and the
    // image's name, so this boot stands for theirs too (AWS's is booted in variants.rs).
    for (provider, image) in [
        ("digitalocean", "debian-12-x64"),
        ("scaleway", "debian_bookworm"),
    ] {
        let r = d.run(&[
            "render",
            "--provider",
            provider,
            "--name",
            d.name,
            "--ssh-from",
            "10.0.2.2/32",
            "--image",
            image,
        ]);
        r.expect_code(0);
        let (theirs, masked) = per_run_masked(&r.stdout());
        assert_eq!(masked, 5, "{provider}: the per-run lines moved");
        assert_eq!(theirs, per_run_masked(&user_data).0, "{provider}");
    }

    let mut vm = Vm::boot(&image, d.name, &user_data, &[]);
    let reach = Reach::Forward(vm.ssh_port());
    let (r, list) = d.verify(&reach, &[]);
    eprintln!("verify after {} s of boot", vm.uptime());
    list.assert_all_passed("after the first boot");
    r.expect_code(0);
    assert!(
        list.detail("host-key-rotated")
            .starts_with("replaced the key"),
        "{}",
        list.detail("host-key-rotated")
    );
    // The hostname resolves (sudo would print `unable to resolve host` otherwise).
    let (code, out, err) = d.root(
        &reach,
        "hostname; getent hosts \"$(hostname)\"; sudo -n true\n",
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(!err.contains("unable to resolve host"), "{err}");
    assert!(out.starts_with("vmtest\n"), "{out}");

    // `bootstrap ssh` works on the rotated key only (the known_hosts now holds only it).
    let up = d.run_at(&reach, &["ssh", d.name, "--", "uptime"]);
    up.expect_code(0);
    assert!(up.stdout().contains("load average"), "{}", up.stdout());
    let kh = std::fs::read_to_string(d.dir().join("known_hosts")).unwrap();
    assert_eq!(
        kh.lines().filter(|l| l.contains("ssh-ed25519")).count(),
        1,
        "{kh}"
    );

    // Bans: three logins refused (a user not in AllowUsers) from the guest's own address get it
    // banned by the sshd jail reading the journal; the --ssh-from network stays in ignoreip.
    let (code, out, err) = d.root(
        &reach,
        &format!(
            "for i in 1 2 3 4; do timeout 20 ssh -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=no \
               -o UserKnownHostsFile=/dev/null -o ConnectTimeout=5 intruder@{GUEST_IP} true >/dev/null 2>&1 </dev/null; done\n\
             for i in $(seq 1 60); do fail2ban-client status sshd | grep -q '{GUEST_IP}' && break; sleep 1; done\n\
             fail2ban-client status sshd\n\
             echo IGNORE; fail2ban-client get sshd ignoreip\n\
             echo PROBE; if timeout 5 ssh -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=no \
               -o UserKnownHostsFile=/dev/null -o ConnectTimeout=3 intruder@{GUEST_IP} true 2>&1 </dev/null; then :; fi\n\
             echo NFT; nft list table inet f2b-table\n"
        ),
    );
    eprintln!("bans:\n{out}");
    assert_eq!(code, 0, "{out}{err}");
    let (status, rest) = out.split_once("IGNORE").expect("sections");
    let (ignore, rest) = rest.split_once("PROBE").expect("sections");
    let (probe, nft) = rest.split_once("NFT").expect("sections");
    let banned = status
        .lines()
        .find(|l| l.contains("Banned IP list"))
        .unwrap_or_default();
    assert!(banned.contains(GUEST_IP), "not banned: {status}");
    assert!(!banned.contains(SLIRP_HOST), "{status}");
    assert!(
        ignore.contains(&format!("{SLIRP_HOST}/32")) || ignore.contains(SLIRP_HOST),
        "{ignore}"
    );
    assert!(
        probe.contains("refused") || probe.contains("timed out"),
        "a banned address still reaches sshd: {probe}"
    );
    assert!(nft.contains(GUEST_IP), "{nft}");
    // Our own address (10.0.2.2) was never banned: this session is proof, and so is the jail.
    let (code, _, _) = d.root(
        &reach,
        "fail2ban-client status sshd | grep -q '10.0.2.2' && exit 1; exit 0\n",
    );
    assert_eq!(code, 0, "the --ssh-from address got banned");

    // A reboot: every unit comes back (nftables loaded, fail2ban, sshd on the rotated key).
    d.reboot(&mut vm, &reach);
    let (r, list) = d.verify(&reach, &[]);
    list.assert_all_passed("after the reboot");
    r.expect_code(0);
    assert!(
        list.detail("host-key-rotated")
            .starts_with("already rotated"),
        "{}",
        list.detail("host-key-rotated")
    );
    eprintln!(
        "boot 1 (hetzner, reboot, bans): {} s",
        started.elapsed().as_secs()
    );
}

/// The user-data with its per-run lines (secrets, the image's name) masked, and how many were.
fn per_run_masked(user_data: &str) -> (String, usize) {
    const PER_RUN: [&str; 5] = [
        "hashed_passwd:",
        "- \"ssh-ed25519 ",
        "ed25519_private:",
        "ed25519_public:",
        "# Written by bootstrap at first boot for ",
    ];
    let mut masked = 0;
    let text = user_data
        .lines()
        .map(|l| {
            let body = l.trim_start();
            match PER_RUN.iter().find(|p| body.starts_with(**p)) {
                Some(p) => {
                    masked += 1;
                    format!("{}{p}...", &l[..l.len() - body.len()])
                }
                None => l.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    (text, masked)
}
