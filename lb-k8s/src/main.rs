//! The `lb-k8s` binary: offline commands on MetalLB-compatible objects.
//!
//! - `lb-k8s crds`: the CRD manifests.
//! - `lb-k8s validate -f FILE...`: exit 0 when the configuration is valid, 1 otherwise.
//! - `lb-k8s convert -f CONFIGMAP.yaml`: a legacy MetalLB ConfigMap as `metallb.io` objects.
//! - `lb-k8s plan -f FILE...`: allocations and per-node announcements, as the controller and
//!   the speakers would compute them.
//! - `lb-k8s controller`: the in-cluster controller (allocation, Service status, leader
//!   election, `/metrics`, `/healthz`, `/readyz`).

#![allow(clippy::print_stdout)] // a CLI prints its results

use std::collections::BTreeSet;
use std::io::Read;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use lb_metallb::config::{Config, ConfigError};
use lb_metallb::input::{DEFAULT_NAMESPACE, Objects};
use lb_metallb::plan::{PlanOptions, plan};
use lb_metallb::{crd, legacy};
use serde::Serialize;

#[derive(Parser)]
#[command(
    name = "lb-k8s",
    version,
    about = "MetalLB-compatible load balancer for Kubernetes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ValidateFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PlanFormat {
    Table,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Print the CustomResourceDefinitions as YAML.
    Crds,
    /// Validate metallb.io objects (and a legacy ConfigMap); exit 1 with one error per line.
    Validate {
        /// Files with multi-document YAML; `-` reads stdin.
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<String>,
        /// Output format.
        #[arg(short = 'o', long = "output", value_enum, default_value = "text")]
        output: ValidateFormat,
        /// Namespace MetalLB's objects must be in.
        #[arg(long, default_value = DEFAULT_NAMESPACE)]
        namespace: String,
    },
    /// Convert a legacy MetalLB ConfigMap (key `config`) to metallb.io objects.
    Convert {
        /// The ConfigMap file; `-` reads stdin.
        #[arg(short = 'f', long = "filename", required = true)]
        file: String,
    },
    /// Allocate IPs and show what every node announces, without a cluster.
    Plan {
        /// Files with multi-document YAML; `-` reads stdin.
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<String>,
        /// Output format.
        #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
        output: PlanFormat,
        /// Show only this node.
        #[arg(long)]
        node: Option<String>,
        /// Treat this node's speaker as dead (repeatable).
        #[arg(long)]
        down: Vec<String>,
        /// Handle only Services of this loadBalancerClass (default: only those without one).
        #[arg(long)]
        lb_class: Option<String>,
        /// Announce from nodes labelled node.kubernetes.io/exclude-from-external-load-balancers.
        #[arg(long)]
        ignore_exclude_lb: bool,
        /// Namespace MetalLB's objects must be in.
        #[arg(long, default_value = DEFAULT_NAMESPACE)]
        namespace: String,
    },
    /// Run the controller in a cluster: allocate IPs and write Service status.
    Controller(ControllerArgs),
    /// Run the speaker on one node: announce the Services' IPs over ARP/NDP and BGP.
    Speaker(SpeakerArgs),
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Json,
    Text,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogLevel {
    All,
    Debug,
    Info,
    Warn,
    Error,
    None,
}

#[derive(clap::Args)]
struct ControllerArgs {
    /// Namespace of MetalLB's objects.
    #[arg(long, env = "METALLB_NAMESPACE", default_value = DEFAULT_NAMESPACE)]
    namespace: String,
    /// Handle only Services of this loadBalancerClass (default: only those without one).
    #[arg(long, env = "METALLB_LB_CLASS")]
    lb_class: Option<String>,
    /// Elect a leader among the replicas with a coordination.k8s.io Lease; only it writes.
    #[arg(long)]
    leader_elect: bool,
    /// Name of the Lease.
    #[arg(long, default_value = "lb-k8s-controller")]
    lease_name: String,
    /// Lease duration in seconds (renewed every third of it).
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(3..=3600))]
    lease_duration: u64,
    /// This replica's identity (defaults to the host name).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Address of the /metrics, /healthz and /readyz endpoints.
    #[arg(long, default_value = "0.0.0.0:7472")]
    listen: std::net::SocketAddr,
    /// Log level.
    #[arg(long, env = "METALLB_LOG_LEVEL", value_enum, default_value = "info")]
    log_level: LogLevel,
    /// Log format.
    #[arg(long, value_enum, default_value = "json")]
    log_format: LogFormat,
    /// The memberlist Secret to create (with a random key) when it does not exist; empty
    /// disables.
    #[arg(long, default_value = "memberlist")]
    ml_secret_name: String,
}

