//! The announcement schedule in simulated time: bursts at 0, 1.1, 2.2, 3.3 and 4.4 s after a
//! takeover, window extension and restart, the optional refresh, release, and what a burst
//! holds on which interface.

#![expect(
    clippy::disallowed_methods,
    reason = "simulated time starts at Instant::now()"
)]

use std::{
    collections::BTreeSet,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    time::{Duration, Instant},
};

use metallb_l2::{AllowedInterfaces, Announcer, Interface, MacAddr, Schedule, Transmit};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/corpus/l2_frame/");

const VIP4: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 168, 250, 201));
const VIP6: IpAddr = IpAddr::V6(Ipv6Addr::new(0xfd00, 0x250, 0, 0, 0, 0, 0, 0x201));
const OTHER4: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 168, 250, 202));

const FIVE_BURSTS: [u64; 5] = [0, 1100, 2200, 3300, 4400];

fn corpus(name: &str) -> Vec<u8> {
    std::fs::read(format!("{CORPUS}{name}.bin")).expect("corpus file")
}

/// node2's eth0, with a link-local address, and eth1, without one.
fn interfaces() -> Vec<Interface> {
    vec![
        Interface {
            name: "eth0".into(),
            mac: MacAddr([0x02, 0x4e, 0x4c, 0x00, 0x00, 0x12]),
            link_local: Some(Ipv6Addr::new(0xfe80, 0, 0, 0, 0x4e, 0x4cff, 0xfe00, 0x12)),
        },
        Interface {
            name: "eth1".into(),
            mac: MacAddr([0x02, 0x4e, 0x4c, 0x01, 0x00, 0x12]),
            link_local: None,
        },
    ]
}

/// Plays the speaker's driver: sleeps until each deadline, then sends everything queued. Times
/// are milliseconds after the start.
struct Driver {
    announcer: Announcer,
    start: Instant,
    sent: Vec<(u64, Transmit)>,
}

impl Driver {
    fn new(schedule: Schedule) -> Self {
        let mut announcer = Announcer::new(schedule);
        announcer.set_interfaces(interfaces());
        Self {
            announcer,
            start: Instant::now(),
            sent: Vec::new(),
        }
    }

    fn at(&self, ms: u64) -> Instant {
        self.start + Duration::from_millis(ms)
    }

    fn take_over(&mut self, ip: IpAddr, allowed: AllowedInterfaces, ms: u64) {
        self.run_until(ms);
        self.announcer.take_over(ip, allowed, self.at(ms));
        self.send(ms);
    }

    fn release(&mut self, ip: IpAddr, ms: u64) -> bool {
        self.run_until(ms);
        self.announcer.release(ip)
    }

    fn run_until(&mut self, ms: u64) {
        while let Some(deadline) = self.announcer.poll_timeout() {
            if deadline > self.at(ms) {
                break;
            }
            self.announcer.handle_timeout(deadline);
            let offset = deadline.duration_since(self.start).as_millis() as u64;
            self.send(offset);
        }
    }

    fn send(&mut self, ms: u64) {
        while let Some(transmit) = self.announcer.poll_transmit() {
            self.sent.push((ms, transmit));
        }
    }

    /// When frames for `ip` went out.
    fn bursts(&self, ip: IpAddr) -> Vec<u64> {
        let times: BTreeSet<u64> = self
            .sent
            .iter()
            .filter(|(_, transmit)| transmit.ip == ip)
            .map(|(ms, _)| *ms)
            .collect();
        times.into_iter().collect()
    }
}

#[test]
fn a_takeover_sends_five_bursts_1_1_s_apart_then_falls_silent() {
    let mut driver = Driver::new(Schedule::default());
    driver.take_over(VIP4, AllowedInterfaces::All, 0);
    driver.run_until(60_000);
    assert_eq!(driver.bursts(VIP4), FIVE_BURSTS);
    assert_eq!(driver.announcer.poll_timeout(), None);
    assert_eq!(driver.announcer.next_announcement(VIP4), None);
    // Still owned, so still answered.
    assert!(driver.announcer.ownership().allowed(VIP4).is_some());
}

#[test]
fn the_first_burst_goes_out_without_waiting_for_a_timeout() {
    let mut driver = Driver::new(Schedule::default());
    driver
        .announcer
        .take_over(VIP4, AllowedInterfaces::All, driver.at(0));
    assert!(driver.announcer.poll_transmit().is_some());
    assert_eq!(driver.announcer.poll_timeout(), Some(driver.at(1100)));
}

