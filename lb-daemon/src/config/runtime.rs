//! `[runtime]`: how replicas run. One table, three kinds; keys of another kind are
//! refused by name.
//!
//! ```toml
//! [runtime]                      # child processes (default)
//! kind = "process"
//! command = ["/path/replica-server", "--host", "127.0.0.1"]   # {name}, {port} substituted
//! ready_timeout_ms = 5000
//! stop_timeout_ms = 5000         # SIGTERM, then SIGKILL after this long (Docker: stop -t)
//!
//! [runtime]                      # Docker containers
//! kind = "docker"
//! image = "lb-replica:latest"
//! network = "lb-net"             # user-defined bridge, created when missing
//! name_prefix = ""               # container name = prefix + hostname
//! owner = "lb-daemon"            # value of the io.consistent-lb.owner label
//! port = 8080                    # replica port inside the container
//! address = "container-ip"       # or "alias" when the daemon runs on the network
//! stop_on_shutdown = false       # true: remove replicas when the daemon stops
//! memory_mb = 256                # optional limits
//! cpus = 0.5
//! env = { LOG = "info" }         # extra environment for every replica
//! replica_env = { server2 = { EXIT_AFTER_MS = "1500" } }   # per hostname
//!
//! [runtime]                      # Swarm services, one task each (on a swarm manager)
//! kind = "swarm"
//! image = "lb-replica:latest"    # present on every node that may run a replica
//! network = "lb-swarm"           # overlay, created attachable when missing
//! address = "published"          # 127.0.0.1:<published port>; or "alias" (daemon on the network)
//! constraints = ["node.role == worker"]   # optional placement
//! # name_prefix, owner, port, env, replica_env, memory_mb, cpus, stop_on_shutdown,
//! # ready_timeout_ms as for Docker
//!
//! [runtime]                      # addresses someone else runs
//! kind = "static"
//! [[runtime.replicas]]
//! name = "api1"
//! address = "10.0.0.7:8080"
//! ```

use crate::data_plane::protocol::Protocol;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use lb_core::NodeId;
use serde::Deserialize;

use super::ConfigError;
use super::rules::{invalid, ms, ranged};
use crate::runtime::docker::{AddressMode, DockerSettings};
use crate::runtime::swarm::{SwarmAddress, SwarmSettings};

/// `[runtime]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeFile {
    /// `"process"`, `"docker"` or `"static"`.
    pub kind: Option<String>,
    /// Process: program and arguments.
    pub command: Option<Vec<String>>,
    /// Process and Docker: readiness deadline, ms.
    pub ready_timeout_ms: Option<u64>,
    /// Process and Docker: time between SIGTERM and SIGKILL when a replica is stopped, ms.
    pub stop_timeout_ms: Option<u64>,
    /// Docker: image.
    pub image: Option<String>,
    /// Docker: network.
    pub network: Option<String>,
    /// Docker: container name prefix.
    pub name_prefix: Option<String>,
    /// Docker: owner label value.
    pub owner: Option<String>,
    /// Docker: replica port in the container.
    pub port: Option<u64>,
    /// Swarm: placement constraints of the replicas' tasks.
    pub constraints: Option<Vec<String>>,
    /// Docker: `"container-ip"` or `"alias"`; Swarm: `"published"` or `"alias"`.
    pub address: Option<String>,
    /// Docker: remove replicas on shutdown.
    pub stop_on_shutdown: Option<bool>,
    /// Docker: memory limit, MiB.
    pub memory_mb: Option<u64>,
    /// Docker: CPU limit, CPUs.
    pub cpus: Option<f64>,
    /// Docker: environment for every replica.
    pub env: Option<BTreeMap<String, String>>,
    /// Docker: environment per hostname.
    pub replica_env: Option<BTreeMap<String, BTreeMap<String, String>>>,
    /// Static: the replicas.
    pub replicas: Option<Vec<StaticReplicaFile>>,
}

/// One `[[runtime.replicas]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticReplicaFile {
    /// Hostname on the ring.
    pub name: String,
    /// `ip:port` where it listens.
    pub address: String,
    /// Its weight on the ring, 0..=256 (default 1; 0: on the ring but takes no key).
    pub weight: Option<u64>,
    /// What it speaks, `http1` or `h2c` (default: `upstream.protocol`).
    pub protocol: Option<String>,
}

/// A validated `[[runtime.replicas]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticReplica {
    /// Hostname on the ring.
    pub name: NodeId,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its ring weight when the file gives one (else the state file's, else 1).
    pub weight: Option<u32>,
    /// Its protocol when the file gives one (else `upstream.protocol`).
    pub protocol: Option<Protocol>,
}

