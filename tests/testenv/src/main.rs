//! `metallb-testenv`: a local control plane for people, and the supervisor for tests.

use std::io::IsTerminal;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use metallb_testenv::supervisor::{self, SuperviseOptions};
use metallb_testenv::{ControlPlane, Options, state};

/// A real etcd + kube-apiserver for metallb-rs development and tests.
#[derive(Debug, Parser)]
#[command(name = "metallb-testenv", version)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, clap::Args)]
struct StateDir {
    /// Directory holding the control plane started by `up` (kubeconfig, certificates, data,
    /// logs). It is removed by `down`.
    #[arg(long, env = "METALLB_TESTENV_STATE_DIR", default_value = state::DEFAULT_STATE_DIR)]
    state_dir: PathBuf,
}

impl StateDir {
    /// The absolute path, so `down` recognises the supervisor whatever the working directory.
    fn path(&self) -> anyhow::Result<PathBuf> {
        std::path::absolute(&self.state_dir)
            .with_context(|| format!("resolving {}", self.state_dir.display()))
    }
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Start a control plane and print its kubeconfig (`eval "$(metallb-testenv up)"`).
    ///
    /// By default it keeps running in the background until `down`. With --foreground it
    /// stays attached and stops on Ctrl-C or SIGTERM (and if this command is killed).
    Up {
        /// Address kube-apiserver binds to and advertises (must be on a local interface).
        #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
        listen: IpAddr,
        #[command(flatten)]
        state: StateDir,
        /// Stay attached instead of running in the background.
        #[arg(long)]
        foreground: bool,
        /// Seconds to wait for the API server to become ready.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// Stop the control plane started by `up` and remove its state directory (idempotent).
    Down {
        #[command(flatten)]
        state: StateDir,
    },
    /// Print the kubeconfig path of the running control plane.
    Kubeconfig {
        #[command(flatten)]
        state: StateDir,
    },
    /// Build (or find in the cache) the control-plane binaries; prints their directory.
    Build {
        /// Also build kube-controller-manager.
        #[arg(long)]
        with_controller_manager: bool,
    },
    /// A local multi-node cluster on a network lab (tests/testenv/cluster/cluster.sh).
    #[command(subcommand)]
    Cluster(ClusterCmd),
    /// Run the supervisor that owns etcd and kube-apiserver (started by the library).
    #[command(hide = true)]
    Supervise(SuperviseOptions),
    /// Print the build id the library uses to recognise a matching binary.
    #[command(hide = true)]
    BuildId,
}

#[derive(Debug, Subcommand)]
enum ClusterCmd {
    /// Start cluster NAME (its lab, control plane and nodes); it runs until `cluster down`.
    /// Prints the kubeconfig.
    Up {
        #[arg(long, default_value = "mlb")]
        name: String,
        /// 1 to 3.
        #[arg(long, default_value_t = 3)]
        nodes: u8,
        /// Also build the product image and import it into every node.
        #[arg(long)]
        product: bool,
    },
    /// Remove cluster NAME and its lab (idempotent).
    Down {
        #[arg(long, default_value = "mlb")]
        name: String,
    },
    /// Import OCI image archives into every node of NAME; without one, the product image
    /// built from this checkout.
    Import {
        #[arg(long, default_value = "mlb")]
        name: String,
        archives: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(matches!(cli.command, Cmd::Supervise(_)));
    match cli.command {
        Cmd::Supervise(options) => match supervisor::run(options) {
            0 => ExitCode::SUCCESS,
            _ => ExitCode::FAILURE,
        },
        Cmd::BuildId => {
            println!("{}", metallb_testenv::BUILD_ID);
            ExitCode::SUCCESS
        }
        command => match run(command) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("metallb-testenv: {err:#}");
                ExitCode::FAILURE
            }
        },
    }
}

