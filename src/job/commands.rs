//! The external commands a job script runs, found without running it.
//!
//! A small shell scanner: it follows quotes, comments, here-documents, line continuations,
//! command substitutions and the control keywords, and reports the first word of every
//! simple command, skipping assignments, redirections, builtins, keywords, functions defined
//! in the script, words starting with a variable, and relative paths (files of the job).

use std::collections::BTreeSet;

use serde::Serialize;

/// A command the script runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct CommandUse {
    pub(crate) name: String,
    pub(crate) line: u32,
}

const KEYWORDS: &[&str] = &[
    "if", "then", "else", "elif", "fi", "do", "done", "while", "until", "for", "in", "case",
    "esac", "function", "select", "time", "!", "{", "}", "[[", "]]", "coproc",
];

const BUILTINS: &[&str] = &[
    ".",
    ":",
    "[",
    "alias",
    "bg",
    "bind",
    "break",
    "builtin",
    "caller",
    "cd",
    "command",
    "compgen",
    "complete",
    "compopt",
    "continue",
    "declare",
    "dirs",
    "disown",
    "echo",
    "enable",
    "eval",
    "exec",
    "exit",
    "export",
    "false",
    "fc",
    "fg",
    "getopts",
    "hash",
    "help",
    "history",
    "jobs",
    "kill",
    "let",
    "local",
    "logout",
    "mapfile",
    "popd",
    "printf",
    "pushd",
    "pwd",
    "read",
    "readarray",
    "readonly",
    "return",
    "set",
    "shift",
    "shopt",
    "source",
    "suspend",
    "test",
    "times",
    "trap",
    "true",
    "type",
    "typeset",
    "ulimit",
    "umask",
    "unalias",
    "unset",
    "wait",
    "setenv",
    "unsetenv",
    "setopt",
    "module",
    "ml",
];

/// `ml` subcommands that load nothing (`ml X` alone loads X).
const ML_OTHER: &[&str] = &[
    "avail", "list", "purge", "spider", "show", "help", "save", "restore", "swap", "unload", "del",
    "rm", "whatis", "keyword", "savelist", "describe", "reset", "use", "unuse", "refresh",
    "update", "overview", "-t",
];

/// The modules a script loads (`module load|add|try-load X…`, `ml [load] X…`), with their
/// lines, in order. Names starting with `$` (not known before the job runs) and options are
/// left out.
pub(crate) fn module_loads(lines: &[String], first: usize) -> Vec<CommandUse> {
    let toks = tokenize(lines, first);
    let mut out = Vec::new();
    let mut at_start = true;
    let mut i = 0;
    while i < toks.len() {
        let (w, line) = match &toks[i] {
            Tok::Sep(..) => {
                at_start = true;
                i += 1;
                continue;
            }
            Tok::Word(w, line) => (w.as_str(), *line),
        };
        i += 1;
        if !at_start {
            continue;
        }
        if is_assignment(w) || KEYWORDS.contains(&w) {
            continue;
        }
        at_start = false;
        if w != "module" && w != "ml" {
            continue;
        }
        let mut words = Vec::new();
        while let Some(Tok::Word(x, _)) = toks.get(i) {
            words.push(x.as_str());
            i += 1;
        }
        let loads: &[&str] = match (w, words.first().copied()) {
            (_, Some("load" | "add" | "try-load" | "try-add")) => &words[1..],
            ("ml", Some(sub)) if !ML_OTHER.contains(&sub) && !sub.starts_with('-') => &words,
            _ => &[],
        };
        for m in loads {
            if !m.starts_with('-') && !m.starts_with('$') && !m.is_empty() {
                out.push(CommandUse {
                    name: (*m).to_owned(),
                    line,
                });
            }
        }
    }
    out
}

/// Words after which the next word is again a command.
const PREFIXES: &[&str] = &["exec", "command", "time", "builtin", "!", "nohup", "env"];

