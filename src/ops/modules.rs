//! Modules: where the script's commands are after its `module load`s, from the modulefiles
//! themselves. Needs first look for commands in each module's `bin` by EL's convention
//! (`mpi/openmpi-x86_64` → `/usr/lib64/openmpi/bin`); once resolution has chosen the package
//! that ships a modulefile, its text (read from the package's payload, which the image needs
//! anyway) says where the module really puts `PATH` (`prepend-path PATH …` in Tcl,
//! `prepend_path("PATH", …)` in Lua). When that differs, the commands' needs change and the
//! job is resolved again.

use std::collections::BTreeMap;

use super::{Context, OpsError};
use crate::needs::Needs;
use crate::resolve::{Chosen, Resolution};

/// The most of a modulefile read (they are a few hundred bytes).
const MODULEFILE_LIMIT: u64 = 1 << 20;

/// Reads the modulefiles of `needs`' modules from the packages `res` chose and moves the
/// commands' search to the directories they put on `PATH`. Returns whether the needs
/// changed (then resolve again).
pub fn refine(ctx: &Context, needs: &mut Needs, res: &Resolution) -> Result<bool, OpsError> {
    if needs.modules.is_empty() || needs.module_commands.is_empty() {
        return Ok(false);
    }
    let mut bins = Vec::with_capacity(needs.modules.len());
    for m in &needs.modules {
        let dirs = match provider(res, &m.modulefile) {
            Some(p) => modulefile_path_dirs(ctx, p, &m.modulefile)?,
            None => None,
        };
        bins.push(match dirs {
            Some(d) if !d.is_empty() => {
                tracing::debug!(module = %m.name, dirs = ?d, "PATH from the modulefile");
                d
            }
            // No provider (a host module) or no PATH line: EL's convention stays.
            _ => m.bin_dirs.clone(),
        });
    }
    Ok(needs.set_module_bins(bins))
}

/// The chosen package that ships the modulefile (by the need it satisfies).
fn provider<'r>(res: &'r Resolution, modulefile: &[String]) -> Option<&'r Chosen> {
    let label = format!("{} ← ", crate::resolve::file_label(modulefile)?);
    res.packages
        .iter()
        .find(|p| p.satisfies.iter().any(|s| s.starts_with(&label)))
}

/// The `PATH` directories of the modulefile in package `p`; `None` when the package holds no
/// such file. A bare module name is a directory of versions: its highest version's file is
/// read.
fn modulefile_path_dirs(
    ctx: &Context,
    p: &Chosen,
    modulefile: &[String],
) -> Result<Option<Vec<String>>, OpsError> {
    let all = package_module_paths(ctx, p)?;
    let version_of = |f: &str| {
        modulefile.iter().any(|m| {
            f.strip_prefix(m.as_str())
                .and_then(|r| r.strip_prefix('/'))
                .is_some_and(|v| !v.starts_with('.') && !v.contains('/'))
        })
    };
    // The exact file if there is one, else the highest version in the directory.
    let exact = all.iter().find(|(f, _)| modulefile.contains(f));
    let chosen = exact.or_else(|| {
        all.iter()
            .filter(|(f, _)| version_of(f))
            .max_by(|a, b| version_order(a.0, b.0))
    });
    Ok(chosen.map(|(_, dirs)| dirs.clone()))
}

/// The `PATH` directories of every modulefile in package `p` (below the module roots), read
/// from its payload once and then remembered per RPM checksum in
/// [`Bucket::ModulePaths`](crate::cache::Bucket::ModulePaths): a warm build neither fetches
/// nor opens the package for it.
fn package_module_paths(
    ctx: &Context,
    p: &Chosen,
) -> Result<BTreeMap<String, Vec<String>>, OpsError> {
    let name = format!("{}-{}", p.checksum.algo.name(), p.checksum.hex);
    ctx.memo(crate::cache::Bucket::ModulePaths, &name, || {
        read_module_paths(ctx, p)
    })
}

