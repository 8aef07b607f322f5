//! The child-process runtime: each replica is a child of the daemon, started from a
//! command template with `SERVER_ID=<hostname>` and `PORT=<port>` in its environment.
//!
//! The daemon picks a free port on 127.0.0.1 for each start, waits until the child
//! accepts TCP connections, reaps it when it ends and reports that end as a
//! [`RuntimeEvent::Exited`].
//!
//! No child outlives the daemon: a stopped replica gets SIGTERM, then SIGKILL after
//! `runtime.stop_timeout_ms`; a child is killed when the daemon drops it; and each
//! child asks the kernel for SIGKILL when the daemon dies (`PR_SET_PDEATHSIG`), so
//! even a daemon killed with SIGKILL or by the OOM killer leaves no replica behind.
//! (The signal follows the thread that forked the child: the control plane's runtime
//! threads, which live as long as the daemon.)

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::Stdio;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use lb_core::NodeId;
use rustix::process::{
    Pid, Signal, getpid, getppid, kill_process, set_parent_process_death_signal,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, sleep};

use super::{Instance, InstanceId, ReplicaRuntime, RuntimeError, RuntimeEvent};

/// How often readiness is polled.
const READY_POLL: Duration = Duration::from_millis(20);
/// Starts tried when the chosen port was taken between picking and binding.
const START_ATTEMPTS: usize = 3;

/// Runs replicas as child processes.
#[derive(Debug)]
pub struct ProcessRuntime {
    command: Vec<String>,
    ready_timeout: Duration,
    stop_timeout: Duration,
    events: mpsc::UnboundedSender<RuntimeEvent>,
    next_id: AtomicU64,
    children: Mutex<HashMap<InstanceId, Reaper>>,
}

/// The handle to a child's reaper task.
#[derive(Debug)]
struct Reaper {
    /// The child's process id.
    pid: Option<u32>,
    /// Asks the task to kill the child.
    stop: oneshot::Sender<()>,
    /// Resolves when the child has been reaped.
    done: oneshot::Receiver<()>,
}

impl ProcessRuntime {
    /// A runtime that starts `command` (program then arguments; `{name}` and `{port}`
    /// in arguments are substituted) and reports exits on `events`. A new child has
    /// `ready_timeout` to accept connections; a stopped one `stop_timeout` between
    /// SIGTERM and SIGKILL.
    pub fn new(
        command: Vec<String>,
        ready_timeout: Duration,
        stop_timeout: Duration,
        events: mpsc::UnboundedSender<RuntimeEvent>,
    ) -> Self {
        Self {
            command,
            ready_timeout,
            stop_timeout,
            events,
            next_id: AtomicU64::new(1),
            children: Mutex::new(HashMap::new()),
        }
    }

    async fn start_once(&self, name: &NodeId) -> Result<(Child, SocketAddr), RuntimeError> {
        let port = free_port().await.map_err(|source| RuntimeError::Spawn {
            name: name.clone(),
            source,
        })?;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let port_text = port.to_string();
        let args = self.command[1..].iter().map(|a| {
            a.replace("{name}", name.as_str())
                .replace("{port}", &port_text)
        });
        let mut command = Command::new(&self.command[0]);
        die_with_daemon(&mut command);
        let mut child = command
            .args(args)
            .env("SERVER_ID", name.as_str())
            .env("PORT", &port_text)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .kill_on_drop(true)
            // Its own process group: a Ctrl-C in the daemon's terminal reaches only the
            // daemon, which then stops its replicas in order.
            .process_group(0)
            .spawn()
            .map_err(|source| RuntimeError::Spawn {
                name: name.clone(),
                source,
            })?;
        let deadline = Instant::now() + self.ready_timeout;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(RuntimeError::ExitedEarly {
                    name: name.clone(),
                    reason: status.to_string(),
                });
            }
            if TcpStream::connect(addr).await.is_ok() {
                return Ok((child, addr));
            }
            if Instant::now() >= deadline {
                let _ = child.kill().await;
                return Err(RuntimeError::NotReady {
                    name: name.clone(),
                    after: self.ready_timeout,
                });
            }
            sleep(READY_POLL).await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<InstanceId, Reaper>> {
        super::lock(&self.children)
    }
}