/// Commands that run another program given in their arguments (`mpirun -np 4 python3 x.py`):
/// (name, options that take a value, options that take two, positionals before the program).
const LAUNCHERS: &[(&str, &[&str], &[&str], usize)] = &[
    ("mpirun", MPI_VALUE, MPI_PAIR, 0),
    ("mpiexec", MPI_VALUE, MPI_PAIR, 0),
    ("mpiexec.hydra", MPI_VALUE, MPI_PAIR, 0),
    ("orterun", MPI_VALUE, MPI_PAIR, 0),
    (
        "srun",
        &[
            "-n", "-N", "-c", "-p", "-t", "-J", "-o", "-e", "-w", "-x", "-A", "-q", "-G", "-m",
        ],
        &[],
        0,
    ),
    ("numactl", &["-C", "-N", "-m", "-p", "-i", "-P"], &[], 0),
    ("taskset", &[], &[], 1),
    ("stdbuf", &["-i", "-o", "-e"], &[], 0),
    ("timeout", &["-s", "-k"], &[], 1),
    (
        "xargs",
        &["-n", "-L", "-P", "-I", "-d", "-E", "-s", "-a"],
        &[],
        0,
    ),
    ("nice", &["-n"], &[], 0),
    ("/usr/bin/time", &["-o", "-f"], &[], 0),
];
const MPI_VALUE: &[&str] = &[
    "-np",
    "-n",
    "-c",
    "-N",
    "-H",
    "-host",
    "--host",
    "-hostfile",
    "--hostfile",
    "-machinefile",
    "--machinefile",
    "-x",
    "-ppn",
    "-f",
    "-wdir",
    "-wd",
    "--map-by",
    "--bind-to",
    "--rank-by",
    "-npernode",
    "--npernode",
    "-npersocket",
    "--npersocket",
];
const MPI_PAIR: &[&str] = &["-mca", "--mca", "-gmca", "--gmca", "-genv", "-env"];

/// Inside a launcher's arguments, looking for the program it runs.
struct Launcher {
    value: &'static [&'static str],
    pair: &'static [&'static str],
    positionals: usize,
    /// Words still to skip (an option's values).
    skip: usize,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String, u32),
    /// `;`, `&`, `|`, `&&`, `||`, newline, `(`, `)`, `$(`, `$)` (its end), backtick, `` `) `` (its
    /// end), `;;`
    Sep(&'static str, u32),
}

/// Splits shell text into words and separators, dropping comments and here-doc bodies.
fn tokenize(lines: &[String], first: usize) -> Vec<Tok> {
    let mut t = Tokenizer::default();
    let mut i = first;
    while i < lines.len() {
        let line = &lines[i];
        i += 1;
        t.lineno = i as u32;
        t.line(&line.chars().collect::<Vec<char>>());
        let continued = line.ends_with('\\') && !line.ends_with("\\\\");
        if t.quote.is_none() && !continued {
            t.flush();
            t.toks.push(Tok::Sep("\n", t.lineno));
        } else if t.quote.is_some() {
            t.word.push('\n');
        }
        i = skip_heredocs(lines, i, std::mem::take(&mut t.heredocs));
    }
    if !t.word.is_empty() {
        t.toks.push(Tok::Word(t.word, t.word_line));
    }
    t.toks
}

/// Skips the bodies of the here-documents opened on the line before `i`; returns the line
/// after the last one's delimiter.
fn skip_heredocs(lines: &[String], mut i: usize, heredocs: Vec<(String, bool)>) -> usize {
    for (delim, strip) in heredocs {
        while i < lines.len() {
            let l = &lines[i];
            i += 1;
            let l = if strip {
                l.trim_start_matches('\t')
            } else {
                l.as_str()
            };
            if l == delim {
                break;
            }
        }
    }
    i
}

