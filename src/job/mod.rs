//! Job: a TORQUE/PBS script → [`JobSpec`].
//!
//! [`ScriptParser::parse`] follows `qsub`'s directive rules (see its `lexer`) and recognises every
//! qsub option. Options that matter to the image or the manifest are typed; the others are
//! recorded. Unknown options and options with no Kubernetes meaning are warnings naming line
//! and option; malformed values are errors naming file, line and column.

pub(crate) mod commands;
pub(crate) mod lexer;
pub mod resources;
pub mod spec;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use lexer::{MAX_DIRECTIVE_CHARS, Pos};

/// Variables `-v NAME` (without a value) does not copy from the environment: the submit
/// host's search paths, identity, session and terminal. The image and the pod set their own.
pub const HOST_ONLY_VARS: &[&str] = &[
    "PATH",
    "LD_LIBRARY_PATH",
    "LD_PRELOAD",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "PWD",
    "OLDPWD",
    "TMPDIR",
    "HOSTNAME",
    "TERM",
    "DISPLAY",
    "MAIL",
    "SSH_AUTH_SOCK",
    "SSH_CLIENT",
    "SSH_CONNECTION",
    "SSH_TTY",
    "XDG_RUNTIME_DIR",
];
/// The largest job script read, in bytes. Job scripts are shell text that starts programs;
/// qsub-era servers hold them in memory and PBS sites keep them far smaller than this.
pub const MAX_SCRIPT_BYTES: u64 = 8 << 20;
use lexer::Word;
use resources::{ArraySpec, Merge, Resources, ValueError};
pub use spec::{Directive, EnvVar, JobName, JobSpec, Join, Warning};

/// Errors from reading a job script.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The script cannot be read.
    #[error("cannot read job script `{}`", path.display())]
    Read {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The script is not a regular file (a FIFO, a device, a directory).
    #[error("job script `{}` is not a regular file", path.display())]
    NotAFile {
        /// The file concerned.
        path: PathBuf,
    },
    /// The script is larger than pbsimage reads.
    #[error("job script `{}` is larger than {limit} bytes", path.display())]
    TooLarge {
        /// The file concerned.
        path: PathBuf,
        /// The limit, in bytes.
        limit: u64,
    },
    /// The script is empty.
    #[error("job script `{}` is empty", path.display())]
    Empty {
        /// The file concerned.
        path: PathBuf,
    },
    /// The script has a NUL byte (a binary, not a script).
    #[error("`{}` is not a job script: it holds binary data (NUL byte at offset {offset})", path.display())]
    Binary {
        /// The file concerned.
        path: PathBuf,
        /// Byte offset of the problem.
        offset: usize,
    },
    /// A directive is malformed.
    #[error("{}:{}:{}: {message}", path.display(), pos.line, pos.col)]
    Syntax {
        /// The file concerned.
        path: PathBuf,
        /// Line and column.
        pos: Pos,
        /// What is wrong.
        message: String,
        /// What to do about it, if anything.
        hint: Option<String>,
    },
}

impl crate::hint::Hint for JobError {
    fn hint(&self) -> Option<String> {
        match self {
            JobError::Syntax { hint, .. } => hint.clone(),
            JobError::Empty { .. } => {
                Some("a job script needs at least one command after its #PBS directives".into())
            }
            JobError::Binary { .. } => {
                Some("pass the job's shell script; name its binary with `#PBS -B a.out`".into())
            }
            JobError::NotAFile { .. } => Some("pass the job script itself, a regular file".into()),
            JobError::TooLarge { .. } => Some(
                "keep data out of the script: read it from a file next to it (or an output \
                 volume)"
                    .into(),
            ),
            JobError::Read { .. } => None,
        }
    }
}

/// How an option is written.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Arity {
    Flag,
    Value,
}

