//! Secrets never reach the tree. Two layers, because one alone misses cases:
//!
//! 1. **Structure** ([`Redactor::object`]): a Secret keeps only its name, namespace, type,
//!    labels and owners (no data, no key names); any field called `password` (a BGPPeer's
//!    `spec.password`, in every API version) and the value of any environment variable whose
//!    name says it is a secret become [`REDACTED`]; `managedFields` and the
//!    `kubectl.kubernetes.io/last-applied-configuration` annotation are dropped, since the
//!    latter is a full copy of the object as applied, password included.
//! 2. **Values** ([`Redactor::text`]): every secret value the collection met (BGP passwords,
//!    the data of the Secrets in the MetalLB namespace and of Secrets BGPPeers reference, as
//!    text and as base64) is replaced wherever it occurs in anything written: logs, `show`
//!    output, events, objects. Values shorter than [`MIN_SECRET_LEN`] are not searched for
//!    (they would match ordinary text everywhere); layer 1 still covers them in objects.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};

/// What a redacted value becomes.
pub const REDACTED: &str = "<redacted>";

/// Shortest secret value searched for in free text.
pub const MIN_SECRET_LEN: usize = 4;

/// Annotation kubectl writes with the whole object as last applied.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Environment variable names whose values are treated as secrets.
const SECRET_ENV_WORDS: [&str; 4] = ["PASSWORD", "SECRET", "TOKEN", "KEY"];

/// The redaction rules plus the secret values met so far.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Longest first, so a value containing another is replaced whole.
    values: Vec<String>,
}

impl Redactor {
    /// Remembers a secret value (and its base64 form) to scrub from every text.
    pub fn learn_bytes(&mut self, value: &[u8]) {
        if value.len() < MIN_SECRET_LEN {
            return;
        }
        if let Ok(text) = std::str::from_utf8(value) {
            self.insert(text.to_owned());
        }
        self.insert(STANDARD.encode(value));
    }

    /// Remembers a secret text value.
    pub fn learn(&mut self, value: &str) {
        self.learn_bytes(value.as_bytes());
    }

    fn insert(&mut self, value: String) {
        if value.len() >= MIN_SECRET_LEN && !self.values.contains(&value) {
            self.values.push(value);
            self.values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        }
    }

    /// How many distinct values are scrubbed (text and base64 forms count separately).
    pub fn known(&self) -> usize {
        self.values.len()
    }

    /// Remembers the secret values of `object`: a Secret's data and stringData, and every
    /// `password` field.
    pub fn learn_object(&mut self, object: &Value) {
        if object["kind"] == "Secret" {
            for (_, value) in object["data"].as_object().into_iter().flatten() {
                if let Some(decoded) = value.as_str().and_then(|v| STANDARD.decode(v).ok()) {
                    self.learn_bytes(&decoded);
                }
            }
            for (_, value) in object["stringData"].as_object().into_iter().flatten() {
                if let Some(value) = value.as_str() {
                    self.learn(value);
                }
            }
        }
        let mut passwords = Vec::new();
        collect_passwords(object, &mut passwords);
        for password in passwords {
            self.learn(&password);
        }
    }