/// The tokenizer's state across lines.
#[derive(Default)]
struct Tokenizer {
    toks: Vec<Tok>,
    /// Here-documents opened on the current line: (delimiter, strip tabs).
    heredocs: Vec<(String, bool)>,
    word: String,
    word_line: u32,
    lineno: u32,
    quote: Option<char>,
    depth_brace: usize,
    /// Command substitutions opened inside double quotes: (closing char, paren depth) to
    /// return to the quote at.
    resume: Vec<(char, usize)>,
    parens: usize,
    /// Kinds of the open parentheses: true for `$(`, false for a subshell `(`.
    paren_kinds: Vec<bool>,
    in_backtick: bool,
}

impl Tokenizer {
    fn flush(&mut self) {
        if !self.word.is_empty() {
            self.toks
                .push(Tok::Word(std::mem::take(&mut self.word), self.word_line));
        }
    }

    /// One line's characters; each step returns the index of the next character to read.
    fn line(&mut self, chars: &[char]) {
        let mut k = 0;
        while k < chars.len() {
            if self.quote.is_some() {
                k = self.quoted(chars, k);
                continue;
            }
            if self.word.is_empty() {
                self.word_line = self.lineno;
            }
            let c = chars[k];
            let next = |n: usize| chars.get(k + n).copied();
            k = match c {
                '\'' | '"' => {
                    self.quote = Some(c);
                    k + 1
                }
                '\\' if k + 1 < chars.len() => {
                    self.word.push(chars[k + 1]);
                    k + 2
                }
                // continuation: the word goes on on the next line
                '\\' => k + 1,
                '#' if self.word.is_empty() => break,
                '$' if next(1) == Some('(') && next(2) == Some('(') => {
                    self.word.push('0');
                    self.arithmetic(chars, k)
                }
                // `(( … ))` and `for (( … ))`: arithmetic, no command in it.
                '(' if next(1) == Some('(') => {
                    self.flush();
                    self.arithmetic(chars, k)
                }
                '$' if next(1) == Some('(') => {
                    self.flush();
                    self.open_paren("$(", true);
                    k + 2
                }
                '$' if next(1) == Some('{') => {
                    self.depth_brace += 1;
                    self.word.push_str("${");
                    k + 2
                }
                '}' if self.depth_brace > 0 => {
                    self.depth_brace -= 1;
                    self.word.push('}');
                    k + 1
                }
                _ if self.depth_brace > 0 => {
                    self.word.push(c);
                    k + 1
                }
                '`' => {
                    self.backtick();
                    k + 1
                }
                ';' | '&' | '|' | '(' | ')' => self.separator(chars, k),
                '<' if next(1) == Some('<') && next(2) != Some('<') => self.heredoc(chars, k),
                c if c.is_whitespace() => {
                    self.flush();
                    k + 1
                }
                c => {
                    self.word.push(c);
                    k + 1
                }
            };
        }
    }

    /// Inside quotes: the quote's end, escapes in double quotes, and command substitutions
    /// that leave the double quote until they close.
    fn quoted(&mut self, chars: &[char], k: usize) -> usize {
        let q = self.quote.unwrap_or('"');
        let c = chars[k];
        if q == '"' && c == '$' && chars.get(k + 1) == Some(&'(') && chars.get(k + 2) != Some(&'(')
        {
            self.flush();
            self.resume.push((')', self.parens));
            self.open_paren("$(", true);
            self.quote = None;
            return k + 2;
        }
        if q == '"' && c == '`' {
            self.flush();
            self.toks.push(Tok::Sep("`", self.lineno));
            self.in_backtick = true;
            self.resume.push(('`', self.parens));
            self.quote = None;
            return k + 1;
        }
        if c == q {
            self.quote = None;
        } else if c == '\\' && q == '"' && k + 1 < chars.len() {
            self.word.push(chars[k + 1]);
            return k + 2;
        } else {
            self.word.push(c);
        }
        k + 1
    }

    fn open_paren(&mut self, sep: &'static str, substitution: bool) {
        self.toks.push(Tok::Sep(sep, self.lineno));
        self.parens += 1;
        self.paren_kinds.push(substitution);
    }

