//! Table tests for the fencing and isolation rules (`metallb_liveness::rules`), one table per
//! rule, and for the order in which `decide` applies them.

#![expect(
    clippy::disallowed_methods,
    reason = "simulated time starts at Instant::now()"
)]

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use metallb_liveness::{
    Basis, Config, LeaseView, OwnState,
    rules::{self, Claim, Facts},
};

fn s(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A clock far enough from its origin that every offset below is in range.
fn clock() -> (Instant, Instant) {
    let origin = Instant::now();
    (origin, origin + s(100))
}

#[test]
fn rule_1_a_peer_vouches_only_with_a_recent_claim_of_a_recent_renewal() {
    let config = Config::default();
    let (_, now) = clock();
    // (peer's claimed age in ms, heard how many ms ago, vouches?)
    let table: &[(Option<u64>, u64, bool)] = &[
        (Some(1_000), 50, true),
        (Some(4_900), 50, true),   // within two renewal intervals (5 s)
        (Some(4_960), 50, false),  // claim + time since reaches 5 s
        (Some(100), 2_400, true),  // heard within a renewal interval
        (Some(100), 2_600, false), // heard too long ago
        (None, 50, false),         // the peer never renewed
        (Some(6_600), 50, false),  // outage, the peer renewed one phase after us
    ];
    for &(age, heard_ago, vouches) in table {
        let claims = BTreeMap::from([(
            "peer".to_owned(),
            Claim {
                at: now - ms(heard_ago),
                renewal_age: age.map(ms),
            },
        )]);
        let vouch = rules::vouch(&config, now, &claims);
        assert_eq!(
            vouch.is_some(),
            vouches,
            "claimed {age:?}, heard {heard_ago} ms ago"
        );
    }
}

#[test]
fn rule_1_fences_a_stale_node_only_after_peers_vouched_for_a_renewal_and_a_half() {
    let config = Config::default();
    let (_, now) = clock();
    let vouch = Some(("peer".to_owned(), ms(500)));
    // (own renewal age, vouching for how long, vouch?, fenced?)
    let table: &[(Option<u64>, Option<u64>, bool, bool)] = &[
        (Some(2_000), Some(60_000), true, false), // both fresh
        (Some(8_999), Some(60_000), true, false), // just below lease - margin
        (Some(9_000), Some(60_000), true, true),  // at lease - margin: fenced
        (None, Some(60_000), true, true),         // never renewed while peers can
        (Some(9_500), None, false, false),        // nobody vouches: outage
        (Some(9_500), Some(3_000), true, false),  // outage ending: wait for our renewal
        (Some(9_500), Some(3_750), true, true),   // it did not come: fenced
    ];
    for &(own, vouching_for, vouches, fenced) in table {
        let since = vouching_for.map(|v| now - ms(v));
        let peer = if vouches { vouch.clone() } else { None };
        let reason = rules::fence(&config, now, own.map(ms), peer, since);
        assert_eq!(
            reason.is_some(),
            fenced,
            "own {own:?}, vouching for {vouching_for:?}"
        );
        if let Some(reason) = reason {
            assert_eq!(reason.vouched_by, "peer");
        }
    }
}

fn lease(renewed_at: Instant, peers: Option<u16>) -> LeaseView {
    LeaseView {
        renewed_at,
        expires_at: renewed_at + s(10),
        peers,
    }
}

#[test]
fn a_lease_is_held_against_its_holder_only_when_it_expired_while_the_api_worked() {
    let (origin, _) = clock();
    let view = lease(origin, None);
    assert!(
        !view.proven_stale(None),
        "never renewed ourselves: no proof"
    );
    assert!(
        !view.proven_stale(Some(origin + s(9))),
        "not expired at our last renewal"
    );
    assert!(view.proven_stale(Some(origin + s(10))));
    assert!(view.proven_stale(Some(origin + s(12))));
}

#[test]
fn rule_3_isolates_a_deaf_node_when_a_lease_shows_the_others_hear_each_other() {
    let config = Config::default();
    let (origin, _) = clock();
    let silence = origin + s(50);
    let before = silence - s(1);
    let after = silence + config.detection() + ms(1);
    // (lease written, peers it carries, our last renewal, isolated?)
    let table: &[(Instant, Option<u16>, Option<Instant>, bool)] = &[
        (before, Some(2), Some(before), true), // it heard two: someone besides us
        (before, Some(1), Some(before), false), // it heard one, maybe only us (2-node crash)
        (after, Some(1), Some(after), true),   // after our silence it still hears one
        (after, Some(0), Some(after), false),  // it hears nobody either
        (before, None, Some(before), false),   // an old speaker: no count
        (before, Some(5), Some(before + s(11)), false), // proven stale: no evidence
        (before, Some(5), None, true),         // we never renewed: not proven stale
    ];
    for &(written, peers, last_renewal, isolated) in table {
        let leases = BTreeMap::from([
            ("me".to_owned(), lease(written, Some(0))),
            ("other".to_owned(), lease(written, peers)),
        ]);
        let reason = rules::isolation(&config, "me", &leases, last_renewal, silence);
        assert_eq!(
            reason.is_some(),
            isolated,
            "written {:?} after silence, peers {peers:?}",
            written.checked_duration_since(silence)
        );
    }
}

#[test]
fn rule_4_needs_every_live_lease_written_after_our_silence_to_hear_nobody() {
    let config = Config::default();
    let (origin, _) = clock();
    let silence = origin + s(50);
    let after = silence + config.detection() + ms(1);
    let before = silence - s(1);
    let deaf = |at| lease(at, Some(0));
    let cases: &[(&[LeaseView], bool)] = &[
        (&[deaf(after), deaf(after)], true),
        (&[deaf(after), deaf(before)], false), // one has not written since: wait
        (&[deaf(after), lease(after, Some(1))], false), // one hears someone
        (&[], false),                          // alone: nothing to fall back to
    ];
    for (i, (others, expected)) in cases.iter().enumerate() {
        let leases: BTreeMap<String, LeaseView> = others
            .iter()
            .enumerate()
            .map(|(j, l)| (format!("n{j}"), *l))
            .collect();
        let got = rules::nobody_hears_anybody(&config, "me", &leases, Some(after), silence);
        assert_eq!(got, *expected, "case {i}");
    }
}

#[test]
fn decide_applies_fenced_before_isolated_before_the_lease_fallback() {
    let config = Config::default();
    let (origin, now) = clock();
    let silence = now - s(3);
    let vouch = Some(("peer".to_owned(), ms(500)));
    let vouching = Some(origin);
    let hearing = BTreeMap::from([("peer".to_owned(), lease(now - s(1), Some(3)))]);
    let deaf = BTreeMap::from([("peer".to_owned(), lease(now - s(1), Some(0)))]);
    let stale = Some(now - s(9));
    let fresh = Some(now - s(1));
    #[rustfmt::skip]
    let none = None;
    // (own renewal, vouching peer, vouching since, leases, silence since, state, basis)
    let cases = [
        // Stale, vouched for, deaf: fenced wins.
        (
            stale,
            &vouch,
            vouching,
            &hearing,
            Some(silence),
            "fenced",
            Basis::Heartbeats,
        ),
        (
            fresh,
            &none,
            None,
            &hearing,
            Some(silence),
            "isolated",
            Basis::Heartbeats,
        ),
        (
            fresh,
            &none,
            None,
            &deaf,
            Some(silence),
            "normal",
            Basis::Leases,
        ),
        (
            fresh,
            &none,
            None,
            &hearing,
            None,
            "normal",
            Basis::Heartbeats,
        ),
        // Outage: stale, nobody vouches, hearing peers: nothing changes.
        (
            Some(origin),
            &none,
            None,
            &hearing,
            None,
            "normal",
            Basis::Heartbeats,
        ),
    ];
    for (last_renewal, vouch, vouching_since, leases, silence_since, own, basis) in cases {
        let facts = Facts {
            me: "me",
            now,
            last_renewal,
            vouch: vouch.clone(),
            vouching_since,
            leases,
            silence_since,
        };
        let (state, got_basis) = rules::decide(&config, &facts);
        let name = match state {
            OwnState::Normal => "normal",
            OwnState::Fenced { .. } => "fenced",
            OwnState::Isolated { .. } => "isolated",
        };
        assert_eq!((name, got_basis), (own, basis), "{facts:?}");
    }
}

#[test]
fn config_validation_refuses_timers_that_cannot_work() {
    let good = Config::default();
    assert_eq!(good.validate(), Ok(()));
    assert!(
        good.worst_detection() < s(1),
        "defaults detect within a second"
    );
    assert_eq!(good.api_stale_after(), s(9));
    assert!(Config { missed: 0, ..good }.validate().is_err());
    assert!(
        Config {
            min_gap: ms(100),
            ..good
        }
        .validate()
        .is_err()
    );
    assert!(
        Config {
            fence_margin: s(3),
            ..good
        }
        .validate()
        .is_err()
    );
    assert!(
        Config {
            fence_margin: ms(2_400),
            ..good
        }
        .validate()
        .is_ok()
    );
}
