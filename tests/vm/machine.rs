//! One QEMU guest booted from the cached base image (`tests/vm/image.sh`) with a given
//! user-data: a fresh qcow2 overlay and a NoCloud seed in the VM's own temp dir, user-mode
//! networking whose forwards listen on 127.0.0.1 only, on ports this process picked. Dropping
//! the [`Vm`] kills QEMU and removes the overlay, the seed and the serial log.

use std::io::{BufRead as _, Read as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The cached base image: kernel, initrd and the qcow2 root disk.
pub struct Image {
    dir: PathBuf,
}

impl Image {
    /// Builds the image if its recipe changed (as root, ~2-7 min), else finds it in the cache.
    pub fn get() -> Self {
        let recipe = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vm/image.sh");
        let out = Command::new("bash")
            .arg(&recipe)
            .stderr(Stdio::inherit())
            .output()
            .expect("run tests/vm/image.sh");
        assert!(
            out.status.success(),
            "tests/vm/image.sh failed (run `bash .ci/install` as root to build the VM image)"
        );
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        for f in ["vmlinuz", "initrd.img", "base.qcow2"] {
            assert!(dir.join(f).is_file(), "{} has no {f}", dir.display());
        }
        Self { dir }
    }
}

/// A forwarded guest port: host side 127.0.0.1:`host`.
#[derive(Clone, Copy, Debug)]
pub struct Forward {
    /// `tcp` or `udp`.
    pub proto: &'static str,
    /// Port inside the guest.
    pub guest: u16,
    /// Port on 127.0.0.1 that QEMU listens on.
    pub host: u16,
}

/// A running guest.
pub struct Vm {
    qemu: Child,
    dir: tempfile::TempDir,
    /// The forwards, SSH (guest 22) first.
    pub forwards: Vec<Forward>,
    started: Instant,
}

/// A free port on 127.0.0.1, picked by the kernel and released for QEMU to bind.
fn free_port(proto: &str) -> u16 {
    let any = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    match proto {
        "udp" => UdpSocket::bind(any).unwrap().local_addr().unwrap().port(),
        _ => TcpListener::bind(any).unwrap().local_addr().unwrap().port(),
    }
}

/// `-accel kvm` only where KVM really works: the device opens and the CPU has hardware
/// virtualisation (a nested "PVM" host has /dev/kvm but no vmx/svm, and its guests stall).
/// `BOOTSTRAP_VM_ACCEL=kvm|tcg` overrides.
fn accel() -> Vec<&'static str> {
    let kvm = match std::env::var("BOOTSTRAP_VM_ACCEL").as_deref() {
        Ok("kvm") => true,
        Ok("tcg") => false,
        _ => {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/kvm")
                .is_ok()
                && std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|c| {
                    c.lines().any(|l| {
                        l.starts_with("flags")
                            && l.split_whitespace().any(|f| f == "vmx" || f == "svm")
                    })
                })
        }
    };
    if kvm {
        vec!["-accel", "kvm", "-cpu", "host"]
    } else {
        vec!["-accel", "tcg,thread=multi", "-cpu", "max"]
    }
}