/// Validated `[runtime]`.
#[derive(Debug, Clone)]
pub enum Runtime {
    /// Child processes of the daemon.
    Process {
        /// Program then arguments, with `{name}` / `{port}` placeholders.
        command: Vec<String>,
        /// Readiness deadline for a new replica.
        ready_timeout: Duration,
        /// Time a stopped replica gets between SIGTERM and SIGKILL.
        stop_timeout: Duration,
    },
    /// Docker containers.
    Docker(DockerSettings),
    /// Swarm services.
    Swarm(SwarmSettings),
    /// Fixed addresses.
    Static(Vec<StaticReplica>),
}

/// Refuses a key that belongs to another kind.
fn only_for(kind: &str, set: bool, key: &'static str, owner: &str) -> Result<(), ConfigError> {
    if set && kind != owner {
        return Err(invalid(
            key,
            "(set)",
            format!("only applies to runtime.kind = \"{owner}\""),
        ));
    }
    Ok(())
}

/// Checks `[runtime]`.
pub(super) fn validate(file: RuntimeFile) -> Result<Runtime, ConfigError> {
    let kind = file.kind.clone().unwrap_or_else(|| "process".into());
    only_for(&kind, file.command.is_some(), "runtime.command", "process")?;
    for (set, key) in [
        (file.image.is_some(), "runtime.image"),
        (file.network.is_some(), "runtime.network"),
        (file.name_prefix.is_some(), "runtime.name_prefix"),
        (file.owner.is_some(), "runtime.owner"),
        (file.port.is_some(), "runtime.port"),
        (file.address.is_some(), "runtime.address"),
        (file.stop_on_shutdown.is_some(), "runtime.stop_on_shutdown"),
        (file.memory_mb.is_some(), "runtime.memory_mb"),
        (file.cpus.is_some(), "runtime.cpus"),
        (file.env.is_some(), "runtime.env"),
        (file.replica_env.is_some(), "runtime.replica_env"),
    ] {
        if kind != "swarm" {
            only_for(&kind, set, key, "docker")?;
        }
    }
    only_for(
        &kind,
        file.constraints.is_some(),
        "runtime.constraints",
        "swarm",
    )?;
    only_for(&kind, file.replicas.is_some(), "runtime.replicas", "static")?;
    let ready_timeout = ms(
        "runtime.ready_timeout_ms",
        file.ready_timeout_ms,
        5000,
        10,
        600_000,
    )?;
    if kind == "static" && file.stop_timeout_ms.is_some() {
        return Err(invalid(
            "runtime.stop_timeout_ms",
            "(set)",
            "only applies to runtime.kind = \"process\" or \"docker\"",
        ));
    }
    let stop_timeout = ms(
        "runtime.stop_timeout_ms",
        file.stop_timeout_ms,
        5000,
        0,
        600_000,
    )?;
    match kind.as_str() {
        "process" => process(file.command, ready_timeout, stop_timeout),
        "docker" => docker(file, ready_timeout, stop_timeout).map(Runtime::Docker),
        "swarm" => swarm(file, ready_timeout, stop_timeout).map(Runtime::Swarm),
        "static" => fixed(file.replicas.unwrap_or_default()),
        other => Err(invalid(
            "runtime.kind",
            other,
            "expected \"process\", \"docker\", \"swarm\" or \"static\"",
        )),
    }
}

fn process(
    command: Option<Vec<String>>,
    ready_timeout: Duration,
    stop_timeout: Duration,
) -> Result<Runtime, ConfigError> {
    let command = match command {
        Some(command) if command.is_empty() || command[0].is_empty() => {
            return Err(invalid("runtime.command", "[]", "needs a program"));
        }
        Some(command) => command,
        None => vec![
            default_replica_program()?.to_string_lossy().into_owned(),
            "--host".into(),
            "127.0.0.1".into(),
        ],
    };
    Ok(Runtime::Process {
        command,
        ready_timeout,
        stop_timeout,
    })
}

