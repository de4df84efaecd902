//! A controller running in-process against the shared control plane, one per test, isolated
//! from the others: its MetalLB namespace is the test's namespace (pools and Lease there) and
//! it handles only Services of a class named after that namespace.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::events::v1::Event;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client};
use metallb_api::ipaddresspool::IPAddressPool;
use metallb_controller::{Error, Settings};
use metallb_runtime::cli::ClientArgs;
use metallb_runtime::consts::CONTROLLER_LEASE;
use metallb_runtime::lease::LeaseTiming;
use metallb_testenv::ControlPlane;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long a test waits for something the controller should do.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// The control plane with the CRDs installed, once per test binary.
pub fn control_plane() -> &'static ControlPlane {
    static READY: OnceLock<()> = OnceLock::new();
    let cp = ControlPlane::shared();
    READY.get_or_init(|| {
        cp.install_crds().unwrap();
    });
    cp
}

/// A client like the binary's: no read timeout, so watches stay open.
pub async fn client(cp: &ControlPlane) -> Client {
    let args = ClientArgs {
        kubeconfig: Some(cp.kubeconfig_path().to_owned()),
    };
    args.client().await.unwrap()
}

/// A controller task and the switch that stops it.
struct Running {
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), Error>>,
}

/// One test's namespace and controller.
pub struct Harness {
    /// The namespace of the test: MetalLB namespace and Services' namespace at once.
    pub ns: String,
    /// The `loadBalancerClass` this test's controller handles.
    pub class: String,
    /// Admin client.
    pub client: Client,
    /// Where the running controller serves `/metrics`.
    pub metrics: SocketAddr,
    running: Option<Running>,
    generation: u32,
}

impl Harness {
    /// A fresh namespace and a controller for it.
    pub async fn start(test: &str) -> Self {
        let cp = control_plane();
        let ns = cp.namespace(test).unwrap().name().to_owned();
        let mut harness = Self {
            class: format!("metallb-rs.test/{ns}"),
            ns,
            client: client(cp).await,
            metrics: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            running: None,
            generation: 0,
        };
        harness.launch().await;
        harness
    }

