//! Boot 2, the variants that carry risk, in one boot: the deployment rendered for AWS (`create
//! --provider aws` against moto; the user-data is what moto's DescribeInstanceAttribute gives
//! back) with `--docker --vpn wireguard`. The tunnel comes up from the host side, SSH and
//! `verify` (none skipped) work through it, the forwarded TCP 22 gives no sshd; a container's
//! published port stays closed from outside until it is listed in the template's published set;
//! a container's packets to the metadata address are dropped by the host firewall.

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_ec2::types::InstanceAttributeName;
use base64::Engine as _;
use serde_json::Value;

use crate::guest::{Deployment, Reach};
use crate::machine::{Image, Vm};
use crate::moto::{Ec2View, Moto, aws_env};
use crate::support::Bin;

/// The client end of the deployment's WireGuard tunnel: its interface lives in a network
/// namespace of its own (held by a `sleep`), while wireguard-go, and so the tunnel's UDP socket,
/// stays in this namespace, where QEMU forwards 127.0.0.1:`port` to the guest's 51820. Dropping
/// it stops wireguard-go and the holder (the namespace and the interface go with them).
struct Tunnel {
    holder: Child,
    wireguard: Child,
    /// wireguard-go's control socket, which a killed wireguard-go leaves behind.
    socket: std::path::PathBuf,
}

impl Tunnel {
    /// Brings up the client config `create` wrote, with its endpoint replaced by 127.0.0.1:`port`.
    fn up(client_conf: &std::path::Path, port: u16) -> Self {
        let holder = Command::new("unshare")
            .args(["--net", "sleep", "infinity"])
            .spawn()
            .expect("unshare (util-linux)");
        // A name of its own for each tunnel: a killed wireguard-go leaves its socket behind.
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let ifname = format!("wgvm{}x{n}", std::process::id() % 100_000);
        let wireguard = Command::new("wireguard-go")
            .args(["-f", &ifname])
            .env("WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("wireguard-go");
        let socket = std::path::PathBuf::from(format!("/var/run/wireguard/{ifname}.sock"));
        let t = Tunnel {
            holder,
            wireguard,
            socket,
        };
        // `wg-quick strip` gives the config `wg` reads (no Address line), then the endpoint.
        let stripped = Command::new("wg-quick")
            .arg("strip")
            .arg(client_conf)
            .output()
            .expect("wg-quick strip");
        assert!(stripped.status.success(), "wg-quick strip failed");
        let conf: String = String::from_utf8_lossy(&stripped.stdout)
            .lines()
            .map(|l| {
                if l.starts_with("Endpoint") {
                    format!("Endpoint = 127.0.0.1:{port}\n")
                } else {
                    format!("{l}\n")
                }
            })
            .collect();
        let address = std::fs::read_to_string(client_conf)
            .expect("client config")
            .lines()
            .find_map(|l| l.strip_prefix("Address = ").map(str::to_owned))
            .expect("an Address line");
        // What wg-quick would route into the tunnel: the peer's AllowedIPs.
        let routes: String = conf
            .lines()
            .filter_map(|l| l.strip_prefix("AllowedIPs = "))
            .flat_map(|l| l.split(','))
            .map(|net| format!("; ip route add {} dev {ifname}", net.trim()))
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wg.conf");
        std::fs::write(&path, conf).unwrap();
        let end = Instant::now() + Duration::from_secs(10);
        while !t.socket.exists() {
            assert!(Instant::now() < end, "wireguard-go made no {ifname}");
            std::thread::sleep(Duration::from_millis(100));
        }
        let pid = t.pid().to_string();
        let script = format!(
            "set -e; wg setconf {ifname} {conf}; ip link set {ifname} netns {pid}; \
             nsenter -t {pid} -n sh -c 'ip link set lo up; ip addr add {address} dev {ifname}; ip link set {ifname} up{routes}'",
            conf = path.display()
        );
        let ok = Command::new("sh").arg("-c").arg(&script).status().unwrap();
        assert!(ok.success(), "bringing the tunnel up failed: {script}");
        t
    }

    /// The pid whose network namespace holds the tunnel's interface.
    fn pid(&self) -> u32 {
        self.holder.id()
    }
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        for c in [&mut self.wireguard, &mut self.holder] {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// GET / from 127.0.0.1:`port`: the body, or `None` when the connection gave no HTTP answer.
fn http_get(port: u16) -> Option<String> {
    let mut s = TcpStream::connect_timeout(
        &SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        Duration::from_secs(5),
    )
    .ok()?;
    s.set_read_timeout(Some(Duration::from_secs(15))).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: vm\r\n\r\n").ok()?;
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).into_owned();
    text.starts_with("HTTP/").then_some(text)
}

/// Splits `text` at `MARK name` lines into (name, section) pairs.
fn sections(text: &str) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    let mut name = String::from("head");
    for line in text.lines() {
        if let Some(n) = line.strip_prefix("=== ") {
            name = n.trim().to_owned();
            continue;
        }
        let e: &mut String = out.entry(name.clone()).or_default();
        e.push_str(line);
        e.push('\n');
    }
    out
}

#[test]
fn aws_user_data_with_docker_and_wireguard_boots_and_verifies() {
    let _one = crate::one_vm();
    let image = Image::get();
    let started = Instant::now();
    let moto = Moto::start();
    let mut bin = Bin::new();
    aws_env(&mut bin, &moto.url());
    let d = Deployment {
        bin,
        provider: "aws",
        name: "vmaws",
    };
    // moto has no Data Lifecycle Manager: the schedule stays with the job.
    let r = d.run(&[
        "create",
        "--provider",
        "aws",
        "--name",
        d.name,
        "--ssh-from",
        "10.0.2.2/32",
        "--image",
        "debian-12",
        "--docker",
        "--vpn",
        "wireguard",
        "--snapshot-engine",
        "job",
        "--output",
        "json",
    ]);
    r.expect_code(0);
    let out: Value = serde_json::from_str(&r.stdout()).expect("create's JSON");
    let id = out["server"]["id"]
        .as_str()
        .expect("instance id")
        .to_owned();
    // What create sent, as moto gives it back.
    let view = Ec2View::new(&moto.url());
    let attr = view
        .block(
            view.client
                .describe_instance_attribute()
                .instance_id(&id)
                .attribute(InstanceAttributeName::UserData)
                .send(),
        )
        .expect("DescribeInstanceAttribute userData");
    let b64 = attr
        .user_data()
        .and_then(|v| v.value())
        .expect("moto keeps UserData");
    let user_data = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .expect("base64 UserData"),
    )
    .expect("utf-8 user-data");
    assert!(user_data.starts_with("#cloud-config"));
    assert!(user_data.contains("docker.io") && user_data.contains("wireguard-tools"));

