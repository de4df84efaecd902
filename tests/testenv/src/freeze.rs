//! The leader-freeze scenario shared by the operator's and the controller's tests: replica A
//! leads through a [`FreezableProxy`], replica B waits; the proxy freezes; A must stop acting
//! before B takes over, and before A's Lease could have expired.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::{ControlPlane, FreezableProxy, Watched, wait_for};

/// What the scenario saw; the replicas and the proxy live as long as it does.
#[derive(Debug)]
pub struct Takeover {
    /// Freeze -> A stopped acting.
    pub stopped_after: Duration,
    /// Freeze -> B leads.
    pub taken_after: Duration,
    /// The frozen former leader.
    pub a: Watched,
    /// The new leader.
    pub b: Watched,
    /// Kept so A's connections stay frozen.
    pub proxy: FreezableProxy,
}

impl Takeover {
    /// Both replicas' output, for failure messages.
    pub fn report(&self) -> String {
        format!("{}{}", self.a.output(), self.b.output())
    }
}

/// The holder of the Lease `lease` in `namespace`.
pub fn lease_holder(cp: &ControlPlane, namespace: &str, lease: &str) -> Option<String> {
    let jsonpath = "jsonpath={.spec.holderIdentity}";
    let args = ["-n", namespace, "get", "lease", lease, "-o", jsonpath];
    cp.kubectl(args).ok().filter(|h| !h.is_empty())
}

/// Runs the scenario. `start(identity, kubeconfig)` starts a replica; `stopped(a)` says when A
/// stopped acting as leader (its exit, or the line it logs). Panics with both replicas' output
/// when A still acts when B leads, or acts for a whole Lease duration after the freeze.
pub fn leader_freeze(
    cp: &ControlPlane,
    namespace: &str,
    lease: &str,
    lease_duration: Duration,
    start: impl Fn(&str, &Path) -> Watched,
    stopped: impl Fn(&Watched) -> Option<Instant>,
) -> Takeover {
    let upstream: SocketAddr = cp
        .server()
        .trim_start_matches("https://")
        .parse()
        .expect("the API server listens on an address");
    let proxy = FreezableProxy::start(upstream).unwrap();
    let proxied = proxy.kubeconfig(cp.kubeconfig_path(), cp.server()).unwrap();
    let poll = Duration::from_millis(10);

    let a = start("replica-a", &proxied);
    let leads = wait_for(Duration::from_secs(30), poll, || {
        (lease_holder(cp, namespace, lease).as_deref() == Some("replica-a")).then_some(())
    });
    assert!(leads.is_some(), "replica-a never led\n{}", a.output());
    let b = start("replica-b", cp.kubeconfig_path());
    let waits = wait_for(Duration::from_secs(20), poll, || {
        b.printed("waiting for the Lease")
            .or_else(|| b.printed("waiting for the lease"))
            .or_else(|| b.printed("waiting for the leader lease"))
    });
    assert!(waits.is_some(), "replica-b never waited\n{}", b.output());

    let frozen = Instant::now();
    proxy.freeze();
    let limit = lease_duration * 4;
    let taken = wait_for(limit, poll, || b.printed("became leader"));
    let report = || format!("{}{}", a.output(), b.output());
    let taken = taken.unwrap_or_else(|| panic!("replica-b never led\n{}", report()));
    let Some(a_stopped) = stopped(&a) else {
        panic!(
            "replica-b leads {:?} after the freeze while replica-a still acts as leader\n{}",
            taken - frozen,
            report()
        );
    };
    assert!(
        a_stopped < taken,
        "replica-a stopped {:?} after the freeze, replica-b led {:?} after it\n{}",
        a_stopped - frozen,
        taken - frozen,
        report()
    );
    assert!(
        a_stopped - frozen < lease_duration,
        "replica-a acted {:?} past the freeze, longer than a Lease lasts\n{}",
        a_stopped - frozen,
        report()
    );
    Takeover {
        stopped_after: a_stopped - frozen,
        taken_after: taken - frozen,
        a,
        b,
        proxy,
    }
}