/// A Docker object name: 1–128 of `[a-zA-Z0-9_.-]`, starting alphanumeric.
fn docker_name(key: &'static str, value: &str, allow_empty: bool) -> Result<String, ConfigError> {
    let mut chars = value.chars();
    let ok = (allow_empty && value.is_empty())
        || (value.len() <= 128
            && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
            && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')));
    if ok {
        Ok(value.to_string())
    } else {
        Err(invalid(
            key,
            value,
            "use letters, digits, '_', '.', '-', starting with a letter or digit",
        ))
    }
}

fn docker(
    file: RuntimeFile,
    ready_timeout: Duration,
    stop_timeout: Duration,
) -> Result<DockerSettings, ConfigError> {
    let address = match file.address.as_deref() {
        None | Some("container-ip") => AddressMode::ContainerIp,
        Some("alias") => AddressMode::Alias,
        Some(other) => {
            return Err(invalid(
                "runtime.address",
                other,
                "expected \"container-ip\" or \"alias\"",
            ));
        }
    };
    let image = file.image.unwrap_or_else(|| "lb-replica:latest".into());
    if image.is_empty() || image.contains(char::is_whitespace) {
        return Err(invalid(
            "runtime.image",
            &image,
            "must be an image reference like lb-replica:latest",
        ));
    }
    let nano_cpus = match file.cpus {
        None => None,
        Some(cpus) if cpus.is_finite() && cpus > 0.0 && cpus <= 1024.0 => Some((cpus * 1e9) as i64),
        Some(cpus) => {
            return Err(invalid(
                "runtime.cpus",
                &cpus.to_string(),
                "must be in (0, 1024]",
            ));
        }
    };
    let memory_bytes = match file.memory_mb {
        None => None,
        Some(mb) => Some(ranged::<i64>("runtime.memory_mb", Some(mb), 0, 6, 1 << 20)? << 20),
    };
    Ok(DockerSettings {
        image,
        network: docker_name(
            "runtime.network",
            file.network.as_deref().unwrap_or("lb-net"),
            false,
        )?,
        name_prefix: docker_name(
            "runtime.name_prefix",
            file.name_prefix.as_deref().unwrap_or(""),
            true,
        )?,
        owner: docker_name(
            "runtime.owner",
            file.owner.as_deref().unwrap_or("lb-daemon"),
            false,
        )?,
        port: ranged("runtime.port", file.port, 8080, 1, 65_535)?,
        address,
        env: file.env.unwrap_or_default(),
        replica_env: file.replica_env.unwrap_or_default(),
        memory_bytes,
        nano_cpus,
        stop_on_shutdown: file.stop_on_shutdown.unwrap_or(false),
        ready_timeout,
        stop_timeout,
    })
}

fn swarm(
    mut file: RuntimeFile,
    ready_timeout: Duration,
    stop_timeout: Duration,
) -> Result<SwarmSettings, ConfigError> {
    let address = match file.address.take().as_deref() {
        None | Some("published") => SwarmAddress::Published,
        Some("alias") => SwarmAddress::Alias,
        Some(other) => {
            return Err(invalid(
                "runtime.address",
                other,
                "expected \"published\" or \"alias\" for runtime.kind = \"swarm\"",
            ));
        }
    };
    let constraints = file.constraints.take().unwrap_or_default();
    if let Some(bad) = constraints
        .iter()
        .find(|c| !(c.contains("==") || c.contains("!=")) || c.contains('\n'))
    {
        return Err(invalid(
            "runtime.constraints",
            bad,
            "each is `attribute == value` or `attribute != value`, e.g. \"node.role == worker\"",
        ));
    }
    if file.network.is_none() {
        file.network = Some("lb-swarm".into());
    }
    Ok(SwarmSettings {
        base: docker(file, ready_timeout, stop_timeout)?,
        address,
        constraints,
    })
}

fn fixed(entries: Vec<StaticReplicaFile>) -> Result<Runtime, ConfigError> {
    let mut replicas: Vec<StaticReplica> = Vec::with_capacity(entries.len());
    for entry in entries {
        let name = NodeId::new(entry.name.as_str())
            .map_err(|e| invalid("runtime.replicas.name", &entry.name, e.to_string()))?;
        let address = entry.address.parse().map_err(|_| {
            invalid(
                "runtime.replicas.address",
                &entry.address,
                "expected ip:port",
            )
        })?;
        let weight = entry
            .weight
            .map(|w| super::rules::ranged("runtime.replicas.weight", Some(w), 1, 0, 256))
            .transpose()?;
        let protocol =
            super::upstream::protocol("runtime.replicas.protocol", entry.protocol.as_deref())?;
        if replicas.iter().any(|r| r.name == name) {
            return Err(invalid(
                "runtime.replicas.name",
                &entry.name,
                "listed twice",
            ));
        }
        replicas.push(StaticReplica {
            name,
            addr: address,
            weight,
            protocol,
        });
    }
    Ok(Runtime::Static(replicas))
}

/// Refuses a static replica whose `weight × points_per_weight` is more points than the
/// ring holds for one node.
///
/// # Errors
/// [`ConfigError::Invalid`] naming `runtime.replicas.weight`.
pub(super) fn check_static_weights(
    runtime: &Runtime,
    points_per_weight: u32,
) -> Result<(), ConfigError> {
    let Runtime::Static(replicas) = runtime else {
        return Ok(());
    };
    for weight in replicas.iter().filter_map(|r| r.weight) {
        if u64::from(weight) * u64::from(points_per_weight) > lb_core::MAX_POINTS_PER_NODE {
            return Err(invalid(
                "runtime.replicas.weight",
                &weight.to_string(),
                format!(
                    "weight × points_per_weight ({points_per_weight}) is above {} points",
                    lb_core::MAX_POINTS_PER_NODE
                ),
            ));
        }
    }
    Ok(())
}

/// `replica-server` in the directory of the running `lb-daemon` (cargo puts both in
/// `target/<profile>/`).
fn default_replica_program() -> Result<PathBuf, ConfigError> {
    let exe = std::env::current_exe()
        .map_err(|e| invalid("runtime.command", "<default>", e.to_string()))?;
    let program = exe.with_file_name(format!("replica-server{}", std::env::consts::EXE_SUFFIX));
    if program.is_file() {
        Ok(program)
    } else {
        Err(invalid(
            "runtime.command",
            &program.display().to_string(),
            "the default replica program is missing; build it with `cargo build --release -p lb-examples` or set runtime.command",
        ))
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn docker_and_static_runtimes_validate_and_foreign_keys_are_named() {
        let docker = Config::parse("[runtime]\nkind = \"docker\"\nimage = \"img:1\"\naddress = \"alias\"\ncpus = 0.5\nmemory_mb = 64\n[runtime.replica_env.s1]\nX = \"1\"\n").unwrap();
        assert!(
            matches!(docker.runtime, super::Runtime::Docker(ref d) if d.nano_cpus == Some(500_000_000) && d.memory_bytes == Some(64 << 20))
        );
        let swarm = Config::parse("[runtime]\nkind = \"swarm\"\nconstraints = [\"node.role == worker\"]\nowner = \"o1\"\n").unwrap();
        let super::Runtime::Swarm(ref swarm) = swarm.runtime else {
            panic!("not a swarm runtime: {:?}", swarm.runtime);
        };
        assert_eq!(
            swarm.address,
            crate::runtime::swarm::SwarmAddress::Published
        );
        assert_eq!(swarm.base.network, "lb-swarm");
        assert_eq!(swarm.base.owner, "o1");
        assert_eq!(swarm.constraints, ["node.role == worker"]);
        let fixed = Config::parse("[runtime]\nkind = \"static\"\n[[runtime.replicas]]\nname = \"a\"\naddress = \"127.0.0.1:9\"\nweight = 3\n").unwrap();
        assert!(
            matches!(fixed.runtime, super::Runtime::Static(ref r) if r.len() == 1 && r[0].weight == Some(3))
        );
        for (text, key) in [
            (
                "[runtime]\nkind = \"process\"\nimage = \"x\"\ncommand = [\"/bin/true\"]",
                "runtime.image",
            ),
            (
                "[runtime]\nkind = \"docker\"\nnetwork = \"bad net\"",
                "runtime.network",
            ),
            (
                "[runtime]\nkind = \"docker\"\naddress = \"dns\"",
                "runtime.address",
            ),
            (
                "[runtime]\nkind = \"static\"\n[[runtime.replicas]]\nname = \"a\"\naddress = \"nowhere\"",
                "runtime.replicas.address",
            ),
            ("[runtime]\nkind = \"vm\"", "runtime.kind"),
            (
                "[runtime]\nkind = \"swarm\"\naddress = \"container-ip\"",
                "runtime.address",
            ),
            (
                "[runtime]\nkind = \"swarm\"\nconstraints = [\"node.role\"]",
                "runtime.constraints",
            ),
            (
                "[runtime]\nkind = \"docker\"\nconstraints = [\"node.role == worker\"]",
                "runtime.constraints",
            ),
            (
                "[respawn]\nnaming = \"new\"\n[runtime]\ncommand = [\"/bin/true\"]",
                "respawn.naming",
            ),
        ] {
            let err = Config::parse(text).unwrap_err().to_string();
            assert!(err.contains(key), "{text:?} gave {err}");
        }
    }
}
