//! The reconciler against the real control plane: each test runs its own controller (the
//! library's, in this process) for its own namespace. No kubelet and no garbage collector run
//! there, so tests set operand status themselves and check owner references instead of
//! garbage collection.

use std::{
    future::Future,
    path::PathBuf,
    sync::{Arc, OnceLock},
    time::{Duration, Instant},
};

use k8s_openapi::api::{
    apps::v1::{DaemonSet, Deployment},
    core::v1::{ConfigMap, Secret, Service},
};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams},
};
use metallb_api::{condition::ConditionStatus, metallb::MetalLB};
use metallb_operator::{
    controller::{self, Context},
    metrics::Metrics,
    render::OperandSettings,
};
use metallb_runtime::cli::ClientArgs;
use metallb_testenv::{ControlPlane, test_name};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(20);

fn control_plane() -> &'static ControlPlane {
    static CRDS: OnceLock<()> = OnceLock::new();
    let cp = ControlPlane::shared();
    CRDS.get_or_init(|| {
        cp.install_crds().unwrap();
    });
    cp
}

/// A namespace with a running controller, and a client for it.
struct Operator {
    namespace: String,
    client: Client,
}

impl Operator {
    async fn start(test: &str) -> Operator {
        let cp = control_plane();
        let namespace = tokio::task::block_in_place(|| cp.namespace(test))
            .unwrap()
            .name()
            .to_owned();
        let args = ClientArgs {
            kubeconfig: Some(cp.kubeconfig_path().to_owned()),
        };
        let client = args.client().await.unwrap();
        let ctx = Arc::new(Context {
            client: client.clone(),
            settings: OperandSettings::new(&namespace),
            metrics: Arc::new(Metrics::register(&mut Default::default())),
        });
        // Stops with the test's runtime.
        tokio::spawn(controller::run(ctx, std::future::pending()));
        Operator { namespace, client }
    }

    fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Applies the sample MetalLB resource, renamed to `name`, in this namespace (server-side
    /// apply as an administrator would; kubectl would add seconds of discovery to each test).
    async fn apply_sample(&self, name: &str) {
        let text = std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../manifests/samples/metallb.yaml"),
        )
        .unwrap();
        let mut sample: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
        sample["metadata"]["name"] = name.into();
        sample["metadata"]["namespace"] = self.namespace.as_str().into();
        self.api::<MetalLB>()
            .patch(
                name,
                &PatchParams::apply("administrator"),
                &Patch::Apply(&sample),
            )
            .await
            .unwrap();
    }

    async fn patch_spec(&self, name: &str, spec: serde_json::Value) {
        self.api::<MetalLB>()
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "spec": spec })),
            )
            .await
            .unwrap();
    }

    async fn metallb(&self, name: &str) -> MetalLB {
        self.api::<MetalLB>().get(name).await.unwrap()
    }

    /// Waits until condition `type_` of `name` is True, and returns its reason and message.
    async fn wait_for_condition(&self, name: &str, type_: &str) -> (String, String) {
        eventually(&format!("{type_}=True on {name}"), || async {
            let metallb = self.metallb(name).await;
            let conditions = metallb.status?.conditions?;
            let c = conditions.into_iter().find(|c| c.type_ == type_)?;
            (c.status == ConditionStatus::True).then_some((c.reason, c.message))
        })
        .await
    }

    async fn wait_for<K>(&self, name: &str, check: impl Fn(&K) -> bool) -> K
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + std::fmt::Debug
            + serde::de::DeserializeOwned,
    {
        let api = self.api::<K>();
        eventually(&format!("{} {name}", K::kind(&())), || async {
            api.get_opt(name).await.unwrap().filter(|o| check(o))
        })
        .await
    }
}

/// Polls `f` until it returns something, or fails the test after [`WAIT`].
async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(value) = f().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn speaker_args(ds: &DaemonSet) -> Vec<String> {
    ds.spec.template.spec.as_ref().unwrap().containers[0]
        .args
        .clone()
        .unwrap_or_default()
}

