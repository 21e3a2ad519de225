//! Test support for the workspace's tests against the kernel and real daemons.
//!
//! Everything here keeps test traffic inside network namespaces the test creates: a
//! [`Netns`] is deleted when dropped (also when the test panics), a [`Daemon`] is stopped by
//! its PID, and every wait is bounded. Only used by tests (`publish = false`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

use std::fs::File;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Tests share two cores; timing-sensitive lab tests of one test binary run one at a time.
pub static SERIAL: Mutex<()> = Mutex::new(());

/// Takes [`SERIAL`], also after another test panicked while holding it.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A name unique to this process and call, `prefix` first (namespace and link names must
/// stay short: 15 bytes for links).
pub fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    format!("{prefix}{}x{n}", std::process::id())
}

/// Whether a namespace test can run here. Outside CI a missing prerequisite (root, or one
/// of `binaries`) skips loudly; under `CI=true` it fails the test.
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
        "{test}: needs {} for network namespaces and real peers",
        missing.join(", ")
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{msg} (CI=true: a skipped namespace test is a failure)");
    }
    eprintln!("\n!!!!!!!! SKIPPED {msg} !!!!!!!!\n");
    false
}

/// Runs `cmd`, panics with its output unless it succeeds, returns its stdout.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `ip ARGS…` (iproute2), panicking on failure.
pub fn ip(args: &[&str]) -> String {
    run(Command::new("ip").args(args))
}

/// A network namespace this test created; deleted on drop.
#[derive(Debug)]
pub struct Netns {
    /// Its name (under /run/netns).
    pub name: String,
}

impl Netns {
    /// Creates a namespace with a unique name starting with `prefix`, loopback up.
    pub fn new(prefix: &str) -> Self {
        let ns = Self {
            name: unique(prefix),
        };
        ip(&["netns", "add", &ns.name]);
        ip(&["-n", &ns.name, "link", "set", "lo", "up"]);
        ns
    }

    /// Runs `ip -n NS ARGS…`.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// A command that runs `program` inside the namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    /// A tokio runtime whose thread lives in this namespace.
    pub fn runtime(&self) -> NsRuntime {
        NsRuntime::new(&self.name)
    }
}

/// A veth pair: `a_if` in `a`, `b_if` in `b`, both up.
pub fn veth(a: &Netns, a_if: &str, b: &Netns, b_if: &str) {
    a.ip(&[
        "link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns", &b.name,
    ]);
    a.ip(&["link", "set", a_if, "up"]);
    b.ip(&["link", "set", b_if, "up"]);
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// A daemon we started, stopped by PID (SIGTERM, then SIGKILL after 3 s) on drop.
#[derive(Debug)]
pub struct Daemon {
    /// What it is, for messages.
    pub name: &'static str,
    /// The process.
    pub child: Child,
}

impl Daemon {
    /// Its PID.
    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).unwrap()
    }

    /// Sends `sig` to it.
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig);
    }

    /// Stops it now.
    pub fn stop(mut self) {
        self.terminate();
    }

    /// True while it runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
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

/// A single-threaded tokio runtime on a thread that entered a network namespace: every
/// socket its tasks open lives there. Futures are handed to it with [`NsRuntime::call`].
#[derive(Debug)]
pub struct NsRuntime {
    handle: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl NsRuntime {
    /// A runtime in the namespace named `ns` (under /run/netns).
    pub fn new(ns: &str) -> Self {
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

    /// Runs a blocking closure on a thread inside the namespace (for std sockets).
    pub fn blocking<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        self.call(async move { f() })
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

/// FRR daemons (zebra first, then the others) in one namespace, each with its configuration,
/// pid file, vty socket and log in a directory of their own; stopped by PID and the directory
/// removed on drop.
#[derive(Debug)]
pub struct Frr {
    daemons: Vec<Daemon>,
    /// The daemons' directory (configurations, logs, vty sockets).
    pub dir: PathBuf,
    ns: String,
}

impl Frr {
    /// Starts zebra and then `daemons` (name under /usr/lib/frr, configuration) in `ns`, and
    /// waits for each one's vty socket.
    pub fn start(ns: &Netns, daemons: &[(&'static str, &str)]) -> Self {
        let dir = std::env::temp_dir().join(unique("lbfrr"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // zebra cannot skip its user switch: it runs as `frr` and writes in the directory.
        run(Command::new("chmod").arg("0777").arg(&dir));
        let zserv = dir.join("zserv.api");
        let mut frr = Self {
            daemons: Vec::new(),
            dir,
            ns: ns.name.clone(),
        };
        let all = std::iter::once(("zebra", "hostname lab\n!\n")).chain(daemons.iter().copied());
        for (name, conf) in all {
            let path = frr.dir.join(format!("{name}.conf"));
            std::fs::write(&path, conf).unwrap();
            let log = File::create(frr.dir.join(format!("{name}.out"))).unwrap();
            let child = ns
                .command(format!("/usr/lib/frr/{name}"))
                .arg("-f")
                .arg(&path)
                .arg("-i")
                .arg(frr.dir.join(format!("{name}.pid")))
                .arg("-z")
                .arg(&zserv)
                .arg("--vty_socket")
                .arg(&frr.dir)
                .args(["-u", "frr", "-g", "frr", "-P", "0"])
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap();
            frr.daemons.push(Daemon { name, child });
            let vty = frr.dir.join(format!("{name}.vty"));
            wait_for(&format!("{name} vty"), Duration::from_secs(10), || {
                vty.exists().then_some(())
            });
        }
        frr
    }

    /// The PID of daemon `name`.
    pub fn pid(&self, name: &str) -> Option<i32> {
        self.daemons
            .iter()
            .find(|d| d.name == name)
            .map(Daemon::pid)
    }

    /// Runs `vtysh -d daemon -c command` and returns its standard output.
    pub fn vtysh(&self, daemon: &str, command: &str) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns, "/usr/bin/vtysh", "--vty_socket"])
            .arg(&self.dir)
            .args(["-d", daemon, "-c", command])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Daemon `name`'s log.
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{name}.out"))).unwrap_or_default()
    }
}

impl Drop for Frr {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for d in &self.daemons {
                eprintln!("==== {} ====\n{}", d.name, self.log(d.name));
            }
        }
        // Stopped in reverse order, zebra last.
        while let Some(d) = self.daemons.pop() {
            d.stop();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// CPU time (user + system) process `pid` has used so far, from /proc (0 once it is gone).
pub fn cpu_time(pid: i32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name (which may hold spaces) start after the last ')':
    // utime and stime are the 12th and 13th of them, in clock ticks (100 per second).
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}
