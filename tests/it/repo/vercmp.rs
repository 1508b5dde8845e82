//! rpmvercmp against rpm itself.

use crate::common::*;
use std::process::Command;

#[test]
fn rpmvercmp_agrees_with_rpm() {
    require("rpm", "rpm");
    // Deterministic pseudo-random versions over the characters that matter.
    // No `-` or `:`: rpm.vercmp parses its arguments as EVRs, so those would split them.
    let alphabet: Vec<char> = "0123456789abcz.~^_+".chars().collect();
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut pairs = Vec::new();
    for _ in 0..2000 {
        let v = |next: &mut dyn FnMut() -> u64| -> String {
            let n = 1 + (next() % 8) as usize;
            (0..n)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect()
        };
        let a = v(&mut next);
        let b = if next() % 4 == 0 {
            a.clone()
        } else {
            v(&mut next)
        };
        pairs.push((a, b));
    }
    // rpm's lua print() does not separate outputs: collect, then print once.
    let mut lua = String::from("%{lua: local t = {} ");
    for (a, b) in &pairs {
        lua.push_str(&format!("t[#t+1] = rpm.vercmp([[{a}]], [[{b}]]) "));
    }
    lua.push_str("print(table.concat(t, ' ')) }");
    let o = run_ok(Command::new("rpm").arg("--eval").arg(&lua));
    let results: Vec<i32> = String::from_utf8(o.stdout)
        .unwrap()
        .split_whitespace()
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(results.len(), pairs.len());
    for ((a, b), want) in pairs.iter().zip(results) {
        let got = match pbsimage::repo::evr::rpmvercmp(a, b) {
            std::cmp::Ordering::Less => -1,
            std::cmp::Ordering::Equal => 0,
            std::cmp::Ordering::Greater => 1,
        };
        assert_eq!(got, want, "rpmvercmp({a:?}, {b:?})");
    }
}
