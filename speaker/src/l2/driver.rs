//! The driver's task: one loop that owns the announcer, the sockets and the counters, and
//! waits for a command, a frame, the next announcement or the next interface scan.

use std::{
    future::{pending, poll_fn},
    io, mem,
    net::IpAddr,
    sync::{Arc, Mutex, PoisonError},
    task::{Context, Poll},
    time::Duration,
};

use metallb_l2::{AllowedInterfaces, Announcer, Ignored, Ownership, respond};
use tokio::{
    sync::mpsc,
    time::{Instant, sleep_until},
};
use tracing::{debug, info, trace, warn};

use super::{
    InterfaceStatus, L2Error, L2Options, L2Status, OwnedIp, bump,
    port::{InterfaceFilter, Link, Port, discover},
};
use crate::sys::packet::Received;

/// How often the interfaces are scanned for ones that appeared, vanished or changed.
const SCAN_PERIOD: Duration = Duration::from_secs(5);

/// How often the interfaces are scanned for a while after one appeared, vanished or failed: an
/// interface taken down and up again is served again in well under a second.
const FAST_SCAN_PERIOD: Duration = Duration::from_millis(500);

/// How many fast scans follow such a change: 10 s worth.
const FAST_SCANS: u32 = 20;

/// The receive buffer: an untagged or tagged frame at the standard MTU fits, and ARP and NDP
/// requests are far smaller. Longer frames are counted as `oversized` and dropped.
const BUFFER_LEN: usize = 2048;

/// What an [`L2Handle`](super::L2Handle) asks of the task.
#[derive(Debug)]
pub(super) enum Command {
    Announce(IpAddr, AllowedInterfaces),
    Release(IpAddr),
    Shutdown,
}

/// What woke the task.
enum Event {
    Command(Option<Command>),
    Announce,
    Scan,
    Frame(usize, io::Result<Received>),
}

/// The task's state.
#[derive(Debug)]
pub(super) struct Driver {
    wanted: InterfaceFilter,
    announcer: Announcer,
    ports: Vec<Port>,
    commands: mpsc::UnboundedReceiver<Command>,
    status: Arc<Mutex<L2Status>>,
    buffer: Box<[u8]>,
    next_scan: Instant,
    /// Scans left at [`FAST_SCAN_PERIOD`] before [`SCAN_PERIOD`] applies again.
    fast_scans: u32,
    /// The socket to read first on the next wake, so that a busy one cannot starve others.
    cursor: usize,
}

impl Driver {
    /// Scans the interfaces and opens their sockets. Needs a tokio runtime.
    pub(super) fn new(
        options: L2Options,
        commands: mpsc::UnboundedReceiver<Command>,
        status: Arc<Mutex<L2Status>>,
    ) -> Result<Self, L2Error> {
        let mut driver = Self {
            announcer: Announcer::new(options.schedule),
            wanted: InterfaceFilter::new(options.interfaces, &options.excluded),
            ports: Vec::new(),
            commands,
            status,
            buffer: vec![0; BUFFER_LEN].into_boxed_slice(),
            next_scan: Instant::now() + SCAN_PERIOD,
            fast_scans: 0,
            cursor: 0,
        };
        let links = discover(&driver.wanted).map_err(L2Error::Interfaces)?;
        for (interface, source) in driver.update_ports(links) {
            // No permission fails every interface and for good; anything else (an interface
            // gone since the scan) is left to the next scan.
            if source.kind() == io::ErrorKind::PermissionDenied {
                return Err(L2Error::Socket { interface, source });
            }
            warn!(interface = %interface, error = %source, "l2 cannot open packet socket");
            driver.fast_scans = FAST_SCANS;
        }
        driver.warn_missing();
        Ok(driver)
    }

