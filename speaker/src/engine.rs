//! The engine: the drivers and the plan they carry out, owned by one task. The task hands it
//! plans (from the static file or from the cluster) and the drivers' reports
//! ([`DriverEvent`]s, on one channel); the engine alone tells the drivers what to do, touching
//! only what differs between plans. A BGP session reaching Established starts its BFD session;
//! a BFD failure takes the BGP session down. It also serves the state on a control socket
//! for `metallb-speaker show` ([`control`](crate::control)).
//!
//! What a plan takes away because the node leaves service (a drain, the exclude label,
//! `NetworkUnavailable`: [`metallb_plan::handover`]) goes the way a planned exit goes, while
//! the sessions stay up: a layer 2 IP is answered for [`HANDOVER`] more, so the next owner,
//! which sees the same change, announces before this node falls silent; a route is sent
//! again with GRACEFUL_SHUTDOWN (RFC 8326) for the graceful-shutdown delay, when that is on,
//! and withdrawn after. The node's task calls [`Engine::expire`] at [`Engine::deadline`].

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
    path::PathBuf,
    sync::{Arc, PoisonError},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use ipnet::IpNet;
use metallb_bfd::{DownCause, Event, Hop};
use metallb_bgp::Community;
use metallb_l2::Schedule;
use metallb_plan::Handover;
use tokio::{sync::mpsc, task::JoinHandle};
use tracing::{info, warn};

use crate::{
    bfd::{self, BfdHandle, BfdPeerStatus},
    bgp::{self, BgpHandle, PeerStatus},
    config::{self, PeerPlan, Plan},
    control::{self, LivenessSlot, PlanSlot},
    event::{self, DriverEvent},
    l2::{self, L2Handle, L2Options, L2Status},
};

/// How long the drivers get to say goodbye before the process exits anyway.
const EXIT_GRACE: Duration = Duration::from_secs(5);

/// How long a node that lets go of a layer 2 IP (leaving, or draining) keeps answering for
/// it, so the next owner announces before it falls silent: the peers' replan and first
/// gratuitous ARP take a few tens of milliseconds.
pub const HANDOVER: Duration = Duration::from_millis(250);

/// The drivers and the plan they currently carry out.
#[derive(Debug)]
pub struct Engine {
    l2: L2Handle,
    bfd: BfdHandle,
    bgp: BgpHandle,
    current: Plan,
    /// Peers whose BFD session runs. BFD starts once BGP has come up: FRR re-creates its BFD
    /// session when BGP first comes up, and if ours was already Up, it tears BGP down with
    /// Cease/BFD Down (6/10), a needless flap of every new session (seen in the lab).
    bfd_started: BTreeSet<String>,
    /// Peers whose BGP session is Established, as the driver reported.
    established: BTreeSet<String>,
    /// The drivers' reports.
    events: mpsc::UnboundedReceiver<DriverEvent>,
    /// The drivers' tasks, joined on leaving.
    tasks: Vec<(&'static str, JoinHandle<()>)>,
    /// The control socket's path, removed on leaving.
    control: Option<PathBuf>,
    /// The planner's latest output, for `show service`.
    plan: PlanSlot,
    /// The liveness view, for `show liveness`.
    liveness: LivenessSlot,
    /// Layer 2 IPs handed over, answered until then.
    lingering: BTreeMap<IpAddr, Instant>,
    /// Routes handed over, sent with GRACEFUL_SHUTDOWN until then, by peer and prefix.
    shutting: BTreeMap<(String, IpNet), Instant>,
    /// How long handed-over routes carry GRACEFUL_SHUTDOWN before their withdrawal; `None`
    /// withdraws them at once.
    graceful_shutdown: Option<Duration>,
}

impl Engine {
    /// Starts the drivers, with the settings of `plan` that only a start can set (listen
    /// address, interfaces, refresh), and the control socket at `control` when given; then
    /// carries `plan` out.
    pub fn start(plan: Plan, control: Option<PathBuf>) -> anyhow::Result<Engine> {
        let schedule = Schedule {
            refresh: plan.l2_refresh,
            ..Schedule::default()
        };
        let (l2, l2_task) = l2::spawn(L2Options {
            interfaces: plan.interfaces.clone(),
            excluded: plan.excluded_interfaces.clone(),
            schedule,
        })
        .context("starting the ARP/NDP responder")?;
        let (reports, events) = event::channel();
        let (bfd, bfd_task) = bfd::spawn(reports.clone()).context("starting BFD")?;
        let (bgp, bgp_task) = bgp::spawn(plan.listen, reports).context("starting BGP")?;
        let slot = PlanSlot::default();
        let liveness = LivenessSlot::default();
        if let Some(path) = &control {
            let listener = control::bind(path)?;
            let handles = control::Handles {
                l2: l2.clone(),
                bfd: bfd.clone(),
                bgp: bgp.clone(),
                plan: slot.clone(),
                liveness: liveness.clone(),
            };
            tokio::spawn(control::serve(listener, handles));
        }
        let mut engine = Engine {
            l2,
            bfd,
            bgp,
            current: Plan {
                listen: plan.listen,
                interfaces: plan.interfaces.clone(),
                excluded_interfaces: plan.excluded_interfaces.clone(),
                l2_refresh: plan.l2_refresh,
                ..Plan::default()
            },
            bfd_started: BTreeSet::new(),
            established: BTreeSet::new(),
            events,
            tasks: vec![("l2", l2_task), ("bfd", bfd_task), ("bgp", bgp_task)],
            control,
            plan: slot,
            liveness,
            lingering: BTreeMap::new(),
            shutting: BTreeMap::new(),
            graceful_shutdown: None,
        };
        engine.apply(plan);
        Ok(engine)
    }

