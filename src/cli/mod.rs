//! The command line: arguments → settings → one `ops` call → output. Each command is an
//! `exec` of a few lines; nothing here does pipeline work.

mod args;
mod build;
mod cache;
mod catalog;
mod layers;
mod manifest;
mod needs;
mod parse;
mod progress;
mod render;
mod resolve;
mod sign;

use std::process::ExitCode;

use clap::Parser;

use crate::config::Config;
use crate::hint::Hint;
use crate::job::{JobSpec, ProcessEnv, ScriptParser};
use args::{Cli, Command, GlobalArgs, ScriptArgs};

/// An error on its way to the terminal: the error chain, and the hints of the library error
/// it came from (taken once, where the error entered the CLI).
pub(crate) struct Report {
    /// The error and its causes.
    pub(crate) error: anyhow::Error,
    /// `hint:` lines.
    pub(crate) hints: Vec<String>,
}

impl<E: std::error::Error + Hint + Send + Sync + 'static> From<E> for Report {
    fn from(e: E) -> Report {
        // A full disk is the news, whichever stage was writing.
        let hints = match crate::hint::disk_full(&e) {
            Some(h) => vec![h],
            None => e.hint().into_iter().collect(),
        };
        Report {
            hints,
            error: anyhow::Error::new(e),
        }
    }
}

impl From<anyhow::Error> for Report {
    fn from(error: anyhow::Error) -> Report {
        Report {
            error,
            hints: Vec::new(),
        }
    }
}

/// What a command returns.
pub(crate) type Result<T, E = Report> = std::result::Result<T, E>;

/// Where output goes: data to stdout, warnings to stderr unless quiet.
pub(crate) struct Printer {
    /// No warnings.
    pub(crate) quiet: bool,
}

impl Printer {
    /// Writes data to stdout; a closed pipe (`| head`) ends output quietly.
    pub(crate) fn data(&self, s: &str) {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{s}").and_then(|()| out.flush());
    }

    /// Writes a value as pretty JSON to stdout.
    pub(crate) fn json<T: serde::Serialize>(&self, value: &T) {
        self.data(&serde_json::to_string_pretty(value).expect("reports serialize"));
    }

    /// A note on stderr (what pbsimage did on the user's behalf), unless quiet.
    pub(crate) fn note(&self, s: &str) {
        if !self.quiet {
            eprintln!("note: {s}");
        }
    }

    /// A warning on stderr, unless quiet.
    pub(crate) fn warn(&self, s: &str) {
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

/// What every command gets: the global flags and the printer.
pub(crate) struct Env<'a> {
    /// `--config`, `--quiet`, `--verbose`.
    pub(crate) global: &'a GlobalArgs,
    /// Output.
    pub(crate) printer: Printer,
}

impl Env<'_> {
    /// The configuration: `--config`, else `./pipeline.toml`, else the embedded default.
    fn config(&self) -> Result<Config> {
        Ok(Config::discover(self.global.config.as_deref())?)
    }

    /// An `ops` context with progress bars where the terminal allows them.
    fn context(&self, offline: bool) -> Result<crate::ops::Context> {
        let mut ctx = crate::ops::Context::new(
            self.config()?,
            crate::ops::Options {
                offline,
                ..Default::default()
            },
        )?;
        ctx.reporter = progress::reporter(self.printer.quiet);
        Ok(ctx)
    }

    /// Parses the script and prints its warnings.
    fn parse_script(&self, args: &ScriptArgs) -> Result<JobSpec> {
        let parser = ScriptParser {
            prefix: args.prefix.clone(),
            env: &ProcessEnv,
        };
        let job = parser.parse(&args.script)?;
        for w in &job.warnings {
            self.printer.warn(&format!(
                "{}:{}:{}: {}",
                args.script.display(),
                w.line,
                w.col,
                w.message
            ));
        }
        Ok(job)
    }
}

/// Runs the command line.
pub(crate) fn run(cli: Cli) -> Result<()> {
    init_tracing(cli.global.verbose, cli.global.quiet);
    let env = Env {
        global: &cli.global,
        printer: Printer {
            quiet: cli.global.quiet,
        },
    };
    match &cli.command {
        Command::Parse(a) => parse::exec(a, &env),
        Command::Build(a) => build::exec(a, &env),
        Command::Catalog(a) => catalog::exec(a, &env),
        Command::Needs(a) => needs::exec(a, &env),
        Command::Resolve(a) => resolve::exec(a, &env),
        Command::Layers(a) => layers::exec(a, &env),
        Command::Cache(c) => cache::exec(c, &env),
        Command::Manifest(a) => manifest::exec(a, &env),
        Command::Keygen(a) => sign::keygen(a, &env),
        Command::Verify(a) => sign::verify(a, &env),
        Command::CatalogMerge(a) => catalog::merge(a, &env),
        Command::Policy(a) => sign::policy(a, &env),
    }
}

/// Entry point for `main`: parse arguments, run, render errors, map to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(report) => {
            eprint!("{}", render::error(&report));
            ExitCode::FAILURE
        }
    }
}
