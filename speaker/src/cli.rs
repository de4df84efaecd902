//! The speaker's command line, in the library so the operator's tests can parse the arguments
//! it renders into the speaker DaemonSet with these very types.
//!
//! Without a subcommand the speaker runs on a node of the cluster, with the arguments the
//! operator renders ([`NodeArgs`]). The subcommands are for labs and debugging: `run` announces
//! what a static file says, `check` validates such a file, `show` prints a running speaker's
//! state.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Parser, Subcommand, ValueEnum};
use metallb_runtime::cli::{ClientArgs, LogArgs, MetricsArgs, ScopeArgs, parse_duration};
use metallb_runtime::consts::HEARTBEAT_PORT;

/// Default control socket of `show`.
pub const DEFAULT_CONTROL: &str = "/run/metallb-speaker/speaker.sock";

/// The MetalLB speaker of metallb-rs: makes LoadBalancer addresses reachable with ARP/NDP, BGP
/// and BFD.
#[derive(Parser, Debug)]
#[command(
    name = "metallb-speaker",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// A lab or debugging command instead of running on a cluster node.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// How to run on a cluster node.
    #[command(flatten)]
    pub node: NodeArgs,
}

/// The arguments the operator renders into the speaker DaemonSet (its module documentation
/// lists where each comes from).
///
/// On a cluster node the speaker keeps its node's speaker Lease renewed (the other speakers
/// watch these Leases to know who is alive), plans from the cluster's objects what this node
/// announces and carries it out, and serves `/healthz`, `/readyz` and `/metrics`. With a
/// membership key, speakers also exchange heartbeats (a dead speaker's IPs move in under a
/// second) and a speaker that cannot renew its Lease while its peers can fences itself.
#[derive(Debug, Clone, clap::Args)]
pub struct NodeArgs {
    /// This node's name (the downward API's `spec.nodeName`).
    #[arg(long, env = "NODE_NAME")]
    pub node_name: Option<String>,
    #[command(flatten)]
    pub scope: ScopeArgs,
    #[command(flatten)]
    pub metrics: MetricsArgs,
    /// This node's address (the downward API's `status.hostIP`); an IPv4 one is the router ID
    /// of sessions whose BGPPeer names none.
    #[arg(long, env = "HOST_IP")]
    pub host_ip: Option<std::net::IpAddr>,
    /// This speaker's pod (the downward API's `metadata.name`): the owner of its status
    /// objects, so they go with it.
    #[arg(long, env = "POD_NAME")]
    pub pod_name: Option<String>,
    /// Unix socket for `metallb-speaker show`.
    #[arg(long, default_value = DEFAULT_CONTROL)]
    pub control: PathBuf,
    /// UDP port of the heartbeats between speakers.
    #[arg(long, default_value_t = HEARTBEAT_PORT)]
    pub heartbeat_port: u16,
    /// File holding the key that authenticates heartbeats; without it there are none and a
    /// speaker counts as alive while its Lease is fresh.
    #[arg(long)]
    pub membership_key_file: Option<PathBuf>,
    /// File listing the interfaces layer 2 never announces on (MetalLB's
    /// `announcedInterfacesToExclude`), read at start.
    #[arg(long = "excludel2-file")]
    pub excludel2_file: Option<PathBuf>,
    /// Drain when the node is cordoned.
    #[arg(long, id = "drain_on_cordon", default_value = "false", action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub drain_on_cordon: bool,
    /// Comma-separated taint keys that make the node drain.
    #[arg(long, value_delimiter = ',')]
    pub drain_taint_keys: Vec<String>,
    /// How long a Node's `Ready` condition may be `False` or `Unknown` before the node drains
    /// (a kubelet restart reports not ready for a moment; a broken node stays so).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub not_ready_grace: Duration,
    /// Keep announcing a Service a draining node is the last to serve.
    #[arg(long, default_value = "true", action = ArgAction::Set, num_args = 0..=1,
          default_missing_value = "true")]
    pub never_blackhole: bool,
    /// On SIGTERM, send the GRACEFUL_SHUTDOWN community before withdrawing.
    #[arg(long, default_value = "true", action = ArgAction::Set, num_args = 0..=1,
          default_missing_value = "true")]
    pub graceful_shutdown: bool,
    /// How long routes stay announced with GRACEFUL_SHUTDOWN on SIGTERM.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub graceful_shutdown_delay: Duration,
    /// Stop announcing when this node cannot renew its Lease while its peers can (with
    /// heartbeats).
    #[arg(long, default_value = "true", action = ArgAction::Set, num_args = 0..=1,
          default_missing_value = "true")]
    pub fencing: bool,
    /// Duration of this node's speaker Lease; it is renewed four times per duration.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub fencing_lease_duration: Duration,
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

