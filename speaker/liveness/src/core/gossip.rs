//! The moving parts of the protocol: probing silent nodes, applying and refuting news,
//! the ring, and the rounds that carry heartbeats and news.

use std::time::Instant;

use super::{Liveness, Member, Probe, Transmit, rank};
use crate::{
    packet::{Entry, Kind, MAX_ENTRIES, Packet, Status},
    ring,
    view::Event,
};

impl Liveness {
    /// Probes a monitored node that fell silent; suspects it when the probes go unanswered.
    pub(super) fn check_monitored(&mut self, now: Instant, id: u64) {
        let deadline = self.silence_deadline(&self.members[&id]);
        let m = &self.members[&id];
        if m.status != Status::Alive || now < deadline {
            return;
        }
        match m.probe {
            None => {
                let probe = Probe {
                    until: now + self.config.probe,
                    next: now + self.config.probe_gap(),
                };
                self.members.get_mut(&id).expect("monitored").probe = Some(probe);
                self.send(now, id, Kind::Probe, Vec::new());
            }
            Some(probe) if now >= probe.until => {
                let member = self.members.get_mut(&id).expect("monitored");
                member.probe = None;
                let entry = Entry {
                    node: id,
                    incarnation: member.incarnation,
                    status: Status::Suspect,
                    stand_down: member.stand_down,
                    accuser: self.my_id,
                };
                self.apply(now, entry);
                // The suspect hears it first, so its refutation races the suspicion.
                self.send(now, id, Kind::Heartbeat, vec![entry]);
            }
            Some(probe) if now >= probe.next => {
                let next = now + self.config.probe_gap();
                self.members.get_mut(&id).expect("monitored").probe = Some(Probe { next, ..probe });
                self.send(now, id, Kind::Probe, Vec::new());
            }
            Some(_) => {}
        }
    }

    /// Applies a piece of news if it overrides what we know; new news is forwarded.
    pub(super) fn apply(&mut self, now: Instant, entry: Entry) {
        if entry.node == self.my_id {
            self.about_me(entry);
            return;
        }
        let Some(m) = self.members.get_mut(&entry.node) else {
            return;
        };
        let newer = entry.incarnation > m.incarnation
            || (entry.incarnation == m.incarnation && rank(entry.status) > rank(m.status));
        if !newer {
            return;
        }
        let before = (m.status, m.stand_down);
        // Learning the incarnation of a node first heard alive is no news: otherwise every
        // start would flood N entries through the cluster.
        let first = m.incarnation == 0
            && entry.status == Status::Alive
            && before == (Status::Alive, entry.stand_down);
        m.incarnation = entry.incarnation;
        m.status = entry.status;
        m.stand_down = entry.stand_down;
        m.accuser = entry.accuser;
        let name = m.name.clone();
        if before.0 != entry.status {
            m.since = now;
            if entry.status == Status::Suspect {
                self.suspects.insert(entry.node);
            } else {
                self.suspects.remove(&entry.node);
            }
            if (entry.status == Status::Left) != (before.0 == Status::Left) {
                self.ring_dirty = true;
            }
            let by = self.name_of(entry.accuser);
            self.events.push_back(match entry.status {
                Status::Alive => Event::Alive { node: name.clone() },
                Status::Suspect => Event::Suspected {
                    node: name.clone(),
                    by,
                },
                Status::Dead => Event::Dead {
                    node: name.clone(),
                    by,
                },
                Status::Left => Event::Left { node: name.clone() },
            });
        }
        if before.1 != entry.stand_down {
            self.events.push_back(Event::StandDown {
                node: name,
                stand_down: entry.stand_down,
            });
        }
        if !first {
            self.news.insert(entry.node, (entry, self.config.repeat));
            self.urgent = true;
        }
    }

    /// News about this node: a suspicion or death at our incarnation is refuted with a
    /// higher one (a leaving node lets it stand).
    pub(super) fn about_me(&mut self, entry: Entry) {
        if self.leaving || entry.incarnation < self.incarnation {
            return;
        }
        if entry.status != Status::Alive || entry.incarnation > self.incarnation {
            self.incarnation = entry.incarnation + 1;
            self.events.push_back(Event::Refuted {
                incarnation: self.incarnation,
            });
            self.push_self_news(Status::Alive);
        }
    }