    /// An arithmetic expression from `chars[k]` skipped to the matching `))`; returns the
    /// index after it.
    fn arithmetic(&mut self, chars: &[char], mut k: usize) -> usize {
        let mut d = 0i32;
        while k < chars.len() {
            match chars[k] {
                '(' => d += 1,
                ')' => {
                    d -= 1;
                    if d == 0 {
                        break;
                    }
                }
                _ => {}
            }
            k += 1;
        }
        k + 1
    }

    /// A backtick opens or closes a command substitution (back into a double quote if it was
    /// opened in one).
    fn backtick(&mut self) {
        self.flush();
        let sep = if self.in_backtick { "`)" } else { "`" };
        self.toks.push(Tok::Sep(sep, self.lineno));
        self.in_backtick = !self.in_backtick;
        if !self.in_backtick && self.resume.last().is_some_and(|r| r.0 == '`') {
            self.resume.pop();
            self.quote = Some('"');
        }
    }

    /// `;` `;;` `&` `&&` `|` `||` `(` `)`; `>&2` and `2>&1` stay redirections.
    fn separator(&mut self, chars: &[char], k: usize) -> usize {
        self.flush();
        let two: String = chars[k..chars.len().min(k + 2)].iter().collect();
        let sep: &'static str = match (two.as_str(), chars[k]) {
            (";;", _) => ";;",
            ("&&", _) => "&&",
            ("||", _) => "||",
            (_, ';') => ";",
            (_, '&') => "&",
            (_, '|') => "|",
            (_, '(') => "(",
            _ => ")",
        };
        let next = k + sep.len();
        let redirection = sep == "&"
            && self.toks.last().is_some_and(
                |t| matches!(t, Tok::Word(w, _) if w.ends_with('>') || w.ends_with('<')),
            );
        if redirection {
            if let Some(Tok::Word(w, _)) = self.toks.last_mut() {
                w.push('&');
            }
            return next;
        }
        match sep {
            "(" => self.open_paren("(", false),
            ")" => {
                let substitution = self.paren_kinds.pop().unwrap_or(false);
                let sep = if substitution { "$)" } else { ")" };
                self.toks.push(Tok::Sep(sep, self.lineno));
                self.parens = self.parens.saturating_sub(1);
                if self.resume.last() == Some(&(')', self.parens)) {
                    self.resume.pop();
                    self.quote = Some('"');
                }
            }
            _ => self.toks.push(Tok::Sep(sep, self.lineno)),
        }
        next
    }

    /// A here-document: `<<WORD`, `<<-WORD`, `<<'WORD'`; its body is skipped after the line.
    fn heredoc(&mut self, chars: &[char], k: usize) -> usize {
        self.flush();
        let mut k = k + 2;
        let strip = chars.get(k) == Some(&'-');
        if strip {
            k += 1;
        }
        while chars.get(k) == Some(&' ') {
            k += 1;
        }
        let mut delim = String::new();
        while k < chars.len() && !chars[k].is_whitespace() && !";&|<>()".contains(chars[k]) {
            if !"'\"\\".contains(chars[k]) {
                delim.push(chars[k]);
            }
            k += 1;
        }
        if !delim.is_empty() {
            self.heredocs.push((delim, strip));
        }
        self.toks.push(Tok::Word("<<".into(), self.lineno));
        k
    }
}

fn is_assignment(w: &str) -> bool {
    match w.split_once('=') {
        Some((name, _)) => {
            let name = name.strip_suffix('+').unwrap_or(name);
            !name.is_empty()
                && name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '[' || c == ']')
        }
        None => false,
    }
}

fn is_redirection(w: &str) -> bool {
    let w = w.trim_start_matches(|c: char| c.is_ascii_digit());
    w.starts_with('>') || w.starts_with('<') || w.starts_with("&>")
}