    /// Routes handed over carry GRACEFUL_SHUTDOWN for `delay` before their withdrawal; with
    /// `None` they are withdrawn at once.
    pub fn set_graceful_shutdown(&mut self, delay: Option<Duration>) {
        self.graceful_shutdown = delay;
    }

    /// Publishes the planner's output behind the current plan, for `show service`.
    pub fn publish(&self, plan: Arc<metallb_plan::Plan>) {
        *self.plan.write().unwrap_or_else(PoisonError::into_inner) = Some(plan);
    }

    /// Publishes the liveness view, for `show liveness`.
    pub fn publish_liveness(&self, view: serde_json::Value) {
        *self
            .liveness
            .write()
            .unwrap_or_else(PoisonError::into_inner) = view;
    }

    /// The drivers' state: layer 2, BGP sessions, BFD sessions.
    pub fn status(&self) -> (L2Status, Vec<PeerStatus>, Vec<BfdPeerStatus>) {
        (self.l2.status(), self.bgp.status(), self.bfd.status())
    }

    /// The next report of a driver; pending while there is none.
    pub async fn next_event(&mut self) -> DriverEvent {
        match self.events.recv().await {
            Some(event) => event,
            // The engine holds the drivers' handles, so the channel stays open.
            None => std::future::pending().await,
        }
    }

    /// A re-read configuration: settings that only a restart can change are reported.
    pub fn reload(&mut self, plan: Plan) {
        if plan.listen != self.current.listen {
            warn!("listen changed; it takes effect after a restart");
        }
        if plan.interfaces != self.current.interfaces || plan.l2_refresh != self.current.l2_refresh
        {
            warn!("interfaces or l2Refresh changed; they take effect after a restart");
        }
        info!(
            prefixes = config::prefixes(&plan).len(),
            l2 = plan.l2.len(),
            "configuration reloaded"
        );
        self.apply(plan);
    }

    /// Moves the drivers from the current plan to `plan`, touching only what differs.
    pub fn apply(&mut self, plan: Plan) {
        self.apply_handing_over(plan, &Handover::default());
    }

