//! A two-namespace lab for tests against real BGP daemons: a "router" namespace running FRR's
//! bgpd or GoBGP and a "speaker" namespace running our speaker, joined by one veth pair.
//! Only documentation prefixes are used (198.51.100.0/24, 2001:db8:1::/64); nothing touches
//! the host's interfaces. Everything started is stopped by PID and the namespaces deleted on
//! drop, also when a test fails.

#![allow(dead_code, unreachable_pub, missing_docs)]

use std::fs::File;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Router (peer) addresses.
pub const ROUTER_V4: &str = "198.51.100.1";
pub const ROUTER_V6: &str = "2001:db8:1::1";
/// Speaker addresses.
pub const SPEAKER_V4: &str = "198.51.100.11";
pub const SPEAKER_V6: &str = "2001:db8:1::11";

/// Tests share two cores; timing-sensitive lab tests run one at a time.
pub static SERIAL: Mutex<()> = Mutex::new(());
static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Whether the lab can run here. Outside CI a missing prerequisite skips loudly; under
/// `CI=true` it fails the test.
pub fn lab_available(test: &str, binaries: &[&str]) -> bool {
    let mut missing = Vec::new();
    if !nix::unistd::geteuid().is_root() {
        missing.push("root".to_owned());
    }
    for b in binaries {
        if !Path::new(b).exists() {
            missing.push((*b).to_owned());
        }
    }
    if missing.is_empty() {
        return true;
    }
    let msg = format!(
        "{test}: needs {} for network namespaces and real BGP peers",
        missing.join(", ")
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{msg} (CI=true: a skipped namespace test is a failure)");
    }
    eprintln!("\n!!!!!!!! SKIPPED {msg} !!!!!!!!\n");
    false
}

pub const BGPD: &str = "/usr/lib/frr/bgpd";
pub const VTYSH: &str = "/usr/bin/vtysh";
pub const GOBGPD: &str = "/usr/bin/gobgpd";
pub const GOBGP: &str = "/usr/bin/gobgp";

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ip(args: &[&str]) {
    run(Command::new("ip").args(args));
}

/// A daemon we started, stopped by PID.
pub struct Daemon {
    pub name: &'static str,
    pub child: Child,
}

impl Daemon {
    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).unwrap()
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig);
    }

    pub fn stop(mut self) {
        self.terminate();
    }

    fn terminate(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.signal(nix::sys::signal::Signal::SIGCONT);
            self.signal(nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.terminate();
    }
}

pub struct Lab {
    pub router: String,
    pub speaker: String,
    pub dir: PathBuf,
}

impl Lab {
    /// Two fresh namespaces joined by a veth pair, addresses configured, loopbacks up.
    pub fn new() -> Self {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let id = format!("lbb{}x{n}", std::process::id());
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

/// The path of an example binary built by `cargo test` next to the test binary.
pub fn example_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    let path = deps.parent().unwrap().join("examples").join(name);
    assert!(
        path.exists(),
        "{} not built (cargo test builds examples)",
        path.display()
    );
    path
}

/// Polls `check` every 20 ms until it returns `Some`, for at most `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Async version of [`wait_for`].
pub async fn wait_for_async<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A single-threaded tokio runtime on a thread that entered a network namespace: every
/// socket its tasks open lives there. Futures are handed to it with [`NsRuntime::call`].
pub struct NsRuntime {
    handle: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl NsRuntime {
    fn new(ns: &str) -> Self {
        let path = PathBuf::from("/run/netns").join(ns);
        let (handle_tx, handle_rx) = std::sync::mpsc::channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let file = File::open(&path).unwrap();
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            handle_tx.send(rt.handle().clone()).unwrap();
            rt.block_on(async {
                let _ = stop_rx.await;
            });
        });
        let handle = handle_rx.recv().unwrap();
        Self {
            handle,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Runs `fut` on the namespace's runtime and waits (at most 2 minutes) for its output.
    pub fn call<T: Send + 'static>(&self, fut: impl Future<Output = T> + Send + 'static) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        self.handle.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv_timeout(Duration::from_secs(120))
            .expect("task in namespace runtime failed")
    }
}

impl Drop for NsRuntime {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