/// The commands of a script body (lines are 0-based indexes; `first` is where the body starts).
pub(crate) fn scan(lines: &[String], first: usize) -> Vec<CommandUse> {
    let toks = tokenize(lines, first);
    let mut scanner = Scanner {
        functions: functions(&toks),
        at_start: true,
        ..Scanner::default()
    };
    for (i, t) in toks.iter().enumerate() {
        match t {
            Tok::Sep(s, _) => scanner.separator(s),
            Tok::Word(w, line) => {
                let function_call = matches!(toks.get(i + 1), Some(Tok::Sep("(", _)));
                scanner.word(w, *line, function_call);
            }
        }
    }
    scanner.out
}

/// Functions defined in the script: `name()` and `function name`.
fn functions(toks: &[Tok]) -> BTreeSet<String> {
    let mut functions = BTreeSet::new();
    for w in toks.windows(3) {
        match w {
            [Tok::Word(n, _), Tok::Sep("(", _), Tok::Sep(")", _)] => {
                functions.insert(n.clone());
            }
            [Tok::Word(f, _), Tok::Word(n, _), _] if f == "function" => {
                functions.insert(n.trim_end_matches("()").to_owned());
            }
            _ => {}
        }
    }
    functions
}

/// Whether a redirection word takes the next word as its target (`>` alone; not `>file`).
fn takes_target(w: &str) -> bool {
    w.trim_start_matches(|c: char| c.is_ascii_digit())
        .trim_start_matches(['<', '>', '&'])
        .is_empty()
}

/// Where the scanner is in the shell grammar.
#[derive(Default)]
struct Scanner {
    functions: BTreeSet<String>,
    out: Vec<CommandUse>,
    at_start: bool,
    /// `for x in ...`
    skip_until_sep: bool,
    in_double_bracket: bool,
    case_depth: usize,
    /// Between `case` and `in`.
    case_header: bool,
    expect_pattern: bool,
    redirect_target: bool,
    function_name_next: bool,
    /// After a launcher (`mpirun`, `numactl`, ...): its program is a command too.
    launcher: Option<Launcher>,
}

impl Scanner {
    fn separator(&mut self, s: &str) {
        self.redirect_target = false;
        self.launcher = None;
        if self.in_double_bracket {
            return;
        }
        self.skip_until_sep = false;
        match s {
            ";;" => {
                self.expect_pattern = self.case_depth > 0;
                self.at_start = true;
            }
            ")" if self.expect_pattern => {
                self.expect_pattern = false;
                self.at_start = true;
            }
            // The end of a command substitution returns to the enclosing command's words.
            "$)" | "`)" => self.at_start = false,
            "\n" if self.expect_pattern => {}
            _ => self.at_start = true,
        }
    }

    /// A word: skipped where it cannot be a command, else the command (or keyword) it is.
    fn word(&mut self, w: &str, line: u32, function_call: bool) {
        if self.skipped(w) {
            return;
        }
        if self.skip_until_sep || !self.at_start {
            if is_redirection(w) {
                if !w.ends_with('&') && takes_target(w) {
                    self.redirect_target = true;
                }
                return;
            }
            if !self.skip_until_sep && self.launched(w) {
                self.command_word(w, line, function_call);
            }
            return;
        }
        // At the start of a simple command.
        if is_assignment(w) {
            return;
        }
        if is_redirection(w) {
            // `>file` is complete; a bare `>` takes the next word.
            self.redirect_target = takes_target(w);
            return;
        }
        self.command_word(w, line, function_call);
    }

    /// Whether `w`, an argument of a launcher, is the program it runs: options (and their
    /// values), assignments and the launcher's leading positionals are not.
    fn launched(&mut self, w: &str) -> bool {
        let Some(l) = self.launcher.as_mut() else {
            return false;
        };
        if l.skip > 0 {
            l.skip -= 1;
            return false;
        }
        if w.starts_with('-') {
            if !w.contains('=') {
                if l.value.contains(&w) {
                    l.skip = 1;
                } else if l.pair.contains(&w) {
                    l.skip = 2;
                }
            }
            return false;
        }
        if is_assignment(w) {
            return false;
        }
        if l.positionals > 0 {
            l.positionals -= 1;
            return false;
        }
        self.launcher = None;
        true
    }

