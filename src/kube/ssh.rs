//! How the pods of a multi-node job reach each other in `[kube] mpi`'s ssh modes, the way the
//! MPI Operator v2 does it: the sister nodes (workers) run a non-root sshd on a high port
//! whose host key and only authorized key is the job's key pair, mounted in the job's home;
//! node 0's `mpirun` (Open MPI or MPICH's Hydra) reaches them through pbsimage's remote
//! shell ([`super::RSH_PATH`]), which is ssh with that key and the launcher's `PATH` and
//! `LD_LIBRARY_PATH`. In `ssh` mode pbsimage generates the key pair as a Secret of the job;
//! the MPI Operator generates its own.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{EnvVar, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::{HOME_DIR, RSH_PATH};

/// The port the workers' sshd listens on (non-root: above 1024).
pub const SSH_PORT: u16 = 2222;

/// The key files' names in the ssh directory, as the MPI Operator names them (its keys are
/// ECDSA despite the name; pbsimage's are Ed25519).
pub const PRIVATE_KEY: &str = "id_rsa";
/// The public key.
pub const PUBLIC_KEY: &str = "id_rsa.pub";
/// The keys sshd lets in: the public key.
pub const AUTHORIZED_KEYS: &str = "authorized_keys";
/// ssh's own configuration in the job's home: a plain `ssh <node>` in the job's script
/// reaches the sister nodes as on a PBS cluster (port, key, no host-key prompts).
pub const CLIENT_CONFIG: &str = "config";

/// Where the key pair is mounted: `.ssh` in the job's home.
pub fn ssh_dir() -> String {
    format!("{HOME_DIR}/.ssh")
}

/// The Secret's name for job `name`.
pub fn secret_name(name: &str) -> String {
    format!("{name}-ssh")
}

fn var(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        value_from: None,
    }
}

/// The settings of a pod that launches (node 0: Open MPI's and Hydra's remote shell is
/// pbsimage's, on the workers' port) and/or serves (the other nodes: the wrapper runs sshd
/// instead of waiting); both find the job's key and port the same way.
pub fn env(launches: bool, serves: bool) -> Vec<EnvVar> {
    let mut v = Vec::new();
    if launches {
        let args = format!(
            "-p {SSH_PORT} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ConnectionAttempts=10"
        );
        v.extend([
            var("OMPI_MCA_plm_rsh_agent", RSH_PATH),
            var("OMPI_MCA_plm_rsh_args", args.clone()),
            var("HYDRA_LAUNCHER", "ssh"),
            var("HYDRA_LAUNCHER_EXEC", RSH_PATH),
            var("HYDRA_LAUNCHER_EXTRA_ARGS", args),
        ]);
    }
    if serves {
        v.push(var("PBSIMAGE_SISTER", "sshd"));
    }
    v.push(var("PBSIMAGE_SSH_PORT", SSH_PORT.to_string()));
    v.push(var("PBSIMAGE_SSH_DIR", ssh_dir()));
    v
}

/// The job's `~/.ssh/config`: every host on the sisters' port, with the job's key.
pub fn client_config() -> String {
    format!(
        "# pbsimage: the job's nodes run sshd on port {SSH_PORT} with this job's key\n\
         Host *\n    Port {SSH_PORT}\n    IdentityFile {dir}/{PRIVATE_KEY}\n    IdentitiesOnly yes\n\
         \x20   StrictHostKeyChecking no\n    UserKnownHostsFile /dev/null\n    LogLevel ERROR\n",
        dir = ssh_dir()
    )
}

/// Why a key pair cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum SshKeyError {
    /// The system's random source failed.
    #[error("cannot read random bytes for the job's ssh key: {0}")]
    Random(getrandom::Error),
    /// The key cannot be written in OpenSSH's format.
    #[error("cannot write the job's ssh key")]
    Encode(#[source] ssh_key::Error),
}

/// A fresh Ed25519 key pair for job `name`, in OpenSSH's formats: (private, public).
pub fn generate_key(name: &str) -> Result<(String, String), SshKeyError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(SshKeyError::Random)?;
    let pair = ssh_key::private::Ed25519Keypair::from_seed(&seed);
    seed.fill(0);
    let mut key = ssh_key::PrivateKey::from(pair);
    key.set_comment(format!("pbsimage job {name}"));
    let private = key
        .to_openssh(ssh_key::LineEnding::LF)
        .map_err(SshKeyError::Encode)?;
    let public = key.public_key().to_openssh().map_err(SshKeyError::Encode)?;
    Ok((private.to_string(), format!("{public}\n")))
}

/// The Secret that keys job `name`'s sshd and ssh (a fresh pair each time it is made).
pub fn secret(
    name: &str,
    namespace: Option<String>,
    labels: BTreeMap<String, String>,
) -> Result<Secret, SshKeyError> {
    let (private, public) = generate_key(name)?;
    Ok(Secret {
        metadata: ObjectMeta {
            name: Some(secret_name(name)),
            namespace,
            labels: Some(labels),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        immutable: Some(true),
        data: Some(BTreeMap::from([
            (PRIVATE_KEY.to_owned(), ByteString(private.into_bytes())),
            (
                PUBLIC_KEY.to_owned(),
                ByteString(public.clone().into_bytes()),
            ),
            (AUTHORIZED_KEYS.to_owned(), ByteString(public.into_bytes())),
            (
                CLIENT_CONFIG.to_owned(),
                ByteString(client_config().into_bytes()),
            ),
        ])),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_openssh_ed25519_and_fresh() {
        let (private, public) = generate_key("hello").unwrap();
        assert!(private.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----\n"));
        assert!(public.starts_with("ssh-ed25519 ") && public.ends_with(" pbsimage job hello\n"));
        let parsed = ssh_key::PrivateKey::from_openssh(&private).unwrap();
        assert_eq!(parsed.public_key().to_openssh().unwrap(), public.trim_end());
        assert_ne!(generate_key("hello").unwrap().0, private);
    }

    #[test]
    fn a_rebuilt_manifest_keeps_the_previous_key_of_the_same_secret() {
        use crate::kube::{Manifest, Object};
        let manifest = |ns: &str| Manifest {
            objects: vec![Object::Secret(Box::new(
                secret("hello", Some(ns.into()), BTreeMap::new()).unwrap(),
            ))],
            warnings: Vec::new(),
        };
        let old = manifest("hpc");
        let previous = format!("kind: Job\n---\n{}", old.to_yaml().unwrap());
        let mut new = manifest("hpc");
        assert_ne!(new, old);
        assert_eq!(new.keep_secrets_of(&previous), 1);
        assert_eq!(new, old);
        // Another namespace's Secret is another Secret.
        let mut other = manifest("lab");
        assert_eq!(other.keep_secrets_of(&previous), 0);
        assert_eq!(other.keep_secrets_of("not: [yaml"), 0);
    }

    #[test]
    fn the_secret_holds_the_pair_and_the_authorized_key() {
        let s = secret("hello", Some("hpc".into()), BTreeMap::new()).unwrap();
        assert_eq!(s.metadata.name.as_deref(), Some("hello-ssh"));
        let d = s.data.unwrap();
        assert_eq!(d[PUBLIC_KEY], d[AUTHORIZED_KEYS]);
        assert!(
            d[PRIVATE_KEY]
                .0
                .starts_with(b"-----BEGIN OPENSSH PRIVATE KEY-----")
        );
    }
}
