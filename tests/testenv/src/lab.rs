//! Network labs for the speaker: one isolated layer-2 segment of network namespaces with a
//! real FRR router, driven by `tests/lab/lab.sh`.
//!
//! A [`Lab`] named `N` has the namespaces `N-sw` (bridge), `N-router` (FRR, AS 64512, BGP with
//! BFD towards the nodes), `N-node1`/`N-node2` (eBGP peers, AS 64500), `N-node3` (iBGP peer,
//! AS 64512) and `N-client`. Addresses: router 192.168.250.1 / fd00:250::1, nodes .11-.13 /
//! ::11-::13, client .100 / ::100 (see [`Lab::address`], [`Lab::mac`]); 192.168.250.200-250
//! and fd00:250::200-250 are free for service IPs. Labs with different names run side by
//! side, so every test can have its own. Needs root.
//!
//! ```no_run
//! use metallb_testenv::lab::{Host, Lab, LabOptions};
//!
//! let lab = Lab::up(LabOptions::default()).unwrap(); // torn down on drop
//! let bird = lab.spawn(Host::Node(1), "bird", &["-f", "-c", "bird.conf", "-s", "bird.ctl"]).unwrap();
//! let summary = lab.vtysh_json("show bgp summary json").unwrap();
//! assert_eq!(lab.arp("192.168.250.1".parse().unwrap()).unwrap().as_deref(), Some("02:4e:4c:00:00:01"));
//! drop(bird);
//! ```
//!
//! A lab records its owner process; `lab.sh gc` (run once per process by [`Lab::up`]) removes
//! labs whose owner died without tearing them down, and `hack/check-leftovers` reports them.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Once;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use nix::sched::{CloneFlags, setns};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::error::{Error, Result};

/// The script behind this module.
pub const LAB_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../lab/lab.sh");

/// Where the script keeps each lab's state (owner, FRR config and log, daemon logs).
pub const LAB_STATE_ROOT: &str = "/run/metallb-rs/lab";

/// A machine of the lab.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Host {
    /// The FRR router, AS 64512.
    Router,
    /// Node 1 or 2 (eBGP, AS 64500) or 3 (iBGP, AS 64512); other numbers make the methods
    /// that take a host panic.
    Node(u8),
    /// The client that sends ARP and NDP requests.
    Client,
}

impl Host {
    /// The host's name in `lab.sh` and the suffix of its namespace.
    pub fn name(self) -> &'static str {
        match self {
            Host::Router => "router",
            Host::Node(1) => "node1",
            Host::Node(2) => "node2",
            Host::Node(3) => "node3",
            Host::Node(n) => panic!("the lab has nodes 1 to 3, not {n}"),
            Host::Client => "client",
        }
    }

    fn id(self) -> u16 {
        match self {
            Host::Router => 1,
            Host::Node(n) if (1..=3).contains(&n) => 10 + u16::from(n),
            Host::Node(n) => panic!("the lab has nodes 1 to 3, not {n}"),
            Host::Client => 100,
        }
    }
}

/// Settings of a lab; they become the script's `LAB_*` environment.
#[derive(Debug, Clone)]
pub struct LabOptions {
    /// 1-8 characters `[a-z0-9]`, starting with a letter; the default is unique per call,
    /// across threads and processes.
    pub name: String,
    /// TCP-MD5 password on every router session.
    pub bgp_password: Option<String>,
    /// Router BGP keepalive, seconds.
    pub keepalive: u16,
    /// Router BGP hold time, seconds.
    pub hold: u16,
    /// Router BFD required minimum receive interval, milliseconds.
    pub bfd_rx_ms: u32,
    /// Router BFD desired minimum transmit interval, milliseconds.
    pub bfd_tx_ms: u32,
    /// Router BFD detection multiplier.
    pub bfd_multiplier: u8,
    /// The router also announces 192.168.250.0/24 and fd00:250::/64.
    pub originate: bool,
}

impl Default for LabOptions {
    fn default() -> Self {
        LabOptions {
            name: unique_name(),
            bgp_password: None,
            keepalive: 3,
            hold: 9,
            bfd_rx_ms: 300,
            bfd_tx_ms: 300,
            bfd_multiplier: 3,
            originate: false,
        }
    }
}