/// Every qsub option (TORQUE 6 and PBS Pro) plus pbsimage's `-B`.
fn arity(c: char) -> Option<Arity> {
    match c {
        'a' | 'A' | 'b' | 'B' | 'c' | 'C' | 'd' | 'D' | 'e' | 'F' | 'i' | 'j' | 'J' | 'k' | 'K'
        | 'l' | 'L' | 'm' | 'M' | 'N' | 'o' | 'p' | 'P' | 'q' | 'r' | 'S' | 't' | 'T' | 'u'
        | 'v' | 'w' | 'W' => Some(Arity::Value),
        'E' | 'f' | 'h' | 'I' | 'n' | 'V' | 'x' | 'X' | 'z' => Some(Arity::Flag),
        _ => None,
    }
}

/// The environment that `-v NAME` (without a value) reads from, as qsub does.
pub trait EnvSource {
    /// The value of `name`, if set.
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl EnvSource for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl EnvSource for BTreeMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

/// Parses job scripts.
pub struct ScriptParser<'a> {
    /// Directive prefix (`-C`, `PBS_DPREFIX`); empty disables directives.
    pub prefix: String,
    /// Where `-v NAME` (without a value) looks the value up.
    pub env: &'a dyn EnvSource,
}

impl<'a> ScriptParser<'a> {
    /// A parser with the default prefix `#PBS` (or `$PBS_DPREFIX`).
    pub fn new(env: &'a dyn EnvSource) -> Self {
        ScriptParser {
            prefix: "#PBS".into(),
            env,
        }
    }

    /// Reads and parses the script at `path` (a regular file of at most
    /// [`MAX_SCRIPT_BYTES`]).
    pub fn parse(&self, path: &Path) -> Result<JobSpec, JobError> {
        use std::io::Read as _;
        let read = |source| JobError::Read {
            path: path.to_owned(),
            source,
        };
        // Opened without blocking (a FIFO would wait for a writer), then checked by type.
        let file = crate::cache::open_nonblocking(path).map_err(read)?;
        if !file.metadata().map_err(read)?.is_file() {
            return Err(JobError::NotAFile {
                path: path.to_owned(),
            });
        }
        let mut bytes = Vec::new();
        file.take(MAX_SCRIPT_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(read)?;
        if bytes.len() as u64 > MAX_SCRIPT_BYTES {
            return Err(JobError::TooLarge {
                path: path.to_owned(),
                limit: MAX_SCRIPT_BYTES,
            });
        }
        self.parse_bytes(path, &bytes)
    }

    /// Parses script content; `path` names it in messages and anchors `-B`.
    pub fn parse_bytes(&self, path: &Path, bytes: &[u8]) -> Result<JobSpec, JobError> {
        if let Some(offset) = bytes.iter().position(|&b| b == 0) {
            return Err(JobError::Binary {
                path: path.to_owned(),
                offset,
            });
        }
        let content = String::from_utf8_lossy(bytes);
        if content.trim().is_empty() {
            return Err(JobError::Empty {
                path: path.to_owned(),
            });
        }
        let scan = lexer::scan(&content, &self.prefix).map_err(|e| JobError::Syntax {
            path: path.to_owned(),
            pos: e.pos,
            message: e.message,
            hint: Some("quote values the way the shell does".into()),
        })?;
        let mut b = Builder::new(path, self.env);
        b.spec.script_sha256 = crate::digest::sha256_hex_of(bytes);
        b.spec.shebang = scan.shebang.clone();
        b.spec.body_line = scan.first_command;
        for d in &scan.directives {
            b.directive(d.line, &d.words)?;
        }
        for &line in &scan.malformed_prefix {
            b.warn(
                Pos { line, col: 1 },
                None,
                format!("`{}` is not followed by a space; line ignored", self.prefix),
            );
        }
        // One warning for all the directives after the first command.
        if let Some(&first) = scan.late_directives.first() {
            let lines: Vec<String> = scan.late_directives.iter().map(u32::to_string).collect();
            let n = lines.len();
            let shown = if n > 8 {
                format!("{} … {}", lines[..4].join(", "), lines[n - 1])
            } else {
                lines.join(", ")
            };
            b.warn(
                Pos {
                    line: first,
                    col: 1,
                },
                None,
                format!(
                    "{n} directive{} after the first command (line {}) ignored, as qsub does: \
                     line{} {shown}",
                    if n == 1 { "" } else { "s" },
                    scan.first_command.unwrap_or_default(),
                    if n == 1 { "" } else { "s" },
                ),
            );
        }
        if !scan.has_commands {
            return Err(JobError::Empty {
                path: path.to_owned(),
            });
        }
        b.finish()
    }
}

struct Builder<'a> {
    path: &'a Path,
    env: &'a dyn EnvSource,
    spec: JobSpec,
    /// `-v` variables in order of their last definition (a redefinition empties the earlier
    /// slot), and where each name's slot is: linear in the number of variables.
    env_slots: Vec<Option<EnvVar>>,
    env_at: std::collections::HashMap<String, usize>,
}