    /// [`Engine::apply`], letting go gently of what `handed` names: those layer 2 IPs are
    /// answered for [`HANDOVER`] more, those routes sent with GRACEFUL_SHUTDOWN for the delay
    /// before they are withdrawn. What comes back in a later plan is announced as usual.
    pub fn apply_handing_over(&mut self, plan: Plan, handed: &Handover) {
        let now = Instant::now();
        let old = std::mem::take(&mut self.current.peers);
        for (name, before) in &old {
            if !plan.peers.contains_key(name) {
                self.bgp.remove_peer(name);
                self.established.remove(name);
                self.shutting.retain(|(peer, _), _| peer != name);
                if self.bfd_started.remove(name) {
                    self.bfd.remove_peer(before.options.address);
                }
            }
        }
        for (name, peer) in &plan.peers {
            let before = old.get(name);
            let handed = handed.routes.get(name);
            self.apply_peer(before, peer, handed.map(|r| r.keys()), now);
        }

        for ip in self.current.l2.keys() {
            if plan.l2.contains_key(ip) {
                continue;
            }
            if handed.layer2.contains(ip) {
                info!(%ip, after = ?HANDOVER, "layer 2 IP handed over: answered until the next owner announces");
                self.lingering.insert(*ip, now + HANDOVER);
            } else {
                self.l2.release(*ip);
            }
        }
        for (ip, allowed) in &plan.l2 {
            let back = self.lingering.remove(ip).is_some();
            if back || self.current.l2.get(ip) != Some(allowed) {
                self.l2.announce(*ip, allowed.clone());
            }
        }
        self.current = plan;
        self.start_ready_bfd();
    }

    /// When handed-over IPs or routes are next let go of, if any are.
    pub fn deadline(&self) -> Option<Instant> {
        let l2 = self.lingering.values();
        l2.chain(self.shutting.values()).min().copied()
    }

    /// Lets go of the handed-over IPs and routes whose time is up at `now`.
    pub fn expire(&mut self, now: Instant) {
        let due = |at: &Instant| *at <= now;
        let ips: Vec<IpAddr> = self
            .lingering
            .iter()
            .filter(|(_, at)| due(at))
            .map(|(ip, _)| *ip)
            .collect();
        for ip in ips {
            self.lingering.remove(&ip);
            info!(%ip, "layer 2 IP released after its handover");
            self.l2.release(ip);
        }
        let routes: Vec<(String, IpNet)> = self
            .shutting
            .iter()
            .filter(|(_, at)| due(at))
            .map(|(key, _)| key.clone())
            .collect();
        for (peer, prefix) in routes {
            self.shutting.remove(&(peer.clone(), prefix));
            info!(%peer, %prefix, "route withdrawn after its graceful shutdown");
            self.bgp.withdraw(&peer, prefix);
        }
    }

    fn apply_peer<'a>(
        &mut self,
        before: Option<&PeerPlan>,
        peer: &PeerPlan,
        handed: Option<impl Iterator<Item = &'a IpNet>>,
        now: Instant,
    ) {
        let options = &peer.options;
        // The driver restarts a peer whose options changed and keeps its prefixes.
        if before.is_none_or(|b| b.options != *options) {
            self.bgp.add_peer(options.clone());
        }

        let bfd_inputs = |p: &PeerPlan| {
            let o = &p.options;
            (p.bfd, o.address, o.source, o.ebgp_multihop)
        };
        if let Some(before) = before
            && bfd_inputs(before) != bfd_inputs(peer)
            && self.bfd_started.contains(&options.name)
        {
            if before.options.address != options.address || peer.bfd.is_none() {
                self.bfd.remove_peer(before.options.address);
                self.bfd_started.remove(&options.name);
            }
            // A running session takes the new profile without waiting for BGP again.
            if peer.bfd.is_some() {
                self.start_bfd(peer);
                self.bfd_started.insert(options.name.clone());
            }
        }

        let empty = BTreeMap::new();
        let old_routes = before.map_or(&empty, |b| &b.routes);
        let handed: BTreeSet<&IpNet> = handed.into_iter().flatten().collect();
        for (prefix, route) in old_routes {
            if peer.routes.contains_key(prefix) {
                continue;
            }
            match self.graceful_shutdown {
                Some(delay) if handed.contains(prefix) => {
                    info!(peer = %options.name, %prefix, ?delay, "route handed over: sent with GRACEFUL_SHUTDOWN, then withdrawn");
                    let mut route = route.clone();
                    route.communities.insert(Community::GRACEFUL_SHUTDOWN);
                    self.bgp.announce(&options.name, *prefix, route);
                    self.shutting
                        .insert((options.name.clone(), *prefix), now + delay);
                }
                _ => {
                    self.shutting.remove(&(options.name.clone(), *prefix));
                    self.bgp.withdraw(&options.name, *prefix);
                }
            }
        }
        for (prefix, route) in &peer.routes {
            let back = self
                .shutting
                .remove(&(options.name.clone(), *prefix))
                .is_some();
            if back || old_routes.get(prefix) != Some(route) {
                self.bgp.announce(&options.name, *prefix, route.clone());
            }
        }
    }

