//! A real container runtime for the end-to-end tests: `podman kube play` (Debian's podman 4.3
//! with runc) runs the Pod manifest pbsimage emitted — or the pod template of its Job, as the
//! Job controller would create it — pulling the digest-pinned image from the test's registry,
//! as the manifest's uid, with its securityContext, volumes and limits.
//!
//! Each [`Podman`] has its own storage, run and temporary directories and `containers.conf`:
//! runc (crun 1.8 refuses this machine's hybrid cgroups), cgroupfs, no network, and ulimits
//! podman can set (it lowers its own RLIMIT_NPROC to 32768 and then cannot raise a
//! container's above it).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{EnvVar, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::common::{require, stderr};

/// A private podman.
pub struct Podman {
    dir: tempfile::TempDir,
    /// The network namespace podman runs in (its bridge and pods' addresses exist only
    /// there), for pods that talk to each other; `None`: pods have no network.
    netns: Option<NetNs>,
    /// The third octet of the bridge network's subnet.
    subnet: Option<u32>,
}

/// A network namespace a test made (`ip netns add`), deleted when dropped.
pub struct NetNs {
    name: String,
}

impl NetNs {
    /// A new namespace with its loopback up.
    pub fn new() -> NetNs {
        require("ip", "iproute2");
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let name = format!(
            "pbsimage-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        crate::common::run_ok(Command::new("ip").args(["netns", "add", &name]));
        let ns = NetNs { name };
        crate::common::run_ok(
            Command::new("ip").args(["netns", "exec", &ns.name, "ip", "link", "set", "lo", "up"]),
        );
        ns
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.name])
            .output();
    }
}

/// A pod that ran to its end.
#[derive(Debug)]
pub struct Played {
    /// The job container's exit code.
    pub exit: i32,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

impl Podman {
    /// A podman with its own storage under a temporary directory; its pods have no network.
    pub fn new() -> Podman {
        Podman::with(None)
    }

    /// A podman that runs in a network namespace of its own, where it makes a bridge network
    /// ([`Podman::network`], 10.89.N.0/24): its pods reach each other, and nothing else.
    /// Each instance has its own network name and subnet: netavark keeps one address book
    /// for the machine.
    pub fn networked() -> Podman {
        require("iptables", "iptables");
        require("nsenter", "util-linux");
        let mut p = Podman::with(Some(NetNs::new()));
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = (std::process::id() + N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)) % 250;
        p.subnet = Some(n);
        let (subnet, name) = (format!("10.89.{n}.0/24"), p.network());
        p.run(&[
            "network",
            "create",
            "--subnet",
            &subnet,
            "--disable-dns",
            &name,
        ]);
        p
    }

    /// The bridge network of a [`Podman::networked`].
    pub fn network(&self) -> String {
        format!("pbsnet{}", self.subnet.expect("a networked podman"))
    }

    /// Address `host` of the bridge network.
    pub fn address(&self, host: u8) -> String {
        format!("10.89.{}.{host}", self.subnet.expect("a networked podman"))
    }

    fn with(netns: Option<NetNs>) -> Podman {
        require("podman", "podman");
        require("runc", "runc");
        assert!(
            rustix::process::getuid().is_root(),
            "the podman tests run rootful podman (CI runs as root)"
        );
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let hard = rustix::process::getrlimit(rustix::process::Resource::Nofile)
            .maximum
            .unwrap_or(1 << 20);
        std::fs::write(
            d.join("containers.conf"),
            format!(
                "[containers]\ndefault_ulimits = [\"nofile={hard}:{hard}\", \"nproc=32768:32768\"]\n\
                 {netns}\
                 [engine]\nruntime = \"runc\"\ncgroup_manager = \"cgroupfs\"\n\
                 events_logger = \"file\"\ntmp_dir = \"{0}/tmp\"\nvolume_path = \"{0}/volumes\"\n\
                 [network]\nnetwork_config_dir = \"{0}/networks\"\n",
                d.display(),
                netns = if netns.is_some() { "" } else { "netns = \"none\"\n" },
            ),
        )
        .unwrap();
        std::fs::write(
            d.join("storage.conf"),
            format!(
                "[storage]\ndriver = \"overlay\"\nrunroot = \"{0}/run\"\ngraphroot = \"{0}/storage\"\n",
                d.display()
            ),
        )
        .unwrap();
        Podman {
            dir,
            netns,
            subnet: None,
        }
    }

