//! The layer 2 driver in the network lab: speakers in node namespaces answer the client's
//! arping and ndisc6, move its neighbour entries on takeover, and shrug off garbage.
//!
//! Each test has its own lab. A speaker runs on a thread of its own that entered a node's
//! namespace, on a current-thread runtime, as the runner would run it. Timings are printed
//! (`--nocapture`) for the record.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, UdpSocket},
    sync::{Arc, mpsc},
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use metallb_l2::AllowedInterfaces;
use metallb_speaker::l2::{L2Handle, L2Options, L2Status, spawn};
use metallb_testenv::lab::{Host, Lab, LabOptions};

const VIP4: Ipv4Addr = Ipv4Addr::new(192, 168, 250, 201);
const UNOWNED4: Ipv4Addr = Ipv4Addr::new(192, 168, 250, 202);
const MOVING4: Ipv4Addr = Ipv4Addr::new(192, 168, 250, 205);
const VIP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x250, 0, 0, 0, 0, 0, 0x201);
const UNOWNED6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x250, 0, 0, 0, 0, 0, 0x202);
const MOVING6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x250, 0, 0, 0, 0, 0, 0x205);

/// The solicited-node group of fd00:250::201 as the node's `ip maddr` prints it.
const VIP6_GROUP: &str = "33:33:ff:00:02:01";

/// A driver running in a node's namespace; dropping it shuts the driver down and waits for it.
struct Speaker {
    handle: L2Handle,
    thread: Option<JoinHandle<()>>,
}

impl Speaker {
    fn start(lab: &Arc<Lab>, host: Host) -> Self {
        let lab = Arc::clone(lab);
        let (sender, receiver) = mpsc::channel();
        let thread = thread::spawn(move || {
            lab.enter(host).expect("enter the node's namespace");
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a tokio runtime");
            runtime.block_on(async {
                let (handle, task) = spawn(L2Options::default()).expect("the driver starts");
                sender.send(handle).expect("the test waits for the handle");
                task.await.expect("the driver's task ends without a panic");
            });
        });
        let handle = receiver.recv().expect("the driver started");
        Self {
            handle,
            thread: Some(thread),
        }
    }

    /// Announces `ip` on every interface and waits until the driver took it.
    fn announce(&self, ip: impl Into<IpAddr>) {
        let ip = ip.into();
        self.handle.announce(ip, AllowedInterfaces::All);
        self.wait(|status| owns(status, ip), "the announced IP owned");
    }

    /// Releases `ip` and waits until the driver let it go.
    fn release(&self, ip: impl Into<IpAddr>) {
        let ip = ip.into();
        self.handle.release(ip);
        self.wait(|status| !owns(status, ip), "the released IP gone");
    }

