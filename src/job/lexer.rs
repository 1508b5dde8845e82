//! Finding `#PBS` directives in a job script and splitting them into words.
//!
//! The rules are TORQUE `qsub`'s: a directive is a line whose first non-blank text is the
//! directive prefix; blank lines, comments, the shebang and lines starting with `:` are not
//! executable; the first executable line ends the directive block (later directives are
//! reported and ignored). A directive ending in an unescaped backslash continues on the next
//! line. Words are split like the shell does: quotes, backslash escapes, and `#` starting a
//! comment at the beginning of a word.

/// A 1-based position in the original script.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Pos {
    /// Line, from 1.
    pub line: u32,
    /// Column in characters, from 1.
    pub col: u32,
}

/// One word of a directive, with the position of each of its characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Word {
    pub(crate) text: String,
    /// `positions[i]` is where the i-th character of `text` came from.
    pub(crate) positions: Vec<Pos>,
    pub(crate) start: Pos,
}

impl Word {
    /// Position of the character at char index `i` (clamped to the last one).
    pub(crate) fn pos_at(&self, i: usize) -> Pos {
        self.positions
            .get(i)
            .or(self.positions.last())
            .copied()
            .unwrap_or(self.start)
    }

    /// The sub-word from char index `from` on.
    pub(crate) fn tail(&self, from: usize) -> Word {
        let text: String = self.text.chars().skip(from).collect();
        let positions = self.positions.iter().skip(from).copied().collect();
        Word {
            text,
            positions,
            start: self.pos_at(from),
        }
    }
}

/// A directive block entry: the words following the prefix.
#[derive(Debug, Clone)]
pub(crate) struct DirectiveLine {
    pub(crate) line: u32,
    pub(crate) words: Vec<Word>,
}

/// What scanning a script found.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    pub(crate) shebang: Option<String>,
    pub(crate) directives: Vec<DirectiveLine>,
    /// Directives after the first executable line: (line, text), ignored by qsub.
    pub(crate) late_directives: Vec<u32>,
    /// Lines whose prefix is followed by something that is not a word break (`#PBSfoo`).
    pub(crate) malformed_prefix: Vec<u32>,
    /// The first executable line, if any (where qsub stops reading directives: lines that
    /// start with `:` do not count, as in qsub).
    pub(crate) first_command: Option<u32>,
    /// Whether the script runs anything at all (a `:` line counts).
    pub(crate) has_commands: bool,
    /// The script body lines (after normalisation), for later analysis.
    pub(crate) lines: Vec<String>,
}

/// A lexical error at a position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LexError {
    pub(crate) pos: Pos,
    pub(crate) message: String,
}

/// Splits `content` into normalised lines: CRLF and lone CR become LF.
pub(crate) fn normalise_lines(content: &str) -> Vec<String> {
    let unified = content.replace("\r\n", "\n").replace('\r', "\n");
    let mut lines: Vec<String> = unified.split('\n').map(str::to_owned).collect();
    if unified.ends_with('\n') {
        lines.pop();
    }
    lines
}

/// qsub's notion of an executable line.
fn is_executable(line: &str) -> bool {
    if line.starts_with(':') || line.starts_with("#!") {
        return false;
    }
    let trimmed = line.trim_start();
    !trimmed.is_empty() && !trimmed.starts_with('#')
}

fn leading_ws(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// Text after the prefix if `line` is a directive line. Returns (byte offset of the text, text).
fn after_prefix<'a>(line: &'a str, prefix: &str) -> Option<(usize, &'a str)> {
    if prefix.is_empty() {
        return None;
    }
    let ws = leading_ws(line);
    line[ws..]
        .strip_prefix(prefix)
        .map(|rest| (ws + prefix.len(), rest))
}

/// Number of trailing backslashes.
fn trailing_backslashes(s: &str) -> usize {
    s.chars().rev().take_while(|&c| c == '\\').count()
}

/// The longest directive read (after continuation lines are joined), in characters: qsub's
/// own buffers are a few kilobytes.
pub const MAX_DIRECTIVE_CHARS: usize = 64 * 1024;

