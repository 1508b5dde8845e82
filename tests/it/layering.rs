//! The crate's layering, checked from its source: cli → ops → stages → leaves, and no cycle
//! between modules (ARCHITECTURE.md, "Layers of the crate").

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// A module's layer: a module may use modules of its own layer or below, never above.
fn layer(module: &str) -> Option<u8> {
    Some(match module {
        "digest" | "decompress" | "hint" | "progress" | "config" | "cache" => 0,
        "job" | "elf" | "needs" | "repo" | "resolve" | "fetch" | "rpm" | "layer" | "image"
        | "registry" | "kube" | "catalog" | "sign" => 1,
        "ops" => 2,
        "cli" => 3,
        _ => return None,
    })
}

/// Source text without comments and without `#[cfg(test)]` modules (tests may reach
/// anywhere).
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut stack = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("src")];
    let src = stack[0].clone();
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            if p.extension().is_none_or(|x| x != "rs") {
                continue;
            }
            let rel = p.strip_prefix(&src).unwrap();
            let first = rel
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy();
            let module = first.trim_end_matches(".rs").to_owned();
            if module == "lib" || module == "main" {
                continue;
            }
            let text = code(&std::fs::read_to_string(&p).unwrap());
            for (i, _) in text.match_indices("crate::") {
                let before = text[..i].chars().last();
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
                    continue;
                }
                let used: String = text[i + 7..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                if !used.is_empty() && used != module {
                    deps.entry(module.clone()).or_default().insert(used);
                }
            }
        }
    }
    deps
}

#[test]
fn modules_depend_downwards_only_and_never_in_a_cycle() {
    let deps = dependencies();
    assert!(
        deps.contains_key("ops") && deps.contains_key("cli"),
        "{deps:?}"
    );
    let mut wrong = Vec::new();
    for (m, used) in &deps {
        let lm = layer(m).unwrap_or_else(|| panic!("module `{m}` has no layer in this test"));
        for u in used {
            let lu = layer(u).unwrap_or_else(|| panic!("module `{u}` has no layer in this test"));
            if lu > lm {
                wrong.push(format!("{m} (layer {lm}) uses {u} (layer {lu})"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "upward dependencies:\n{}",
        wrong.join("\n")
    );
    // No cycle: repeatedly remove modules that use nothing left.
    let mut left: BTreeMap<&str, BTreeSet<&str>> = deps
        .iter()
        .map(|(m, u)| (m.as_str(), u.iter().map(String::as_str).collect()))
        .collect();
    loop {
        let free: Vec<&str> = left
            .iter()
            .filter(|(_, u)| u.iter().all(|x| !left.contains_key(x)))
            .map(|(m, _)| *m)
            .collect();
        if free.is_empty() {
            break;
        }
        for m in free {
            left.remove(m);
        }
    }
    assert!(left.is_empty(), "modules in a cycle: {left:?}");
}