/// [`package_module_paths`] read from the package (fetched into the cache, verified).
fn read_module_paths(ctx: &Context, p: &Chosen) -> Result<BTreeMap<String, Vec<String>>, OpsError> {
    let one = Resolution {
        packages: vec![p.clone()],
        warnings: Vec::new(),
    };
    let items = super::fetch::downloads(&one);
    let mut path = None;
    super::fetch::fetch_packages(ctx, &items, vec![0], |_, f| {
        path = Some(f);
        Ok(())
    })?;
    let Some(path) = path else {
        return Ok(BTreeMap::new());
    };
    let under_roots = |f: &str| {
        crate::needs::MODULE_ROOTS
            .iter()
            .any(|r| f.strip_prefix(r).is_some_and(|rest| rest.starts_with('/')))
    };
    let files =
        crate::rpm::read_named_texts(&path, under_roots, MODULEFILE_LIMIT).map_err(|e| {
            OpsError::Module {
                package: p.nevra.clone(),
                source: Box::new(e),
            }
        })?;
    Ok(files
        .into_iter()
        .map(|(f, text)| {
            let dirs = path_dirs(&f, &text);
            (f, dirs)
        })
        .collect())
}

/// Orders module versions as Environment Modules does for the default: by their numbers.
fn version_order(a: &str, b: &str) -> std::cmp::Ordering {
    let key = |s: &str| {
        s.rsplit('/')
            .next()
            .unwrap_or(s)
            .split(|c: char| !c.is_ascii_digit())
            .filter(|p| !p.is_empty())
            .map(|p| p.parse::<u64>().unwrap_or(0))
            .collect::<Vec<_>>()
    };
    key(a).cmp(&key(b)).then_with(|| a.cmp(b))
}

/// The directories a modulefile puts on `PATH`, in the order `PATH` then searches them:
/// `prepend-path PATH a:b` / `append-path PATH c` (Tcl, with `set name value` variables and
/// `$name`/`${name}`), `prepend_path("PATH", "a")` / `append_path` (Lua, string literals and
/// `local name = "value"`). `name` says which form (`.lua`).
pub fn path_dirs(name: &str, text: &str) -> Vec<String> {
    let (mut front, mut back) = (Vec::<String>::new(), Vec::<String>::new());
    let mut vars: Vec<(String, String)> = Vec::new();
    let lua = name.ends_with(".lua");
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with("--") || line.is_empty() {
            continue;
        }
        let (verb, var, value) = if lua {
            match lua_call(line, &vars) {
                Some(c) => c,
                None => {
                    if let Some((n, v)) = lua_local(line) {
                        vars.push((n, v));
                    }
                    continue;
                }
            }
        } else {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["set", n, v] => {
                    vars.push((n.to_string(), tcl_subst(unquote(v), &vars)));
                    continue;
                }
                [verb @ ("prepend-path" | "append-path"), rest @ ..] => {
                    // Options (`--delim :`, `-d :`) before the variable.
                    let mut i = 0;
                    while i < rest.len() && rest[i].starts_with('-') {
                        i += if matches!(rest[i], "--delim" | "-d") {
                            2
                        } else {
                            1
                        };
                    }
                    let (Some(var), Some(val)) = (rest.get(i), rest.get(i + 1)) else {
                        continue;
                    };
                    (
                        verb.to_string(),
                        var.to_string(),
                        tcl_subst(unquote(val), &vars),
                    )
                }
                _ => continue,
            }
        };
        if var != "PATH" {
            continue;
        }
        let dirs: Vec<String> = value
            .split(':')
            .filter(|d| d.starts_with('/'))
            .map(|d| d.trim_end_matches('/').to_owned())
            .collect();
        if verb.starts_with("prepend") {
            // A later prepend comes first in PATH.
            front.splice(0..0, dirs);
        } else {
            back.extend(dirs);
        }
    }
    front.extend(back);
    let mut seen = std::collections::BTreeSet::new();
    front.retain(|d| seen.insert(d.clone()));
    front
}

fn unquote(s: &str) -> &str {
    s.trim_matches(|c| c == '"' || c == '{' || c == '}')
}

