//! A TCP proxy in front of the API server that can stop forwarding: the failure of a node being
//! torn down, where the API server still accepts connections but never answers. Bytes read
//! while frozen are held until [`FreezableProxy::thaw`], so a frozen client's requests land
//! only if the partition heals.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use crate::error::{Error, Result};

/// How often a held pump checks whether it may go on.
const POLL: Duration = Duration::from_millis(10);

#[derive(Debug, Default)]
struct Flags {
    frozen: AtomicBool,
    stopped: AtomicBool,
}

/// A running proxy; dropping it stops it and closes every connection.
#[derive(Debug)]
pub struct FreezableProxy {
    addr: SocketAddr,
    flags: Arc<Flags>,
}

impl FreezableProxy {
    /// Forwards `127.0.0.1:<free port>` to `upstream`.
    pub fn start(upstream: SocketAddr) -> Result<FreezableProxy> {
        let listener =
            TcpListener::bind("127.0.0.1:0").map_err(Error::io("starting the API server proxy"))?;
        FreezableProxy::start_with(listener, upstream)
    }

    /// Forwards connections to `listener` to `upstream`. A listener bound by a thread inside a
    /// lab node's network namespace makes the API server reachable from that node only, at
    /// the listener's address there, while the proxy itself connects from this namespace.
    pub fn start_with(listener: TcpListener, upstream: SocketAddr) -> Result<FreezableProxy> {
        let io = |e| Error::io("starting the API server proxy")(e);
        listener.set_nonblocking(true).map_err(io)?;
        let addr = listener.local_addr().map_err(io)?;
        let flags = Arc::new(Flags::default());
        let accepting = flags.clone();
        thread::spawn(move || accept(listener, upstream, accepting));
        Ok(FreezableProxy { addr, flags })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops forwarding in both directions, on every connection, old and new.
    pub fn freeze(&self) {
        self.flags.frozen.store(true, Ordering::SeqCst);
    }

    /// Forwards again, like a partition healing: what was held goes through first, and the
    /// client may since have given up on those connections.
    pub fn thaw(&self) {
        self.flags.frozen.store(false, Ordering::SeqCst);
    }

    /// A copy of the kubeconfig at `kubeconfig` that reaches the API server through this proxy,
    /// written next to it as `<stem>-proxied-<port>.yaml`.
    pub fn kubeconfig(&self, kubeconfig: &Path, server: &str) -> Result<PathBuf> {
        let io = |e| {
            Error::io(format!(
                "writing a proxied copy of {}",
                kubeconfig.display()
            ))(e)
        };
        let text = std::fs::read_to_string(kubeconfig).map_err(io)?;
        let proxied = text.replace(server, &format!("https://{}", self.addr));
        let path =
            kubeconfig.with_file_name(format!("kubeconfig-proxied-{}.yaml", self.addr.port()));
        std::fs::write(&path, proxied).map_err(io)?;
        Ok(path)
    }
}

impl Drop for FreezableProxy {
    fn drop(&mut self) {
        self.flags.stopped.store(true, Ordering::SeqCst);
    }
}

fn accept(listener: TcpListener, upstream: SocketAddr, flags: Arc<Flags>) {
    while !flags.stopped.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((client, _)) => {
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                for (from, to) in [(&client, &server), (&server, &client)] {
                    let (Ok(from), Ok(to)) = (from.try_clone(), to.try_clone()) else {
                        continue;
                    };
                    let flags = flags.clone();
                    thread::spawn(move || pump(from, to, &flags));
                }
            }
            Err(_) => thread::sleep(POLL),
        }
    }
}

/// Copies `from` to `to`, holding what it read while frozen.
fn pump(mut from: TcpStream, mut to: TcpStream, flags: &Flags) {
    let _ = from.set_nonblocking(false);
    let _ = from.set_read_timeout(Some(POLL * 5));
    let mut buf = [0u8; 16 * 1024];
    loop {
        if flags.stopped.load(Ordering::SeqCst) {
            break;
        }
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(_) => break,
        };
        while flags.frozen.load(Ordering::SeqCst) {
            if flags.stopped.load(Ordering::SeqCst) {
                let _ = to.shutdown(Shutdown::Both);
                return;
            }
            thread::sleep(POLL);
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}