fn init_tracing(supervisor: bool) {
    // The supervisor's stderr ends up in test output, so it only speaks up about problems;
    // kube_client would log every refused /readyz poll during start as an error.
    let default = if supervisor {
        "warn,kube_client=off"
    } else {
        "info,kube_client=off"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

fn run(command: Cmd) -> anyhow::Result<()> {
    match command {
        Cmd::Up {
            listen,
            state,
            foreground,
            timeout,
        } => up(listen, &state.path()?, foreground, timeout),
        Cmd::Down { state } => {
            let dir = state.path()?;
            if state::down(&dir)? {
                eprintln!("stopped the control plane of {}", dir.display());
            } else {
                eprintln!("no control plane running from {}", dir.display());
            }
            Ok(())
        }
        Cmd::Kubeconfig { state } => {
            let dir = state.path()?;
            match state::kubeconfig(&dir) {
                Some(path) => {
                    println!("{}", path.display());
                    Ok(())
                }
                None => bail!(
                    "no control plane running from {}; run `metallb-testenv up`",
                    dir.display()
                ),
            }
        }
        Cmd::Build {
            with_controller_manager,
        } => {
            let dir = metallb_testenv::build_k8s(with_controller_manager)?;
            println!("{}", dir.display());
            Ok(())
        }
        Cmd::Cluster(command) => cluster(command),
        Cmd::Supervise(_) | Cmd::BuildId => unreachable!("handled in main"),
    }
}

fn cluster(command: ClusterCmd) -> anyhow::Result<()> {
    use metallb_testenv::cluster::{Cluster, ClusterOptions, product_image};
    match command {
        ClusterCmd::Up {
            name,
            nodes,
            product,
        } => {
            let cluster = Cluster::up_detached(ClusterOptions { name, nodes })?;
            if product {
                cluster.import(&product_image()?)?;
            }
            eprintln!(
                "cluster {} is up; stop it with: metallb-testenv cluster down --name {}",
                cluster.name(),
                cluster.name()
            );
            print_kubeconfig(&cluster.kubeconfig_path());
        }
        ClusterCmd::Down { name } => {
            let status = std::process::Command::new("bash")
                .args([
                    metallb_testenv::cluster::CLUSTER_SCRIPT,
                    "--name",
                    &name,
                    "down",
                ])
                .status()?;
            if !status.success() {
                bail!("cluster.sh down failed ({status})");
            }
        }
        ClusterCmd::Import { name, archives } => {
            let cluster = Cluster::attach(&name)?;
            let archives = if archives.is_empty() {
                vec![product_image()?]
            } else {
                archives
            };
            for archive in &archives {
                cluster.import(archive)?;
            }
        }
    }
    Ok(())
}

fn up(listen: IpAddr, dir: &Path, foreground: bool, timeout: u64) -> anyhow::Result<()> {
    if let Some(kubeconfig) = state::kubeconfig(dir) {
        eprintln!("a control plane is already running from {}", dir.display());
        print_kubeconfig(&kubeconfig);
        return Ok(());
    }
    if foreground {
        return up_foreground(listen, dir, timeout);
    }
    let ready = state::up(dir, listen, Duration::from_secs(timeout))?;
    eprintln!(
        "control plane is up at {} (supervisor pid {}); stop it with: metallb-testenv down --state-dir {}",
        ready.server,
        ready.supervisor_pid,
        dir.display()
    );
    print_kubeconfig(&ready.kubeconfig);
    Ok(())
}

fn up_foreground(listen: IpAddr, dir: &Path, timeout: u64) -> anyhow::Result<()> {
    let cp = ControlPlane::start(Options {
        listen,
        instance_dir: Some(dir.to_path_buf()),
        start_timeout: Duration::from_secs(timeout),
    })?;
    eprintln!("control plane is up at {}; Ctrl-C stops it", cp.server());
    print_kubeconfig(cp.kubeconfig_path());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = tokio::time::sleep(Duration::from_millis(200)) => {
                    if !cp.is_running() {
                        bail!("the control plane stopped (its supervisor exited)");
                    }
                }
            }
        }
        anyhow::Ok(())
    })?;
    cp.stop()?;
    eprintln!("stopped");
    Ok(())
}

fn print_kubeconfig(path: &Path) {
    println!("# kubeconfig: {}", path.display());
    println!("export KUBECONFIG={}", path.display());
}