fn go_duration(text: &str) -> Result<std::time::Duration, lb_metallb::duration::DurationError> {
    lb_metallb::duration::parse_go_duration(text)
}

#[derive(clap::Args)]
struct SpeakerArgs {
    /// This node's name (the Node object the speaker runs on).
    #[arg(long, env = "METALLB_NODE_NAME")]
    node_name: String,
    /// Read the objects from this multi-document YAML file (as `plan` does) instead of the
    /// API server, and follow its changes.
    #[arg(long, value_name = "FILE")]
    from_file: Option<std::path::PathBuf>,
    /// Namespace of MetalLB's objects.
    #[arg(long, env = "METALLB_NAMESPACE", default_value = DEFAULT_NAMESPACE)]
    namespace: String,
    /// Handle only Services of this loadBalancerClass (default: only those without one).
    #[arg(long, env = "METALLB_LB_CLASS")]
    lb_class: Option<String>,
    /// Announce from nodes labelled node.kubernetes.io/exclude-from-external-load-balancers.
    #[arg(long)]
    ignore_exclude_lb: bool,
    /// Address of the /metrics, /healthz and /readyz endpoints.
    #[arg(long, default_value = "0.0.0.0:7473")]
    listen: std::net::SocketAddr,
    /// Membership address (bound and advertised); default: the node's first address.
    #[arg(long, env = "METALLB_ML_BIND_ADDR")]
    ml_bindaddr: Option<std::net::IpAddr>,
    /// Membership UDP port.
    #[arg(long, env = "METALLB_ML_BIND_PORT", default_value_t = 7946)]
    ml_bindport: u16,
    /// The membership key: a file, or a directory holding `secretkey` (the memberlist
    /// Secret mounted as a volume).
    #[arg(
        long,
        env = "METALLB_ML_SECRET_KEY_PATH",
        default_value = "/etc/ml_secret_key"
    )]
    ml_secret_key_path: std::path::PathBuf,
    /// Also join through this speaker (`ADDR:PORT`, repeatable).
    #[arg(long, value_name = "ADDR:PORT")]
    ml_join: Vec<std::net::SocketAddr>,
    /// Run without membership: every node counts as alive (MetalLB without memberlist).
    #[arg(long)]
    ml_disable: bool,
    /// Upgrade mode: also read and write the membership datagrams of speakers without replay protection (datagram version 1)
    /// (no replay protection for those). Set it for the rollout that replaces them, then
    /// remove it (docs/speaker.md, "Upgrading from speakers without replay protection").
    #[arg(long, env = "LB_ML_UPGRADE_WIRE")]
    ml_upgrade_wire: bool,
    /// How often each speaker probes another one.
    #[arg(long, default_value = "100ms", value_parser = go_duration)]
    ml_probe_interval: std::time::Duration,
    /// How long a probe may take before indirect probes go out.
    #[arg(long, default_value = "40ms", value_parser = go_duration)]
    ml_probe_timeout: std::time::Duration,
    /// How long a suspect speaker has to refute before it is declared dead.
    #[arg(long, default_value = "150ms", value_parser = go_duration)]
    ml_suspicion: std::time::Duration,
    /// BGP router ID for peers that set none (default: the node's first IPv4 address).
    #[arg(long)]
    router_id: Option<std::net::Ipv4Addr>,
    /// Never answer ARP/NDP on interfaces matching this regular expression (repeatable;
    /// replaces the default list).
    #[arg(long, value_name = "REGEX")]
    exclude_interface: Vec<String>,
    /// Log level.
    #[arg(long, env = "METALLB_LOG_LEVEL", value_enum, default_value = "info")]
    log_level: LogLevel,
    /// Log format.
    #[arg(long, value_enum, default_value = "json")]
    log_format: LogFormat,
}

fn read_key(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    let file = if path.is_dir() {
        path.join("secretkey")
    } else {
        path.to_path_buf()
    };
    std::fs::read(&file).with_context(|| {
        format!(
            "reading the membership key {} (mount the memberlist Secret, or pass --ml-disable)",
            file.display()
        )
    })
}