#[async_trait]
impl ReplicaRuntime for ProcessRuntime {
    async fn spawn(
        &self,
        name: &NodeId,
        address: Option<SocketAddr>,
    ) -> Result<Instance, RuntimeError> {
        RuntimeError::refuse_address(address)?;
        let mut attempt = 1;
        let (mut child, addr) = loop {
            match self.start_once(name).await {
                Ok(started) => break started,
                // The port may have been taken between picking and binding: retry.
                Err(RuntimeError::ExitedEarly { .. }) if attempt < START_ATTEMPTS => attempt += 1,
                Err(e) => return Err(e),
            }
        };
        let id = InstanceId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let pid = child.id();
        let (stop_tx, stop_rx) = oneshot::channel();
        let (done_tx, done_rx) = oneshot::channel();
        let events = self.events.clone();
        let stop_timeout = self.stop_timeout;
        tokio::spawn(async move {
            tokio::select! {
                status = child.wait() => {
                    let reason = match status {
                        Ok(status) => status.to_string(),
                        Err(e) => format!("wait failed: {e}"),
                    };
                    let _ = events.send(RuntimeEvent::Exited { instance: id, reason });
                }
                _ = stop_rx => terminate(&mut child, stop_timeout).await,
            }
            let _ = done_tx.send(());
        });
        self.lock().insert(
            id,
            Reaper {
                pid,
                stop: stop_tx,
                done: done_rx,
            },
        );
        tracing::debug!(replica = %name, instance = %id, %addr, "child process ready");
        Ok(Instance {
            id,
            addr,
            protocol: None,
        })
    }

    fn pid_of(&self, instance: InstanceId) -> Option<u32> {
        self.lock().get(&instance).and_then(|r| r.pid)
    }

    /// Kills `pid` if `/proc/<pid>/environ` still says `SERVER_ID=<name>` (a child left
    /// behind by a daemon that was killed), so the replica is not duplicated.
    async fn reclaim(&self, name: &NodeId, pid: u32) {
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        let marker = format!("SERVER_ID={name}");
        if environ
            .split(|b| *b == 0)
            .any(|var| var == marker.as_bytes())
        {
            let killed = i32::try_from(pid)
                .ok()
                .and_then(Pid::from_raw)
                .is_some_and(|pid| kill_process(pid, Signal::KILL).is_ok());
            tracing::info!(replica = %name, pid, ok = killed, "stopped a replica left by the previous daemon");
        }
    }

    async fn stop(&self, instance: InstanceId) {
        let reaper = self.lock().remove(&instance);
        if let Some(reaper) = reaper {
            let _ = reaper.stop.send(());
            let _ = reaper.done.await;
        }
    }
}

/// SIGTERM, then SIGKILL if `child` has not ended after `grace` (what `docker stop`
/// and systemd do). SIGCONT follows SIGTERM, as systemd sends it, so a stopped
/// (`SIGSTOP`, frozen) replica handles its SIGTERM at once instead of waiting out
/// `grace` for the SIGKILL.
async fn terminate(child: &mut Child, grace: Duration) {
    let pid = child
        .id()
        .and_then(|pid| i32::try_from(pid).ok())
        .and_then(Pid::from_raw);
    if let Some(pid) = pid
        && !grace.is_zero()
        && kill_process(pid, Signal::TERM).is_ok()
    {
        // A stopped process acts on SIGTERM only once continued.
        let _ = kill_process(pid, Signal::CONT);
        if tokio::time::timeout(grace, child.wait()).await.is_ok() {
            return;
        }
    }
    let _ = child.kill().await;
}

/// Makes the child of `command` ask for SIGKILL when the daemon dies
/// (`prctl(PR_SET_PDEATHSIG)`), and end at once if the daemon died before it asked.
#[allow(unsafe_code)]
fn die_with_daemon(command: &mut Command) {
    let daemon = getpid();
    // SAFETY: the closure runs in the forked child before exec, where only
    // async-signal-safe calls are allowed: it makes two raw syscalls (prctl and
    // getppid) and allocates nothing.
    unsafe {
        command.pre_exec(move || {
            set_parent_process_death_signal(Some(Signal::KILL))?;
            if getppid() != Some(daemon) {
                return Err(std::io::ErrorKind::BrokenPipe.into());
            }
            Ok(())
        });
    }
}

/// A port on 127.0.0.1 that was free a moment ago.
async fn free_port() -> std::io::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    Ok(listener.local_addr()?.port())
}