/// Scans a script for directives.
pub(crate) fn scan(content: &str, prefix: &str) -> Result<Scan, LexError> {
    let lines = normalise_lines(content);
    let mut scan = Scan::default();
    if let Some(first) = lines.first()
        && let Some(rest) = first.strip_prefix("#!")
    {
        let interp = rest.trim();
        if !interp.is_empty() {
            scan.shebang = Some(interp.to_owned());
        }
    }
    let mut i = 0;
    while i < lines.len() {
        let lineno = (i + 1) as u32;
        let line = &lines[i];
        if let Some((offset, rest)) = after_prefix(line, prefix) {
            if scan.first_command.is_some() {
                scan.late_directives.push(lineno);
                i += 1;
                continue;
            }
            // qsub matches the prefix alone: `#PBS-l walltime=1:00:00` is a directive; a word
            // glued to the prefix (`#PBSfoo`) is not.
            if rest
                .chars()
                .next()
                .is_some_and(|c| !c.is_whitespace() && c != '-')
            {
                scan.malformed_prefix.push(lineno);
                i += 1;
                continue;
            }
            // Collect the logical directive with per-character positions.
            let mut chars: Vec<(char, Pos)> = Vec::new();
            let mut text = rest;
            let mut text_offset = offset;
            let mut cur = i;
            loop {
                let col0 = line_col(&lines[cur], text_offset);
                let continued = trailing_backslashes(text) % 2 == 1;
                let body = if continued {
                    &text[..text.len() - 1]
                } else {
                    text
                };
                if chars.len() + body.len() > MAX_DIRECTIVE_CHARS {
                    return Err(LexError {
                        pos: Pos {
                            line: lineno,
                            col: 1,
                        },
                        message: format!(
                            "the directive is longer than {MAX_DIRECTIVE_CHARS} characters"
                        ),
                    });
                }
                for (k, c) in body.chars().enumerate() {
                    chars.push((
                        c,
                        Pos {
                            line: (cur + 1) as u32,
                            col: col0 + k as u32,
                        },
                    ));
                }
                if !continued || cur + 1 >= lines.len() {
                    break;
                }
                cur += 1;
                let next = &lines[cur];
                // Backslash-newline vanishes as in the shell; the continuation's own prefix
                // and indentation are dropped so `a,\` + `#PBS b` reads `a,b`.
                let (off, rest) = after_prefix(next, prefix).unwrap_or((0, next.as_str()));
                let ws = leading_ws(rest);
                text = &rest[ws..];
                text_offset = off + ws;
            }
            let words = split_words(
                &chars,
                Pos {
                    line: lineno,
                    col: 1,
                },
            )?;
            scan.directives.push(DirectiveLine {
                line: lineno,
                words,
            });
            i = cur + 1;
            continue;
        }
        if scan.first_command.is_none() && is_executable(line) {
            scan.first_command = Some(lineno);
        }
        let trimmed = line.trim_start();
        if !trimmed.is_empty() && !trimmed.starts_with('#') {
            scan.has_commands = true;
        }
        i += 1;
    }
    scan.lines = lines;
    Ok(scan)
}

/// 1-based column (in characters) of byte offset `offset` in `line`.
fn line_col(line: &str, offset: usize) -> u32 {
    line[..offset].chars().count() as u32 + 1
}

/// Shell-like word splitting of a directive body.
pub(crate) fn split_words(chars: &[(char, Pos)], fallback: Pos) -> Result<Vec<Word>, LexError> {
    let mut words = Vec::new();
    let mut cur: Option<Word> = None;
    let mut i = 0;
    let push = |cur: &mut Option<Word>, c: char, p: Pos, start: Pos| {
        let w = cur.get_or_insert_with(|| Word {
            text: String::new(),
            positions: Vec::new(),
            start,
        });
        w.text.push(c);
        w.positions.push(p);
    };
    while i < chars.len() {
        let (c, p) = chars[i];
        match c {
            c if c.is_whitespace() => {
                if let Some(w) = cur.take() {
                    words.push(w);
                }
            }
            '#' if cur.is_none() => break, // comment
            '\'' | '"' => i = quoted(chars, i, &mut cur)?,
            '\\' => match chars.get(i + 1) {
                Some(&(n, np)) => {
                    push(&mut cur, n, np, p);
                    i += 1;
                }
                None => push(&mut cur, '\\', p, p),
            },
            c => push(&mut cur, c, p, p),
        }
        i += 1;
    }
    if let Some(w) = cur.take() {
        words.push(w);
    }
    let _ = fallback;
    Ok(words)
}