fn speaker(args: SpeakerArgs) -> anyhow::Result<ExitCode> {
    use lb_k8s::http::{Encode, Health};
    use lb_k8s::speaker::metrics::SpeakerMetrics;
    use lb_k8s::speaker::run::{
        MembershipSettings, SpeakerSettings, run_from_cluster, run_from_file,
    };
    use lb_membership::Timers;
    use std::sync::Arc;

    init_logging(args.log_level, args.log_format);
    let membership = if args.ml_disable {
        None
    } else {
        let timers = Timers {
            probe_period: args.ml_probe_interval,
            probe_timeout: args.ml_probe_timeout,
            suspicion: args.ml_suspicion,
            ..Timers::default()
        };
        timers.check().map_err(|e| {
            anyhow::anyhow!("--ml-probe-interval/--ml-probe-timeout/--ml-suspicion: {e}")
        })?;
        Some(MembershipSettings {
            bind_addr: args.ml_bindaddr,
            port: args.ml_bindport,
            secret: read_key(&args.ml_secret_key_path)?,
            join: args.ml_join.clone(),
            timers,
            wire: if args.ml_upgrade_wire {
                lb_membership::WireFormat::Upgrade
            } else {
                lb_membership::WireFormat::Stamped
            },
        })
    };
    let mut layer2 = lb_l2::ResponderConfig::default();
    if !args.exclude_interface.is_empty() {
        layer2.exclude = lb_l2::ExcludePatterns::new(&args.exclude_interface)
            .map_err(|e| anyhow::anyhow!("--exclude-interface: {e}"))?;
    }
    let settings = SpeakerSettings {
        node: args.node_name.clone(),
        plan: PlanOptions {
            node: None,
            down: BTreeSet::new(),
            namespace: args.namespace.clone(),
            lb_class: args.lb_class.clone(),
            ignore_exclude_lb: args.ignore_exclude_lb,
        },
        membership,
        router_id: args.router_id,
        layer2,
        poll: std::time::Duration::from_millis(200),
    };
    async_runtime()?.block_on(async move {
        let metrics = Arc::new(SpeakerMetrics::new());
        let health = Arc::new(Health::new(Arc::clone(&metrics) as Arc<dyn Encode>));
        if let Some(path) = args.from_file.clone() {
            tracing::info!(node = %args.node_name, file = %path.display(), listen = %args.listen, "speaker starting");
            let work =
                run_from_file(settings, path, metrics, Arc::clone(&health), shutdown_signal());
            return with_http(args.listen, health, work).await;
        }
        let client = kube::Client::try_default()
            .await
            .context("connecting to the Kubernetes API server")?;
        tracing::info!(node = %args.node_name, namespace = %args.namespace, listen = %args.listen, "speaker starting");
        let work = run_from_cluster(client, settings, metrics, Arc::clone(&health), shutdown_signal());
        with_http(args.listen, health, work).await
    })
}

/// The async runtime both long-running commands use (two workers: the pods ask for little).
fn async_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Serves `/metrics`, `/healthz` and `/readyz` on `listen` while `work` runs, then stops
/// the endpoint and returns `work`'s result.
async fn with_http(
    listen: std::net::SocketAddr,
    health: std::sync::Arc<lb_k8s::http::Health>,
    work: impl std::future::Future<Output = Result<(), lb_k8s::Error>>,
) -> anyhow::Result<ExitCode> {
    let bound = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let listener = tokio::spawn(lb_k8s::http::serve(bound, health, async {
        let _ = http_stopped.await;
    }));
    let result = work.await;
    let _ = stop_http.send(());
    match listener.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "metrics endpoint failed"),
        Err(e) => tracing::error!(error = %e, "metrics endpoint task failed"),
    }
    result?;
    Ok(ExitCode::SUCCESS)
}

fn init_logging(level: LogLevel, format: LogFormat) {
    let directive = match level {
        LogLevel::All => "trace",
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warn => "warn",
        LogLevel::Error => "error",
        LogLevel::None => "off",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(directive));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGTERM");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("stopping");
}

