//! The command line: arguments → settings → library calls. Nothing here does pipeline work.

pub mod args;
mod build;
mod cache;
mod catalog;
mod layers;
mod manifest;
mod needs;
mod parse;
mod progress;
pub mod render;
mod resolve;

use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;

use crate::config::Config;
use crate::job::{JobSpec, ProcessEnv, ScriptParser};
use args::{Cli, Command, ScriptArgs};

/// Where output goes: data to stdout, warnings to stderr unless quiet.
pub struct Printer {
    pub quiet: bool,
}

impl Printer {
    /// Writes data to stdout; a closed pipe (`| head`) ends output quietly.
    pub fn data(&self, s: &str) {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{s}").and_then(|()| out.flush());
    }
    pub fn warn(&self, s: &str) {
        render::warning(self.quiet, s);
    }
}

fn init_tracing(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("PBSIMAGE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("pbsimage={level}")));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(render::use_color())
        .without_time()
        .try_init();
}

/// A pipeline context with progress bars where the terminal allows them.
fn context(config: Config, offline: bool, printer: &Printer) -> Result<crate::pipeline::Context> {
    let mut ctx = crate::pipeline::Context::new(
        config,
        crate::pipeline::Options {
            offline,
            ..Default::default()
        },
    )?;
    ctx.reporter = progress::reporter(printer.quiet);
    Ok(ctx)
}

/// Parses the script and prints its warnings.
fn parse_script(args: &ScriptArgs, printer: &Printer) -> Result<JobSpec> {
    let parser = ScriptParser {
        prefix: args.prefix.clone(),
        env: &ProcessEnv,
    };
    let job = parser.parse(&args.script)?;
    for w in &job.warnings {
        printer.warn(&format!(
            "{}:{}:{}: {}",
            args.script.display(),
            w.line,
            w.col,
            w.message
        ));
    }
    Ok(job)
}

/// Runs the command line.
pub fn run(cli: Cli) -> Result<()> {
    init_tracing(cli.global.verbose, cli.global.quiet);
    let printer = Printer {
        quiet: cli.global.quiet,
    };
    match &cli.command {
        Command::Parse(a) => parse::run(a, &printer),
        Command::Build(a) => {
            let config = Config::discover(cli.global.config.as_deref())?;
            build::run(a, config, &printer)
        }
        Command::Catalog(a) => {
            let config = Config::discover(cli.global.config.as_deref())?;
            catalog::run(a, config, &printer)
        }
        Command::Needs(a) => {
            let config = Config::discover(cli.global.config.as_deref())?;
            needs::run(a, &config, &printer)
        }
        Command::Resolve(a) => {
            let config = Config::discover(cli.global.config.as_deref())?;
            resolve::run(a, config, &printer)
        }
        Command::Layers(a) => {
            let config = Config::discover(cli.global.config.as_deref())?;
            layers::run(a, config, &printer)
        }
        Command::Cache(c) => {
            let config = Config::discover(cli.global.config.as_deref())?;
            cache::run(c, config, &printer)
        }
        Command::Manifest(a) => {
            let config = Config::discover(cli.global.config.as_deref())?;
            manifest::run(a, &config, &printer)
        }
    }
}

/// Entry point for `main`: parse arguments, run, render errors, map to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprint!("{}", render::error(&e));
            ExitCode::FAILURE
        }
    }
}