#[test]
fn an_ipv4_burst_is_a_gratuitous_request_and_reply_per_interface() {
    let mut driver = Driver::new(Schedule::default());
    driver.take_over(VIP4, AllowedInterfaces::All, 0);
    let sent: Vec<(&str, Vec<u8>)> = driver
        .sent
        .iter()
        .map(|(_, transmit)| (transmit.interface.as_str(), transmit.frame.encode()))
        .collect();
    assert_eq!(sent.len(), 4);
    assert_eq!(sent[0], ("eth0", corpus("garp_request")));
    assert_eq!(sent[1], ("eth0", corpus("garp_reply")));
    assert_eq!(sent[2].0, "eth1");
    assert_eq!(sent[3].0, "eth1");
    // eth1 announces with its own MAC.
    assert_eq!(sent[2].1[6..12], [0x02, 0x4e, 0x4c, 0x01, 0x00, 0x12]);
}

#[test]
fn an_ipv6_burst_is_one_unsolicited_advertisement_where_there_is_a_link_local_address() {
    let mut driver = Driver::new(Schedule::default());
    driver.take_over(VIP6, AllowedInterfaces::All, 0);
    assert_eq!(driver.sent.len(), 1, "eth1 has no link-local address");
    let (_, transmit) = &driver.sent[0];
    assert_eq!(transmit.interface, "eth0");
    assert_eq!(transmit.ip, VIP6);
    assert_eq!(transmit.frame.encode(), corpus("unsolicited_advertisement"));
}

#[test]
fn only_the_interfaces_an_ip_allows_are_announced_on() {
    let mut driver = Driver::new(Schedule::default());
    driver.take_over(VIP4, ["eth1"].into_iter().collect(), 0);
    driver.run_until(10_000);
    assert!(
        driver
            .sent
            .iter()
            .all(|(_, transmit)| transmit.interface == "eth1")
    );
    assert_eq!(driver.sent.len(), 2 * FIVE_BURSTS.len());
}

#[test]
fn asserting_again_within_the_window_extends_it_without_an_extra_burst() {
    let mut driver = Driver::new(Schedule::default());
    driver.take_over(VIP4, AllowedInterfaces::All, 0);
    driver.take_over(VIP4, AllowedInterfaces::All, 3000);
    driver.run_until(60_000);
    // Bursts go on until 5 s after the second assertion, at 8 s.
    assert_eq!(
        driver.bursts(VIP4),
        [0, 1100, 2200, 3300, 4400, 5500, 6600, 7700]
    );
}

#[test]
fn asserting_after_the_last_burst_but_within_the_window_still_extends_it() {
    let mut driver = Driver::new(Schedule::default());
    driver.take_over(VIP4, AllowedInterfaces::All, 0);
    // After the 4.4 s burst nothing is due; at 4.8 s the window has not closed yet.
    driver.take_over(VIP4, AllowedInterfaces::All, 4800);
    driver.run_until(60_000);
    assert_eq!(
        driver.bursts(VIP4),
        [0, 1100, 2200, 3300, 4400, 5500, 6600, 7700, 8800]
    );
}

#[test]
fn asserting_after_the_window_starts_over_at_once() {
    let mut driver = Driver::new(Schedule::default());
    driver.take_over(VIP4, AllowedInterfaces::All, 0);
    driver.take_over(VIP4, AllowedInterfaces::All, 20_000);
    driver.run_until(60_000);
    let again = FIVE_BURSTS.map(|ms| 20_000 + ms);
    assert_eq!(driver.bursts(VIP4), [FIVE_BURSTS, again].concat());
}

#[test]
fn a_refresh_period_keeps_announcing_while_the_ip_is_owned() {
    let mut driver = Driver::new(Schedule {
        refresh: Some(Duration::from_secs(30)),
        ..Schedule::default()
    });
    driver.take_over(VIP4, AllowedInterfaces::All, 0);
    driver.run_until(100_000);
    assert_eq!(
        driver.bursts(VIP4),
        [0, 1100, 2200, 3300, 4400, 34_400, 64_400, 94_400]
    );
    assert_eq!(driver.announcer.poll_timeout(), Some(driver.at(124_400)));
    assert!(driver.release(VIP4, 100_000));
    assert_eq!(driver.announcer.poll_timeout(), None);
}