    /// Tells a node that talks to us while we hold it dead, so that it refutes.
    pub(super) fn notice_if_dead(&mut self, now: Instant, id: u64, incarnation: u64) {
        let m = &self.members[&id];
        let dead = matches!(m.status, Status::Dead | Status::Left) && m.incarnation >= incarnation;
        if !dead
            || m.noticed_at
                .is_some_and(|at| now < at + self.config.interval)
        {
            return;
        }
        let entry = self.entry_of(id, m, m.status);
        self.members.get_mut(&id).expect("known").noticed_at = Some(now);
        self.send(now, id, Kind::Heartbeat, vec![entry]);
    }

    pub(super) fn entry_of(&self, id: u64, m: &Member, status: Status) -> Entry {
        Entry {
            node: id,
            incarnation: m.incarnation,
            status,
            stand_down: m.stand_down,
            accuser: m.accuser,
        }
    }

    pub(super) fn push_self_news(&mut self, status: Status) {
        let entry = Entry {
            node: self.my_id,
            incarnation: self.incarnation,
            status,
            stand_down: self.stand_down,
            accuser: self.my_id,
        };
        self.news.insert(self.my_id, (entry, self.config.repeat));
        self.urgent = true;
    }

    pub(super) fn name_of(&self, id: u64) -> String {
        if id == self.my_id {
            return self.me.clone();
        }
        self.members
            .get(&id)
            .map_or_else(|| format!("{id:#018x}"), |m| m.name.clone())
    }

    /// Recomputes targets and monitored nodes after a membership change. Dead nodes keep
    /// their place: heartbeats to them are how a healed partition or a node wrongly held dead
    /// finds out and refutes, and the ring does not reshuffle (and lose monitors) on every
    /// death. Only nodes that left or lost their Lease are off the ring.
    pub(super) fn refresh_ring(&mut self, now: Instant) {
        if !std::mem::take(&mut self.ring_dirty) {
            return;
        }
        let mut ring: Vec<u64> = self
            .members
            .iter()
            .filter(|(_, m)| m.status != Status::Left)
            .map(|(id, _)| *id)
            .collect();
        ring.push(self.my_id);
        ring.sort_unstable();
        self.targets = ring::targets(&ring, self.my_id);
        let monitored = ring::monitored(&ring, self.my_id);
        for (id, m) in &mut self.members {
            if monitored.contains(id) {
                m.monitored_since.get_or_insert(now);
            } else {
                m.monitored_since = None;
                m.probe = None;
            }
        }
        self.monitored = monitored;
    }

    /// The news of the next round, without using up its repeats.
    pub(super) fn current_news(&self) -> Vec<Entry> {
        let mut news: Vec<(u8, Entry)> = self.news.values().map(|(e, left)| (*left, *e)).collect();
        // The freshest news first, when there is more than a packet holds.
        news.sort_by_key(|(left, _)| std::cmp::Reverse(*left));
        news.into_iter().take(MAX_ENTRIES).map(|(_, e)| e).collect()
    }

    /// One heartbeat to every target, with the news; each piece rides `repeat` rounds.
    pub(super) fn round(&mut self, now: Instant) {
        let entries = self.current_news();
        for entry in &entries {
            if let Some((_, left)) = self.news.get_mut(&entry.node) {
                *left -= 1;
            }
        }
        self.news.retain(|_, (_, left)| *left > 0);
        for id in self.targets.clone() {
            self.send(now, id, Kind::Heartbeat, entries.clone());
        }
        self.last_round = Some(now);
        self.urgent = false;
    }

    /// Forwards fresh news at once, unless a round went out less than `min_gap` ago.
    pub(super) fn flush_urgent(&mut self, now: Instant) {
        if self.urgent
            && self
                .last_round
                .is_none_or(|at| now >= at + self.config.min_gap)
        {
            self.round(now);
        }
    }

    pub(super) fn send(&mut self, now: Instant, to: u64, kind: Kind, entries: Vec<Entry>) {
        let Some(member) = self.members.get(&to) else {
            return;
        };
        self.sequence += 1;
        let api_age_ms = self.last_renewal.map(|at| {
            u32::try_from(now.saturating_duration_since(at).as_millis()).unwrap_or(u32::MAX - 1)
        });
        let packet = Packet {
            kind,
            from: self.my_id,
            to,
            sequence: self.sequence,
            incarnation: self.incarnation,
            stand_down: self.stand_down,
            api_age_ms,
            entries,
        };
        self.transmits.push_back(Transmit {
            to: member.name.clone(),
            bytes: packet.encode(&self.key),
        });
    }
}