impl<'a> Builder<'a> {
    fn new(path: &'a Path, env: &'a dyn EnvSource) -> Self {
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "STDIN".into());
        let name = JobName::new(&file_name)
            .or_else(|_| JobName::new(&file_name.replace(char::is_whitespace, "_")))
            .unwrap_or_else(|_| JobName::new("STDIN").expect("valid"));
        Builder {
            path,
            env,
            env_slots: Vec::new(),
            env_at: std::collections::HashMap::new(),
            spec: JobSpec {
                script: path.to_owned(),
                name,
                name_from_directive: false,
                shebang: None,
                shell: None,
                binary: None,
                queue: None,
                server: None,
                account: None,
                resources: Resources::default(),
                array: None,
                env: Vec::new(),
                export_all_env: false,
                stdout_path: None,
                stderr_path: None,
                join: Join::N,
                workdir: None,
                rerunnable: None,
                priority: None,
                hold: false,
                umask: None,
                script_args: Vec::new(),
                mail_events: None,
                mail_users: Vec::new(),
                attributes: BTreeMap::new(),
                recorded: BTreeMap::new(),
                body_line: None,
                directives: Vec::new(),
                warnings: Vec::new(),
                script_sha256: String::new(),
            },
        }
    }

    fn warn(&mut self, pos: Pos, option: Option<char>, message: String) {
        self.spec.warnings.push(Warning {
            line: pos.line,
            col: pos.col,
            option: option.map(|c| format!("-{c}")),
            message,
        });
    }

    fn error(&self, pos: Pos, message: String, hint: Option<String>) -> JobError {
        JobError::Syntax {
            path: self.path.to_owned(),
            pos,
            message,
            hint,
        }
    }

    fn value_error(&self, opt: char, word: &Word, e: ValueError) -> JobError {
        self.error(
            word.pos_at(e.offset),
            format!("invalid value for -{opt}: {}", e.message),
            e.hint,
        )
    }

    fn directive(&mut self, line: u32, words: &[Word]) -> Result<(), JobError> {
        let mut i = 0;
        // Words that are not options: one warning for the line, naming them.
        let mut stray: Vec<&Word> = Vec::new();
        while i < words.len() {
            let w = &words[i];
            i += 1;
            let Some(opts) = w.text.strip_prefix('-').filter(|o| !o.is_empty()) else {
                stray.push(w);
                continue;
            };
            if opts.starts_with('-') {
                self.warn(
                    w.start,
                    None,
                    format!("qsub has no long option `{}`; ignored", w.text),
                );
                continue;
            }
            for (k, c) in opts.chars().enumerate() {
                let opt_pos = w.pos_at(k + 1);
                match arity(c) {
                    None => {
                        self.warn(opt_pos, Some(c), format!("unknown option -{c}; ignored"));
                        break;
                    }
                    Some(Arity::Flag) => {
                        self.spec.directives.push(Directive {
                            line,
                            option: format!("-{c}"),
                            value: None,
                        });
                        self.flag(c, opt_pos);
                    }
                    Some(Arity::Value) => {
                        let value = if k + 1 < opts.chars().count() {
                            w.tail(k + 2)
                        } else if i < words.len() {
                            i += 1;
                            words[i - 1].clone()
                        } else {
                            return Err(self.error(
                                opt_pos,
                                format!("option -{c} needs a value"),
                                None,
                            ));
                        };
                        self.spec.directives.push(Directive {
                            line,
                            option: format!("-{c}"),
                            value: Some(value.text.clone()),
                        });
                        self.value(c, opt_pos, &value)?;
                        break;
                    }
                }
            }
        }
        if let Some(first) = stray.first() {
            let texts: Vec<String> = stray.iter().map(|w| format!("`{}`", w.text)).collect();
            let shown = if texts.len() > 4 {
                format!("{} and {} more", texts[..4].join(" "), texts.len() - 4)
            } else {
                texts.join(" ")
            };
            self.warn(
                first.start,
                None,
                format!(
                    "{shown} {} not {}; ignored",
                    if texts.len() == 1 { "is" } else { "are" },
                    if texts.len() == 1 {
                        "an option"
                    } else {
                        "options"
                    }
                ),
            );
        }
        Ok(())
    }

    fn flag(&mut self, c: char, pos: Pos) {
        match c {
            'h' => self.spec.hold = true,
            'V' => {
                self.spec.export_all_env = true;
                self.warn(
                    pos,
                    Some(c),
                    "-V would export qsub's whole environment; pbsimage never copies the local \
                     environment into a manifest: name the variables with -v"
                        .into(),
                );
            }
            'I' | 'X' => self.warn(
                pos,
                Some(c),
                format!("-{c} (interactive) cannot run as a batch container; ignored"),
            ),
            'n' => self.warn(
                pos,
                Some(c),
                "-n (node exclusive) is not enforced by the manifest".into(),
            ),
            _ => {
                self.spec.recorded.insert(format!("-{c}"), String::new());
            }
        }
    }

    /// Refuses an empty value for option `-c`.
    fn nonempty(&self, c: char, w: &Word) -> Result<(), JobError> {
        if w.text.is_empty() {
            Err(self.error(
                w.start,
                format!("option -{c} needs a non-empty value"),
                None,
            ))
        } else {
            Ok(())
        }
    }

    fn value(&mut self, c: char, pos: Pos, w: &Word) -> Result<(), JobError> {
        match c {
            'N' | 'B' | 'l' | 'q' | 'A' | 'S' | 't' | 'J' | 'v' => self.job_value(c, w),
            'o' | 'e' | 'j' | 'k' => self.output_value(c, w),
            'r' | 'p' | 'd' | 'w' | 'm' | 'M' | 'F' | 'W' | 'a' => self.schedule_value(c, pos, w),
            _ => self.recorded_value(c, pos, w),
        }
    }

    /// `-N -B -l -q -A -S -t/-J -v`: what the job is and what it runs.
    fn job_value(&mut self, c: char, w: &Word) -> Result<(), JobError> {
        let v = w.text.as_str();
        match c {
            'N' => {
                let name = JobName::new(v).map_err(|e| self.error(w.start, e.0, None))?;
                self.spec.name = name;
                self.spec.name_from_directive = true;
            }
            'B' => {
                self.nonempty(c, w)?;
                let dir = self.path.parent().unwrap_or(Path::new(""));
                self.spec.binary = Some(dir.join(v));
            }
            'l' => self.resources(w)?,
            'q' => {
                let (queue, server) = match v.split_once('@') {
                    Some((q, s)) => (q, Some(s)),
                    None => (v, None),
                };
                if !queue.is_empty() {
                    self.spec.queue = Some(queue.to_owned());
                }
                self.spec.server = server.filter(|s| !s.is_empty()).map(str::to_owned);
                if queue.is_empty() && server.is_none() {
                    return Err(self.error(w.start, "option -q needs a queue".into(), None));
                }
            }
            'A' => {
                self.nonempty(c, w)?;
                self.spec.account = Some(v.to_owned());
            }
            'S' => {
                self.nonempty(c, w)?;
                // path[@host][,path@host...]: the entry without a host applies everywhere.
                let entries: Vec<&str> = v.split(',').collect();
                let pick = entries
                    .iter()
                    .find(|e| !e.contains('@'))
                    .or(entries.first())
                    .copied()
                    .unwrap_or(v);
                let shell = pick.split('@').next().unwrap_or(pick);
                if !shell.starts_with('/') {
                    return Err(self.error(
                        w.start,
                        format!("shell `{shell}` must be an absolute path"),
                        Some("e.g. #PBS -S /bin/bash".into()),
                    ));
                }
                self.spec.shell = Some(shell.to_owned());
            }
            't' | 'J' => {
                let a = ArraySpec::parse(v).map_err(|e| self.value_error(c, w, e))?;
                self.spec.array = Some(a);
            }
            'v' => self.env_list(w)?,
            _ => unreachable!("dispatched by value()"),
        }
        Ok(())
    }

    /// `-o -e -j -k`: where output goes.
    fn output_value(&mut self, c: char, w: &Word) -> Result<(), JobError> {
        let v = w.text.as_str();
        match c {
            'o' | 'e' => {
                self.nonempty(c, w)?;
                let path = match v.split_once(':') {
                    Some((host, p)) if !host.contains('/') => {
                        self.warn(
                            w.start,
                            Some(c),
                            format!(
                                "host `{host}` in -{c} is dropped: output goes to the output volume"
                            ),
                        );
                        p
                    }
                    _ => v,
                };
                if c == 'o' {
                    self.spec.stdout_path = Some(path.to_owned());
                } else {
                    self.spec.stderr_path = Some(path.to_owned());
                }
            }
            'j' => {
                self.spec.join = match v {
                    "oe" => Join::Oe,
                    "eo" => Join::Eo,
                    "n" => Join::N,
                    _ => {
                        return Err(self.error(
                            w.start,
                            format!("invalid value for -j: `{v}`"),
                            Some("use -j oe (stderr into stdout), -j eo or -j n".into()),
                        ));
                    }
                }
            }
            'k' => {
                if !v.chars().all(|c| "eodn".contains(c)) || v.is_empty() {
                    return Err(self.error(
                        w.start,
                        format!("invalid value for -k: `{v}`"),
                        Some("use a combination of e, o, d, or n".into()),
                    ));
                }
                self.spec.recorded.insert("-k".into(), v.to_owned());
            }
            _ => unreachable!("dispatched by value()"),
        }
        Ok(())
    }

    /// `-r -p -d/-w -m -M -F -W -a`: how and when it runs.
    fn schedule_value(&mut self, c: char, pos: Pos, w: &Word) -> Result<(), JobError> {
        let v = w.text.as_str();
        match c {
            'r' => {
                self.spec.rerunnable = Some(match v {
                    "y" | "Y" | "true" | "True" => true,
                    "n" | "N" | "false" | "False" => false,
                    _ => {
                        return Err(self.error(
                            w.start,
                            format!("invalid value for -r: `{v}`"),
                            Some("use -r y or -r n".into()),
                        ));
                    }
                })
            }
            'p' => {
                let p: i32 = v
                    .parse()
                    .ok()
                    .filter(|p| (-1024..=1023).contains(p))
                    .ok_or_else(|| {
                        self.error(
                            w.start,
                            format!("invalid value for -p: `{v}`"),
                            Some("priority is a whole number from -1024 to 1023".into()),
                        )
                    })?;
                self.spec.priority = Some(p);
            }
            'd' | 'w' => {
                self.nonempty(c, w)?;
                self.spec.workdir = Some(v.to_owned());
            }
            'm' => {
                if v.is_empty() || !v.chars().all(|c| "abefnp".contains(c)) {
                    return Err(self.error(
                        w.start,
                        format!("invalid value for -m: `{v}`"),
                        Some("mail options are a combination of a, b, e, f, or n".into()),
                    ));
                }
                self.spec.mail_events = Some(v.to_owned());
            }
            'M' => {
                self.spec.mail_users = v
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect();
            }
            'F' => {
                self.spec.script_args = v.split_whitespace().map(str::to_owned).collect();
            }
            'W' => self.attributes(w)?,
            'a' => {
                if !is_pbs_datetime(v) {
                    return Err(self.error(
                        w.start,
                        format!("invalid value for -a: `{v}`"),
                        Some("the date is [[[[CC]YY]MM]DD]hhmm[.SS]".into()),
                    ));
                }
                self.spec.recorded.insert("-a".into(), v.to_owned());
                self.warn(
                    pos,
                    Some(c),
                    "-a (deferred start) is not expressed in the manifest".into(),
                );
            }
            _ => unreachable!("dispatched by value()"),
        }
        Ok(())
    }

    /// Options with no Kubernetes field: warned about and recorded as given.
    fn recorded_value(&mut self, c: char, pos: Pos, w: &Word) -> Result<(), JobError> {
        let v = w.text.as_str();
        match c {
            'C' => self.warn(
                pos,
                Some(c),
                "-C changes the directive prefix only on the command line (pbsimage --prefix); ignored here".into(),
            ),
            'D' | 'P' | 'T' | 'L' => {
                self.spec.recorded.insert(format!("-{c}"), v.to_owned());
                self.warn(
                    pos,
                    Some(c),
                    format!("-{c} has no Kubernetes equivalent; recorded but not applied"),
                );
            }
            'K' | 'b' | 'i' => {
                if !v.chars().all(|c| c.is_ascii_digit()) || v.is_empty() {
                    return Err(self.error(
                        w.start,
                        format!("invalid value for -{c}: `{v}` is not a whole number"),
                        None,
                    ));
                }
                self.spec.recorded.insert(format!("-{c}"), v.to_owned());
            }
            _ => {
                // -c checkpoint, -u user list: recorded as given.
                self.spec.recorded.insert(format!("-{c}"), v.to_owned());
            }
        }
        Ok(())
    }

    /// `-l name=value[,name=value...]`.
    fn resources(&mut self, w: &Word) -> Result<(), JobError> {
        let mut offset = 0;
        for item in w.text.split(',') {
            let len = item.chars().count();
            if item.is_empty() {
                offset += 1;
                continue;
            }
            let Some((name, value)) = item.split_once('=') else {
                // PBS Pro takes valueless resources (NCI's `-l wd`).
                if !item
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                {
                    return Err(self.error(
                        w.pos_at(offset),
                        format!("resource `{item}` has no value"),
                        Some("resources are written name=value, e.g. -l walltime=01:00:00".into()),
                    ));
                }
                if let Merge::Unmapped = self.spec.resources.merge_valueless(item) {
                    self.warn(
                        w.pos_at(offset),
                        Some('l'),
                        format!("resource `{item}` (no value) has no Kubernetes mapping; recorded in annotations"),
                    );
                }
                offset += len + 1;
                continue;
            };
            if self.spec.resources.nodes.is_some() && name == "select"
                || self.spec.resources.select.is_some() && name == "nodes"
            {
                return Err(self.error(
                    w.pos_at(offset),
                    "`nodes` and `select` cannot be combined in one job".into(),
                    Some("use TORQUE nodes=N:ppn=M or PBS Pro select=N:ncpus=M, not both".into()),
                ));
            }
            match self
                .spec
                .resources
                .merge(name, value)
                .map_err(|e| self.value_error('l', w, e.shifted(offset)))?
            {
                Merge::Mapped => {}
                Merge::Unmapped => self.warn(
                    w.pos_at(offset),
                    Some('l'),
                    format!("resource `{name}` has no Kubernetes mapping; recorded in annotations"),
                ),
                Merge::Unknown => self.warn(
                    w.pos_at(offset),
                    Some('l'),
                    format!("unknown resource `{name}`; recorded in annotations"),
                ),
            }
            offset += len + 1;
        }
        Ok(())
    }

    /// `-v A,B=value,C='x,y'`. A name without a value is read from the environment, as qsub
    /// does, except [`HOST_ONLY_VARS`]: the submit host's paths and identity mean nothing in
    /// the container (and would make the manifest depend on who runs pbsimage).
    fn env_list(&mut self, w: &Word) -> Result<(), JobError> {
        let mut host_only: Vec<String> = Vec::new();
        let result = self.env_items(w, &mut host_only);
        if !host_only.is_empty() {
            self.warn(
                w.start,
                Some('v'),
                format!(
                    "{} {} the submit host's; not copied into the container (give a value, \
                     -v NAME=value, to set one)",
                    host_only.join(", "),
                    if host_only.len() == 1 { "is" } else { "are" }
                ),
            );
        }
        result
    }

    fn env_items(&mut self, w: &Word, host_only: &mut Vec<String>) -> Result<(), JobError> {
        for (offset, item) in split_quoted_list(&w.text)
            .map_err(|off| self.error(w.pos_at(off), "unterminated quote in -v".into(), None))?
        {
            if item.is_empty() {
                continue;
            }
            let (name, value) = match item.split_once('=') {
                Some((n, v)) => (n.to_owned(), Some(unquote(v))),
                None => (item.clone(), None),
            };
            if !is_env_name(&name) {
                return Err(self.error(
                    w.pos_at(offset),
                    format!("`{name}` is not a valid environment variable name"),
                    Some("names are letters, digits and _, not starting with a digit".into()),
                ));
            }
            let value = match value {
                Some(v) => v,
                None if HOST_ONLY_VARS.contains(&name.as_str()) => {
                    host_only.push(name);
                    continue;
                }
                None => match self.env.var(&name) {
                    Some(v) => v,
                    None => {
                        self.warn(
                            w.pos_at(offset),
                            Some('v'),
                            format!("`{name}` is not set in the environment; not exported"),
                        );
                        continue;
                    }
                },
            };
            if let Some(old) = self.env_at.insert(name.clone(), self.env_slots.len()) {
                self.env_slots[old] = None;
            }
            self.env_slots.push(Some(EnvVar { name, value }));
        }
        Ok(())
    }

    /// `-W name=value[,name=value...]`.
    fn attributes(&mut self, w: &Word) -> Result<(), JobError> {
        for (offset, item) in split_quoted_list(&w.text)
            .map_err(|off| self.error(w.pos_at(off), "unterminated quote in -W".into(), None))?
        {
            // TORQUE's resource-manager extension also comes as `x:policy:value`
            // (`-W x:nmatchpolicy:exactnode`), recorded as x=nmatchpolicy:exactnode.
            let split = item
                .split_once('=')
                .or_else(|| item.strip_prefix("x:").map(|rest| ("x", rest)));
            let Some((name, value)) = split else {
                return Err(self.error(
                    w.pos_at(offset),
                    format!("attribute `{item}` has no value"),
                    Some("attributes are written name=value, e.g. -W umask=022".into()),
                ));
            };
            let value = unquote(value);
            if name == "umask" {
                let m = u32::from_str_radix(&value, 8)
                    .ok()
                    .filter(|m| *m <= 0o777)
                    .ok_or_else(|| {
                        self.error(
                            w.pos_at(offset + 6),
                            format!("umask `{value}` is not an octal mode"),
                            Some("e.g. -W umask=022".into()),
                        )
                    })?;
                self.spec.umask = Some(m);
                continue;
            }
            if matches!(name, "depend" | "stagein" | "stageout") {
                self.warn(
                    w.pos_at(offset),
                    Some('W'),
                    format!("-W {name} is not expressed in the manifest; recorded"),
                );
            }
            self.spec.attributes.insert(name.to_owned(), value);
        }
        Ok(())
    }

    fn finish(mut self) -> Result<JobSpec, JobError> {
        self.spec.env = std::mem::take(&mut self.env_slots)
            .into_iter()
            .flatten()
            .collect();
        self.spec.warnings.sort_by_key(|w| (w.line, w.col));
        Ok(self.spec)
    }
}