/// "t" + the pid in 5 base-36 digits + a per-process counter in 2: unique among the live
/// processes (pids are below 36^5) for 1296 labs per process.
pub(crate) fn unique_name() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed) % (36 * 36);
    format!("t{}{}", base36(std::process::id(), 5), base36(n, 2))
}

fn base36(mut value: u32, width: usize) -> String {
    let mut digits = vec![b'0'; width];
    for digit in digits.iter_mut().rev() {
        *digit = b"0123456789abcdefghijklmnopqrstuvwxyz"[(value % 36) as usize];
        value /= 36;
    }
    String::from_utf8(digits).expect("ascii digits")
}

/// A running lab; dropping it runs `lab.sh down`, which also kills whatever tests left
/// running inside its namespaces.
#[derive(Debug)]
pub struct Lab {
    name: String,
}

impl Lab {
    /// Creates the lab and starts FRR, with this process as its owner; on failure nothing is
    /// left behind.
    pub fn up(options: LabOptions) -> Result<Lab> {
        static GC: Once = Once::new();
        GC.call_once(|| {
            if let Err(e) = script(&["gc"], &[]) {
                eprintln!("lab: removing stale labs failed: {e}");
            }
        });
        let owner = std::process::id().to_string();
        let (keepalive, hold) = (options.keepalive.to_string(), options.hold.to_string());
        let (rx, tx) = (options.bfd_rx_ms.to_string(), options.bfd_tx_ms.to_string());
        let mult = options.bfd_multiplier.to_string();
        let mut env = vec![
            ("LAB_NAME", options.name.as_str()),
            ("LAB_OWNER_PID", &owner),
            ("LAB_KEEPALIVE", &keepalive),
            ("LAB_HOLD", &hold),
            ("LAB_BFD_RX", &rx),
            ("LAB_BFD_TX", &tx),
            ("LAB_BFD_MULT", &mult),
            ("LAB_ORIGINATE", if options.originate { "1" } else { "0" }),
        ];
        if let Some(password) = &options.bgp_password {
            env.push(("LAB_BGP_PASSWORD", password));
        }
        // A failed `up` removes what it made itself.
        script(&["up"], &env)?;
        Ok(Lab { name: options.name })
    }

    /// The lab's name (the prefix of its namespaces and its FRR pathspace).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The directory with the lab's state: `frr.log`, and the logs of [`Lab::spawn`]ed daemons.
    pub fn state_dir(&self) -> PathBuf {
        PathBuf::from(LAB_STATE_ROOT).join(&self.name)
    }

    /// The network namespace of `host`.
    pub fn namespace(&self, host: Host) -> String {
        format!("{}-{}", self.name, host.name())
    }

