//! The static configuration: what it accepts, how it resolves, and how it refuses bad files.

use std::{net::IpAddr, time::Duration};

use ipnet::IpNet;
use metallb_bgp::{Community, LargeCommunity, PeerAsn};
use metallb_l2::AllowedInterfaces;
use metallb_speaker::config::{ConfigError, Plan, load, parse, resolve};

const EXAMPLE: &str = r#"
routerID: 192.168.250.11
listen: "[::]:179"
bfdProfiles:
  - name: fast
    receiveInterval: 10
    transmitInterval: 20
    detectMultiplier: 4
peers:
  - name: router
    myASN: 64500
    peerASN: 64512
    peerAddress: 192.168.250.1
    holdTime: 9s
    password: labsecret
    bfdProfile: fast
  - name: router6
    myASN: 64500
    peerASN: 64512
    peerAddress: "fd00:250::1"
    enableGracefulRestart: true
bgpAdvertisements:
  - prefixes: [192.168.250.200/32, "fd00:250::200/128"]
    communities: ["64500:100", "large:64500:1:2"]
    peers: [router]
  - prefixes: [192.168.250.200/32]
    communities: ["64500:300"]
    localPref: 150
l2Advertisements:
  - addresses: [192.168.250.201, "fd00:250::201"]
    interfaces: [eth0]
  - addresses: [192.168.250.201]
    interfaces: [eth1]
"#;

fn plan(text: &str) -> Result<Plan, String> {
    parse(text)
        .and_then(|config| resolve(&config))
        .map_err(|refusal| refusal.to_string())
}

fn net(text: &str) -> IpNet {
    text.parse().unwrap()
}

#[test]
fn the_example_resolves_into_peers_routes_and_owned_addresses() {
    let plan = plan(EXAMPLE).unwrap();
    assert_eq!(plan.listen, Some("[::]:179".parse().unwrap()));
    let router = &plan.peers["router"];
    assert_eq!(
        router.options.address,
        "192.168.250.1".parse::<IpAddr>().unwrap()
    );
    assert_eq!(router.options.port, 179);
    assert_eq!(router.options.session.peer_asn, PeerAsn::Exact(64512));
    assert_eq!(router.options.session.hold_time, Duration::from_secs(9));
    assert_eq!(
        router.options.session.router_id.to_string(),
        "192.168.250.11"
    );
    assert_eq!(router.options.password.as_deref(), Some("labsecret"));
    // Graceful restart per peer, with FRR's restart time as MetalLB's FRR mode keeps it.
    assert_eq!(router.options.session.graceful_restart, None);
    assert_eq!(
        plan.peers["router6"].options.session.graceful_restart,
        Some(Duration::from_secs(120))
    );
    let bfd = router.bfd.expect("the peer names a BFD profile");
    assert_eq!(bfd.required_min_rx, Duration::from_millis(10));
    assert_eq!(bfd.desired_min_tx, Duration::from_millis(20));
    assert_eq!(bfd.detect_multiplier.get(), 4);

    // Both advertisements reach `router`: their communities add up.
    let v4 = &router.routes[&net("192.168.250.200/32")];
    assert_eq!(
        v4.communities.iter().copied().collect::<Vec<_>>(),
        [Community::new(64500, 100), Community::new(64500, 300)]
    );
    assert_eq!(v4.local_pref, Some(150));
    assert!(v4.large_communities.contains(&LargeCommunity {
        global_admin: 64500,
        local_data_1: 1,
        local_data_2: 2
    }));
    // Only the second advertisement (all peers) reaches `router6`.
    let router6 = &plan.peers["router6"];
    assert_eq!(router6.routes.len(), 1);
    assert!(router6.bfd.is_none());

    let v4: IpAddr = "192.168.250.201".parse().unwrap();
    assert_eq!(
        plan.l2[&v4],
        ["eth0", "eth1"].into_iter().collect::<AllowedInterfaces>()
    );
    assert_eq!(plan.l2.len(), 2);
}

#[test]
fn an_empty_file_is_a_speaker_with_nothing_to_do() {
    assert_eq!(plan("").unwrap(), Plan::default());
}

