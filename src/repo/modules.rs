//! EL8+ modularity: which packages a `modules.yaml` hides.
//!
//! As dnf does: a package that is an artifact of some module stream is visible only when
//! that stream is enabled (explicitly in `[[repo]] modules`, else the stream the
//! `modulemd-defaults` document names). Non-modular packages with the name of a package of
//! an enabled stream are hidden, so the stream's version wins.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::metadata::Package;

/// Module streams and their artifacts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleIndex {
    /// (module, stream) → artifact NEVRAs (`name-epoch:version-release.arch`).
    pub(crate) streams: BTreeMap<(String, String), BTreeSet<String>>,
    /// module → default stream.
    pub(crate) defaults: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct Doc {
    document: String,
    #[serde(default)]
    data: serde_json::Value,
}

impl ModuleIndex {
    pub(crate) fn parse(yaml: &str) -> Result<ModuleIndex, String> {
        let docs: Vec<Doc> =
            serde_saphyr::from_multiple(yaml).map_err(|e| format!("modules.yaml: {e}"))?;
        let mut idx = ModuleIndex::default();
        for d in docs {
            let s = |k: &str| {
                d.data.get(k).and_then(|v| {
                    v.as_str()
                        .map(str::to_owned)
                        .or_else(|| v.as_u64().map(|n| n.to_string()))
                })
            };
            match d.document.as_str() {
                "modulemd" => {
                    let (Some(name), Some(stream)) = (s("name"), s("stream")) else {
                        return Err("modules.yaml: a modulemd document lacks name or stream".into());
                    };
                    let arts = d
                        .data
                        .pointer("/artifacts/rpms")
                        .and_then(|v| v.as_array())
                        .map(|a| {
                            a.iter()
                                .filter_map(|x| x.as_str().map(str::to_owned))
                                .collect::<Vec<_>>()
                        })
                        .unwrap_or_default();
                    idx.streams.entry((name, stream)).or_default().extend(arts);
                }
                "modulemd-defaults" => {
                    if let (Some(m), Some(st)) = (s("module"), s("stream")) {
                        idx.defaults.insert(m, st);
                    }
                }
                _ => {}
            }
        }
        Ok(idx)
    }

    /// Indexes of the packages to hide, given the explicitly enabled `name:stream`s. Only
    /// the packages named by some module's artifacts are looked at (`named`: a name's
    /// packages with their index), so a warm run decodes a few hundred packages, not all.
    pub(crate) fn hidden<'p>(
        &self,
        named: impl Fn(&str) -> Vec<(u32, &'p Package)>,
        enabled: &[String],
    ) -> BTreeSet<u32> {
        let mut active: BTreeMap<&str, &str> = self
            .defaults
            .iter()
            .map(|(m, s)| (m.as_str(), s.as_str()))
            .collect();
        for e in enabled {
            if let Some((m, s)) = e.split_once(':') {
                active.insert(m, s);
            }
        }
        let mut modular: BTreeSet<&str> = BTreeSet::new();
        let mut visible: BTreeSet<&str> = BTreeSet::new();
        let mut names: BTreeSet<&str> = BTreeSet::new();
        let mut enabled_names: BTreeSet<&str> = BTreeSet::new();
        for ((m, s), arts) in &self.streams {
            let on = active.get(m.as_str()) == Some(&s.as_str());
            for a in arts {
                modular.insert(a);
                let name = nevra_name(a);
                names.extend(name);
                if on {
                    visible.insert(a);
                    enabled_names.extend(name);
                }
            }
        }
        let mut hidden = BTreeSet::new();
        for name in names {
            for (i, p) in named(name) {
                let nevra = format!(
                    "{}-{}:{}-{}.{}",
                    p.name,
                    p.evr.epoch.as_deref().unwrap_or("0"),
                    p.evr.version,
                    p.evr.release.as_deref().unwrap_or(""),
                    p.arch
                );
                let is_modular = modular.contains(nevra.as_str());
                if (is_modular && !visible.contains(nevra.as_str()))
                    || (!is_modular && enabled_names.contains(p.name.as_str()))
                {
                    hidden.insert(i);
                }
            }
        }
        hidden
    }
}

/// The name part of `name-epoch:version-release.arch`.
fn nevra_name(nevra: &str) -> Option<&str> {
    let (rest, _arch) = nevra.rsplit_once('.')?;
    let (rest, _rel) = rest.rsplit_once('-')?;
    let (name, _ev) = rest.rsplit_once('-')?;
    Some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            nevra_name("nodejs-1:20.1.0-1.module+el9.x86_64"),
            Some("nodejs")
        );
        assert_eq!(
            nevra_name("python3-foo-bar-0:1-2.noarch"),
            Some("python3-foo-bar")
        );
    }
}