    /// Waits up to 7 s, longer than the driver's 5 s between interface scans.
    fn wait(&self, done: impl Fn(&L2Status) -> bool, what: &str) -> L2Status {
        let deadline = Instant::now() + Duration::from_secs(7);
        loop {
            let status = self.handle.status();
            if done(&status) {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "waited 7 s for {what}: {status:#?}"
            );
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Speaker {
    fn drop(&mut self) {
        self.handle.shutdown();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
            && !thread::panicking()
        {
            panic!("the driver's thread panicked");
        }
    }
}

fn owns(status: &L2Status, ip: IpAddr) -> bool {
    status.owned.iter().any(|owned| owned.ip == ip)
}

fn lab() -> Arc<Lab> {
    Arc::new(Lab::up(LabOptions::default()).expect("the lab comes up"))
}

fn node1() -> String {
    Lab::mac(Host::Node(1))
}

fn node2() -> String {
    Lab::mac(Host::Node(2))
}

/// The multicast link addresses of the node's eth0.
fn multicast_macs(lab: &Lab, host: Host) -> String {
    let output = lab
        .command(host, "ip")
        .args(["maddr", "show", "dev", "eth0"])
        .output()
        .expect("ip maddr runs");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Makes the client's kernel resolve `ip`, as a real client talking to the service would, and
/// waits for the entry; returns its MAC.
fn client_resolves(lab: &Arc<Lab>, ip: IpAddr) -> String {
    let inside = Arc::clone(lab);
    thread::spawn(move || {
        inside
            .enter(Host::Client)
            .expect("enter the client's namespace");
        let any: IpAddr = match ip {
            IpAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
            IpAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
        };
        let socket = UdpSocket::bind((any, 0)).expect("a UDP socket in the client");
        socket
            .send_to(b"hello", (ip, 9))
            .expect("the datagram is queued");
    })
    .join()
    .expect("the client's thread");
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        if let Some(mac) = lab.neighbour(Host::Client, ip).expect("ip neigh") {
            return mac;
        }
        assert!(Instant::now() < deadline, "the client never resolved {ip}");
        thread::sleep(Duration::from_millis(10));
    }
}

/// How long until the client's neighbour entry for `ip` shows `mac`, polled every few ms.
fn time_until_neighbour(lab: &Lab, ip: IpAddr, mac: &str, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let seen = lab.neighbour(Host::Client, ip).expect("ip neigh");
        if seen.as_deref() == Some(mac) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "after {limit:?} the client still has {seen:?} for {ip}, not {mac}"
        );
        thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn an_announced_ipv4_address_is_answered_with_the_node_mac_until_released() {
    let lab = lab();
    let speaker = Speaker::start(&lab, Host::Node(1));
    speaker.announce(VIP4);

    let start = Instant::now();
    assert_eq!(lab.arp(VIP4).unwrap(), Some(node1()));
    eprintln!("arping {VIP4} answered in {:?}", start.elapsed());
    assert_eq!(lab.arp(UNOWNED4).unwrap(), None, "nobody owns {UNOWNED4}");

    let status = speaker.handle.status();
    assert_eq!(status.interfaces.len(), 1, "{status:#?}");
    assert_eq!(status.interfaces[0].name, "eth0");
    assert_eq!(status.interfaces[0].mac, node1());
    assert!(status.counters.replies_sent >= 1, "{status:#?}");
    assert!(status.counters.ignored["not_owned"] >= 1, "{status:#?}");
    assert!(status.owned[0].announcements >= 2, "{status:#?}");

    speaker.release(VIP4);
    assert_eq!(lab.arp(VIP4).unwrap(), None, "released, yet answered");
}

#[test]
fn an_announced_ipv6_address_is_answered_through_its_solicited_node_group() {
    let lab = lab();
    let speaker = Speaker::start(&lab, Host::Node(1));
    assert!(!multicast_macs(&lab, Host::Node(1)).contains(VIP6_GROUP));
    speaker.announce(VIP6);
    // The node has no such address: only the driver's membership puts the group on eth0.
    assert!(
        multicast_macs(&lab, Host::Node(1)).contains(VIP6_GROUP),
        "{}",
        multicast_macs(&lab, Host::Node(1))
    );

    let start = Instant::now();
    assert_eq!(lab.ndp(VIP6).unwrap(), Some(node1()));
    eprintln!("ndisc6 {VIP6} answered in {:?}", start.elapsed());
    assert_eq!(lab.ndp(UNOWNED6).unwrap(), None, "nobody owns {UNOWNED6}");

    speaker.release(VIP6);
    assert!(!multicast_macs(&lab, Host::Node(1)).contains(VIP6_GROUP));
    assert_eq!(lab.ndp(VIP6).unwrap(), None, "released, yet answered");
}

/// Node 1 owns `ip` and the client talks to it; node 1 releases, node 2 takes over, and the
/// client's neighbour entry follows within 1.5 s without the client asking.
///
/// Linux's 1 s `locktime` does not hold this back: it ignores ARP replies within 1 s of the
/// entry's last update, but a gratuitous ARP request (sender IP = target IP) overrides it
/// (`arp_is_garp`), and NDP has no lock time, the Override flag replaces the entry.
fn a_takeover_moves_the_client_neighbour_entry(ip: IpAddr) {
    let lab = lab();
    let first = Speaker::start(&lab, Host::Node(1));
    let second = Speaker::start(&lab, Host::Node(2));
    first.announce(ip);
    let asked = match ip {
        IpAddr::V4(v4) => lab.arp(v4).unwrap(),
        IpAddr::V6(v6) => lab.ndp(v6).unwrap(),
    };
    assert_eq!(asked, Some(node1()));
    assert_eq!(client_resolves(&lab, ip), node1());

    first.release(ip);
    second.announce(ip);
    let moved = time_until_neighbour(&lab, ip, &node2(), Duration::from_millis(1500));
    eprintln!("client neighbour entry for {ip} moved to node2 in {moved:?}");
    let status = second.handle.status();
    assert!(status.counters.announcements_sent >= 1, "{status:#?}");
}

#[test]
fn a_gratuitous_arp_from_the_new_owner_moves_the_client_within_1_5_s() {
    a_takeover_moves_the_client_neighbour_entry(MOVING4.into());
}

#[test]
fn an_unsolicited_advertisement_from_the_new_owner_moves_the_client_within_1_5_s() {
    a_takeover_moves_the_client_neighbour_entry(MOVING6.into());
}

/// 300 frames of garbage from the client's eth0, through a packet socket: ARP with truncated,
/// random or maximum-size bodies, ICMPv6 solicitations with bad IPv6 headers, lengths and
/// checksums, group source MACs, and random bytes the socket filter drops. Prints how many
/// were sent.
///
/// The lab's bridge is a real switch and drops part of it before it reaches a node: frames
/// shorter than 20 bytes, group source MACs, and, where `br_netfilter` is loaded, IPv6 packets
/// whose payload length exceeds the frame; about 100 get through.
const GARBAGE: &str = r#"
import random, socket, struct, time
random.seed(7)
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
me = bytes.fromhex("024e4c000100")
def junk(n): return bytes(random.getrandbits(8) for _ in range(n))
frames = []
for _ in range(100):
    frames.append(b"\xff" * 6 + me + b"\x08\x06" + junk(random.choice([0, 5, 27, 28, 100, 1500])))
for _ in range(100):
    header = b"\x60\0\0\0" + struct.pack("!H", random.choice([0, 24, 32, 2000])) \
        + bytes([58, random.choice([255, 1])]) + junk(32)
    frames.append(b"\x33\x33\xff\x00\x02\x01" + me + b"\x86\xdd" + header + b"\x87" + junk(random.choice([0, 23, 31, 1400])))
for _ in range(50):
    frames.append(b"\xff" * 6 + b"\x03" + junk(5) + b"\x08\x06" + junk(28))
for _ in range(50):
    frames.append(junk(random.randint(14, 1514)))
sent = 0
for frame in frames:
    try:
        s.send(frame[:1514])
        sent += 1
    except OSError:
        pass
    time.sleep(0.001)
print(sent)
"#;

#[test]
fn hostile_frames_are_counted_as_malformed_and_the_driver_keeps_answering() {
    let lab = lab();
    let speaker = Speaker::start(&lab, Host::Node(1));
    speaker.announce(VIP4);
    speaker.announce(VIP6);

    let output = lab
        .command(Host::Client, "python3")
        .args(["-c", GARBAGE])
        .output()
        .expect("python3 runs in the client");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let sent: u32 = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap();
    assert!(sent >= 250, "only {sent} garbage frames went out");

    let status = speaker.wait(
        |status| status.counters.malformed.values().sum::<u64>() >= 80,
        "80 malformed frames counted",
    );
    eprintln!(
        "{sent} garbage frames sent, counted as malformed: {:?}",
        status.counters.malformed
    );
    for label in ["truncated", "unsupported_arp", "bad_checksum", "hop_limit"] {
        assert!(status.counters.malformed.contains_key(label), "{status:#?}");
    }
    assert_eq!(status.counters.replies_sent, 0, "garbage got a reply");

    assert_eq!(lab.arp(VIP4).unwrap(), Some(node1()));
    assert_eq!(lab.ndp(VIP6).unwrap(), Some(node1()));
}

#[test]
fn an_interface_that_went_down_and_up_is_served_again_within_a_second() {
    let lab = lab();
    let speaker = Speaker::start(&lab, Host::Node(1));
    speaker.announce(VIP4);
    assert_eq!(lab.arp(VIP4).unwrap(), Some(node1()));

    let set_eth0 = |state: &str| {
        let status = lab
            .command(Host::Node(1), "ip")
            .args(["link", "set", "eth0", state])
            .status()
            .expect("ip link runs");
        assert!(status.success(), "ip link set eth0 {state}");
    };
    set_eth0("down");
    // The next scan finds eth0 down and closes its sockets, then scans fast for a while.
    speaker.wait(|status| status.interfaces.is_empty(), "eth0 dropped");
    set_eth0("up");
    let start = Instant::now();
    speaker.wait(|status| status.interfaces.len() == 1, "eth0 back");
    let back = start.elapsed();
    eprintln!("eth0 served again {back:?} after it came up");
    assert!(back < Duration::from_secs(1), "eth0 back after {back:?}");
    assert_eq!(lab.arp(VIP4).unwrap(), Some(node1()));
}
