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
pub struct CommandUse {
    pub name: String,
    pub line: u32,
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

/// Words after which the next word is again a command.
const PREFIXES: &[&str] = &[
    "exec", "command", "time", "builtin", "!", "nohup", "env", "nice",
];

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String, u32),
    /// `;`, `&`, `|`, `&&`, `||`, newline, `(`, `)`, `$(`, `$)` (its end), backtick, `` `) `` (its
    /// end), `;;`
    Sep(&'static str, u32),
}

/// Splits shell text into words and separators, dropping comments and here-doc bodies.
fn tokenize(lines: &[String], first: usize) -> Vec<Tok> {
    let mut toks = Vec::new();
    let mut heredocs: Vec<(String, bool)> = Vec::new();
    let mut i = first;
    let mut word = String::new();
    let mut word_line = 0u32;
    let mut quote: Option<char> = None;
    let mut depth_brace = 0usize;
    // Command substitutions opened inside double quotes: (closing char, paren depth) to
    // return to the quote at.
    let mut resume: Vec<(char, usize)> = Vec::new();
    let mut parens = 0usize;
    // Kinds of the open parentheses: true for `$(`, false for a subshell `(`.
    let mut paren_kinds: Vec<bool> = Vec::new();
    let mut in_backtick = false;
    while i < lines.len() {
        let lineno = (i + 1) as u32;
        let line = &lines[i];
        i += 1;
        let chars: Vec<char> = line.chars().collect();
        let mut k = 0;
        let flush = |word: &mut String, toks: &mut Vec<Tok>, line: u32| {
            if !word.is_empty() {
                toks.push(Tok::Word(std::mem::take(word), line));
            }
        };
        while k < chars.len() {
            let c = chars[k];
            if let Some(q) = quote {
                if q == '"'
                    && c == '$'
                    && chars.get(k + 1) == Some(&'(')
                    && chars.get(k + 2) != Some(&'(')
                {
                    flush(&mut word, &mut toks, word_line);
                    toks.push(Tok::Sep("$(", lineno));
                    resume.push((')', parens));
                    parens += 1;
                    paren_kinds.push(true);
                    quote = None;
                    k += 2;
                    continue;
                }
                if q == '"' && c == '`' {
                    flush(&mut word, &mut toks, word_line);
                    toks.push(Tok::Sep("`", lineno));
                    in_backtick = true;
                    resume.push(('`', parens));
                    quote = None;
                    k += 1;
                    continue;
                }
                if c == q {
                    quote = None;
                } else if c == '\\' && q == '"' && k + 1 < chars.len() {
                    k += 1;
                    word.push(chars[k]);
                } else {
                    word.push(c);
                }
                k += 1;
                continue;
            }
            if word.is_empty() {
                word_line = lineno;
            }
            match c {
                '\'' | '"' => {
                    quote = Some(c);
                    k += 1;
                    continue;
                }
                '\\' => {
                    if k + 1 < chars.len() {
                        word.push(chars[k + 1]);
                        k += 2;
                    } else {
                        k += 1; // continuation: the word goes on on the next line
                    }
                    continue;
                }
                '#' if word.is_empty() => break,
                '$' if chars.get(k + 1) == Some(&'(') && chars.get(k + 2) == Some(&'(') => {
                    // arithmetic: skip to the matching ))
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
                    word.push('0');
                    k += 1;
                    continue;
                }
                '$' if chars.get(k + 1) == Some(&'(') => {
                    flush(&mut word, &mut toks, word_line);
                    toks.push(Tok::Sep("$(", lineno));
                    parens += 1;
                    paren_kinds.push(true);
                    k += 2;
                    continue;
                }
                '$' if chars.get(k + 1) == Some(&'{') => {
                    depth_brace += 1;
                    word.push_str("${");
                    k += 2;
                    continue;
                }
                '}' if depth_brace > 0 => {
                    depth_brace -= 1;
                    word.push('}');
                    k += 1;
                    continue;
                }
                _ if depth_brace > 0 => {
                    word.push(c);
                    k += 1;
                    continue;
                }
                '`' => {
                    flush(&mut word, &mut toks, word_line);
                    toks.push(Tok::Sep(if in_backtick { "`)" } else { "`" }, lineno));
                    in_backtick = !in_backtick;
                    if !in_backtick && resume.last().is_some_and(|r| r.0 == '`') {
                        resume.pop();
                        quote = Some('"');
                    }
                    k += 1;
                    continue;
                }
                ';' | '&' | '|' | '(' | ')' => {
                    flush(&mut word, &mut toks, word_line);
                    let two: String = chars[k..chars.len().min(k + 2)].iter().collect();
                    let sep: &'static str = match two.as_str() {
                        ";;" => ";;",
                        "&&" => "&&",
                        "||" => "||",
                        _ => match c {
                            ';' => ";",
                            '&' => "&",
                            '|' => "|",
                            '(' => "(",
                            _ => ")",
                        },
                    };
                    k += sep.len();
                    // `>&2`, `2>&1`: a redirection, not a separator
                    if sep == "&" && toks.last().is_some_and(|t| matches!(t, Tok::Word(w, _) if w.ends_with('>') || w.ends_with('<'))) {
                        if let Some(Tok::Word(w, _)) = toks.last_mut() {
                            w.push('&');
                        }
                        continue;
                    }
                    if sep == "(" {
                        toks.push(Tok::Sep(sep, lineno));
                        parens += 1;
                        paren_kinds.push(false);
                    } else if sep == ")" {
                        let substitution = paren_kinds.pop().unwrap_or(false);
                        toks.push(Tok::Sep(if substitution { "$)" } else { ")" }, lineno));
                        parens = parens.saturating_sub(1);
                        if resume.last() == Some(&(')', parens)) {
                            resume.pop();
                            quote = Some('"');
                        }
                    } else {
                        toks.push(Tok::Sep(sep, lineno));
                    }
                    continue;
                }
                '<' if chars.get(k + 1) == Some(&'<') && chars.get(k + 2) != Some(&'<') => {
                    flush(&mut word, &mut toks, word_line);
                    // here-document: <<WORD, <<-WORD, <<'WORD'
                    k += 2;
                    let strip = chars.get(k) == Some(&'-');
                    if strip {
                        k += 1;
                    }
                    while chars.get(k) == Some(&' ') {
                        k += 1;
                    }
                    let mut delim = String::new();
                    while k < chars.len()
                        && !chars[k].is_whitespace()
                        && !";&|<>()".contains(chars[k])
                    {
                        if !"'\"\\".contains(chars[k]) {
                            delim.push(chars[k]);
                        }
                        k += 1;
                    }
                    if !delim.is_empty() {
                        heredocs.push((delim, strip));
                    }
                    toks.push(Tok::Word("<<".into(), lineno));
                    continue;
                }
                c if c.is_whitespace() => {
                    flush(&mut word, &mut toks, word_line);
                    k += 1;
                    continue;
                }
                c => {
                    word.push(c);
                    k += 1;
                    continue;
                }
            }
        }
        let continued = line.ends_with('\\') && !line.ends_with("\\\\");
        if quote.is_none() && !continued {
            flush(&mut word, &mut toks, word_line);
            toks.push(Tok::Sep("\n", lineno));
        } else if quote.is_some() {
            word.push('\n');
        }
        // Skip here-document bodies.
        for (delim, strip) in std::mem::take(&mut heredocs) {
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
    }
    if !word.is_empty() {
        toks.push(Tok::Word(word, word_line));
    }
    toks
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
pub fn scan(lines: &[String], first: usize) -> Vec<CommandUse> {
    let toks = tokenize(lines, first);
    // Functions defined in the script: `name()` and `function name`.
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
    let mut out = Vec::new();
    let mut at_start = true;
    let mut skip_until_sep = false; // `for x in ...`, `[[ ... ]]`
    let mut in_double_bracket = false;
    let mut case_depth = 0usize;
    let mut case_header = false; // between `case` and `in`
    let mut expect_pattern = false;
    let mut redirect_target = false;
    let mut function_name_next = false;
    let mut i = 0;
    while i < toks.len() {
        match &toks[i] {
            Tok::Sep(s, _) => {
                redirect_target = false;
                if in_double_bracket {
                    i += 1;
                    continue;
                }
                skip_until_sep = false;
                match *s {
                    ";;" => {
                        expect_pattern = case_depth > 0;
                        at_start = true;
                    }
                    ")" if expect_pattern => {
                        expect_pattern = false;
                        at_start = true;
                    }
                    // The end of a command substitution returns to the enclosing command's
                    // words.
                    "$)" | "`)" => at_start = false,
                    "\n" if expect_pattern => {}
                    _ => at_start = true,
                }
            }
            Tok::Word(w, line) => {
                if in_double_bracket {
                    if w == "]]" {
                        in_double_bracket = false;
                    }
                    i += 1;
                    continue;
                }
                if redirect_target {
                    redirect_target = false;
                    i += 1;
                    continue;
                }
                if case_header {
                    if w == "in" {
                        case_header = false;
                        expect_pattern = true;
                    }
                    i += 1;
                    continue;
                }
                if expect_pattern {
                    if w == "esac" {
                        expect_pattern = false;
                        case_depth = case_depth.saturating_sub(1);
                        at_start = false;
                    }
                    i += 1;
                    continue;
                }
                if function_name_next {
                    function_name_next = false;
                    i += 1;
                    continue;
                }
                if skip_until_sep || !at_start {
                    if is_redirection(w)
                        && !w.ends_with('&')
                        && w.trim_start_matches(|c: char| c.is_ascii_digit())
                            .trim_start_matches(['<', '>', '&'])
                            .is_empty()
                    {
                        redirect_target = true;
                    }
                    i += 1;
                    continue;
                }
                // At the start of a simple command.
                if is_assignment(w) {
                    i += 1;
                    continue;
                }
                if is_redirection(w) {
                    // `>file` is complete; a bare `>` takes the next word.
                    if w.trim_start_matches(|c: char| c.is_ascii_digit())
                        .trim_start_matches(['<', '>', '&'])
                        .is_empty()
                    {
                        redirect_target = true;
                    }
                    i += 1;
                    continue;
                }
                match w.as_str() {
                    "for" | "select" => skip_until_sep = true,
                    "case" => {
                        case_depth += 1;
                        case_header = true;
                    }
                    "esac" => case_depth = case_depth.saturating_sub(1),
                    "[[" => in_double_bracket = true,
                    "function" => function_name_next = true,
                    _ if PREFIXES.contains(&w.as_str()) => {
                        // the next word is a command again (skip options of env/nice/nohup)
                        if w == "env" || w == "nice" || w == "nohup" {
                            out.push(CommandUse {
                                name: w.clone(),
                                line: *line,
                            });
                        }
                    }
                    _ if KEYWORDS.contains(&w.as_str()) => {}
                    _ => {
                        at_start = false;
                        let builtin = BUILTINS.contains(&w.as_str());
                        let variable = w.starts_with('$') || w.contains("${") || w.contains('`');
                        let relative = w.contains('/') && !w.starts_with('/');
                        let function = functions.contains(w)
                            || matches!(toks.get(i + 1), Some(Tok::Sep("(", _)));
                        if !(builtin || variable || relative || function || w.starts_with('-')) {
                            out.push(CommandUse {
                                name: w.clone(),
                                line: *line,
                            });
                        }
                    }
                }
            }
        }
        i += 1;
    }
    out
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
    fn redirections_are_not_commands() {
        assert_eq!(
            names("> log echo hi\n< in sort\necho x >&2"),
            [("sort".into(), 2)]
        );
    }
}