    /// Starts the controller (again).
    pub async fn launch(&mut self) {
        assert!(self.running.is_none(), "the controller is already running");
        self.generation += 1;
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .unwrap();
        self.metrics = listener.local_addr().unwrap();
        let settings = Settings {
            namespace: self.ns.clone(),
            lb_class: Some(self.class.clone()),
            identity: format!("test-controller-{}", self.generation),
            lease_name: CONTROLLER_LEASE.to_owned(),
            lease_timing: LeaseTiming::default(),
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async move {
            let _ = stopped.await;
        };
        let task = tokio::spawn(metallb_controller::run(
            self.client.clone(),
            settings,
            Some(listener.into()),
            shutdown,
        ));
        self.running = Some(Running { stop, task });
    }

    /// Stops the controller and waits until it has released its Lease.
    pub async fn stop(&mut self) {
        let running = self.running.take().expect("the controller is running");
        running.stop.send(()).unwrap();
        running.task.await.unwrap().unwrap();
    }

    /// `/metrics` of the running controller.
    pub async fn metrics_text(&self) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(self.metrics).await.unwrap();
        let request = format!(
            "GET /metrics HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.metrics
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        response
    }

    /// Creates or updates an object of the test's namespace by server-side apply.
    pub async fn apply<K>(&self, object: Value)
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + std::fmt::Debug
            + serde::de::DeserializeOwned,
    {
        let name = object["metadata"]["name"].as_str().unwrap().to_owned();
        let api = Api::<K>::namespaced(self.client.clone(), &self.ns);
        let params = PatchParams::apply("metallb-controller-test").force();
        api.patch(&name, &params, &Patch::Apply(&object))
            .await
            .unwrap_or_else(|e| panic!("applying {name}: {e}"));
    }

    /// An `IPAddressPool` with these addresses.
    pub async fn pool(&self, name: &str, addresses: &[&str]) {
        self.apply_pool(json!({"metadata": {"name": name}, "spec": {"addresses": addresses}}))
            .await;
    }

    /// An `IPAddressPool` given as JSON (`metadata.name` and `spec` are enough).
    pub async fn apply_pool(&self, mut pool: Value) {
        pool["apiVersion"] = json!("metallb.io/v1beta1");
        pool["kind"] = json!("IPAddressPool");
        pool["metadata"]["namespace"] = json!(self.ns);
        self.apply::<IPAddressPool>(pool).await;
    }

    /// Deletes an `IPAddressPool`.
    pub async fn delete_pool(&self, name: &str) {
        Api::<IPAddressPool>::namespaced(self.client.clone(), &self.ns)
            .delete(name, &Default::default())
            .await
            .unwrap();
    }

    /// A LoadBalancer Service of this test's class on TCP/80, to adjust before applying.
    pub fn service(&self, name: &str) -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": self.ns},
            "spec": {
                "type": "LoadBalancer",
                "loadBalancerClass": self.class,
                "selector": {"app": name},
                "ports": [{"name": "main", "port": 80, "protocol": "TCP"}],
            },
        })
    }

    /// Applies a Service built with [`Harness::service`].
    pub async fn apply_service(&self, service: Value) {
        self.apply::<Service>(service).await;
    }

    /// Deletes a Service.
    pub async fn delete_service(&self, name: &str) {
        Api::<Service>::namespaced(self.client.clone(), &self.ns)
            .delete(name, &Default::default())
            .await
            .unwrap();
    }

    /// A Service as it is now.
    pub async fn get_service(&self, name: &str) -> Service {
        Api::<Service>::namespaced(self.client.clone(), &self.ns)
            .get(name)
            .await
            .unwrap()
    }

    /// The ingress IPs of a Service now.
    pub async fn ingress(&self, name: &str) -> Vec<String> {
        ingress_of(&self.get_service(name).await)
    }

    /// Waits until the Service has exactly these ingress IPs.
    pub async fn wait_ingress(&self, name: &str, want: &[&str]) {
        let what = format!("{name} to have ingress {want:?}");
        eventually(&what, || async {
            (self.ingress(name).await == want).then_some(())
        })
        .await;
    }

    /// Waits until the Service has ingress IPs and returns them.
    pub async fn wait_assigned(&self, name: &str) -> Vec<String> {
        let what = format!("{name} to get an address");
        eventually(&what, || async {
            let ips = self.ingress(name).await;
            (!ips.is_empty()).then_some(ips)
        })
        .await
    }

    /// The `metallb.io/ip-allocated-from-pool` annotation of a Service.
    pub async fn pool_annotation(&self, name: &str) -> Option<String> {
        self.get_service(name)
            .await
            .metadata
            .annotations
            .unwrap_or_default()
            .get("metallb.io/ip-allocated-from-pool")
            .cloned()
    }

    /// Events about a Service, oldest first: (type, reason, message).
    pub async fn events(&self, name: &str) -> Vec<(String, String, String)> {
        let api = Api::<Event>::namespaced(self.client.clone(), &self.ns);
        let mut events: Vec<Event> = api
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .collect();
        events.sort_by_key(|e| e.event_time.as_ref().map(|t| t.0));
        events
            .into_iter()
            .map(|e| {
                (
                    e.type_.unwrap_or_default(),
                    e.reason.unwrap_or_default(),
                    e.note.unwrap_or_default(),
                )
            })
            .collect()
    }

    /// Waits for an event of this reason about a Service and returns its (type, message).
    pub async fn wait_event(&self, name: &str, reason: &str) -> (String, String) {
        let what = format!("a {reason} event about {name}");
        eventually(&what, || async {
            self.events(name)
                .await
                .into_iter()
                .find(|(_, r, _)| r == reason)
                .map(|(t, _, m)| (t, m))
        })
        .await
    }

    /// The reasons of the events about a Service, oldest first.
    pub async fn reasons(&self, name: &str) -> Vec<String> {
        self.events(name)
            .await
            .into_iter()
            .map(|(_, r, _)| r)
            .collect()
    }
}

/// The ingress IPs of a Service.
pub fn ingress_of(service: &Service) -> Vec<String> {
    service
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|i| i.iter().filter_map(|i| i.ip.clone()).collect())
        .unwrap_or_default()
}

/// Polls `check` until it returns a value; panics after [`PATIENCE`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