/// PBS date `[[[[CC]YY]MM]DD]hhmm[.SS]`.
fn is_pbs_datetime(v: &str) -> bool {
    let (main, secs) = match v.split_once('.') {
        Some((m, s)) => (m, Some(s)),
        None => (v, None),
    };
    let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    digits(main)
        && [4, 6, 8, 10, 12].contains(&main.len())
        && secs.is_none_or(|s| s.len() == 2 && digits(s))
}

fn is_env_name(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Splits a comma list where items may quote commas with '...' or "...".
/// Returns (char offset, item) pairs; `Err(offset)` for an unterminated quote.
fn split_quoted_list(s: &str) -> Result<Vec<(usize, String)>, usize> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut start = 0;
    let mut quote: Option<(char, usize)> = None;
    for (i, c) in s.chars().enumerate() {
        match quote {
            Some((q, _)) if c == q => {
                quote = None;
                cur.push(c);
            }
            Some(_) => cur.push(c),
            None if c == '\'' || c == '"' => {
                quote = Some((c, i));
                cur.push(c);
            }
            None if c == ',' => {
                out.push((start, std::mem::take(&mut cur)));
                start = i + 1;
            }
            None => cur.push(c),
        }
    }
    if let Some((_, at)) = quote {
        return Err(at);
    }
    out.push((start, cur));
    Ok(out)
}

