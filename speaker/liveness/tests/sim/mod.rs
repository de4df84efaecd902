//! Many liveness cores in one process with virtual time: a simulated network (loss, delay,
//! nodes cut from their peers, heartbeats broken for everybody) and a simulated API server
//! (per-node reachability; each node renews its Lease every renewal interval, and every node
//! whose API works observes every write). Shared by the scenario tests and the traffic example.

#![expect(
    clippy::disallowed_methods,
    reason = "simulated time starts at Instant::now()"
)]
#![allow(dead_code, reason = "each test binary uses a part of the harness")]

use std::{
    cmp::Reverse,
    collections::{BinaryHeap, HashMap},
    time::{Duration, Instant},
};

use metallb_liveness::{Config, Event, Key, LeaseView, Liveness, Renewal, View};

/// Base one-way latency of a packet.
pub const LATENCY: Duration = Duration::from_micros(500);
/// Extra latency, uniform up to this.
pub const JITTER: Duration = Duration::from_micros(300);

/// xorshift64*: deterministic randomness for loss, jitter and phases.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1_u64 << 53) as f64
    }

    pub fn below(&mut self, d: Duration) -> Duration {
        d.mul_f64(self.unit())
    }
}

#[derive(Debug)]
enum Action {
    Deliver { to: usize, bytes: Vec<u8> },
    Timer { node: usize },
    Renew { node: usize },
}

/// One simulated node.
#[derive(Debug)]
pub struct Node {
    pub name: String,
    /// `None` while crashed.
    pub core: Option<Liveness>,
    /// Whether its API server works (renewals succeed, the watch delivers).
    pub api: bool,
    /// Whether it is cut from its peers (every heartbeat to or from it is lost).
    pub cut: bool,
    scheduled: Option<Instant>,
    /// Lease writes this observer has seen, by writer: the write's time.
    seen: HashMap<usize, Instant>,
    pub sent_packets: u64,
    pub sent_bytes: u64,
    pub dropped: u64,
}

/// The simulation.
#[derive(Debug)]
pub struct Sim {
    pub start: Instant,
    pub now: Instant,
    pub config: Config,
    pub key: Key,
    pub nodes: Vec<Node>,
    index: HashMap<String, usize>,
    queue: BinaryHeap<Reverse<(Instant, u64)>>,
    actions: HashMap<u64, Action>,
    next_action: u64,
    /// Each Lease as the API holds it: the last write's time and the peers it carries.
    leases: Vec<Option<(Instant, u16)>>,
    /// Probability that a packet is lost, on every link.
    pub loss: f64,
    /// Heartbeats are broken for everybody (a firewall drops the port).
    pub all_deaf: bool,
    pub rng: Rng,
    /// Events as (elapsed, node, event).
    pub log: Vec<(Duration, usize, Event)>,
    boots: u64,
}

impl Sim {
    /// `n` nodes named `node-0000`, ..., with working API and network; every Lease is written
    /// at the start and every node renews at a random phase afterwards.
    pub fn new(n: usize, config: Config, seed: u64) -> Self {
        let start = Instant::now();
        let key = Key::derive(b"simulated membership secret");
        let mut sim = Self {
            start,
            now: start,
            config,
            key,
            nodes: Vec::with_capacity(n),
            index: HashMap::new(),
            queue: BinaryHeap::new(),
            actions: HashMap::new(),
            next_action: 0,
            leases: vec![None; n],
            loss: 0.0,
            all_deaf: false,
            rng: Rng::new(seed),
            log: Vec::new(),
            boots: 1_000_000,
        };
        for i in 0..n {
            let name = format!("node-{i:04}");
            sim.index.insert(name.clone(), i);
            sim.nodes.push(Node {
                name,
                core: None,
                api: true,
                cut: false,
                scheduled: None,
                seen: HashMap::new(),
                sent_packets: 0,
                sent_bytes: 0,
                dropped: 0,
            });
        }
        for i in 0..n {
            sim.boot(i);
        }
        for i in 0..n {
            sim.write_lease(i);
            let phase = sim.rng.below(config.renewal_interval());
            sim.schedule(start + phase, Action::Renew { node: i });
        }
        sim
    }

    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    pub fn name(&self, i: usize) -> &str {
        &self.nodes[i].name
    }

    pub fn index(&self, name: &str) -> usize {
        self.index[name]
    }