    /// Runs until shut down or until every handle is gone.
    pub(super) async fn run(mut self) {
        info!(interfaces = self.ports.len(), "l2 driver started");
        loop {
            let deadline = self.announcer.poll_timeout().map(Instant::from_std);
            let event = tokio::select! {
                command = self.commands.recv() => Event::Command(command),
                () = sleep_until_some(deadline) => Event::Announce,
                () = sleep_until(self.next_scan) => Event::Scan,
                (socket, index, received) = poll_fn(|cx| {
                    poll_ports(&self.ports, &mut self.buffer, self.cursor, cx)
                }) => {
                    self.cursor = socket + 1;
                    Event::Frame(index, received)
                }
            };
            match event {
                Event::Command(None | Some(Command::Shutdown)) => break,
                Event::Command(Some(command)) => self.command(command),
                Event::Announce => self.announcer.handle_timeout(now()),
                Event::Scan => self.scan(),
                Event::Frame(index, received) => self.frame(index, received),
            }
            self.flush();
        }
        for (ip, _) in self.announcer.ownership().iter() {
            info!(ip = %ip, "l2 released");
        }
        info!("l2 driver stopped");
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Announce(ip, allowed) => {
                if self.announcer.ownership().allowed(ip) == Some(&allowed) {
                    debug!(ip = %ip, "l2 announcing again");
                } else {
                    info!(ip = %ip, interfaces = ?allowed, "l2 announcing");
                }
                self.announcer.take_over(ip, allowed, now());
            }
            Command::Release(ip) => {
                if self.announcer.release(ip) {
                    info!(ip = %ip, "l2 released");
                }
            }
            Command::Shutdown => return,
        }
        self.sync_groups();
        self.publish_owned();
    }

    /// Scans the interfaces and brings the sockets in line. Interfaces that come and go, or
    /// fail, tend to come back soon, so any change makes the next scans fast.
    fn scan(&mut self) {
        let before: Vec<u32> = self.ports.iter().map(|port| port.link.ifindex).collect();
        let mut unsettled = match discover(&self.wanted) {
            Ok(links) => {
                let failed = self.update_ports(links);
                for (interface, error) in &failed {
                    warn!(interface = %interface, %error, "l2 cannot open packet socket");
                }
                !failed.is_empty()
            }
            Err(error) => {
                warn!(%error, "l2 cannot list the network interfaces");
                true
            }
        };
        unsettled |= !self.ports.iter().map(|port| port.link.ifindex).eq(before);
        if unsettled {
            self.fast_scans = FAST_SCANS;
        }
        let period = if self.fast_scans > 0 {
            self.fast_scans -= 1;
            FAST_SCAN_PERIOD
        } else {
            SCAN_PERIOD
        };
        self.next_scan = Instant::now() + period;
    }

    /// Keeps the sockets of interfaces still there, opens sockets for new ones and closes
    /// those of vanished ones. Returns the interfaces whose socket failed to open.
    fn update_ports(&mut self, links: Vec<Link>) -> Vec<(String, io::Error)> {
        let mut old = mem::take(&mut self.ports);
        let mut failed = Vec::new();
        for link in links {
            if let Some(at) = old
                .iter()
                .position(|port| port.link.ifindex == link.ifindex)
            {
                let mut port = old.swap_remove(at);
                if port.link != link {
                    info!(interface = %link.interface.name, mac = %link.interface.mac, "l2 interface changed");
                    port.link = link;
                }
                self.ports.push(port);
                continue;
            }
            let name = link.interface.name.clone();
            match Port::open(link) {
                Ok(port) => {
                    info!(interface = %name, ifindex = port.link.ifindex, mac = %port.link.interface.mac, "l2 interface added");
                    self.ports.push(port);
                }
                Err(error) => failed.push((name, error)),
            }
        }
        for port in old {
            info!(interface = %port.name(), "l2 interface removed");
        }
        self.cursor = 0;
        self.announcer.set_interfaces(
            self.ports
                .iter()
                .map(|port| port.link.interface.clone())
                .collect(),
        );
        self.sync_groups();
        self.publish_interfaces();
        failed
    }

    /// Warns about named interfaces that were not found; they are served once they appear.
    fn warn_missing(&self) {
        for name in &self.wanted.names {
            if !self.ports.iter().any(|port| port.name() == name) {
                warn!(interface = %name, "l2 interface not found or down");
            }
        }
    }

    fn sync_groups(&mut self) {
        for port in &mut self.ports {
            port.sync_groups(self.announcer.ownership());
        }
    }

    /// Handles what one socket read gave.
    fn frame(&mut self, index: usize, received: io::Result<Received>) {
        let received = match received {
            Ok(received) => received,
            Err(error) => {
                // The first read after the interface went down says ENETDOWN (epoll does not
                // wake readers for it); the socket stays bound and receives again once the
                // interface is up, so only the scans decide whether it goes.
                if error.raw_os_error() == Some(libc::ENETDOWN) {
                    info!(interface = %self.ports[index].name(), "l2 interface went down");
                } else {
                    let port = self.ports.remove(index);
                    warn!(interface = %port.name(), %error, "l2 receive failed");
                }
                self.next_scan = self.next_scan.min(Instant::now() + FAST_SCAN_PERIOD);
                self.fast_scans = FAST_SCANS;
                return;
            }
        };
        if received.outgoing {
            return;
        }
        if received.len > self.buffer.len() {
            self.count(|status| bump(&mut status.counters.malformed, "oversized"));
            return;
        }
        let port = &self.ports[index];
        let frame = &self.buffer[..received.len];
        match respond(frame, &port.link.interface, self.announcer.ownership()) {
            Ok(reply) => match port.send(&reply.frame) {
                Ok(()) => {
                    debug!(ip = %reply.ip, interface = %port.name(), to = %reply.frame.destination, "l2 reply sent");
                    self.count(|status| {
                        status.counters.replies_sent += 1;
                        if let Some(owned) = owned_mut(status, reply.ip) {
                            owned.requests += 1;
                            owned.replies += 1;
                        }
                    });
                }
                Err(error) => {
                    self.count(|status| {
                        if let Some(owned) = owned_mut(status, reply.ip) {
                            owned.requests += 1;
                        }
                    });
                    let errors = self.count_send_error();
                    if errors.is_power_of_two() {
                        warn!(ip = %reply.ip, interface = %port.name(), %error, errors, "l2 cannot send reply");
                    }
                }
            },
            Err(Ignored::Malformed(error)) => {
                debug!(interface = %port.name(), reason = error.label(), "l2 malformed frame dropped");
                self.count(|status| bump(&mut status.counters.malformed, error.label()));
            }
            Err(ignored) => {
                trace!(interface = %port.name(), reason = ignored.label(), "l2 frame ignored");
                self.count(|status| bump(&mut status.counters.ignored, ignored.label()));
            }
        }
    }

    /// Sends the announcements the announcer has queued.
    fn flush(&mut self) {
        while let Some(transmit) = self.announcer.poll_transmit() {
            // The announcer only knows interfaces with a socket, but one may have failed since.
            let Some(port) = self
                .ports
                .iter()
                .find(|port| port.name() == transmit.interface)
            else {
                continue;
            };
            match port.send(&transmit.frame) {
                Ok(()) => self.count(|status| {
                    status.counters.announcements_sent += 1;
                    if let Some(owned) = owned_mut(status, transmit.ip) {
                        owned.announcements += 1;
                    }
                }),
                Err(error) => {
                    let errors = self.count_send_error();
                    if errors.is_power_of_two() {
                        warn!(ip = %transmit.ip, interface = %transmit.interface, %error, errors, "l2 cannot send announcement");
                    }
                }
            }
        }
    }

    /// Counts a failed send; returns the total so far. Callers warn only when it is a power of
    /// two, so that a socket that keeps failing under a flood of requests cannot flood the log.
    fn count_send_error(&self) -> u64 {
        let mut status = self.status.lock().unwrap_or_else(PoisonError::into_inner);
        status.counters.send_errors += 1;
        status.counters.send_errors
    }

    fn count(&self, update: impl FnOnce(&mut L2Status)) {
        update(&mut self.status.lock().unwrap_or_else(PoisonError::into_inner));
    }

    fn publish_interfaces(&self) {
        let interfaces = self
            .ports
            .iter()
            .map(|port| InterfaceStatus {
                name: port.link.interface.name.clone(),
                ifindex: port.link.ifindex,
                mac: port.link.interface.mac.to_string(),
                link_local: port.link.interface.link_local,
            })
            .collect();
        self.count(|status| status.interfaces = interfaces);
    }

    fn publish_owned(&self) {
        self.count(|status| {
            let old = mem::take(&mut status.owned);
            status.owned = owned_ips(old, self.announcer.ownership());
        });
    }
}