    /// Words inside `[[ ]]`, redirection targets, `case` headers and patterns, function
    /// names: never commands.
    fn skipped(&mut self, w: &str) -> bool {
        if self.in_double_bracket {
            if w == "]]" {
                self.in_double_bracket = false;
            }
        } else if self.redirect_target {
            self.redirect_target = false;
        } else if self.case_header {
            if w == "in" {
                self.case_header = false;
                self.expect_pattern = true;
            }
        } else if self.expect_pattern {
            if w == "esac" {
                self.expect_pattern = false;
                self.case_depth = self.case_depth.saturating_sub(1);
                self.at_start = false;
            }
        } else if self.function_name_next {
            self.function_name_next = false;
        } else {
            return false;
        }
        true
    }

    /// The first word of a simple command: a keyword, a prefix (`env`, `nohup`), or the
    /// command itself unless it is a builtin, a function, a variable or a relative path.
    fn command_word(&mut self, w: &str, line: u32, function_call: bool) {
        match w {
            "for" | "select" => self.skip_until_sep = true,
            "case" => {
                self.case_depth += 1;
                self.case_header = true;
            }
            "esac" => self.case_depth = self.case_depth.saturating_sub(1),
            "[[" => self.in_double_bracket = true,
            "function" => self.function_name_next = true,
            _ if PREFIXES.contains(&w) => {
                // the next word is a command again (skip options of env/nohup)
                if w == "env" || w == "nohup" {
                    self.push(w, line);
                }
            }
            _ if KEYWORDS.contains(&w) => {}
            _ => {
                self.at_start = false;
                let builtin = BUILTINS.contains(&w);
                let variable = w.starts_with('$') || w.contains("${") || w.contains('`');
                let relative = w.contains('/') && !w.starts_with('/');
                let function = self.functions.contains(w) || function_call;
                if !(builtin || variable || relative || function || w.starts_with('-')) {
                    self.push(w, line);
                }
                let base = if w.starts_with('/') {
                    w
                } else {
                    w.rsplit('/').next().unwrap_or(w)
                };
                if let Some(&(_, value, pair, positionals)) =
                    LAUNCHERS.iter().find(|(n, ..)| *n == base || *n == w)
                {
                    self.launcher = Some(Launcher {
                        value,
                        pair,
                        positionals,
                        skip: 0,
                    });
                }
            }
        }
    }