    fn schedule(&mut self, at: Instant, action: Action) {
        let id = self.next_action;
        self.next_action += 1;
        self.queue.push(Reverse((at, id)));
        self.actions.insert(id, action);
    }

    /// Starts node `i`'s speaker (again), with a boot value above any before, and feeds it
    /// the Leases its API shows.
    pub fn boot(&mut self, i: usize) {
        self.boots += 1_000_000;
        let mut core = Liveness::new(
            self.config,
            &self.nodes[i].name,
            self.key.clone(),
            self.boots,
            self.now,
        )
        .expect("valid config");
        self.nodes[i].seen.clear();
        if self.nodes[i].api {
            for (j, lease) in self.leases.iter().enumerate() {
                if let Some((at, peers)) = *lease {
                    core.observe_lease(self.now, &self.nodes[j].name, self.view_of(at, peers));
                    self.nodes[i].seen.insert(j, at);
                }
            }
        }
        self.nodes[i].core = Some(core);
        // The renewer's first write goes out at start (a speaker that never renewed counts as
        // cut from the API); the very first boot's is written by `new`.
        if self.nodes[i].api && self.leases[i].is_some() {
            self.write_lease(i);
        }
        let phase = self.rng.below(self.config.interval);
        self.nodes[i].scheduled = Some(self.now + phase);
        self.schedule(self.now + phase, Action::Timer { node: i });
    }

    /// A Lease write observed now.
    fn view_of(&self, _written: Instant, peers: u16) -> LeaseView {
        LeaseView {
            renewed_at: self.now,
            expires_at: self.now + self.config.lease_duration,
            peers: Some(peers),
        }
    }

    /// The speaker of node `i` crashes: silent, deaf, its Lease no longer renewed.
    pub fn crash(&mut self, i: usize) {
        self.nodes[i].core = None;
        self.nodes[i].scheduled = None;
    }

    /// Node `i`'s speaker stops on purpose: it leaves, runs a few intervals, and its Lease is
    /// deleted.
    pub fn leave(&mut self, i: usize) {
        if let Some(core) = self.nodes[i].core.as_mut() {
            core.leave(self.now);
        }
        self.wake(i);
    }

    /// Node `i`'s Lease disappears (deleted on a planned exit).
    pub fn delete_lease(&mut self, i: usize) {
        self.leases[i] = None;
        let name = self.nodes[i].name.clone();
        for j in 0..self.nodes.len() {
            if self.nodes[j].api
                && let Some(core) = self.nodes[j].core.as_mut()
            {
                core.forget_lease(&name);
                self.nodes[j].seen.remove(&i);
                self.wake(j);
            }
        }
    }

    /// Sets whether node `i` reaches the API. Back, its watch relists.
    pub fn set_api(&mut self, i: usize, up: bool) {
        self.nodes[i].api = up;
        if up {
            self.relist(i);
        }
    }

    fn relist(&mut self, i: usize) {
        for j in 0..self.leases.len() {
            let Some((at, peers)) = self.leases[j] else {
                continue;
            };
            if self.nodes[i].seen.get(&j) == Some(&at) {
                continue;
            }
            self.nodes[i].seen.insert(j, at);
            let view = self.view_of(at, peers);
            let name = self.nodes[j].name.clone();
            if let Some(core) = self.nodes[i].core.as_mut() {
                core.observe_lease(self.now, &name, view);
            }
        }
        self.wake(i);
    }

    fn write_lease(&mut self, i: usize) {
        let peers = self.nodes[i]
            .core
            .as_ref()
            .map_or(0, |core| core.lease_peers(self.now));
        self.leases[i] = Some((self.now, peers));
        let name = self.nodes[i].name.clone();
        let view = self.view_of(self.now, peers);
        for j in 0..self.nodes.len() {
            if !self.nodes[j].api {
                continue;
            }
            self.nodes[j].seen.insert(i, self.now);
            if let Some(core) = self.nodes[j].core.as_mut() {
                core.observe_lease(self.now, &name, view);
            }
        }
        let now = self.now;
        if let Some(core) = self.nodes[i].core.as_mut() {
            core.renewal(now, Renewal::Succeeded { sent_at: now });
        }
        self.wake(i);
    }

    fn renew(&mut self, i: usize) {
        if self.nodes[i].core.is_some() {
            if self.nodes[i].api {
                self.write_lease(i);
            } else {
                let now = self.now;
                self.nodes[i]
                    .core
                    .as_mut()
                    .expect("running")
                    .renewal(now, Renewal::Failed);
                self.wake(i);
            }
        }
        let next = self.now + self.config.renewal_interval();
        self.schedule(next, Action::Renew { node: i });
    }

