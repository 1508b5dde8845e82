pub mod cli;
pub mod config;
pub mod image;
pub mod job;
pub mod kube;
