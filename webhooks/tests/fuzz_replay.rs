//! Replays the `admission_review` fuzz corpus and thousands of deterministic mutations of it
//! through the review handler on stable Rust: every input gets a verdict or an error, never a
//! panic, and quickly.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use metallb_mutate::{Rng, mutate};
use metallb_webhooks::{StaticSnapshot, Target, review};
use serde_json::Value;

fn corpus() -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/admission_review");
    let seeds: Vec<Vec<u8>> = metallb_mutate::corpus(&dir)
        .into_iter()
        .map(|(_, data)| data)
        .collect();
    assert!(
        seeds.len() >= 8,
        "the corpus in {} is missing seeds",
        dir.display()
    );
    seeds
}

fn existing() -> StaticSnapshot {
    let samples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../manifests/samples");
    let mut snapshot = metallb_api::validation::Snapshot {
        namespace: "metallb-system".into(),
        ..Default::default()
    };
    for entry in std::fs::read_dir(samples).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        let value: Value = serde_saphyr::from_str(&text).unwrap();
        match (value["apiVersion"].as_str(), value["kind"].as_str()) {
            (Some("metallb.io/v1beta1"), Some("AddressPool")) => snapshot
                .address_pools
                .push(serde_json::from_value(value).unwrap()),
            (_, Some("IPAddressPool")) => snapshot
                .ip_address_pools
                .push(serde_json::from_value(value).unwrap()),
            (Some("metallb.io/v1beta2"), Some("BGPPeer")) => snapshot
                .bgp_peers
                .push(serde_json::from_value(value).unwrap()),
            (_, Some("Community")) => snapshot
                .communities
                .push(serde_json::from_value(value).unwrap()),
            _ => {}
        }
    }
    StaticSnapshot(snapshot)
}

/// Replaces one random JSON node with a value of another type or shape.
fn mutate_json(value: &mut Value, rng: &mut Rng) {
    let replacements = [
        Value::Null,
        Value::from(-1),
        Value::from(u64::MAX),
        Value::from(1e300),
        Value::from(""),
        Value::from("10.0.0.0/8"),
        Value::from("large:1:2:3"),
        Value::from("9999999h"),
        serde_json::json!([]),
        serde_json::json!({}),
        serde_json::json!(["1.1.1.1-1.1.1.0", "::/0"]),
    ];
    let mut node = value;
    loop {
        let children = match node {
            Value::Object(map) if !map.is_empty() => map.len(),
            Value::Array(items) if !items.is_empty() => items.len(),
            _ => 0,
        };
        if children == 0 || rng.below(4) == 0 {
            *node = replacements[rng.below(replacements.len())].clone();
            return;
        }
        let pick = rng.below(children);
        node = match node {
            Value::Object(map) => map.values_mut().nth(pick).unwrap(),
            Value::Array(items) => &mut items[pick],
            _ => unreachable!("only containers have children"),
        };
    }
}

/// JSON's own hazards, which random bytes hardly ever spell: nesting deep enough to strain a
/// recursive parser, and strings holding an escaped NUL and a byte that is not UTF-8.
fn json_hazards(rng: &mut Rng, bytes: &mut Vec<u8>) -> bool {
    let at = rng.below(bytes.len() + 1);
    if rng.below(2) == 0 {
        bytes.splice(at..at, std::iter::repeat_n(b'[', rng.below(2000)));
    } else {
        bytes.splice(at..at, b"\"\\u0000\xff\"".iter().copied());
    }
    true
}

fn run(input: &[u8], cache: &StaticSnapshot) {
    let Some((&selector, body)) = input.split_first() else {
        return;
    };
    let target = Target::ALL[usize::from(selector) % Target::ALL.len()];
    let started = Instant::now();
    let _ = review(target, body, cache);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "one review took {:?}",
        started.elapsed()
    );
}

#[test]
fn the_corpus_and_its_mutations_never_panic_the_review_handler() {
    let cache = existing();
    let seeds = corpus();
    let mut rng = Rng::new(0x5eed_1234_abcd_0001);
    let (mut verdicts, mut errors) = (0, 0);
    for seed in &seeds {
        run(seed, &cache);
    }
    for iteration in 0..4000 {
        let seed = &seeds[iteration % seeds.len()];
        let mut input = seed.clone();
        let parsed = input
            .get(1..)
            .and_then(|b| serde_json::from_slice::<Value>(b).ok());
        match parsed {
            Some(mut value) if iteration % 3 != 0 => {
                for _ in 0..=rng.below(3) {
                    mutate_json(&mut value, &mut rng);
                }
                input.truncate(1);
                input.extend(serde_json::to_vec(&value).unwrap());
            }
            _ => mutate(&mut rng, &mut input, json_hazards),
        }
        let target =
            Target::ALL[usize::from(input.first().copied().unwrap_or(0)) % Target::ALL.len()];
        match input
            .split_first()
            .map(|(_, body)| review(target, body, &cache))
        {
            Some(Ok(_)) => verdicts += 1,
            Some(Err(_)) | None => errors += 1,
        }
        run(&input, &cache);
    }
    // Both outcomes must be reached, or the mutations are not exercising the handler.
    assert!(
        verdicts > 100 && errors > 100,
        "verdicts {verdicts}, errors {errors}"
    );
}
