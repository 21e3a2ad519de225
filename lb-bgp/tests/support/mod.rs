//! A two-namespace lab for tests against real BGP daemons: a "router" namespace running FRR's
//! bgpd or GoBGP and a "speaker" namespace running our speaker, joined by one veth pair.
//! Only documentation prefixes are used (198.51.100.0/24, 2001:db8:1::/64); nothing touches
//! the host's interfaces. Everything started is stopped by PID and the namespaces deleted on
//! drop, also when a test fails.

#![allow(dead_code, unreachable_pub, missing_docs)]

use std::fs::File;
use std::path::PathBuf;
use std::process::Command;

use std::time::Duration;

pub use lb_testlab::{Daemon, NsRuntime, SERIAL, example_path, ip, lab_available, wait_for};

/// Router (peer) addresses.
pub const ROUTER_V4: &str = "198.51.100.1";
pub const ROUTER_V6: &str = "2001:db8:1::1";
/// Speaker addresses.
pub const SPEAKER_V4: &str = "198.51.100.11";
pub const SPEAKER_V6: &str = "2001:db8:1::11";

pub const BGPD: &str = "/usr/lib/frr/bgpd";
pub const VTYSH: &str = "/usr/bin/vtysh";
pub const GOBGPD: &str = "/usr/bin/gobgpd";
pub const GOBGP: &str = "/usr/bin/gobgp";

pub struct Lab {
    pub router: String,
    pub speaker: String,
    pub dir: PathBuf,
}

impl Lab {
    /// Two fresh namespaces joined by a veth pair, addresses configured, loopbacks up.
    pub fn new() -> Self {
        let id = lb_testlab::unique("lbb");
        let lab = Self {
            router: format!("{id}r"),
            speaker: format!("{id}s"),
            dir: std::env::temp_dir().join(&id),
        };
        let _ = std::fs::remove_dir_all(&lab.dir);
        std::fs::create_dir_all(&lab.dir).unwrap();
        ip(&["netns", "add", &lab.router]);
        ip(&["netns", "add", &lab.speaker]);
        ip(&[
            "-n",
            &lab.router,
            "link",
            "add",
            "eth0",
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &lab.speaker,
        ]);
        for (ns, v4, v6) in [
            (&lab.router, ROUTER_V4, ROUTER_V6),
            (&lab.speaker, SPEAKER_V4, SPEAKER_V6),
        ] {
            ip(&["-n", ns, "addr", "add", &format!("{v4}/24"), "dev", "eth0"]);
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{v6}/64"),
                "dev",
                "eth0",
                "nodad",
            ]);
            ip(&["-n", ns, "link", "set", "eth0", "up"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        lab
    }

    /// Starts FRR's bgpd in the router namespace with `config` (no zebra, no vty port).
    pub fn start_frr(&self, config: &str) -> Daemon {
        let conf = self.dir.join("bgpd.conf");
        std::fs::write(&conf, config).unwrap();
        let _ = std::fs::remove_file(self.dir.join("bgpd.vty"));
        let log = File::create(self.dir.join("bgpd.out")).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.router, BGPD, "-f"])
            .arg(&conf)
            .arg("-i")
            .arg(self.dir.join("bgpd.pid"))
            .arg("-z")
            .arg(self.dir.join("zserv.api"))
            .arg("--vty_socket")
            .arg(&self.dir)
            .args(["-S", "-Z", "-P", "0"])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let daemon = Daemon {
            name: "bgpd",
            child,
        };
        wait_for("bgpd vty socket", Duration::from_secs(10), || {
            self.dir.join("bgpd.vty").exists().then_some(())
        });
        daemon
    }

    /// Runs a vtysh command against the lab's bgpd and parses its JSON output.
    pub fn vtysh_json(&self, command: &str) -> serde_json::Value {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.router, VTYSH, "--vty_socket"])
            .arg(&self.dir)
            .args(["-d", "bgpd", "-c", command])
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
    }

    /// Starts gobgpd in the router namespace with a TOML `config`; its API on the namespace's
    /// loopback.
    pub fn start_gobgp(&self, config: &str) -> Daemon {
        let conf = self.dir.join("gobgpd.toml");
        std::fs::write(&conf, config).unwrap();
        let log = File::create(self.dir.join("gobgpd.out")).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.router, GOBGPD, "-f"])
            .arg(&conf)
            .args(["--api-hosts", "127.0.0.1:50051", "--log-level", "info"])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let daemon = Daemon {
            name: "gobgpd",
            child,
        };
        wait_for("gobgpd API", Duration::from_secs(10), || {
            let out = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &self.router,
                    GOBGP,
                    "-u",
                    "127.0.0.1",
                    "-p",
                    "50051",
                    "global",
                ])
                .output()
                .ok()?;
            out.status.success().then_some(())
        });
        daemon
    }

    /// Runs `gobgp <args> -j` and parses the JSON.
    pub fn gobgp_json(&self, args: &[&str]) -> serde_json::Value {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.router,
                GOBGP,
                "-u",
                "127.0.0.1",
                "-p",
                "50051",
            ])
            .args(args)
            .arg("-j")
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
    }

    /// A tokio runtime whose thread lives in the namespace `ns`.
    pub fn runtime_in(&self, ns: &str) -> NsRuntime {
        NsRuntime::new(ns)
    }

    /// Starts the `announce` example in the speaker namespace.
    pub fn spawn_announce(&self, args: &[&str]) -> Daemon {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.dir.join("announce.out"))
            .unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.speaker])
            .arg(example_path("announce"))
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        Daemon {
            name: "announce",
            child,
        }
    }

    pub fn log(&self, file: &str) -> String {
        std::fs::read_to_string(self.dir.join(file)).unwrap_or_default()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.router])
            .status();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.speaker])
            .status();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("lab files kept for inspection in {}", self.dir.display());
        }
    }
}