/// A quoted run starting at `chars[i]` (a `'` or `"`), appended to the current word (an
/// empty quote still makes a word). In double quotes a backslash escapes only a double quote,
/// a backslash, `$` and a backtick.
/// Returns the index of the closing quote.
fn quoted(chars: &[(char, Pos)], mut i: usize, cur: &mut Option<Word>) -> Result<usize, LexError> {
    let (q, start) = chars[i];
    let w = cur.get_or_insert_with(|| Word {
        text: String::new(),
        positions: Vec::new(),
        start,
    });
    let mut push = |c: char, p: Pos| {
        w.text.push(c);
        w.positions.push(p);
    };
    i += 1;
    loop {
        match chars.get(i) {
            None => {
                let kind = if q == '"' { "double" } else { "single" };
                return Err(LexError {
                    pos: start,
                    message: format!("unterminated {kind} quote"),
                });
            }
            Some(&(c, _)) if c == q => return Ok(i),
            Some(&('\\', bp)) if q == '"' => match chars.get(i + 1) {
                Some(&(n @ ('"' | '\\' | '$' | '`'), np)) => {
                    push(n, np);
                    i += 1;
                }
                _ => push('\\', bp),
            },
            Some(&(c, p)) => push(c, p),
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        let chars: Vec<(char, Pos)> = s
            .chars()
            .enumerate()
            .map(|(i, c)| {
                (
                    c,
                    Pos {
                        line: 1,
                        col: i as u32 + 1,
                    },
                )
            })
            .collect();
        split_words(&chars, Pos { line: 1, col: 1 })
            .unwrap()
            .into_iter()
            .map(|w| w.text)
            .collect()
    }

    #[test]
    fn shell_like_words() {
        assert_eq!(words(" -N  my\\ job "), ["-N", "my job"]);
        assert_eq!(words("-v 'A=1,B=2' \"x\\\"y\""), ["-v", "A=1,B=2", "x\"y"]);
        assert_eq!(words("-l mem=1gb # a comment"), ["-l", "mem=1gb"]);
        assert_eq!(words("-Na#b"), ["-Na#b"]);
        assert_eq!(words("''"), [""]);
    }

    #[test]
    fn unterminated_quote_is_an_error() {
        let chars: Vec<(char, Pos)> = "-N 'abc"
            .chars()
            .enumerate()
            .map(|(i, c)| {
                (
                    c,
                    Pos {
                        line: 3,
                        col: i as u32 + 1,
                    },
                )
            })
            .collect();
        let err = split_words(&chars, Pos { line: 3, col: 1 }).unwrap_err();
        assert_eq!(err.pos, Pos { line: 3, col: 4 });
    }

    #[test]
    fn scanning_stops_at_first_command() {
        let s = scan(
            "#!/bin/bash\r\n  #PBS -N a\r\n\r\n# comment\r\n: noop\r\necho hi\r\n#PBS -N late\r\n",
            "#PBS",
        )
        .unwrap();
        assert_eq!(s.shebang.as_deref(), Some("/bin/bash"));
        assert_eq!(s.directives.len(), 1);
        assert_eq!(s.first_command, Some(6));
        assert_eq!(s.late_directives, [7]);
        assert_eq!(s.directives[0].words[1].start, Pos { line: 2, col: 11 });
    }

    #[test]
    fn continuation_joins_lines() {
        let s = scan("#PBS -l nodes=1:ppn=2,\\\n#PBS walltime=10:00\nx\n", "#PBS").unwrap();
        let w: Vec<_> = s.directives[0].words.iter().map(|w| &w.text).collect();
        assert_eq!(w, ["-l", "nodes=1:ppn=2,walltime=10:00"]);
        assert_eq!(s.directives[0].words[1].pos_at(14), Pos { line: 2, col: 6 });
    }

    #[test]
    fn empty_prefix_disables_directives() {
        let s = scan("#PBS -N a\n", "").unwrap();
        assert!(s.directives.is_empty());
    }
}