/// The owned IPs of `ownership` in address order, with the counters they have in `old`.
fn owned_ips(old: Vec<OwnedIp>, ownership: &Ownership) -> Vec<OwnedIp> {
    let mut old = old.into_iter().peekable();
    let mut owned = Vec::with_capacity(ownership.len());
    for (ip, allowed) in ownership.iter() {
        // Both lists are in address order.
        while old.next_if(|entry| entry.ip < ip).is_some() {}
        let (requests, replies, announcements) = old
            .next_if(|entry| entry.ip == ip)
            .map_or((0, 0, 0), |entry| {
                (entry.requests, entry.replies, entry.announcements)
            });
        owned.push(OwnedIp {
            ip,
            interfaces: allowed.into(),
            requests,
            replies,
            announcements,
        });
    }
    owned
}

/// The owned IP's entry in `status`.
fn owned_mut(status: &mut L2Status, ip: IpAddr) -> Option<&mut OwnedIp> {
    let at = status
        .owned
        .binary_search_by_key(&ip, |owned| owned.ip)
        .ok()?;
    status.owned.get_mut(at)
}

/// Reads a frame from the first socket that has one, starting at socket `cursor` (two per port,
/// ARP then NDP); returns the port's index.
fn poll_ports(
    ports: &[Port],
    buffer: &mut [u8],
    cursor: usize,
    cx: &mut Context<'_>,
) -> Poll<(usize, usize, io::Result<Received>)> {
    let sockets = ports.len() * 2;
    for offset in 0..sockets {
        let socket = (cursor + offset) % sockets;
        let index = socket / 2;
        if let Poll::Ready(received) = ports[index].poll_recv(socket % 2 == 1, buffer, cx) {
            return Poll::Ready((socket, index, received));
        }
    }
    Poll::Pending
}

