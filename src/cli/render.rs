//! How errors and warnings reach the terminal: `error:`, `Caused by:`, `hint:`.

use std::fmt::Write as _;
use std::io::IsTerminal;

use crate::config::ConfigError;
use crate::image::reference::InvalidImageRef;
use crate::job::JobError;
use crate::kube::KubeError;

/// Colours only on a terminal and without NO_COLOR.
pub fn use_color() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal()
}

fn paint(s: &str, code: &str) -> String {
    if use_color() {
        format!("\x1b[{code}m{s}\x1b[0m")
    } else {
        s.to_owned()
    }
}

/// Hints from any pbsimage error in the chain.
fn hints(err: &anyhow::Error) -> Vec<String> {
    let mut out = Vec::new();
    for cause in err.chain() {
        let h = if let Some(e) = cause.downcast_ref::<JobError>() {
            e.hint()
        } else if let Some(e) = cause.downcast_ref::<ConfigError>() {
            e.hint()
        } else if let Some(e) = cause.downcast_ref::<KubeError>() {
            e.hint()
        } else if let Some(e) = cause.downcast_ref::<crate::pipeline::PipelineError>() {
            e.hint()
        } else if let Some(e) = cause.downcast_ref::<crate::catalog::CatalogError>() {
            e.hint()
        } else if let Some(e) = cause.downcast_ref::<crate::needs::NeedsError>() {
            e.hint()
        } else if let Some(e) = cause.downcast_ref::<crate::elf::ElfError>() {
            e.hint()
        } else if cause.downcast_ref::<InvalidImageRef>().is_some() {
            Some("references look like registry.example.org/pbs/fib@sha256:<64 hex digits>".into())
        } else {
            None
        };
        out.extend(h);
    }
    out
}

/// Renders an error chain for stderr.
pub fn error(err: &anyhow::Error) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{} {err}", paint("error:", "1;31"));
    let causes: Vec<String> = err.chain().skip(1).map(|c| c.to_string()).collect();
    if !causes.is_empty() {
        let _ = writeln!(out, "\nCaused by:");
        for (i, c) in causes.iter().enumerate() {
            // toml errors are multi-line snippets; indent every line.
            let mut lines = c.lines();
            let _ = writeln!(out, "  {i}: {}", lines.next().unwrap_or_default());
            for l in lines {
                let _ = writeln!(out, "     {l}");
            }
        }
    }
    let mut hs = hints(err);
    hs.dedup();
    for h in hs {
        let _ = writeln!(out, "{} {h}", paint("hint:", "1;36"));
    }
    out
}

/// Prints a warning unless quiet.
pub fn warning(quiet: bool, msg: &str) {
    if !quiet {
        eprintln!("{} {msg}", paint("warning:", "1;33"));
    }
}
