//! A highly available control plane, laid out the way RKE2 and kubeadm's stacked control-plane
//! nodes run one: every member is an etcd member of one cluster plus a kube-apiserver that
//! talks to its own etcd member only.
//!
//! [`HaControlPlane::remove_member`] is the step of a control-plane rolling update that tears a
//! node's etcd out of the cluster: the removed etcd stops, and that node's API server keeps
//! answering reads and watches from its watch cache (frozen at the moment etcd went away) while
//! every write fails. Clients of that API server see stale data and cannot write, which is the
//! failure the speaker's fencing is for.
//!
//! Lifetime: the processes get SIGKILL as their parent-death signal, bound to the thread that
//! called [`HaControlPlane::start`] (start it from the main thread); dropping the value stops
//! them and removes the instance directory (`${TMPDIR}/metallb-testenv-*`, which
//! `hack/check-leftovers` knows). All members share one PKI, so one admin kubeconfig per member
//! differs only in its server.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use tracing::info;

use crate::error::{Error, Result};
use crate::instance::{apiserver_command, etcd_command, log_tail, spawn_logged, stop_child};
use crate::pki::Pki;
use crate::supervisor::TEMP_DIR_PREFIX;
use crate::{binaries, crds, kubeconfig};

/// How long [`HaControlPlane::start`] waits for every API server's `/readyz`.
const START_TIMEOUT: Duration = Duration::from_secs(90);
/// How long a removal refused as "unhealthy cluster" is retried.
const REMOVE_RETRY: Duration = Duration::from_secs(20);
/// How long a removed member's etcd gets to notice and stop.
const REMOVED_STOP: Duration = Duration::from_secs(10);
/// Timeout of one HTTP exchange with etcd's gRPC gateway.
const ETCD_HTTP_TIMEOUT: Duration = Duration::from_secs(5);

/// One control-plane node: an etcd member and its API server.
#[derive(Debug)]
struct Member {
    name: String,
    dir: PathBuf,
    /// `http://127.0.0.1:<port>` of the etcd member.
    client: String,
    /// `https://127.0.0.1:<port>` of the API server.
    server: String,
    kubeconfig: PathBuf,
    etcd: Child,
    apiserver: Option<Child>,
}

/// A running HA control plane; see the module documentation.
#[derive(Debug)]
pub struct HaControlPlane {
    dir: PathBuf,
    bin_dir: PathBuf,
    members: Vec<Member>,
}