#[test]
fn a_misspelled_field_is_refused_by_its_path() {
    let text = EXAMPLE.replace("holdTime: 9s", "holdTiem: 9s");
    assert_eq!(plan(&text).unwrap_err(), "peers[0].holdTiem");
    let text = EXAMPLE.replace("listen:", "lisen:");
    assert_eq!(plan(&text).unwrap_err(), "lisen");
}

#[test]
fn the_shared_validation_refuses_a_bad_hold_time_naming_peer_and_field() {
    let text = EXAMPLE.replace("holdTime: 9s", "holdTime: 2s");
    let error = plan(&text).unwrap_err();
    assert!(
        error.starts_with("peers[0]: bgppeer \"router\": spec.holdTime: "),
        "{error}"
    );
}

#[test]
fn a_bfd_profile_out_of_range_is_refused() {
    let text = EXAMPLE.replace("detectMultiplier: 4", "detectMultiplier: 1");
    let error = plan(&text).unwrap_err();
    assert!(error.contains("bfdProfiles[0]: bfdprofile \"fast\": spec.detectMultiplier: invalid detect multiplier value 1"), "{error}");
}

#[test]
fn references_to_missing_objects_are_refused() {
    let error = plan(&EXAMPLE.replace("bfdProfile: fast", "bfdProfile: slow")).unwrap_err();
    assert!(
        error.contains("spec.bfdProfile: no bfd profile named \"slow\""),
        "{error}"
    );
    let error = plan(&EXAMPLE.replace("peers: [router]", "peers: [nobody]")).unwrap_err();
    assert_eq!(
        error,
        "bgpAdvertisements[0]: spec.peers[0]: no peer named \"nobody\""
    );
}

#[test]
fn a_community_alias_cannot_be_resolved_without_community_objects() {
    let error = plan(&EXAMPLE.replace("\"64500:300\"", "no-export")).unwrap_err();
    assert!(
        error.starts_with(
            "bgpAdvertisements[1]: spec.communities[0]: community alias \"no-export\""
        ),
        "{error}"
    );
    let error = plan(&EXAMPLE.replace("\"64500:300\"", "\"70000:1\"")).unwrap_err();
    assert!(error.contains("must be 0-65535"), "{error}");
}

#[test]
fn a_file_that_is_not_yaml_or_has_wrong_types_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("speaker.yaml");
    std::fs::write(&path, "peers: [\n").unwrap();
    let error = load(&path).unwrap_err();
    assert!(matches!(error, ConfigError::Syntax { .. }), "{error:?}");
    assert!(error.to_string().starts_with(&path.display().to_string()));

    std::fs::write(&path, "peers:\n  - name: r\n    myASN: many\n").unwrap();
    assert!(matches!(
        load(&path).unwrap_err(),
        ConfigError::Syntax { .. }
    ));
    assert!(matches!(
        load(&dir.path().join("missing.yaml")).unwrap_err(),
        ConfigError::Read { .. }
    ));
}

/// The `static_config` fuzz target's check on stable Rust: its corpus and every truncation and
/// many single-character changes of it are accepted or refused, never a panic.
#[test]
fn truncated_and_mangled_files_are_refused_without_panicking() {
    let corpus = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus/static_config");
    let mut texts: Vec<String> = vec![EXAMPLE.to_owned()];
    for entry in std::fs::read_dir(corpus).unwrap() {
        texts.push(std::fs::read_to_string(entry.unwrap().path()).unwrap());
    }
    let mut checked = 0;
    for text in &texts {
        let boundaries: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
        for &end in &boundaries {
            let _ = plan(&text[..end]);
            checked += 1;
        }
        for (n, &at) in boundaries.iter().enumerate().step_by(3) {
            let replacement = ["", ":", "-", "[", "\"", "{", "\n  ", "9999999999999"][n % 8];
            let mut mangled = text.clone();
            let len = mangled[at..].chars().next().map_or(0, char::len_utf8);
            mangled.replace_range(at..at + len, replacement);
            let _ = plan(&mangled);
            checked += 1;
        }
    }
    assert!(checked > 1000, "only {checked} variants");
}