/// Removes one pair of surrounding quotes.
fn unquote(v: &str) -> String {
    for q in ['\'', '"'] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return v[1..v.len() - 1].to_owned();
        }
    }
    v.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<JobSpec, JobError> {
        let env: BTreeMap<String, String> = [("PROJECT".to_string(), "p1".to_string())].into();
        ScriptParser::new(&env).parse_bytes(Path::new("/jobs/fib/job.sh"), s.as_bytes())
    }

    #[test]
    fn the_basics() {
        let j = parse(
            "#!/bin/bash\n#PBS -N fib\n#PBS -l nodes=1:ppn=2\n#PBS -l walltime=00:10:00,mem=4gb\n#PBS -B a.out\n#PBS -v \"A=1,PROJECT,B='x,y'\"\n#PBS -j oe -r n\n./a.out\n",
        )
        .unwrap();
        assert_eq!(j.name.as_str(), "fib");
        assert_eq!(j.binary.as_deref(), Some(Path::new("/jobs/fib/a.out")));
        assert_eq!(j.resources.nodes.as_ref().unwrap().slots(), 2);
        assert_eq!(j.resources.walltime.unwrap().secs(), 600);
        assert_eq!(j.resources.mem.unwrap().bytes(), 4 << 30);
        assert_eq!(
            j.env
                .iter()
                .map(|e| (e.name.as_str(), e.value.as_str()))
                .collect::<Vec<_>>(),
            [("A", "1"), ("PROJECT", "p1"), ("B", "x,y")]
        );
        assert_eq!(j.join, Join::Oe);
        assert_eq!(j.rerunnable, Some(false));
        assert!(j.warnings.is_empty(), "{:?}", j.warnings);
    }

    #[test]
    fn attached_values_and_grouped_flags() {
        let j = parse("#PBS -Nab -hz -qgpu@server\nx\n").unwrap();
        assert_eq!(j.name.as_str(), "ab");
        assert!(j.hold);
        assert_eq!(j.queue.as_deref(), Some("gpu"));
        assert_eq!(j.server.as_deref(), Some("server"));
    }

    #[test]
    fn errors_point_at_the_value() {
        let e = parse("#PBS -l nodes=1:ppn=2,mem=4xb\nx\n").unwrap_err();
        match e {
            JobError::Syntax { pos, .. } => assert_eq!(pos, Pos { line: 1, col: 28 }),
            e => panic!("{e}"),
        }
        let e = parse("#PBS -l walltime=1:xx:00\nx\n").unwrap_err();
        assert!(e.to_string().starts_with("/jobs/fib/job.sh:1:20:"), "{e}");
    }

    #[test]
    fn unknown_options_warn() {
        let j = parse("#PBS -Y -N a\nx\n").unwrap();
        assert_eq!(j.warnings.len(), 1);
        assert_eq!(j.warnings[0].option.as_deref(), Some("-Y"));
    }

    #[test]
    fn empty_and_binary() {
        assert!(matches!(parse(""), Err(JobError::Empty { .. })));
        assert!(matches!(parse("#PBS -N a\n"), Err(JobError::Empty { .. })));
        assert!(matches!(
            ScriptParser::new(&ProcessEnv).parse_bytes(Path::new("x"), b"\x7fELF\0\0"),
            Err(JobError::Binary { offset: 4, .. })
        ));
    }

    #[test]
    fn quoted_list() {
        assert_eq!(
            split_quoted_list("A=1,B='x,y',C").unwrap(),
            [(0, "A=1".into()), (4, "B='x,y'".into()), (12, "C".into())]
        );
        assert_eq!(split_quoted_list("A='x").unwrap_err(), 2);
    }
}
