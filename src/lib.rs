//! pbsimage turns a TORQUE/PBS batch job into an OCI image and a Kubernetes manifest,
//! without Docker.
//!
//! ```text
//! job.sh ──job──▶ JobSpec ──needs──▶ Needs ──resolve──▶ Resolution ──fetch──▶ verified RPMs
//!                    │                                                            │
//!                    ▼                                                            ▼
//!               kube: Job/Pod ◀── image ref ◀── push ◀── image: OCI config ◀── layers: RPM
//!               manifest          (digest)   (registry)  + manifest, layout    payload → tar
//! ```
//!
//! The seven stages and where they live:
//!
//! | stage | module | verb |
//! | --- | --- | --- |
//! | 1. Job: `#PBS` directives → [`job::JobSpec`] | [`job`] | [`job::ScriptParser::parse`] |
//! | 2. Needs: ELF + script → capabilities | `elf` (next issue) | |
//! | 3. Resolve: needs → packages via repo metadata | `repo`, `resolve` | |
//! | 4. Layers: RPM payloads → deterministic tar layers | `fetch`, `rpm`, `layer`, `cache` | |
//! | 5. Image: OCI config, manifest, layout | [`image`] | |
//! | 6. Push: OCI distribution protocol | `registry` | |
//! | 7. Manifest: Job/Pod from the job spec | [`kube`] | [`kube::Emitter::emit`] |
//!
//! Settings come from `pipeline.toml` ([`config`]); the command line is [`cli`].
//!
//! ```
//! use std::collections::BTreeMap;
//! use std::path::Path;
//! use pbsimage::config::{Config, KubeKind, Origin};
//! use pbsimage::image::ImageRef;
//! use pbsimage::job::ScriptParser;
//! use pbsimage::kube::{Emitter, RunAs};
//!
//! let script = b"#!/bin/bash\n#PBS -N fib\n#PBS -l nodes=1:ppn=2,mem=4gb\n./a.out 6\n";
//! let env = BTreeMap::new();
//! let job = ScriptParser::new(&env).parse_bytes(Path::new("job.sh"), script)?;
//! assert_eq!(job.resources.mem.unwrap().to_quantity(), "4Gi");
//!
//! let config = Config::from_str("", Origin::Embedded, Path::new("."))?;
//! let emitter = Emitter {
//!     settings: &config.settings.kube,
//!     job_dir: &config.settings.image.job_dir,
//!     kind: KubeKind::Job,
//!     run_as: RunAs { uid: 1000, gid: 1000 },
//! };
//! let image = ImageRef::parse(&format!("registry.example.org/pbs/fib@sha256:{}", "0".repeat(64)))?;
//! let yaml = emitter.emit(&job, &image)?.to_yaml()?;
//! assert!(yaml.starts_with("apiVersion: batch/v1\nkind: Job\n"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(unreachable_pub)]

pub mod cache;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod decompress;
pub mod digest;
pub mod elf;
pub mod fetch;
pub mod hint;
pub mod image;
pub mod job;
pub mod kube;
pub mod layer;
pub mod needs;
pub mod ops;
pub mod progress;
pub mod registry;
pub mod repo;
pub mod resolve;
pub mod rpm;
