//! rpm rich (boolean) dependencies: `(a and b)`, `(a or b)`, `(a if b else c)`,
//! `(a unless b else c)`, `(a with b)`, `(a without b)`, nested.

use crate::repo::evr::{Cmp, Evr};
use crate::repo::metadata::Dep;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Rich {
    Atom(Dep),
    And(Vec<Rich>),
    Or(Vec<Rich>),
    /// `(a if cond)` / `(a if cond else b)`
    If(Box<Rich>, Box<Rich>, Option<Box<Rich>>),
    /// `(a unless cond)` / `(a unless cond else b)`
    Unless(Box<Rich>, Box<Rich>, Option<Box<Rich>>),
    With(Vec<Rich>),
    Without(Box<Rich>, Box<Rich>),
}

struct P<'a> {
    toks: Vec<&'a str>,
    i: usize,
}

fn tokenize(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b' ' | b'\t' => i += 1,
            b'(' | b')' => {
                out.push(&s[i..i + 1]);
                i += 1;
            }
            _ => {
                let start = i;
                // an atom name may itself contain balanced parentheses: libc.so.6()(64bit)
                let mut depth = 0i32;
                while i < b.len() {
                    match b[i] {
                        b'(' => depth += 1,
                        b')' if depth == 0 => break,
                        b')' => depth -= 1,
                        b' ' | b'\t' if depth == 0 => break,
                        _ => {}
                    }
                    i += 1;
                }
                out.push(&s[start..i]);
            }
        }
    }
    out
}

const OPS: &[&str] = &["and", "or", "if", "unless", "else", "with", "without"];

impl<'a> P<'a> {
    fn peek(&self) -> Option<&'a str> {
        self.toks.get(self.i).copied()
    }
    fn next(&mut self) -> Option<&'a str> {
        let t = self.peek();
        self.i += 1;
        t
    }
    fn operand(&mut self) -> Result<Rich, String> {
        match self.next() {
            Some("(") => {
                let r = self.inner()?;
                match self.next() {
                    Some(")") => Ok(r),
                    _ => Err("missing `)`".into()),
                }
            }
            Some(t) if !OPS.contains(&t) && t != ")" => {
                let name = t.to_owned();
                // optional `cmp evr`
                let cmp = match self.peek() {
                    Some("<") => Some(Cmp::Lt),
                    Some("<=") => Some(Cmp::Le),
                    Some("=") | Some("==") => Some(Cmp::Eq),
                    Some(">=") => Some(Cmp::Ge),
                    Some(">") => Some(Cmp::Gt),
                    _ => None,
                };
                let evr = if cmp.is_some() {
                    self.i += 1;
                    Some(Evr::parse(
                        self.next().ok_or("missing version after comparison")?,
                    ))
                } else {
                    None
                };
                Ok(Rich::Atom(Dep {
                    name,
                    cmp,
                    evr,
                    pre: false,
                }))
            }
            t => Err(format!("unexpected `{}`", t.unwrap_or("end"))),
        }
    }
    fn inner(&mut self) -> Result<Rich, String> {
        let first = self.operand()?;
        let Some(op) = self.peek().filter(|t| OPS.contains(t)) else {
            return Ok(first);
        };
        match op {
            "and" | "or" | "with" => {
                let mut items = vec![first];
                while self.peek() == Some(op) {
                    self.i += 1;
                    items.push(self.operand()?);
                }
                Ok(match op {
                    "and" => Rich::And(items),
                    "or" => Rich::Or(items),
                    _ => Rich::With(items),
                })
            }
            "if" | "unless" => {
                self.i += 1;
                let cond = self.operand()?;
                let other = if self.peek() == Some("else") {
                    self.i += 1;
                    Some(Box::new(self.operand()?))
                } else {
                    None
                };
                Ok(if op == "if" {
                    Rich::If(Box::new(first), Box::new(cond), other)
                } else {
                    Rich::Unless(Box::new(first), Box::new(cond), other)
                })
            }
            "without" => {
                self.i += 1;
                Ok(Rich::Without(Box::new(first), Box::new(self.operand()?)))
            }
            _ => Err(format!("unexpected `{op}`")),
        }
    }
}

/// Parses a rich dependency (the whole `(...)` text).
pub(crate) fn parse(s: &str) -> Result<Rich, String> {
    let mut p = P {
        toks: tokenize(s),
        i: 0,
    };
    let r = p
        .operand()
        .map_err(|e| format!("rich dependency `{s}`: {e}"))?;
    if p.i != p.toks.len() {
        return Err(format!("rich dependency `{s}`: trailing text"));
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn atom(n: &str) -> Rich {
        Rich::Atom(Dep {
            name: n.into(),
            cmp: None,
            evr: None,
            pre: false,
        })
    }

    #[test]
    fn parses() {
        assert_eq!(
            parse("(a or b or c)").unwrap(),
            Rich::Or(vec![atom("a"), atom("b"), atom("c")])
        );
        assert_eq!(
            parse("(a if b else c)").unwrap(),
            Rich::If(
                Box::new(atom("a")),
                Box::new(atom("b")),
                Some(Box::new(atom("c")))
            )
        );
        let r = parse("((foo >= 1.2 and libc.so.6()(64bit)) or bar)").unwrap();
        let Rich::Or(v) = r else { panic!() };
        let Rich::And(a) = &v[0] else { panic!() };
        let Rich::Atom(d) = &a[0] else { panic!() };
        assert_eq!((d.name.as_str(), d.cmp), ("foo", Some(Cmp::Ge)));
        let Rich::Atom(d) = &a[1] else { panic!() };
        assert_eq!(d.name, "libc.so.6()(64bit)");
        assert!(parse("(a or)").is_err());
        assert!(parse("(a b)").is_err());
    }
}
