//! The control socket behind `metallb-speaker show`: one request per connection, a line naming
//! `bgp`, `bfd`, `l2`, `liveness`, `all` or `service NAMESPACE/NAME`; the answer is one line
//! of JSON. `liveness` is who counts as alive, fenced or gone as this speaker sees it, its own
//! state and why it drains, as the node's task last published it. A
//! service is explained from the planner's recorded reasons: which advertisement and rule
//! decided for this node, who won the layer 2 election, which peers get which prefixes.

use std::path::Path;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use metallb_plan::{Plan, Reason, ServiceKey, ServicePlan};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;

use crate::bfd::BfdHandle;
use crate::bgp::BgpHandle;
use crate::l2::L2Handle;

/// The planner's latest output (none in the static mode).
pub type PlanSlot = Arc<RwLock<Option<Arc<Plan>>>>;

/// The liveness view, as JSON (null in the static mode).
pub type LivenessSlot = Arc<RwLock<Value>>;

/// Longest request line: `service ` and a namespace and a name.
const REQUEST_LIMIT: u64 = 512;

/// What the answers are read from.
#[derive(Debug, Clone)]
pub struct Handles {
    /// The ARP/NDP driver.
    pub l2: L2Handle,
    /// The BFD driver.
    pub bfd: BfdHandle,
    /// The BGP driver.
    pub bgp: BgpHandle,
    /// The planner's latest output.
    pub plan: PlanSlot,
    /// The liveness view.
    pub liveness: LivenessSlot,
}

/// Binds the socket at `path`, replacing one a killed speaker left behind.
pub fn bind(path: &Path) -> anyhow::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    // A socket left by a speaker that was killed; a live one would still answer.
    if std::os::unix::net::UnixStream::connect(path).is_err() {
        let _ = std::fs::remove_file(path);
    }
    UnixListener::bind(path)
        .with_context(|| format!("binding the control socket {}", path.display()))
}

/// Answers requests until the task is dropped.
pub async fn serve(listener: UnixListener, handles: Handles) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let handles = handles.clone();
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut line = String::new();
            let mut reader = BufReader::new(read.take(REQUEST_LIMIT));
            let read = reader.read_line(&mut line);
            if tokio::time::timeout(Duration::from_secs(2), read)
                .await
                .is_err()
            {
                return;
            }
            let answer = answer(line.trim(), &handles);
            let _ = write.write_all(format!("{answer}\n").as_bytes()).await;
        });
    }
}

fn answer(request: &str, handles: &Handles) -> Value {
    let state = |what: &str| -> Value {
        match what {
            "bgp" => json!(handles.bgp.status()),
            "bfd" => json!(handles.bfd.status()),
            "liveness" => {
                let view = handles.liveness.read();
                view.unwrap_or_else(PoisonError::into_inner).clone()
            }
            _ => json!(handles.l2.status()),
        }
    };
    match request.split_once(' ') {
        Some(("service", name)) => {
            let plan = handles.plan.read().unwrap_or_else(PoisonError::into_inner);
            match plan.as_deref() {
                Some(plan) => explain(plan, name.trim()),
                None => json!({ "error": "this speaker runs from a static file: no services" }),
            }
        }
        _ => match request {
            "all" => json!({
                "bgp": state("bgp"),
                "bfd": state("bfd"),
                "l2": state("l2"),
                "liveness": state("liveness"),
            }),
            "bgp" | "bfd" | "l2" => state(request),
            "liveness" => match state(request) {
                Value::Null => {
                    json!({ "error": "this speaker runs from a static file: no liveness" })
                }
                view => view,
            },
            other => json!({
                "error": format!("unknown request {other:?}: ask for bgp, bfd, l2, liveness, all or service NAMESPACE/NAME")
            }),
        },
    }
}

/// What this node does for the service `name` (`NAMESPACE/NAME`) and why.
pub fn explain(plan: &Plan, name: &str) -> Value {
    let Some((namespace, service)) = name.split_once('/') else {
        return json!({ "error": format!("{name:?}: expected NAMESPACE/NAME") });
    };
    let key = ServiceKey::new(namespace, service);
    let Some(planned) = plan.explain(&key) else {
        return json!({ "error": format!("no LoadBalancer Service {name} in the cluster") });
    };
    json!({
        "service": name,
        "node": plan.node,
        "explanation": lines(planned, &plan.node),
        "plan": planned,
    })
}

/// The plan in sentences, one per protocol and peer.
fn lines(planned: &ServicePlan, node: &str) -> Vec<String> {
    let planned = match planned {
        ServicePlan::NotOurs => {
            return vec!["its loadBalancerClass belongs to another implementation".into()];
        }
        ServicePlan::NoIngress => return vec!["it has no ingress IP yet".into()],
        ServicePlan::NoPool { ips } => return vec![format!("no pool holds all of {ips:?}")],
        ServicePlan::NoAdvertisement { pool, .. } => {
            return vec![format!(
                "no L2Advertisement or BGPAdvertisement selects pool {pool:?}"
            )];
        }
        ServicePlan::Planned(planned) => planned,
    };
    let ips: Vec<String> = planned.ips.iter().map(ToString::to_string).collect();
    let mut out = vec![format!(
        "ips {} from pool {:?}",
        ips.join(", "),
        planned.pool
    )];
    match &planned.layer2 {
        None => out.push("layer2: no L2Advertisement selects the pool".into()),
        Some(l2) => {
            let owner = l2.owner.as_deref().unwrap_or("nobody");
            let verdict = match &l2.reason {
                Reason::Announce | Reason::AnnounceDraining { .. } => {
                    format!("{node} announces: {}", l2.reason)
                }
                reason => format!("{node} does not announce: {reason}"),
            };
            out.push(format!(
                "layer2: {verdict}; owner {owner} among {} candidates",
                l2.candidates
            ));
        }
    }
    match &planned.bgp {
        None => out.push("bgp: no BGPAdvertisement selects the pool".into()),
        Some(bgp) => {
            for (peer, plan) in &bgp.peers {
                let prefixes: Vec<String> = plan.routes.keys().map(ToString::to_string).collect();
                let sent = if prefixes.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", prefixes.join(", "))
                };
                out.push(format!("bgp: peer {peer}: {}{sent}", plan.reason));
            }
        }
    }
    out
}