    /// A command that runs `program` inside `host`'s namespace (`ip netns exec`, which execs
    /// the program, so the child's pid is the program's).
    pub fn command(&self, host: Host, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.namespace(host), program]);
        command
    }

    /// Moves the calling thread into `host`'s network namespace; sockets it opens from then on
    /// live there. Use a thread of its own: the thread never returns to the host namespace.
    pub fn enter(&self, host: Host) -> Result<()> {
        let path = format!("/run/netns/{}", self.namespace(host));
        let file = File::open(&path).map_err(Error::io(format!("cannot open {path}")))?;
        setns(file, CloneFlags::CLONE_NEWNET).map_err(|errno| Error::Io {
            context: format!("setns({path})"),
            source: errno.into(),
        })
    }

    /// Runs the router's `vtysh` with one `-c` per command; returns its output.
    pub fn vtysh(&self, commands: &[&str]) -> Result<String> {
        let mut command = self.command(Host::Router, "vtysh");
        command.args(["-N", &self.name]);
        for c in commands {
            command.args(["-c", c]);
        }
        run(command, &format!("vtysh {}", commands.join("; ")))
    }

    /// Runs one `... json` command in the router's `vtysh` and parses the output.
    pub fn vtysh_json(&self, command: &str) -> Result<serde_json::Value> {
        let out = self.vtysh(&[command])?;
        serde_json::from_str(&out).map_err(|e| Error::Lab {
            command: format!("vtysh -c '{command}'"),
            detail: format!("output is not JSON ({e}): {out}"),
        })
    }

    /// The router's `show bgp neighbors ADDRESS json` entry for `address`, `Null` when FRR
    /// has no such neighbour.
    pub fn bgp_neighbour(&self, address: IpAddr) -> Result<serde_json::Value> {
        let all = self.vtysh_json(&format!("show bgp neighbors {address} json"))?;
        Ok(all[address.to_string()].clone())
    }

    /// The router's BGP table entry for `prefix` (e.g. `"192.168.250.200/32"`), when it has at
    /// least one path for it.
    pub fn bgp_route(&self, prefix: &str) -> Result<Option<serde_json::Value>> {
        let family = if prefix.contains(':') { "ipv6" } else { "ipv4" };
        let route = self.vtysh_json(&format!("show bgp {family} unicast {prefix} json"))?;
        let has_paths = route["paths"].as_array().is_some_and(|p| !p.is_empty());
        Ok(has_paths.then_some(route))
    }

    /// The router's BFD session with `peer` (`show bfd peers json`), single or multi hop.
    pub fn bfd_peer(&self, peer: IpAddr, multihop: bool) -> Result<Option<serde_json::Value>> {
        let peers = self.vtysh_json("show bfd peers json")?;
        let peer = peer.to_string();
        Ok(peers.as_array().and_then(|all| {
            all.iter()
                .find(|p| p["peer"] == peer.as_str() && p["multihop"].as_bool() == Some(multihop))
                .cloned()
        }))
    }

    /// Sends one ARP request for `ip` from the client; the MAC of the first reply
    /// (`"02:4e:4c:00:00:01"`), or `None` when nothing answered within 2 s.
    pub fn arp(&self, ip: Ipv4Addr) -> Result<Option<String>> {
        let mut command = self.command(Host::Client, "arping");
        command.args(["-c", "1", "-w", "2", "-I", "eth0", &ip.to_string()]);
        let output = answer(command, "arping")?;
        // "Unicast reply from 192.168.250.1 [02:4E:4C:00:00:01]  0.6ms"
        Ok(output
            .lines()
            .filter(|line| line.contains("reply from"))
            .find_map(|line| Some(line.split_once('[')?.1.split_once(']')?.0.to_lowercase())))
    }

    /// Sends a neighbour solicitation for `ip` from the client (up to 2 tries, 1 s each); the
    /// MAC of the first advertisement, or `None` when nothing answered.
    pub fn ndp(&self, ip: Ipv6Addr) -> Result<Option<String>> {
        let mut command = self.command(Host::Client, "ndisc6");
        command.args(["-q", "-1", "-r", "2", "-w", "1000", &ip.to_string(), "eth0"]);
        let output = answer(command, "ndisc6")?;
        Ok(output
            .lines()
            .next()
            .map(str::trim)
            .filter(|mac| !mac.is_empty())
            .map(str::to_lowercase))
    }

    /// The link-layer address `host` has for `ip` in its neighbour table on eth0, if any.
    pub fn neighbour(&self, host: Host, ip: IpAddr) -> Result<Option<String>> {
        let mut command = Command::new("ip");
        command.args([
            "-n",
            &self.namespace(host),
            "neigh",
            "show",
            &ip.to_string(),
            "dev",
            "eth0",
        ]);
        let out = run(command, "ip neigh show")?;
        let mut words = out.split_whitespace();
        Ok(words
            .by_ref()
            .find(|w| *w == "lladdr")
            .and(words.next())
            .map(str::to_lowercase))
    }

    /// Plugs (`up`) or unplugs `host`'s cable at the switch.
    pub fn link(&self, host: Host, up: bool) -> Result<()> {
        let state = if up { "up" } else { "down" };
        let mut command = Command::new("ip");
        command.args([
            "-n",
            &format!("{}-sw", self.name),
            "link",
            "set",
            host.name(),
            state,
        ]);
        run(command, &format!("ip link set {} {state}", host.name())).map(drop)
    }

    /// Starts `program args...` inside `host`'s namespace, stdout and stderr appended to
    /// `<state dir>/<program>-<host>.log`; the [`Daemon`] stops it on drop.
    pub fn spawn(&self, host: Host, program: &str, args: &[&str]) -> Result<Daemon> {
        let base = program.rsplit('/').next().unwrap_or(program);
        let log = self.state_dir().join(format!("{base}-{}.log", host.name()));
        let open = || {
            File::options()
                .create(true)
                .append(true)
                .open(&log)
                .map_err(Error::io(format!("cannot open {}", log.display())))
        };
        let mut command = self.command(host, program);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(open()?)
            .stderr(open()?);
        let child = command.spawn().map_err(|source| Error::Spawn {
            what: format!("{program} in {}", self.namespace(host)),
            source,
        })?;
        Ok(Daemon { child, log })
    }

    /// The IPv4 and IPv6 address of `host` on the segment.
    pub fn address(host: Host) -> (Ipv4Addr, Ipv6Addr) {
        let id = host.id();
        let v4 = Ipv4Addr::new(192, 168, 250, id as u8);
        // fd00:250::ID, where ID is written in decimal digits as in lab.sh
        let v6 = format!("fd00:250::{id}")
            .parse()
            .expect("valid IPv6 address");
        (v4, v6)
    }

    /// The MAC address of `host`'s eth0, e.g. `"02:4e:4c:00:00:11"` for node 1.
    pub fn mac(host: Host) -> String {
        let id = format!("{:04}", host.id());
        format!("02:4e:4c:00:{}:{}", &id[..2], &id[2..])
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Err(e) = script(&["down"], &[("LAB_NAME", &self.name)]) {
            eprintln!("lab {}: {e}", self.name);
        }
    }
}

