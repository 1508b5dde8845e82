//! How errors and warnings reach the terminal: `error:`, `Caused by:`, `hint:`.

use std::fmt::Write as _;
use std::io::IsTerminal;

use super::Report;

/// Colours only on a terminal and without NO_COLOR.
pub(crate) fn use_color() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal()
}

fn paint(s: &str, code: &str) -> String {
    if use_color() {
        format!("\x1b[{code}m{s}\x1b[0m")
    } else {
        s.to_owned()
    }
}

/// Renders an error chain for stderr, with its hints last.
pub(crate) fn error(report: &Report) -> String {
    let err = &report.error;
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
    let mut hs = report.hints.clone();
    hs.dedup();
    for h in hs {
        let _ = writeln!(out, "{} {h}", paint("hint:", "1;36"));
    }
    out
}

/// Prints a warning unless quiet.
pub(crate) fn warning(quiet: bool, msg: &str) {
    if !quiet {
        eprintln!("{} {msg}", paint("warning:", "1;33"));
    }
}