    /// Drains node `i`'s packets and events and schedules its next timer.
    fn wake(&mut self, i: usize) {
        let now = self.now;
        let Some(core) = self.nodes[i].core.as_mut() else {
            return;
        };
        let mut out = Vec::new();
        while let Some(transmit) = core.poll_transmit() {
            out.push(transmit);
        }
        let mut events = Vec::new();
        while let Some(event) = core.poll_event() {
            events.push(event);
        }
        let next = core.poll_timeout();
        let elapsed = self.elapsed();
        self.log.extend(events.into_iter().map(|e| (elapsed, i, e)));
        for transmit in out {
            self.nodes[i].sent_packets += 1;
            self.nodes[i].sent_bytes += transmit.bytes.len() as u64;
            let to = self.index[&transmit.to];
            let lost = self.all_deaf
                || self.nodes[i].cut
                || self.nodes[to].cut
                || (self.loss > 0.0 && self.rng.unit() < self.loss);
            if lost {
                continue;
            }
            let at = now + LATENCY + self.rng.below(JITTER);
            self.schedule(
                at,
                Action::Deliver {
                    to,
                    bytes: transmit.bytes,
                },
            );
        }
        if let Some(next) = next
            && self.nodes[i].scheduled.is_none_or(|s| next < s || s <= now)
        {
            self.nodes[i].scheduled = Some(next);
            self.schedule(next, Action::Timer { node: i });
        }
    }

    /// Runs for `duration` of virtual time.
    pub fn run_for(&mut self, duration: Duration) {
        let end = self.now + duration;
        while let Some(&Reverse((at, id))) = self.queue.peek() {
            if at > end {
                break;
            }
            self.queue.pop();
            self.now = at;
            let action = self.actions.remove(&id).expect("scheduled");
            match action {
                Action::Deliver { to, bytes } => {
                    let now = self.now;
                    if let Some(core) = self.nodes[to].core.as_mut() {
                        if core.handle_packet(now, &bytes).is_err() {
                            self.nodes[to].dropped += 1;
                        }
                        self.wake(to);
                    }
                }
                Action::Timer { node } => {
                    if self.nodes[node].scheduled != Some(at) {
                        continue;
                    }
                    let now = self.now;
                    if let Some(core) = self.nodes[node].core.as_mut() {
                        core.handle_timeout(now);
                        self.wake(node);
                    }
                }
                Action::Renew { node } => self.renew(node),
            }
        }
        self.now = end;
    }

    /// Node `i`'s view (it must be running).
    pub fn view(&self, i: usize) -> View {
        self.nodes[i].core.as_ref().expect("running").view(self.now)
    }

    /// Resets the traffic counters.
    pub fn reset_counters(&mut self) {
        for node in &mut self.nodes {
            node.sent_packets = 0;
            node.sent_bytes = 0;
            node.dropped = 0;
        }
    }

    /// Events since `since` (elapsed) matching `f`, as (elapsed, node).
    pub fn events_since(
        &self,
        since: Duration,
        f: impl Fn(&Event) -> bool,
    ) -> Vec<(Duration, usize)> {
        self.log
            .iter()
            .filter(|(at, _, e)| *at >= since && f(e))
            .map(|(at, node, _)| (*at, *node))
            .collect()
    }

    /// Running nodes other than `except`.
    pub fn running(&self, except: &[usize]) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|i| !except.contains(i) && self.nodes[*i].core.is_some())
            .collect()
    }

    /// Crashes node `victim` and returns, for every other running node, how long after the
    /// crash it declared the victim dead (`None`: not within `wait`).
    pub fn crash_and_detect(&mut self, victim: usize, wait: Duration) -> Vec<Option<Duration>> {
        let crashed = self.elapsed();
        self.crash(victim);
        self.run_for(wait);
        let name = self.nodes[victim].name.clone();
        let dead = self.events_since(
            crashed,
            |e| matches!(e, Event::Dead { node, .. } if *node == name),
        );
        self.running(&[victim])
            .into_iter()
            .map(|i| {
                dead.iter()
                    .find(|(_, node)| *node == i)
                    .map(|(at, _)| *at - crashed)
            })
            .collect()
    }
}

/// The `q` quantile (0..=1) of sorted durations.
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let at = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[at]
}