    let vm = Vm::boot(&image, d.name, &user_data, &[("udp", 51820), ("tcp", 8080)]);
    let tunnel = Tunnel::up(&d.dir().join("wg-bootstrap.conf"), vm.port("udp", 51820));
    let reach = Reach::Tunnel(tunnel.pid(), "10.213.7.1".to_owned());

    // verify finds the tunnel address in the state (no --host) and waits for the boot.
    let (r, list) = d.verify(&reach, &[]);
    eprintln!("verify after {} s of boot", vm.uptime());
    list.assert_all_passed("through the tunnel (aws, --docker, --vpn wireguard)");
    r.expect_code(0);
    for id in ["sshd-listen-vpn", "wireguard", "docker", "host-key-rotated"] {
        assert!(
            list.checks().iter().any(|(i, s, _)| i == id && s == "pass"),
            "{id} missing"
        );
    }
    // verify replaced the server's WireGuard key (made on the server) and rewrote the client
    // config; the server switches 2 s after verify ends. The tunnel comes up again from the
    // rewritten config, as verify tells the user, and SSH works through it.
    drop(tunnel);
    std::thread::sleep(Duration::from_secs(5));
    let tunnel = Tunnel::up(&d.dir().join("wg-bootstrap.conf"), vm.port("udp", 51820));
    let reach = Reach::Tunnel(tunnel.pid(), "10.213.7.1".to_owned());
    let up = d.run_at(&reach, &["ssh", d.name, "--", "uptime"]);
    up.expect_code(0);
    assert!(up.stdout().contains("load average"), "{}", up.stdout());