    /// `object` with its secrets removed (layer 1, then layer 2 on every string in it).
    pub fn object(&self, object: &Value) -> Value {
        let mut object = if object["kind"] == "Secret" {
            secret_metadata(object)
        } else {
            object.clone()
        };
        if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("managedFields");
            if let Some(annotations) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
                annotations.remove(LAST_APPLIED);
            }
        }
        self.scrub(&mut object);
        object
    }

    /// `text` with every known secret value replaced by [`REDACTED`].
    pub fn text(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for value in &self.values {
            if out.contains(value.as_str()) {
                out = out.replace(value.as_str(), REDACTED);
            }
        }
        out
    }

    fn scrub(&self, value: &mut Value) {
        match value {
            Value::Object(map) => {
                let secret_env = is_secret_env(map);
                for (key, field) in map.iter_mut() {
                    let secret =
                        key.eq_ignore_ascii_case("password") || (secret_env && key == "value");
                    match field {
                        Value::String(s) if secret && !s.is_empty() => *s = REDACTED.to_owned(),
                        _ => self.scrub(field),
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|item| self.scrub(item)),
            Value::String(s) => {
                let scrubbed = self.text(s);
                if scrubbed != *s {
                    *s = scrubbed;
                }
            }
            _ => {}
        }
    }
}

/// An `{name, value}` environment variable whose name says it holds a secret.
fn is_secret_env(map: &Map<String, Value>) -> bool {
    let Some(name) = map.get("name").and_then(Value::as_str) else {
        return false;
    };
    map.contains_key("value")
        && SECRET_ENV_WORDS
            .iter()
            .any(|word| name.to_ascii_uppercase().contains(word))
}

/// A Secret reduced to what identifies it.
fn secret_metadata(secret: &Value) -> Value {
    let meta = &secret["metadata"];
    let mut kept = Map::new();
    for key in [
        "name",
        "namespace",
        "uid",
        "creationTimestamp",
        "labels",
        "ownerReferences",
    ] {
        if let Some(value) = meta.get(key) {
            kept.insert(key.to_owned(), value.clone());
        }
    }
    let mut out = Map::new();
    out.insert("apiVersion".to_owned(), Value::from("v1"));
    out.insert("kind".to_owned(), Value::from("Secret"));
    out.insert("metadata".to_owned(), Value::Object(kept));
    if let Some(type_) = secret.get("type") {
        out.insert("type".to_owned(), type_.clone());
    }
    Value::Object(out)
}

fn collect_passwords(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, field) in map {
                match field {
                    Value::String(s) if key.eq_ignore_ascii_case("password") => {
                        out.push(s.clone());
                    }
                    _ => collect_passwords(field, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_passwords(item, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn peer() -> Value {
        let applied = r#"{"apiVersion":"metallb.io/v1beta2","kind":"BGPPeer","spec":{"password":"s3cret-peer-pw"}}"#;
        json!({
            "apiVersion": "metallb.io/v1beta2",
            "kind": "BGPPeer",
            "metadata": {
                "name": "router",
                "annotations": { LAST_APPLIED: applied, "keep": "me" },
                "managedFields": [{ "manager": "kubectl" }],
            },
            "spec": { "peerAddress": "192.168.250.1", "password": "s3cret-peer-pw" },
        })
    }

    #[test]
    fn a_bgppeer_password_is_redacted_with_the_copy_kubectl_keeps_of_it() {
        let redactor = Redactor::default();
        let out = redactor.object(&peer());
        assert_eq!(out["spec"]["password"], REDACTED);
        assert_eq!(out["spec"]["peerAddress"], "192.168.250.1");
        assert_eq!(out["metadata"]["annotations"], json!({ "keep": "me" }));
        assert!(out["metadata"].get("managedFields").is_none());
        assert!(!out.to_string().contains("s3cret-peer-pw"), "{out}");
    }

    #[test]
    fn a_secret_keeps_its_name_and_loses_its_data_and_key_names() {
        let secret = json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": { "name": "metallb-memberlist", "namespace": "metallb-system",
                          "annotations": { "a": "b" } },
            "type": "Opaque",
            "data": { "secretkey": STANDARD.encode("membership-key-value") },
            "stringData": { "other": "plain-value" },
        });
        let out = Redactor::default().object(&secret);
        assert_eq!(
            out,
            json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": { "name": "metallb-memberlist", "namespace": "metallb-system" },
                "type": "Opaque",
            })
        );
    }

    #[test]
    fn learned_values_are_scrubbed_from_text_in_plain_and_base64_form() {
        let mut redactor = Redactor::default();
        redactor.learn_object(&peer());
        redactor.learn_object(&json!({
            "kind": "Secret",
            "data": { "secretkey": STANDARD.encode([0xde, 0xad, 0xbe, 0xef, 0x01]) },
        }));
        let binary_b64 = STANDARD.encode([0xde, 0xad, 0xbe, 0xef, 0x01]);
        let log = format!(
            "peer up with s3cret-peer-pw; key {binary_b64}; b64 {}",
            STANDARD.encode("s3cret-peer-pw")
        );
        let out = redactor.text(&log);
        assert_eq!(
            out,
            "peer up with <redacted>; key <redacted>; b64 <redacted>"
        );
        assert_eq!(redactor.known(), 3);
    }

    #[test]
    fn learned_values_are_scrubbed_from_every_string_of_an_object() {
        let mut redactor = Redactor::default();
        redactor.learn("known-secret");
        let event = json!({ "kind": "Event", "message": "loaded known-secret from file" });
        assert_eq!(
            redactor.object(&event)["message"],
            "loaded <redacted> from file"
        );
    }

    #[test]
    fn secret_looking_environment_values_are_redacted_and_others_kept() {
        let pod = json!({
            "kind": "Pod",
            "spec": { "containers": [{ "env": [
                { "name": "BGP_PASSWORD", "value": "x" },
                { "name": "METALLB_ML_SECRET_KEY", "value": "y" },
                { "name": "NODE_NAME", "value": "node1" },
                { "name": "POD_NAME", "valueFrom": { "fieldRef": { "fieldPath": "metadata.name" } } },
            ]}]},
        });
        let env = &Redactor::default().object(&pod)["spec"]["containers"][0]["env"];
        assert_eq!(env[0]["value"], REDACTED);
        assert_eq!(env[1]["value"], REDACTED);
        assert_eq!(env[2]["value"], "node1");
        assert_eq!(
            env[3]["valueFrom"]["fieldRef"]["fieldPath"],
            "metadata.name"
        );
    }

    #[test]
    fn values_too_short_to_search_for_are_not_learned() {
        let mut redactor = Redactor::default();
        redactor.learn("abc");
        assert_eq!(redactor.known(), 0);
        assert_eq!(redactor.text("abc"), "abc");
    }
}