fn controller(args: ControllerArgs) -> anyhow::Result<ExitCode> {
    use lb_k8s::controller::{self, metrics::Metrics};
    use lb_k8s::http::{Encode, Health};
    use lb_k8s::lease::LeaseSettings;
    use lb_metallb::controller::Settings;
    use std::sync::Arc;

    init_logging(args.log_level, args.log_format);
    let identity = match args.identity.filter(|i| !i.is_empty()) {
        Some(i) => i,
        None => std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .context("no --identity and no host name")?,
    };
    let settings = Settings {
        namespace: args.namespace.clone(),
        lb_class: args.lb_class.filter(|c| !c.is_empty()),
    };
    let options = controller::Options {
        settings,
        identity: identity.clone(),
        lease: args.leader_elect.then(|| LeaseSettings {
            name: args.lease_name.clone(),
            namespace: args.namespace.clone(),
            identity,
            duration: std::time::Duration::from_secs(args.lease_duration),
        }),
        memberlist_secret: Some(args.ml_secret_name).filter(|n| !n.is_empty()),
        write_concurrency: 16,
    };
    async_runtime()?.block_on(async move {
        let client = kube::Client::try_default()
            .await
            .context("connecting to the Kubernetes API server")?;
        let metrics = Arc::new(Metrics::new());
        let health = Arc::new(Health::new(Arc::clone(&metrics) as Arc<dyn Encode>));
        tracing::info!(listen = %args.listen, namespace = %args.namespace, leader_elect = args.leader_elect, "controller starting");
        let work = controller::run(client, options, metrics, Arc::clone(&health), shutdown_signal());
        with_http(args.listen, health, work).await
    })
}

fn read_source(name: &str) -> anyhow::Result<String> {
    if name == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading stdin")?;
        Ok(text)
    } else {
        std::fs::read_to_string(name).with_context(|| format!("reading {name}"))
    }
}

fn read_objects(files: &[String]) -> anyhow::Result<Objects> {
    let mut loader = lb_metallb::input::Loader::default();
    for f in files {
        loader.add(f, &read_source(f)?)?;
    }
    Ok(loader.finish()?)
}

#[derive(Serialize)]
struct JsonError<'a> {
    kind: &'a str,
    name: &'a str,
    field: &'a str,
    reason: &'a str,
    transient: bool,
}

fn validate(files: &[String], output: ValidateFormat, namespace: &str) -> anyhow::Result<ExitCode> {
    let objects = read_objects(files)?;
    let (errors, warnings): (Vec<ConfigError>, Vec<String>) =
        match Config::from_objects_in(&objects, namespace) {
            Ok(c) => (Vec::new(), [objects.warnings.clone(), c.warnings].concat()),
            Err(e) => (e.0, objects.warnings.clone()),
        };
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    match output {
        ValidateFormat::Json => {
            let list: Vec<JsonError<'_>> = errors
                .iter()
                .map(|e| JsonError {
                    kind: &e.kind,
                    name: &e.name,
                    field: &e.field,
                    reason: &e.reason,
                    transient: e.transient,
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&list)?);
        }
        ValidateFormat::Text => {
            for e in &errors {
                println!("{e}{}", if e.transient { " (transient)" } else { "" });
            }
        }
    }
    Ok(if errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Controller(args) => controller(args),
        Command::Speaker(args) => speaker(args),
        Command::Crds => {
            print!("{}", crd::crds_yaml()?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Validate {
            files,
            output,
            namespace,
        } => validate(&files, output, &namespace),
        Command::Convert { file } => {
            let mut objects = Objects::default();
            objects.add_yaml(&file, &read_source(&file)?)?;
            if objects.legacy_config_maps.is_empty() {
                bail!("{file}: no ConfigMap with a `config` key");
            }
            for cm in &objects.legacy_config_maps {
                print!("{}", legacy::convert(cm)?.to_yaml()?);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Plan {
            files,
            output,
            node,
            down,
            lb_class,
            ignore_exclude_lb,
            namespace,
        } => {
            let objects = read_objects(&files)?;
            let options = PlanOptions {
                node,
                down: down.into_iter().collect::<BTreeSet<_>>(),
                namespace,
                lb_class,
                ignore_exclude_lb,
            };
            match plan(&objects, &options) {
                Ok(p) => {
                    match output {
                        PlanFormat::Json => println!("{}", serde_json::to_string_pretty(&p)?),
                        PlanFormat::Table => print!("{}", p.to_table()),
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(errors) => {
                    for e in &errors.0 {
                        eprintln!("{e}");
                    }
                    eprintln!("configuration is invalid: nothing planned");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}

fn main() -> ExitCode {
    lb_k8s::sys::tune();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("lb-k8s: {e:#}");
            ExitCode::from(2)
        }
    }
}