#[test]
fn release_stops_the_bursts_and_sends_nothing() {
    let mut driver = Driver::new(Schedule::default());
    driver.take_over(VIP4, AllowedInterfaces::All, 0);
    assert!(driver.release(VIP4, 2000));
    driver.run_until(60_000);
    assert_eq!(driver.bursts(VIP4), [0, 1100]);
    assert!(driver.announcer.ownership().is_empty());
    assert!(!driver.announcer.release(VIP4), "released twice");
}

#[test]
fn release_drops_frames_not_yet_sent() {
    let mut announcer = Announcer::new(Schedule::default());
    announcer.set_interfaces(interfaces());
    let now = Instant::now();
    announcer.take_over(VIP4, AllowedInterfaces::All, now);
    announcer.take_over(OTHER4, AllowedInterfaces::All, now);
    announcer.release(VIP4);
    let left: Vec<IpAddr> = std::iter::from_fn(|| announcer.poll_transmit())
        .map(|transmit| transmit.ip)
        .collect();
    assert_eq!(left, [OTHER4; 4]);
}

#[test]
fn taking_an_ip_back_after_release_starts_a_fresh_schedule() {
    let mut driver = Driver::new(Schedule::default());
    driver.take_over(VIP4, AllowedInterfaces::All, 0);
    driver.release(VIP4, 500);
    driver.take_over(VIP4, AllowedInterfaces::All, 1000);
    driver.run_until(60_000);
    assert_eq!(driver.bursts(VIP4), [0, 1000, 2100, 3200, 4300, 5400]);
}

#[test]
fn several_ips_keep_their_own_schedules() {
    let mut driver = Driver::new(Schedule::default());
    driver.take_over(VIP4, AllowedInterfaces::All, 0);
    driver.take_over(VIP6, AllowedInterfaces::All, 500);
    driver.take_over(OTHER4, AllowedInterfaces::All, 500);
    driver.run_until(60_000);
    assert_eq!(driver.bursts(VIP4), FIVE_BURSTS);
    assert_eq!(driver.bursts(VIP6), FIVE_BURSTS.map(|ms| ms + 500));
    assert_eq!(driver.bursts(OTHER4), FIVE_BURSTS.map(|ms| ms + 500));
}

#[test]
fn a_timeout_before_the_deadline_sends_nothing() {
    let mut driver = Driver::new(Schedule::default());
    driver.take_over(VIP4, AllowedInterfaces::All, 0);
    driver.sent.clear();
    driver.announcer.handle_timeout(driver.at(1099));
    assert_eq!(driver.announcer.poll_transmit(), None);
    assert_eq!(
        driver.announcer.next_announcement(VIP4),
        Some(driver.at(1100))
    );
}

#[test]
fn a_late_driver_gets_one_burst_and_the_schedule_counts_from_then() {
    let mut driver = Driver::new(Schedule::default());
    driver.take_over(VIP4, AllowedInterfaces::All, 0);
    driver.sent.clear();
    // The driver wakes 2.5 s late: one burst, not three to catch up.
    driver.announcer.handle_timeout(driver.at(3600));
    driver.send(3600);
    driver.run_until(60_000);
    assert_eq!(driver.bursts(VIP4), [3600, 4700]);
}

#[test]
fn interfaces_found_later_are_used_by_later_bursts() {
    let mut driver = Driver::new(Schedule::default());
    driver.announcer.set_interfaces(Vec::new());
    driver.take_over(VIP4, AllowedInterfaces::All, 0);
    assert!(driver.sent.is_empty());
    driver.announcer.set_interfaces(interfaces());
    driver.run_until(1100);
    assert_eq!(driver.bursts(VIP4), [1100]);
}

#[test]
fn changing_the_allowed_interfaces_applies_to_the_next_burst() {
    let mut driver = Driver::new(Schedule::default());
    driver.take_over(VIP4, AllowedInterfaces::All, 0);
    driver.take_over(VIP4, ["eth0"].into_iter().collect(), 500);
    driver.sent.clear();
    driver.run_until(1100);
    assert!(driver.sent.iter().all(|(_, t)| t.interface == "eth0"));
    assert_eq!(driver.sent.len(), 2);
}

#[test]
fn a_zero_period_cannot_make_the_driver_spin() {
    let mut driver = Driver::new(Schedule {
        interval: Duration::ZERO,
        window: Duration::from_millis(3),
        refresh: Some(Duration::ZERO),
    });
    driver.take_over(VIP4, AllowedInterfaces::All, 0);
    driver.run_until(5);
    assert_eq!(driver.bursts(VIP4), [0, 1, 2, 3, 4, 5]);
}
