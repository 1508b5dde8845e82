//! The integration test binary: one binary, one module per area.

mod build;
mod catalog;
mod cli;
mod common;
mod e2e;
mod elf;
mod fakereg;
mod fixtures;
mod hostile;
mod http;
mod layer;
mod layering;
mod modules;
mod podman;
mod props;
mod push;
mod rebuild;
mod repo;
mod sign;
mod wrapper;