/// `$name` and `${name}` of Tcl `set` variables.
fn tcl_subst(s: &str, vars: &[(String, String)]) -> String {
    let mut out = s.to_owned();
    for (n, v) in vars.iter().rev() {
        out = out.replace(&format!("${{{n}}}", n = n), v);
        out = out.replace(&format!("${n}"), v);
    }
    out
}

/// `prepend_path("PATH", "dir")` / `append_path(...)`: (verb, variable, value).
fn lua_call(line: &str, vars: &[(String, String)]) -> Option<(String, String, String)> {
    let (verb, rest) = line.split_once('(')?;
    let verb = verb.trim();
    if verb != "prepend_path" && verb != "append_path" {
        return None;
    }
    let args = rest.rsplit_once(')')?.0;
    let mut parts = args.splitn(2, ',');
    let var = lua_string(parts.next()?.trim(), vars)?;
    let value = lua_string(parts.next()?.trim(), vars)?;
    Some((verb.replace('_', "-"), var, value))
}

/// A Lua string literal, a `local` variable, or their `..` concatenation.
fn lua_string(expr: &str, vars: &[(String, String)]) -> Option<String> {
    let mut out = String::new();
    for part in expr.split("..") {
        let p = part.trim();
        if let Some(s) = p
            .strip_prefix('"')
            .and_then(|s| s.strip_suffix('"'))
            .or_else(|| p.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')))
        {
            out.push_str(s);
        } else {
            out.push_str(&vars.iter().rev().find(|(n, _)| n == p)?.1);
        }
    }
    Some(out)
}

/// `local name = "value"`.
fn lua_local(line: &str) -> Option<(String, String)> {
    let rest = line.strip_prefix("local ")?;
    let (name, value) = rest.split_once('=')?;
    let value = value.trim();
    let v = value
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .or_else(|| value.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')))?;
    Some((name.trim().to_owned(), v.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn el_openmpi_modulefile() {
        let text = "#%Module 1.0\n#\nconflict\t\tmpi\nprepend-path\t\tPATH\t\t/usr/lib64/openmpi/bin\n\
                    prepend-path\t\tLD_LIBRARY_PATH\t/usr/lib64/openmpi/lib\nsetenv MPI_BIN /x\n";
        assert_eq!(
            path_dirs("/usr/share/modulefiles/mpi/openmpi-x86_64", text),
            ["/usr/lib64/openmpi/bin"]
        );
    }

    #[test]
    fn tcl_variables_options_and_order() {
        let text = "set root /opt/gcc/12.2\nset bin \"$root/bin\"\n\
                    prepend-path PATH ${root}/libexec\nprepend-path --delim : PATH $bin:/opt/x/bin\n\
                    append-path PATH /opt/late/bin\nappend-path MANPATH /opt/man\n";
        assert_eq!(
            path_dirs("gcc/12.2", text),
            [
                "/opt/gcc/12.2/bin",
                "/opt/x/bin",
                "/opt/gcc/12.2/libexec",
                "/opt/late/bin"
            ]
        );
    }

    #[test]
    fn lua_modulefiles() {
        let text = "-- Lmod\nlocal base = \"/apps/openmpi/4.1\"\n\
                    prepend_path(\"PATH\", pathJoin(base, \"bin\"))\n\
                    prepend_path(\"PATH\", base .. \"/sbin\")\nappend_path('PATH', '/apps/extra/bin')\n\
                    prepend_path(\"LD_LIBRARY_PATH\", base .. \"/lib\")\n";
        assert_eq!(
            path_dirs("openmpi/4.1.lua", text),
            ["/apps/openmpi/4.1/sbin", "/apps/extra/bin"],
            "pathJoin is not evaluated: that line is skipped"
        );
    }

    #[test]
    fn versions_order_by_number() {
        let mut v = vec!["m/gcc/9.1", "m/gcc/12.2", "m/gcc/10.0"];
        v.sort_by(|a, b| version_order(a, b));
        assert_eq!(v, ["m/gcc/9.1", "m/gcc/10.0", "m/gcc/12.2"]);
    }
}
