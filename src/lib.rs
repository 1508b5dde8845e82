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
//! Every module and its verb (the stages are joined, top to bottom, in [`ops`]; the map for
//! maintainers is `ARCHITECTURE.md`):
//!
//! | stage | module | verb |
//! | --- | --- | --- |
//! | Job: `#PBS` directives → [`job::JobSpec`] | [`job`] | [`job::ScriptParser::parse`] |
//! | Needs: ELF + script → capabilities | [`elf`], [`needs`] | [`elf::ElfReader::read`], [`needs::NeedsAnalyzer::analyze`] |
//! | Repositories: repomd → memory-mapped index | [`repo`] | [`repo::RepoLoader::load`] |
//! | Resolve: needs → packages and why | [`resolve`] | [`resolve::Resolver::resolve`] |
//! | Fetch: packages into the cache, verified | [`fetch`] | [`fetch::download::Downloader::fetch`] |
//! | Layers: RPM payloads → deterministic tar | [`rpm`], [`layer`] | [`rpm::RpmReader::open`], [`layer::plan::build_layer`] |
//! | Image: OCI config, manifest, layout | [`image`] | [`image::oci::assemble`], [`image::oci::write_layout`] |
//! | Push: OCI distribution protocol | [`registry`] | [`registry::Pusher::push_all`] |
//! | Manifest: Job/Pod from the job spec | [`kube`] | [`kube::Emitter::emit`] |
//! | Catalog: a directory or catalog.toml → jobs | [`catalog`] | [`catalog::discover`] |
//! | The stages joined | [`ops`] | [`ops::build_job`], [`ops::catalog::run`] |
//! | Cache: content-addressed store in buckets | [`cache`] | [`cache::Cache::bucket`] |
//! | Checksums, decompression (leaves) | [`digest`], [`decompress`] | [`digest::hash_reader`], [`decompress::open`] |
//! | Errors' advice, progress | [`hint`], [`progress`] | [`hint::Hint::hint`], [`progress::Reporter`] |
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
//!     naming: Default::default(),
//! };
//! let image = ImageRef::parse(&format!("registry.example.org/pbs/fib@sha256:{}", "0".repeat(64)))?;
//! let yaml = emitter.emit(&job, &image)?.to_yaml()?;
//! assert!(yaml.starts_with("apiVersion: batch/v1\nkind: Job\n"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs, unreachable_pub)]

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
pub mod sign;