    fn push(&mut self, name: &str, line: u32) {
        self.out.push(CommandUse {
            name: name.to_owned(),
            line,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(script: &str) -> Vec<(String, u32)> {
        let lines: Vec<String> = script.lines().map(str::to_owned).collect();
        scan(&lines, 0)
            .into_iter()
            .map(|c| (c.name, c.line))
            .collect()
    }

    #[test]
    fn simple_commands() {
        assert_eq!(
            names(
                "module load gcc\ncd $PBS_O_WORKDIR\nOMP=4 mpirun -np 4 ./a.out > out.txt 2>&1\npython3 x.py | tee log && gzip log"
            ),
            [
                ("mpirun".into(), 3),
                ("python3".into(), 4),
                ("tee".into(), 4),
                ("gzip".into(), 4)
            ]
        );
    }

    #[test]
    fn control_flow_and_functions() {
        let s = "setup() {\n  mkdir -p out\n}\nfunction run { hostname; }\nfor i in 1 2 3; do\n  setup\n  seq $i\ndone\nif [ -f x ]; then cat x; fi\nwhile [[ a && b ]]; do sleep 1; done\ncase $x in\n  a|b) awk 1 ;;\n  *) sed -n p ;;\nesac\n";
        assert_eq!(
            names(s),
            [
                ("mkdir".into(), 2),
                ("hostname".into(), 4),
                ("seq".into(), 7),
                ("cat".into(), 9),
                ("sleep".into(), 10),
                ("awk".into(), 12),
                ("sed".into(), 13),
            ]
        );
    }

    #[test]
    fn quotes_substitutions_heredocs() {
        let s = "echo \"$(date +%s) `whoami`\"\nx=$(uname -r)\ncat <<EOF\nnot a command\nEOF\nexec /usr/bin/time -v ./a.out\nrm -f 'a b' # trailing comment\nls \\\n  -l\n";
        assert_eq!(
            names(s),
            [
                ("date".into(), 1),
                ("whoami".into(), 1),
                ("uname".into(), 2),
                ("cat".into(), 3),
                ("/usr/bin/time".into(), 6),
                ("rm".into(), 7),
                ("ls".into(), 8),
            ]
        );
    }

    #[test]
    fn arithmetic_is_not_a_command() {
        assert_eq!(
            names("for ((i=0;i<n;i++)); do\n  hostname\ndone\n(( n = n + 1 ))\nx=$((n*2)) seq $x"),
            [("hostname".into(), 2), ("seq".into(), 5)]
        );
    }

    /// The program a launcher runs is a command too: `mpirun -np 4 python3 run.py` needs
    /// python3; option values, assignments and leading positionals are not programs.
    #[test]
    fn programs_behind_launchers() {
        assert_eq!(
            names(
                "mpirun -np 4 python3 run.py\nmpiexec --mca btl self -x A=1 -n 2 numactl -C 0-3 R -f x\n\
                 time ./a.out\nenv OMP_NUM_THREADS=4 ./a.out\ntimeout 60 perl x.pl\ntaskset -c 0-3 ruby x.rb\n\
                 srun -n 4 --mpi=pmix julia x.jl\nnice -n 10 gzip big\nstdbuf -oL awk 1\n\
                 /usr/bin/time -o t.txt bc -l\nmpirun ./solver\nls | xargs -n 1 wc -l"
            ),
            [
                ("mpirun".into(), 1),
                ("python3".into(), 1),
                ("mpiexec".into(), 2),
                ("numactl".into(), 2),
                ("R".into(), 2),
                ("env".into(), 4),
                ("timeout".into(), 5),
                ("perl".into(), 5),
                ("taskset".into(), 6),
                ("ruby".into(), 6),
                ("srun".into(), 7),
                ("julia".into(), 7),
                ("nice".into(), 8),
                ("gzip".into(), 8),
                ("stdbuf".into(), 9),
                ("awk".into(), 9),
                ("/usr/bin/time".into(), 10),
                ("bc".into(), 10),
                ("mpirun".into(), 11),
                ("ls".into(), 12),
                ("xargs".into(), 12),
                ("wc".into(), 12),
            ]
        );
    }

    #[test]
    fn module_loads_are_found() {
        let lines: Vec<String> = "module load mpi/openmpi-x86_64\nml gcc openmpi\nml list\n\
             if true; then module add fftw/3 $X; fi\nmodule avail\nml load R/4\nml -gcc"
            .lines()
            .map(str::to_owned)
            .collect();
        let found: Vec<(String, u32)> = module_loads(&lines, 0)
            .into_iter()
            .map(|c| (c.name, c.line))
            .collect();
        assert_eq!(
            found,
            [
                ("mpi/openmpi-x86_64".into(), 1),
                ("gcc".into(), 2),
                ("openmpi".into(), 2),
                ("fftw/3".into(), 4),
                ("R/4".into(), 6),
            ]
        );
    }

    #[test]
    fn redirections_are_not_commands() {
        assert_eq!(
            names("> log echo hi\n< in sort\necho x >&2"),
            [("sort".into(), 2)]
        );
    }
}