    /// `podman` with this instance's configuration.
    pub fn cmd(&self) -> Command {
        match &self.netns {
            // nsenter, not `ip netns exec`: that also remounts /sys, and podman then finds
            // no cgroup hierarchy.
            Some(ns) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net=/run/netns/{}", ns.name)).arg("podman");
                self.configured(c)
            }
            None => self.configured(Command::new("podman")),
        }
    }

    /// `c` (podman, perhaps behind nsenter) with this instance's configuration.
    fn configured(&self, mut c: Command) -> Command {
        // conmon writes an `oom` file into its working directory when the kernel kills a
        // process of the container for memory: keep it out of the checkout.
        c.current_dir(self.dir.path())
            .env("CONTAINERS_CONF", self.dir.path().join("containers.conf"))
            .env(
                "CONTAINERS_STORAGE_CONF",
                self.dir.path().join("storage.conf"),
            )
            .env_remove("XDG_RUNTIME_DIR")
            .env_remove("XDG_CONFIG_HOME");
        c
    }

    /// Pulls `reference` (insecure) as the node would, from outside the pods' network
    /// namespace: the registry listens on the host's loopback.
    pub fn pull(&self, reference: &str) {
        let o = self
            .configured(Command::new("podman"))
            .args(["pull", "--quiet", "--tls-verify=false", reference])
            .output()
            .expect("podman runs");
        assert!(
            o.status.success(),
            "podman pull {reference}: {}",
            stderr(&o)
        );
    }

    /// Runs podman with `args`; it must succeed.
    pub fn run(&self, args: &[&str]) -> Output {
        let o = self.cmd().args(args).output().expect("podman runs");
        assert!(
            o.status.success(),
            "podman {}: {}",
            args.join(" "),
            stderr(&o)
        );
        o
    }

    /// Plays the pod of the manifest at `manifest` (a Pod, or a Job's pod template with
    /// `JOB_COMPLETION_INDEX` = `index`, as the Job controller sets it), named `name`, with
    /// `env` added to the container, and waits for its end.
    pub fn play(
        &self,
        manifest: &Path,
        name: &str,
        index: Option<u32>,
        env: &[(&str, &str)],
    ) -> Played {
        // What is played is first what Kubernetes would accept.
        crate::common::validate_kubernetes(&[manifest.to_owned()]);
        let yaml = std::fs::read_to_string(manifest).unwrap();
        let mut pod = pod_of(&yaml, name);
        let c = &mut pod.spec.as_mut().unwrap().containers[0];
        let envs = c.env.get_or_insert_with(Vec::new);
        if let Some(i) = index {
            envs.push(var("JOB_COMPLETION_INDEX", &i.to_string()));
        }
        for (k, v) in env {
            envs.push(var(k, v));
        }
        self.start(&pod, &["--network", "none"]);
        let played = self.wait(&format!("{name}-job"));
        self.run(&["pod", "rm", "--force", name]);
        played
    }

    /// Plays `pod` (named by its metadata) with podman's `extra` arguments (`--network`,
    /// `--ip`), without waiting for it.
    pub fn start(&self, pod: &Pod, extra: &[&str]) {
        let name = pod.metadata.name.clone().unwrap();
        let file = self.dir.path().join(format!("{name}.yaml"));
        std::fs::write(&file, serde_saphyr::to_string(pod).unwrap()).unwrap();
        let mut args = vec!["kube", "play", "--quiet", "--tls-verify=false"];
        args.extend(extra);
        args.push(file.to_str().unwrap());
        self.run(&args);
    }

    /// Waits for container `ctr` to end: its exit code and logs.
    pub fn wait(&self, ctr: &str) -> Played {
        let o = self.run(&["wait", ctr]);
        let exit = String::from_utf8_lossy(&o.stdout).trim().parse().unwrap();
        let logs = self.run(&["logs", ctr]);
        Played {
            exit,
            stdout: String::from_utf8_lossy(&logs.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&logs.stderr).into_owned(),
        }
    }

    /// Where a test keeps files for the pods (hostPath volumes).
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_owned()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        // Unmounts and removes the storage (overlay mounts would outlive the directory).
        let _ = self.cmd().args(["system", "reset", "--force"]).output();
    }
}

fn var(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        value_from: None,
    }
}

/// The Pod of a manifest's first object: itself if a Pod, the pod template if a Job.
pub fn pod_of(yaml: &str, name: &str) -> Pod {
    let kind_of = |doc: &str| {
        doc.lines()
            .find_map(|l| l.strip_prefix("kind: "))
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    // The first object that runs (a Secret or ConfigMap may come before it).
    let first = yaml
        .split("\n---\n")
        .find(|d| !["Secret", "ConfigMap"].contains(&kind_of(d).as_str()))
        .unwrap();
    let kind = kind_of(first);
    let (spec, labels) = match kind.as_str() {
        "Pod" => {
            let p: Pod = serde_saphyr::from_str(first).unwrap();
            (p.spec.unwrap(), p.metadata.labels)
        }
        "Job" => {
            let j: Job = serde_saphyr::from_str(first).unwrap();
            let t = j.spec.unwrap().template;
            (t.spec.unwrap(), t.metadata.and_then(|m| m.labels))
        }
        other => panic!("cannot play a {other}"),
    };
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels,
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    }
}