/// A process started by [`Lab::spawn`]; dropping it sends SIGTERM, then SIGKILL after 2 s.
#[derive(Debug)]
pub struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The file that receives the process's stdout and stderr.
    pub fn log(&self) -> &PathBuf {
        &self.log
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if !self.is_running() {
            return;
        }
        let pid = Pid::from_raw(self.child.id() as i32);
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if !self.is_running() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `lab.sh ARGS` with `env`; fails with its stderr.
fn script(args: &[&str], env: &[(&str, &str)]) -> Result<String> {
    let mut command = Command::new("bash");
    command.arg(LAB_SCRIPT).args(args).envs(env.iter().copied());
    run(command, &format!("lab.sh {}", args.join(" ")))
}

fn output(mut command: Command, what: &str) -> Result<Output> {
    command
        .stdin(Stdio::null())
        .output()
        .map_err(|source| Error::Spawn {
            what: what.to_string(),
            source,
        })
}

/// Runs a probe that exits non-zero when nothing answered: its stdout, unless it wrote to
/// stderr (it could not run, for example).
fn answer(command: Command, what: &str) -> Result<String> {
    let out = output(command, what)?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() && !stderr.trim().is_empty() {
        return Err(Error::Lab {
            command: what.to_string(),
            detail: format!("{}: {}", out.status, stderr.trim()),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `command`; its stdout on success, an error naming `what` and its stderr otherwise.
fn run(command: Command, what: &str) -> Result<String> {
    let out = output(command, what)?;
    if !out.status.success() {
        return Err(Error::Lab {
            command: what.to_string(),
            detail: format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_are_short_valid_and_distinct() {
        let (a, b) = (LabOptions::default().name, LabOptions::default().name);
        assert_ne!(a, b);
        for name in [a, b] {
            assert_eq!(name.len(), 8, "{name}");
            assert!(name.starts_with('t'));
            assert!(
                name.bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
                "{name}"
            );
        }
    }

    #[test]
    fn addresses_and_macs_follow_the_lab_plan() {
        assert_eq!(Lab::mac(Host::Router), "02:4e:4c:00:00:01");
        assert_eq!(Lab::mac(Host::Node(3)), "02:4e:4c:00:00:13");
        assert_eq!(Lab::mac(Host::Client), "02:4e:4c:00:01:00");
        let (v4, v6) = Lab::address(Host::Node(2));
        assert_eq!(
            (v4.to_string(), v6.to_string()),
            ("192.168.250.12".into(), "fd00:250::12".into())
        );
        assert_eq!(Lab::address(Host::Client).1.to_string(), "fd00:250::100");
    }
}