async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => sleep_until(deadline).await,
        None => pending().await,
    }
}

/// The announcer's clock: tokio's, so that paused time in tests applies.
fn now() -> std::time::Instant {
    Instant::now().into_std()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::l2::Interfaces;

    fn entry(ip: &str, replies: u64) -> OwnedIp {
        OwnedIp {
            ip: ip.parse().unwrap(),
            interfaces: Interfaces::All,
            requests: replies,
            replies,
            announcements: replies * 2,
        }
    }

    #[test]
    fn owned_ips_keep_their_counters_and_new_ones_start_at_zero() {
        let old = vec![
            entry("192.168.250.201", 3),
            entry("192.168.250.202", 5),
            entry("fd00:250::201", 7),
        ];
        let mut ownership = Ownership::new();
        for ip in ["192.168.250.200", "192.168.250.202", "fd00:250::201"] {
            ownership.insert(ip.parse().unwrap(), AllowedInterfaces::All);
        }
        ownership.insert(
            "192.168.250.203".parse().unwrap(),
            ["eth1"].into_iter().collect(),
        );
        let mut eth1_only = entry("192.168.250.203", 0);
        eth1_only.interfaces = Interfaces::Only(vec!["eth1".into()]);
        assert_eq!(
            owned_ips(old, &ownership),
            [
                entry("192.168.250.200", 0),
                entry("192.168.250.202", 5),
                eth1_only,
                entry("fd00:250::201", 7),
            ]
        );
    }
}