impl Vm {
    /// Boots `image` with `user_data` (NoCloud seed, `local-hostname: hostname`), forwarding
    /// guest TCP 22 and `extra` guest ports (proto, port) from 127.0.0.1.
    pub fn boot(
        image: &Image,
        hostname: &str,
        user_data: &str,
        extra: &[(&'static str, u16)],
    ) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("bootstrap-vm.")
            .tempdir()
            .unwrap();
        let d = dir.path();
        // The user-data holds the first host key and the sudo hash: this user's eyes only.
        std::fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        std::fs::write(d.join("user-data"), user_data).unwrap();
        std::fs::write(
            d.join("meta-data"),
            format!(
                "instance-id: {hostname}-{}\nlocal-hostname: {hostname}\n",
                std::process::id()
            ),
        )
        .unwrap();
        let ok = Command::new("cloud-localds")
            .arg(d.join("seed.iso"))
            .arg(d.join("user-data"))
            .arg(d.join("meta-data"))
            .status()
            .expect("cloud-localds (cloud-image-utils)");
        assert!(ok.success(), "cloud-localds failed");
        let ok = Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
            .arg(image.dir.join("base.qcow2"))
            .arg(d.join("overlay.qcow2"))
            .status()
            .expect("qemu-img");
        assert!(ok.success(), "qemu-img create failed");

        let mut forwards = vec![Forward {
            proto: "tcp",
            guest: 22,
            host: free_port("tcp"),
        }];
        for (proto, guest) in extra {
            forwards.push(Forward {
                proto,
                guest: *guest,
                host: free_port(proto),
            });
        }
        let mut netdev = "user,id=n0".to_owned();
        for f in &forwards {
            netdev.push_str(&format!(
                ",hostfwd={}:127.0.0.1:{}-:{}",
                f.proto, f.host, f.guest
            ));
        }
        let mut cmd = Command::new("qemu-system-x86_64");
        cmd.args(accel())
            .args(["-m", "2048", "-smp", "2", "-nodefaults", "-display", "none"])
            .arg("-kernel")
            .arg(image.dir.join("vmlinuz"))
            .arg("-initrd")
            .arg(image.dir.join("initrd.img"))
            .args(["-append", "root=/dev/vda rw console=ttyS0 net.ifnames=0"])
            .arg("-drive")
            .arg(format!(
                "file={},if=virtio,format=qcow2",
                d.join("overlay.qcow2").display()
            ))
            .arg("-drive")
            .arg(format!(
                "file={},if=virtio,format=raw,readonly=on",
                d.join("seed.iso").display()
            ))
            .args(["-netdev", &netdev, "-device", "virtio-net-pci,netdev=n0"])
            .arg("-serial")
            .arg(format!("file:{}", d.join("serial.log").display()))
            .args(["-monitor", "none"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join("qemu.err")).unwrap());
        let qemu = cmd
            .spawn()
            .expect("qemu-system-x86_64 (install it with .ci/install)");
        eprintln!(
            "vm: booting {hostname} ({}), ssh on 127.0.0.1:{}",
            accel()[1],
            forwards[0].host
        );
        Self {
            qemu,
            dir,
            forwards,
            started: Instant::now(),
        }
    }

    /// The host port forwarded to guest `proto`/`guest`.
    pub fn port(&self, proto: &str, guest: u16) -> u16 {
        self.forwards
            .iter()
            .find(|f| f.proto == proto && f.guest == guest)
            .map(|f| f.host)
            .expect("a forward for that port")
    }

    /// The host port of the guest's SSH.
    pub fn ssh_port(&self) -> u16 {
        self.port("tcp", 22)
    }

    /// Seconds since QEMU started.
    pub fn uptime(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    /// Whether the guest's sshd answers with its banner now (QEMU accepts the connection itself,
    /// so only the banner proves sshd is there).
    pub fn ssh_answers(&self) -> bool {
        let Ok(mut s) = TcpStream::connect_timeout(
            &SocketAddr::from((Ipv4Addr::LOCALHOST, self.ssh_port())),
            Duration::from_secs(3),
        ) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let mut buf = [0u8; 8];
        s.read_exact(&mut buf).is_ok() && buf.starts_with(b"SSH-")
    }

    /// Waits until the guest's sshd stops answering (it went down for a reboot).
    pub fn wait_ssh_gone(&mut self, limit: Duration) {
        let end = Instant::now() + limit;
        while self.ssh_answers() {
            self.assert_running();
            assert!(Instant::now() < end, "sshd still answers after {limit:?}");
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Panics (with the serial log's tail) when QEMU has exited.
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.qemu.try_wait() {
            let err = std::fs::read_to_string(self.dir.path().join("qemu.err")).unwrap_or_default();
            panic!("qemu exited ({status}): {err}\n{}", self.serial_tail(40));
        }
    }

    /// The last `n` lines of the guest's serial console.
    pub fn serial_tail(&self, n: usize) -> String {
        let Ok(f) = std::fs::File::open(self.dir.path().join("serial.log")) else {
            return String::new();
        };
        let lines: Vec<String> = std::io::BufReader::new(f)
            .lines()
            .map_while(Result::ok)
            .collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- vm serial console (last lines)\n{}",
                self.serial_tail(80)
            );
        }
        let _ = self.qemu.kill();
        let _ = self.qemu.wait();
        // The TempDir (overlay, seed, serial log) is removed after this.
    }
}