impl HaControlPlane {
    /// Starts `members` etcd members forming one cluster and an API server on each, and waits
    /// until every API server is ready. Builds the binaries first if the cache is cold.
    pub fn start(members: usize) -> Result<HaControlPlane> {
        let started = Instant::now();
        let bin_dir = binaries::k8s_bin_dir()?;
        let dir = tempfile::Builder::new()
            .prefix(TEMP_DIR_PREFIX)
            .tempdir()
            .map(tempfile::TempDir::keep)
            .map_err(Error::io("creating a temporary directory"))?;
        // From here on, dropping `cp` stops whatever started and removes the directory.
        let mut cp = HaControlPlane {
            dir,
            bin_dir,
            members: Vec::new(),
        };
        let pki = Pki::generate(&cp.dir.join("pki"), Ipv4Addr::LOCALHOST.into())?;
        // Hold every listener until all ports are chosen, so they are distinct.
        let listeners = (0..members * 3)
            .map(|_| {
                TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|source| Error::Port {
                    addr: Ipv4Addr::LOCALHOST.into(),
                    source,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let ports: Vec<u16> = listeners
            .iter()
            .map(|l| l.local_addr().map(|a| a.port()).unwrap_or_default())
            .collect();
        drop(listeners);
        let url = |scheme: &str, port: u16| format!("{scheme}://127.0.0.1:{port}");
        let names: Vec<String> = (0..members).map(|i| format!("member{i}")).collect();
        let initial_cluster = names
            .iter()
            .enumerate()
            .map(|(i, name)| format!("{name}={}", url("http", ports[3 * i + 1])))
            .collect::<Vec<_>>()
            .join(",");
        // Every etcd first: none is ready before a quorum of them runs.
        for (i, name) in names.iter().enumerate() {
            let member_dir = cp.dir.join(name);
            std::fs::create_dir_all(&member_dir)
                .map_err(Error::io(format!("creating {}", member_dir.display())))?;
            let client = url("http", ports[3 * i]);
            let mut etcd = etcd_command(
                &cp.bin_dir,
                name,
                &member_dir.join("etcd"),
                &client,
                &url("http", ports[3 * i + 1]),
                &initial_cluster,
            );
            let etcd = spawn_logged("etcd", &mut etcd, &member_dir)?;
            let server = url("https", ports[3 * i + 2]);
            let kubeconfig = member_dir.join("kubeconfig");
            kubeconfig::write(&kubeconfig, &server, &pki)?;
            cp.members.push(Member {
                name: name.clone(),
                dir: member_dir,
                client,
                server,
                kubeconfig,
                etcd,
                apiserver: None,
            });
        }
        for (i, member) in cp.members.iter_mut().enumerate() {
            let mut apiserver = apiserver_command(
                &cp.bin_dir,
                Ipv4Addr::LOCALHOST.into(),
                ports[3 * i + 2],
                &member.client,
                &member.dir.join("apiserver-certs"),
                &pki,
            );
            member.apiserver = Some(spawn_logged("kube-apiserver", &mut apiserver, &member.dir)?);
        }
        for i in 0..members {
            cp.wait_ready(i, started + START_TIMEOUT)?;
        }
        info!(
            members,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "HA control plane ready"
        );
        Ok(cp)
    }

    /// How many members it started with.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether it has no member (never, once started).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The API server URL of member `i`.
    pub fn server(&self, i: usize) -> &str {
        &self.members[i].server
    }

    /// The admin kubeconfig naming member `i`'s API server.
    pub fn kubeconfig(&self, i: usize) -> &Path {
        &self.members[i].kubeconfig
    }

    /// The instance directory (PKI, and per member its etcd data and logs).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Runs kubectl against member `i`'s API server and returns stdout.
    pub fn kubectl<S: AsRef<str>>(&self, i: usize, args: &[S]) -> Result<String> {
        self.run_kubectl(i, args, None)
    }

    /// Like [`kubectl`](HaControlPlane::kubectl), with `input` on stdin (for `apply -f -`).
    pub fn kubectl_with_input<S: AsRef<str>>(
        &self,
        i: usize,
        args: &[S],
        input: &str,
    ) -> Result<String> {
        self.run_kubectl(i, args, Some(input))
    }

    /// Installs the CRDs of `manifests/crds/` through member `i`.
    pub fn install_crds(&self, i: usize) -> Result<Vec<String>> {
        crds::install(|args| self.kubectl(i, args))
    }

    /// Removes member `i` from the etcd cluster, through another member, and waits until its
    /// etcd has stopped. Its API server keeps running: stale reads, failing writes.
    pub fn remove_member(&mut self, i: usize) -> Result<()> {
        let through = (0..self.members.len())
            .find(|&j| j != i && !self.members[j].etcd_exited())
            .ok_or_else(|| Error::Etcd("no other etcd member is running".into()))?;
        let (member, through) = (&self.members[i], &self.members[through]);
        let list = etcd_post(&through.client, "/v3/cluster/member/list", "{}")?;
        let id = list["members"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| m["name"] == member.name.as_str())
            .map(|m| match &m["ID"] {
                serde_json::Value::String(id) => id.clone(),
                other => other.to_string(),
            })
            .ok_or_else(|| {
                Error::Etcd(format!("{} is not in the member list {list}", member.name))
            })?;
        // etcd refuses to remove a member until the others have been connected for a few
        // seconds ("unhealthy cluster"), e.g. right after the start.
        let body = format!(r#"{{"ID":"{id}"}}"#);
        let deadline = Instant::now() + REMOVE_RETRY;
        loop {
            match etcd_post(&through.client, "/v3/cluster/member/remove", &body) {
                Ok(_) => break,
                Err(Error::Etcd(detail))
                    if detail.contains("unhealthy cluster") && Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(500));
                }
                Err(err) => return Err(err),
            }
        }
        let name = member.name.clone();
        let member = &mut self.members[i];
        let deadline = Instant::now() + REMOVED_STOP;
        while !member.etcd_exited() {
            if Instant::now() > deadline {
                return Err(Error::Etcd(format!(
                    "{name} was removed but its etcd still runs after {} s",
                    REMOVED_STOP.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        info!(member = %name, "etcd member removed");
        Ok(())
    }

    fn wait_ready(&mut self, i: usize, deadline: Instant) -> Result<()> {
        loop {
            let answer = match self.kubectl(i, &["get", "--raw", "/readyz"]) {
                Ok(body) if body.trim() == "ok" => return Ok(()),
                Ok(body) => body,
                Err(err) => err.to_string(),
            };
            let member = &mut self.members[i];
            for (name, child) in [
                ("etcd", Some(&mut member.etcd)),
                ("kube-apiserver", member.apiserver.as_mut()),
            ] {
                if let Some(Ok(Some(status))) = child.map(Child::try_wait) {
                    return Err(Error::Start(format!(
                        "{} {name} exited ({status}); last log lines:\n{}",
                        member.name,
                        log_tail(&member.dir.join(format!("{name}.log")))
                    )));
                }
            }
            if Instant::now() > deadline {
                return Err(Error::Start(format!(
                    "the API server of {} was not ready in time (last /readyz answer: {answer}); last log lines:\n{}",
                    member.name,
                    log_tail(&member.dir.join("kube-apiserver.log"))
                )));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn run_kubectl<S: AsRef<str>>(
        &self,
        i: usize,
        args: &[S],
        input: Option<&str>,
    ) -> Result<String> {
        let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
        let member = &self.members[i];
        let kubectl = self.bin_dir.join("kubectl");
        let mut command = Command::new(&kubectl);
        command
            .arg("--kubeconfig")
            .arg(&member.kubeconfig)
            .arg("--cache-dir")
            .arg(member.dir.join("kubectl-cache"))
            // A stale API server may hang a request; the rolling update goes on regardless.
            .arg("--request-timeout=10s")
            .args(&args)
            .stdin(if input.is_some() {
                std::process::Stdio::piped()
            } else {
                std::process::Stdio::null()
            })
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = command.spawn().map_err(|source| Error::Spawn {
            what: kubectl.display().to_string(),
            source,
        })?;
        let shown = args.join(" ");
        if let Some(input) = input {
            let mut stdin = child.stdin.take().expect("stdin is piped");
            stdin
                .write_all(input.as_bytes())
                .map_err(Error::io(format!("writing to kubectl {shown}")))?;
        }
        let output = child
            .wait_with_output()
            .map_err(Error::io(format!("waiting for kubectl {shown}")))?;
        if !output.status.success() {
            return Err(Error::Kubectl {
                args: shown,
                status: output.status,
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

impl Member {
    fn etcd_exited(&mut self) -> bool {
        matches!(self.etcd.try_wait(), Ok(Some(_)))
    }
}

impl Drop for HaControlPlane {
    fn drop(&mut self) {
        for member in &mut self.members {
            if let Some(apiserver) = member.apiserver.as_mut() {
                stop_child("kube-apiserver", apiserver);
            }
        }
        for member in &mut self.members {
            stop_child("etcd", &mut member.etcd);
        }
        if let Err(err) = std::fs::remove_dir_all(&self.dir) {
            tracing::warn!(dir = %self.dir.display(), %err, "cannot remove the HA control plane's directory");
        }
    }
}

/// POSTs `body` to etcd's gRPC gateway at `client` (`http://host:port`) and returns the JSON
/// answer. HTTP/1.0, so the answer is neither chunked nor kept alive.
fn etcd_post(client: &str, path: &str, body: &str) -> Result<serde_json::Value> {
    let fail = |detail: String| Error::Etcd(format!("POST {client}{path}: {detail}"));
    let host = client.trim_start_matches("http://");
    let mut stream = TcpStream::connect(host).map_err(|e| fail(e.to_string()))?;
    let io = |e: std::io::Error| fail(e.to_string());
    stream
        .set_read_timeout(Some(ETCD_HTTP_TIMEOUT))
        .map_err(io)?;
    let request = format!(
        "POST {path} HTTP/1.0\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).map_err(io)?;
    let mut response = String::new();
    stream.read_to_string(&mut response).map_err(io)?;
    let (head, payload) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| fail(format!("no HTTP answer: {response:?}")))?;
    if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
        return Err(fail(format!("{head}\n{payload}")));
    }
    serde_json::from_str(payload).map_err(|e| fail(format!("{e}: {payload}")))
}