    /// A driver's report: a BGP session that came up starts its BFD session (if it has one
    /// and it is not running); a failed BFD path takes the BGP session down.
    pub fn on_driver_event(&mut self, event: DriverEvent) {
        match event {
            DriverEvent::Bgp { peer, up: true, .. } => {
                self.established.insert(peer);
                self.start_ready_bfd();
            }
            DriverEvent::Bgp {
                peer, up: false, ..
            } => {
                self.established.remove(&peer);
            }
            DriverEvent::Bfd {
                event: Event::Up, ..
            } => {}
            // RFC 5882: only a failed path takes BGP down, not an administrative stop.
            DriverEvent::Bfd {
                peer: address,
                event: Event::Down(cause),
            } if cause.is_failure() => {
                let peer = self.current.peers.values().find(|p| {
                    p.options.address.to_canonical() == address
                        && self.bfd_started.contains(&p.options.name)
                });
                let Some(peer) = peer else { return };
                let name = &peer.options.name;
                if cause == DownCause::NeighborDown {
                    self.bgp.tear_down_settled(name, "bfd_neighbor_down");
                } else {
                    self.bgp.tear_down(name, "bfd_down");
                }
            }
            DriverEvent::Bfd { .. } => {}
        }
    }

    /// Starts BFD for the peers that have it configured, not running, and BGP Established.
    fn start_ready_bfd(&mut self) {
        let ready: Vec<String> = self
            .current
            .peers
            .values()
            .filter(|p| p.bfd.is_some())
            .map(|p| p.options.name.clone())
            .filter(|name| self.established.contains(name) && !self.bfd_started.contains(name))
            .collect();
        for name in ready {
            self.start_bfd(&self.current.peers[&name]);
            self.bfd_started.insert(name);
        }
    }

    /// Adds (or updates) the BFD session of `peer`.
    fn start_bfd(&self, peer: &PeerPlan) {
        let Some(profile) = peer.bfd else { return };
        let options = &peer.options;
        let hop = if options.ebgp_multihop {
            Hop::Multi
        } else {
            Hop::Single
        };
        self.bfd
            .add_peer(options.address, options.source, hop, profile);
    }

    /// Leaving: stop answering in layer 2, keep the BGP routes up with GRACEFUL_SHUTDOWN for
    /// the delay so routers move traffic away first, then Cease every session.
    /// With `graceful`, GRACEFUL_SHUTDOWN is announced for `delay` first. The drivers' tasks
    /// get [`EXIT_GRACE`] to end.
    pub async fn leave(self, graceful: bool, delay: Duration) {
        info!(graceful, "speaker leaving");
        self.l2.shutdown();
        if graceful && !self.current.peers.is_empty() {
            self.bgp.set_graceful_shutdown(true);
            info!(?delay, "graceful shutdown community announced");
            tokio::time::sleep(delay).await;
        }
        self.bgp.shutdown().await;
        self.bfd.shutdown();
        for (name, task) in self.tasks {
            if tokio::time::timeout(EXIT_GRACE, task).await.is_err() {
                warn!(driver = name, "driver did not stop in time");
            }
        }
        if let Some(path) = &self.control {
            let _ = std::fs::remove_file(path);
        }
    }
}