fn controller_args(d: &Deployment) -> Vec<String> {
    d.spec.template.spec.as_ref().unwrap().containers[0]
        .args
        .clone()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applying_the_sample_creates_the_operands_the_spec_asks_for() {
    let op = Operator::start(test_name!()).await;
    op.apply_sample("metallb").await;
    let speaker = op.wait_for::<DaemonSet>("speaker", |_| true).await;
    let pod = speaker.spec.template.spec.as_ref().unwrap();
    assert_eq!(pod.host_network, Some(true));
    assert_eq!(
        pod.node_selector.as_ref().unwrap()["node-role.kubernetes.io/worker"],
        ""
    );
    assert_eq!(
        pod.node_selector.as_ref().unwrap()["kubernetes.io/os"],
        "linux"
    );
    let tolerations: Vec<_> = pod
        .tolerations
        .iter()
        .flatten()
        .map(|t| t.key.clone().unwrap_or_default())
        .collect();
    assert_eq!(
        tolerations,
        [
            "node-role.kubernetes.io/master",
            "node-role.kubernetes.io/control-plane",
            "Example"
        ]
    );
    assert_eq!(pod.termination_grace_period_seconds, Some(15));
    assert!(
        speaker_args(&speaker).contains(&"--drain-taint-keys=example.com/maintenance".to_owned())
    );

    let controller = op.wait_for::<Deployment>("controller", |_| true).await;
    let pod = controller.spec.template.spec.as_ref().unwrap();
    assert_eq!(
        pod.priority_class_name.as_deref(),
        Some("system-cluster-critical")
    );
    assert_eq!(
        controller_args(&controller),
        ["--log-level=info", "--metrics-port=7472"]
    );

    op.wait_for::<Secret>("metallb-memberlist", |_| true).await;
    op.wait_for::<ConfigMap>("metallb-excludel2", |_| true)
        .await;
    op.wait_for::<Service>("controller-monitor-service", |_| true)
        .await;
    op.wait_for::<Service>("speaker-monitor-service", |_| true)
        .await;
    let (reason, message) = op.wait_for_condition("metallb", "Progressing").await;
    assert_eq!(reason, "Progressing");
    // No kube-controller-manager runs here, so nothing ever observes the new objects.
    assert!(
        message.contains("generation 1 not observed yet"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_node_selector_tolerations_log_level_and_lb_class_updates_the_operands() {
    let op = Operator::start(test_name!()).await;
    op.apply_sample("metallb").await;
    op.wait_for::<DaemonSet>("speaker", |_| true).await;
    op.patch_spec(
        "metallb",
        json!({
            "logLevel": "debug",
            "loadBalancerClass": "example.com/metallb",
            "nodeSelector": {"node-role.kubernetes.io/worker": null, "rack": "r1"},
            "speakerTolerations": [{"key": "edge", "operator": "Exists", "effect": "NoSchedule"}],
            "controllerTolerations": [{"key": "infra", "operator": "Exists", "effect": "NoSchedule"}],
        }),
    )
    .await;
    let speaker = op
        .wait_for::<DaemonSet>("speaker", |ds| {
            speaker_args(ds).contains(&"--log-level=debug".to_owned())
        })
        .await;
    assert!(speaker_args(&speaker).contains(&"--lb-class=example.com/metallb".to_owned()));
    let pod = speaker.spec.template.spec.unwrap();
    let selector = pod.node_selector.unwrap();
    assert_eq!(selector.get("rack").map(String::as_str), Some("r1"));
    assert!(
        !selector.contains_key("node-role.kubernetes.io/worker"),
        "{selector:?}"
    );
    let keys: Vec<_> = pod
        .tolerations
        .unwrap()
        .into_iter()
        .filter_map(|t| t.key)
        .collect();
    assert_eq!(
        keys,
        [
            "node-role.kubernetes.io/master",
            "node-role.kubernetes.io/control-plane",
            "edge"
        ]
    );

    let controller = op
        .wait_for::<Deployment>("controller", |d| {
            controller_args(d).contains(&"--lb-class=example.com/metallb".to_owned())
        })
        .await;
    assert_eq!(
        controller_args(&controller),
        [
            "--log-level=debug",
            "--metrics-port=7472",
            "--lb-class=example.com/metallb"
        ]
    );
    let tolerations = controller.spec.template.spec.unwrap().tolerations.unwrap();
    assert_eq!(tolerations[0].key.as_deref(), Some("infra"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_daemon_set_is_back_within_five_seconds_and_an_edited_deployment_is_restored() {
    let op = Operator::start(test_name!()).await;
    op.apply_sample("metallb").await;
    let before = op.wait_for::<DaemonSet>("speaker", |_| true).await;
    let deleted = Instant::now();
    op.api::<DaemonSet>()
        .delete("speaker", &DeleteParams::default())
        .await
        .unwrap();
    let old_uid = before.uid();
    let after = op
        .wait_for::<DaemonSet>("speaker", |ds| ds.uid() != old_uid)
        .await;
    let elapsed = deleted.elapsed();
    println!("deleted speaker DaemonSet back after {elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
    assert_eq!(after.spec, before.spec);

    // Someone edits the controller's arguments: the operator's field manager takes them back.
    op.wait_for::<Deployment>("controller", |_| true).await;
    let edit = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "controller", "args": ["--log-level=none"]}
    ]}}}});
    op.api::<Deployment>()
        .patch(
            "controller",
            &PatchParams::default(),
            &Patch::Strategic(edit),
        )
        .await
        .unwrap();
    op.wait_for::<Deployment>("controller", |d| {
        controller_args(d) == ["--log-level=info", "--metrics-port=7472"]
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_resource_with_another_name_is_degraded_and_leaves_the_first_alone() {
    let op = Operator::start(test_name!()).await;
    op.apply_sample("metallb").await;
    op.wait_for_condition("metallb", "Progressing").await;
    let first = op.metallb("metallb").await;

    op.apply_sample("other").await;
    let (reason, message) = op.wait_for_condition("other", "Degraded").await;
    assert_eq!(reason, "IncorrectMetalLBResourceName");
    assert_eq!(message, "Incorrect MetalLB resource name: other");
    let other = op.metallb("other").await;
    for type_ in ["Available", "Upgradeable", "Progressing"] {
        let c = other.status.as_ref().unwrap().conditions.as_ref().unwrap();
        let c = c.iter().find(|c| c.type_ == type_).unwrap();
        assert_eq!(c.status, ConditionStatus::False, "{type_}");
    }

    // The first keeps its status and its operands.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(op.metallb("metallb").await.status, first.status);
    let speaker = op.api::<DaemonSet>().get("speaker").await.unwrap();
    let owner = &speaker.owner_references()[0];
    assert_eq!(
        (owner.name.as_str(), owner.uid.as_str()),
        ("metallb", first.uid().unwrap().as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditions_move_from_progressing_to_available_when_the_operands_report_ready() {
    let op = Operator::start(test_name!()).await;
    op.apply_sample("metallb").await;
    op.wait_for_condition("metallb", "Progressing").await;
    let deployment = op.wait_for::<Deployment>("controller", |_| true).await;
    let speaker = op.wait_for::<DaemonSet>("speaker", |_| true).await;

    let ready = PatchParams::default();
    op.api::<Deployment>()
        .patch_status(
            "controller",
            &ready,
            &Patch::Merge(json!({"status": {
                "observedGeneration": deployment.metadata.generation,
                "replicas": 1, "readyReplicas": 1, "updatedReplicas": 1, "availableReplicas": 1,
            }})),
        )
        .await
        .unwrap();
    // Half the speakers ready: still progressing, and the message says which counts lag.
    let speaker_status = |ready: i32| {
        json!({"status": {
            "observedGeneration": speaker.metadata.generation,
            "desiredNumberScheduled": 2, "currentNumberScheduled": 2,
            "numberReady": ready, "updatedNumberScheduled": 2, "numberMisscheduled": 0,
        }})
    };
    op.api::<DaemonSet>()
        .patch_status("speaker", &ready, &Patch::Merge(speaker_status(1)))
        .await
        .unwrap();
    eventually("the speaker counts in the message", || async {
        let (_, message) = op.wait_for_condition("metallb", "Progressing").await;
        (message == "waiting for DaemonSet speaker: 1/2 ready, 2/2 updated, 2/2 scheduled")
            .then_some(())
    })
    .await;

    op.api::<DaemonSet>()
        .patch_status("speaker", &ready, &Patch::Merge(speaker_status(2)))
        .await
        .unwrap();
    let (reason, message) = op.wait_for_condition("metallb", "Available").await;
    assert_eq!(reason, "Available");
    assert_eq!(
        message,
        "Deployment controller: 1/1 ready, 1/1 updated; DaemonSet speaker: 2/2 ready, 2/2 updated, 2/2 scheduled"
    );
    let metallb = op.metallb("metallb").await;
    let conditions = metallb.status.unwrap().conditions.unwrap();
    let types: Vec<_> = conditions
        .iter()
        .map(|c| (c.type_.as_str(), c.status))
        .collect();
    assert_eq!(
        types,
        [
            ("Available", ConditionStatus::True),
            ("Upgradeable", ConditionStatus::True),
            ("Progressing", ConditionStatus::False),
            ("Degraded", ConditionStatus::False),
        ]
    );
    assert!(
        conditions
            .iter()
            .all(|c| c.observed_generation == metallb.metadata.generation)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operand_the_api_server_refuses_makes_it_degraded_until_the_spec_is_fixed() {
    let op = Operator::start(test_name!()).await;
    op.apply_sample("metallb").await;
    op.wait_for_condition("metallb", "Progressing").await;
    // Nothing in the MetalLB schema or validation constrains the class name, but a pod does.
    op.patch_spec(
        "metallb",
        json!({"controllerConfig": {"runtimeClassName": "Not A Class"}}),
    )
    .await;
    let (reason, message) = op.wait_for_condition("metallb", "Degraded").await;
    assert_eq!(reason, "ApplyFailed");
    assert!(
        message.starts_with("applying Deployment controller: ")
            && message.contains("spec.template.spec.runtimeClassName"),
        "{message}"
    );
    op.patch_spec(
        "metallb",
        json!({"controllerConfig": {"runtimeClassName": null}}),
    )
    .await;
    op.wait_for_condition("metallb", "Progressing").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spec_the_validation_refuses_is_degraded_and_deploys_nothing() {
    let op = Operator::start(test_name!()).await;
    // No webhook runs in this test binary, so the object is stored.
    let metallb: MetalLB = serde_json::from_value(json!({
        "apiVersion": "metallb.io/v1beta1", "kind": "MetalLB",
        "metadata": {"name": "metallb"},
        "spec": {"bgpBackend": "frr"},
    }))
    .unwrap();
    op.api::<MetalLB>()
        .create(&Default::default(), &metallb)
        .await
        .unwrap();
    let (reason, message) = op.wait_for_condition("metallb", "Degraded").await;
    assert_eq!(reason, "InvalidSpec");
    assert!(
        message.contains("spec.bgpBackend")
            && message.contains("the metallb-rs speaker implements BGP and BFD itself"),
        "{message}"
    );
    assert!(
        op.api::<DaemonSet>()
            .get_opt("speaker")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_owned_object_carries_a_controller_owner_reference() {
    let op = Operator::start(test_name!()).await;
    op.apply_sample("metallb").await;
    op.wait_for_condition("metallb", "Progressing").await;
    let uid = op.metallb("metallb").await.uid().unwrap();
    let managed = ListParams::default().labels("app.kubernetes.io/managed-by=metallb-operator");
    let mut names = Vec::new();
    macro_rules! check {
        ($kind:ty) => {
            for object in op.api::<$kind>().list(&managed).await.unwrap() {
                let owners = object.owner_references();
                assert_eq!(owners.len(), 1, "{}", object.name_any());
                assert_eq!(owners[0].uid, uid);
                assert_eq!(owners[0].kind, "MetalLB");
                assert_eq!(owners[0].controller, Some(true));
                names.push(format!("{}/{}", <$kind>::kind(&()), object.name_any()));
            }
        };
    }
    check!(Deployment);
    check!(DaemonSet);
    check!(Service);
    check!(ConfigMap);
    check!(Secret);
    names.sort();
    assert_eq!(
        names,
        [
            "ConfigMap/metallb-excludel2",
            "DaemonSet/speaker",
            "Deployment/controller",
            "Secret/metallb-memberlist",
            "Service/controller-monitor-service",
            "Service/speaker-monitor-service",
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_membership_key_is_generated_once_and_kept_across_reconciles() {
    let op = Operator::start(test_name!()).await;
    op.apply_sample("metallb").await;
    let key = |s: &Secret| s.data.as_ref().unwrap()["secretkey"].0.clone();
    let first = key(&op.wait_for::<Secret>("metallb-memberlist", |_| true).await);
    assert_eq!(first.len(), 32);
    op.patch_spec("metallb", json!({"logLevel": "warn"})).await;
    op.wait_for::<DaemonSet>("speaker", |ds| {
        speaker_args(ds).contains(&"--log-level=warn".to_owned())
    })
    .await;
    let after = key(&op.api::<Secret>().get("metallb-memberlist").await.unwrap());
    assert_eq!(after, first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resources_in_other_namespaces_are_ignored() {
    let op = Operator::start(test_name!()).await;
    let elsewhere = tokio::task::block_in_place(|| control_plane().namespace("elsewhere"))
        .unwrap()
        .name()
        .to_owned();
    let api = Api::<MetalLB>::namespaced(op.client.clone(), &elsewhere);
    let metallb: MetalLB = serde_json::from_value(json!({
        "apiVersion": "metallb.io/v1beta1", "kind": "MetalLB",
        "metadata": {"name": "metallb"}, "spec": {},
    }))
    .unwrap();
    api.create(&Default::default(), &metallb).await.unwrap();
    // A reconcile in the right namespace proves the controller is running meanwhile.
    op.apply_sample("metallb").await;
    op.wait_for_condition("metallb", "Progressing").await;
    assert_eq!(api.get("metallb").await.unwrap().status, None);
    let foreign = Api::<DaemonSet>::namespaced(op.client.clone(), &elsewhere);
    assert!(foreign.get_opt("speaker").await.unwrap().is_none());
}