    // The forwarded TCP 22 reaches no sshd: it listens on the tunnel address only, and the
    // host firewall drops TCP 22 from anywhere but wg0.
    assert!(!vm.ssh_answers(), "sshd answers outside the tunnel");
    let outside = d
        .ssh_command(&Reach::Forward(vm.ssh_port()))
        .arg("true")
        .stdin(Stdio::null())
        .output()
        .expect("ssh");
    assert!(!outside.status.success(), "ssh worked outside the tunnel");

    // (Bookworm's busybox wget segfaults on `-T`: `busybox timeout` bounds it instead.)
    // Docker: a container from a local image (busybox from the Debian mirror, no registry)
    // publishing 8080, and a container asking the metadata address. The guard table counts
    // those packets before (priority -10) and after (priority 10) the filter hooks: dropped in
    // between means bootstrap's forward chain dropped them; the guard also drops anything that
    // got through, so nothing reaches QEMU's network.
    let setup = "set -e\n\
        export DEBIAN_FRONTEND=noninteractive\n\
        apt-get install -y -qq --no-install-recommends busybox-static >/dev/null </dev/null\n\
        rm -rf /tmp/ctr && mkdir -p /tmp/ctr/bin /tmp/ctr/www\n\
        cp /bin/busybox /tmp/ctr/bin/busybox\n\
        echo vmtest-published > /tmp/ctr/www/index.html\n\
        tar -C /tmp/ctr -c . | docker import - bootstrap-vmtest:1 >/dev/null\n\
        docker run -d --name web -p 8080:8080 bootstrap-vmtest:1 /bin/busybox httpd -f -p 8080 -h /www >/dev/null </dev/null\n\
        nft -f - <<'NFT'\n\
        table ip vmguard {\n\
          chain before { type filter hook forward priority -10; ip daddr 169.254.169.254 counter; }\n\
          chain after { type filter hook forward priority 10; ip daddr 169.254.169.254 counter drop; }\n\
        }\n\
        NFT\n\
        echo '=== metadata'\n\
        docker run --rm bootstrap-vmtest:1 /bin/busybox timeout 5 /bin/busybox wget -q -O- http://169.254.169.254/latest/meta-data/ 2>&1 </dev/null || echo \"exit $?\"\n\
        echo '=== counters'\n\
        nft list table ip vmguard\n\
        echo '=== served'\n\
        docker exec web /bin/busybox timeout 5 /bin/busybox wget -q -O- http://127.0.0.1:8080/ </dev/null\n";
    let (code, out, err) = d.root(&reach, setup);
    eprintln!("docker:\n{out}{err}");
    assert_eq!(code, 0, "{out}{err}");
    let s = sections(&out);
    assert!(s["served"].contains("vmtest-published"), "{out}");
    let counters: Vec<u64> = s["counters"]
        .lines()
        .filter_map(|l| l.split("packets ").nth(1))
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    assert_eq!(counters.len(), 2, "{}", s["counters"]);
    assert!(
        counters[0] > 0,
        "the container sent nothing to the metadata address: {out}"
    );
    assert_eq!(
        counters[1], 0,
        "packets to the metadata address got through the host firewall's forward chain: {out}"
    );

    // From outside, the published port stays closed until it is in docker_published_tcp.
    assert_eq!(
        http_get(vm.port("tcp", 8080)),
        None,
        "8080 open while not listed"
    );
    let (code, out, err) = d.root(
        &reach,
        "nft add element inet bootstrap docker_published_tcp '{ 8080 }'\n",
    );
    assert_eq!(code, 0, "{out}{err}");
    let body = http_get(vm.port("tcp", 8080)).expect("8080 answers once listed");
    assert!(body.contains("vmtest-published"), "{body}");

    drop(tunnel);
    drop(vm);
    eprintln!(
        "boot 2 (aws, --docker, --vpn wireguard): {} s",
        started.elapsed().as_secs()
    );
}
