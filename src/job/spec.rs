//! The typed result of parsing a job script.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::resources::{ArraySpec, Resources};

/// A PBS job name (`-N`, or the script's file name): printable, no white space.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct JobName(String);

/// Why a string is not a [`JobName`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidJobName(pub String);

impl JobName {
    /// The longest name accepted (qsub's limit).
    pub const MAX_LEN: usize = 236;

    /// Validates a job name: printable, no white space, at most [`JobName::MAX_LEN`].
    pub fn new(s: &str) -> Result<JobName, InvalidJobName> {
        if s.is_empty() {
            return Err(InvalidJobName("a job name cannot be empty".into()));
        }
        if let Some(c) = s.chars().find(|c| c.is_whitespace() || c.is_control()) {
            return Err(InvalidJobName(format!(
                "a job name cannot contain white space or control characters (found {c:?})"
            )));
        }
        if s.chars().count() > Self::MAX_LEN {
            return Err(InvalidJobName(format!(
                "a job name can have at most {} characters",
                Self::MAX_LEN
            )));
        }
        Ok(JobName(s.to_owned()))
    }

    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A DNS-1123 label of at most `max_len` (≤ 63) characters, starting with a letter (so it
    /// is also a valid DNS-1035 Service name).
    ///
    /// A name that is already such a label is returned unchanged. Any other name is lowercased,
    /// every run of other characters becomes `-`, and a hash of the original is appended, so two
    /// distinct job names never map to the same label.
    pub fn dns_label(&self, max_len: usize) -> String {
        let max_len = max_len.clamp(12, 63);
        if is_dns1035_label(&self.0) && self.0.len() <= max_len {
            return self.0.clone();
        }
        let mut base = String::new();
        for c in self.0.chars().flat_map(char::to_lowercase) {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                base.push(c);
            } else if !base.ends_with('-') {
                base.push('-');
            }
        }
        let base = base.trim_matches('-');
        let base = if base.starts_with(|c: char| c.is_ascii_lowercase()) {
            base.to_owned()
        } else {
            format!("j{}", base)
        };
        let digest = Sha256::digest(self.0.as_bytes());
        let hash: String = digest.iter().take(5).map(|b| format!("{b:02x}")).collect();
        let keep = max_len - hash.len() - 1;
        let base: String = base.chars().take(keep).collect();
        format!("{}-{hash}", base.trim_end_matches('-'))
    }
}

impl fmt::Display for JobName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// RFC 1035 label: lowercase letter first, then lowercase letters, digits, `-`; no `-` last.
pub fn is_dns1035_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && !s.ends_with('-')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// `-j`: which output streams are merged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Join {
    /// Separate files (no `-j`).
    #[default]
    N,
    /// stderr into stdout
    Oe,
    /// stdout into stderr
    Eo,
}

/// An environment variable given with `-v`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnvVar {
    /// The variable's name.
    pub name: String,
    /// Its value.
    pub value: String,
}

fn octal<S: serde::Serializer>(m: &Option<u32>, s: S) -> Result<S::Ok, S::Error> {
    match m {
        Some(m) => s.serialize_str(&format!("{m:03o}")),
        None => s.serialize_none(),
    }
}

/// A directive that was read, for provenance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Directive {
    /// Line of the directive.
    pub line: u32,
    /// The option (`-l`).
    pub option: String,
    /// Its value, if it takes one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// A non-fatal finding, with its place in the script.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// Line.
    pub line: u32,
    /// Column.
    pub col: u32,
    /// The option concerned, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub option: Option<String>,
    /// What was ignored or changed, and why.
    pub message: String,
}

/// Everything a job script declares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobSpec {
    /// The script path as given.
    pub script: PathBuf,
    /// `-N`, else the script's file name.
    pub name: JobName,
    /// True when the name came from `-N` rather than the file name.
    pub name_from_directive: bool,
    /// The `#!` line's interpreter and arguments.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shebang: Option<String>,
    /// `-S`: the shell that runs the script.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shell: Option<String>,
    /// `-B`: the job's binary, joined to the script's directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub binary: Option<PathBuf>,
    /// `-q` queue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// `-q queue@server`'s server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// `-A` account.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// `-l` resources.
    pub resources: Resources,
    /// `-t`/`-J` array.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub array: Option<ArraySpec>,
    /// `-v` variables, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// `-V` was given (reported, not honoured: the local environment never enters a manifest).
    pub export_all_env: bool,
    /// `-o` path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stdout_path: Option<String>,
    /// `-e` path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stderr_path: Option<String>,
    /// `-j` join.
    pub join: Join,
    /// `-d` / `-w`: the initial working directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    /// `-r y|n`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rerunnable: Option<bool>,
    /// `-p` priority (-1024..=1023).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    /// `-h`: submitted held.
    pub hold: bool,
    /// `-W umask=`, shown in octal.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "octal")]
    pub umask: Option<u32>,
    /// `-F` arguments to the script.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub script_args: Vec<String>,
    /// `-m` mail events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mail_events: Option<String>,
    /// `-M` mail recipients.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mail_users: Vec<String>,
    /// `-W name=value` attributes other than `umask`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
    /// Options that are recognised and recorded but have no effect on the image or manifest.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub recorded: BTreeMap<String, String>,
    /// Line of the first command (where directive scanning stopped).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_line: Option<u32>,
    /// Every directive read, in order.
    pub directives: Vec<Directive>,
    /// What was ignored or changed, with line and column.
    pub warnings: Vec<Warning>,
    /// sha256 of the script's bytes (hex): the image tag's `{script-digest}` and the suffix
    /// of the Kubernetes object names, so that different scripts never share a name.
    #[serde(skip)]
    pub script_sha256: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels() {
        let n = |s: &str| JobName::new(s).unwrap();
        assert_eq!(n("fib").dns_label(63), "fib");
        let a = n("Fib").dns_label(63);
        assert!(a.starts_with("fib-") && is_dns1035_label(&a), "{a}");
        assert_ne!(n("job.sh").dns_label(63), n("job_sh").dns_label(63));
        let long = n(&"x".repeat(100)).dns_label(52);
        assert!(long.len() <= 52 && is_dns1035_label(&long), "{long}");
        let digits = n("123").dns_label(63);
        assert!(digits.starts_with("j123-"), "{digits}");
        let weird = n("ÄÖÜ").dns_label(63);
        assert!(is_dns1035_label(&weird), "{weird}");
        assert!(JobName::new("a b").is_err());
        assert!(JobName::new("").is_err());
    }
}