/// Lab and debugging commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Announce what a static configuration file says; SIGHUP re-reads it, SIGTERM leaves.
    Run {
        /// The configuration file (YAML).
        #[arg(long)]
        config: PathBuf,
        /// Unix socket for `metallb-speaker show`.
        #[arg(long, default_value = DEFAULT_CONTROL)]
        control: PathBuf,
        /// On SIGTERM, send the GRACEFUL_SHUTDOWN community and wait before withdrawing.
        #[arg(long, default_value = "false", action = ArgAction::Set, num_args = 0..=1,
              default_missing_value = "true")]
        graceful_shutdown: bool,
        /// How long routes stay announced with GRACEFUL_SHUTDOWN on SIGTERM.
        #[arg(long, default_value = "5s", value_parser = parse_duration)]
        graceful_shutdown_delay: Duration,
        #[command(flatten)]
        log: LogArgs,
    },
    /// Check a configuration file and print what it resolves to.
    Check {
        /// The configuration file (YAML).
        #[arg(long)]
        config: PathBuf,
    },
    /// Print the live state of a running speaker, or why it announces a Service or not.
    Show {
        /// What to show.
        #[arg(value_enum)]
        what: Show,
        /// The Service, as NAMESPACE/NAME (with `service`).
        #[arg(required_if_eq("what", "service"))]
        name: Option<String>,
        /// The running speaker's control socket.
        #[arg(long, default_value = DEFAULT_CONTROL)]
        control: PathBuf,
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
    },
}

/// What `show` prints.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Show {
    /// BGP sessions and prefixes.
    Bgp,
    /// BFD sessions.
    Bfd,
    /// Layer-2 addresses and interfaces.
    L2,
    /// Who is alive, fenced or gone as this speaker sees it; its own state and drain.
    Liveness,
    /// Why this node announces a Service or not, and to whom.
    Service,
}

impl Show {
    /// The request line the control socket understands; `name` is the Service's.
    pub fn request(self, name: Option<&str>) -> String {
        match self {
            Show::Bgp => "bgp".to_owned(),
            Show::Bfd => "bfd".to_owned(),
            Show::L2 => "l2".to_owned(),
            Show::Liveness => "liveness".to_owned(),
            Show::Service => format!("service {}", name.unwrap_or_default()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boolean_flags_take_a_value_or_stand_alone() {
        let cli = Cli::try_parse_from([
            "metallb-speaker",
            "--fencing=false",
            "--drain-on-cordon",
            "--drain-taint-keys=a.io/x,b.io/y",
        ])
        .unwrap();
        assert!(!cli.node.fencing);
        assert!(cli.node.drain_on_cordon);
        assert!(cli.node.graceful_shutdown);
        assert_eq!(cli.node.drain_taint_keys, ["a.io/x", "b.io/y"]);
    }

    #[test]
    fn node_arguments_and_a_subcommand_do_not_mix() {
        let mixed = Cli::try_parse_from([
            "metallb-speaker",
            "--fencing=false",
            "check",
            "--config",
            "x",
        ]);
        assert!(mixed.is_err());
    }
}
