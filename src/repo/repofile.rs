//! yum/dnf `.repo` files (INI), so admins can point pbsimage at `/etc/yum.repos.d`.

use std::path::Path;

/// One `[section]` of a `.repo` file, as written (variables not yet expanded).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct RepoSection {
    pub(crate) id: String,
    pub(crate) line: usize,
    pub(crate) name: Option<String>,
    pub(crate) baseurl: Vec<String>,
    pub(crate) mirrorlist: Option<String>,
    pub(crate) metalink: Option<String>,
    pub(crate) enabled: bool,
    pub(crate) gpgcheck: bool,
    pub(crate) gpgkey: Option<String>,
    pub(crate) priority: u32,
    pub(crate) sslcacert: Option<String>,
    pub(crate) sslverify: bool,
}

fn boolean(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "yes" | "true" | "on" => Some(true),
        "0" | "no" | "false" | "off" => Some(false),
        _ => None,
    }
}

/// Parses a `.repo` file. Errors name the line.
pub(crate) fn parse(text: &str, path: &Path) -> Result<Vec<RepoSection>, String> {
    let mut out: Vec<RepoSection> = Vec::new();
    let mut last_key: Option<String> = None;
    for (i, raw) in text.lines().enumerate() {
        let lineno = i + 1;
        let at = |m: String| format!("{}:{lineno}: {m}", path.display());
        let line = raw.trim_end();
        let t = line.trim_start();
        if t.is_empty() || t.starts_with('#') || t.starts_with(';') {
            continue;
        }
        // Continuation of a multi-line value (baseurl, gpgkey).
        if raw.starts_with(char::is_whitespace) && last_key.is_some() {
            let sec = out
                .last_mut()
                .ok_or_else(|| at("value outside a section".into()))?;
            match last_key.as_deref() {
                Some("baseurl") => sec.baseurl.extend(t.split_whitespace().map(str::to_owned)),
                Some("gpgkey") => {}
                _ => return Err(at(format!("unexpected continuation line `{t}`"))),
            }
            continue;
        }
        if let Some(id) = t.strip_prefix('[') {
            let id = id
                .strip_suffix(']')
                .ok_or_else(|| at("unterminated section header".into()))?;
            if id == "main" {
                last_key = None;
                out.push(RepoSection {
                    id: String::new(),
                    ..Default::default()
                });
                continue;
            }
            out.push(RepoSection {
                id: id.trim().to_owned(),
                line: lineno,
                enabled: true,
                priority: 99,
                sslverify: true,
                ..Default::default()
            });
            last_key = None;
            continue;
        }
        let (k, v) = t
            .split_once('=')
            .ok_or_else(|| at(format!("expected key=value, found `{t}`")))?;
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_owned());
        let sec = out
            .last_mut()
            .ok_or_else(|| at("key outside a section".into()))?;
        let flag =
            |v: &str| boolean(v).ok_or_else(|| at(format!("`{k}` must be 0 or 1, not `{v}`")));
        match k.as_str() {
            "name" => sec.name = Some(v),
            "baseurl" => {
                sec.baseurl = v
                    .split(|c: char| c.is_whitespace() || c == ',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            }
            "mirrorlist" => sec.mirrorlist = Some(v),
            "metalink" => sec.metalink = Some(v),
            "enabled" => sec.enabled = flag(&v)?,
            "gpgcheck" => sec.gpgcheck = flag(&v)?,
            "gpgkey" => sec.gpgkey = v.split_whitespace().next().map(str::to_owned),
            "priority" => {
                sec.priority = v
                    .parse()
                    .map_err(|_| at(format!("priority `{v}` is not a number")))?
            }
            "sslcacert" => sec.sslcacert = Some(v),
            "sslverify" => sec.sslverify = flag(&v)?,
            _ => {} // yum has many more keys (cost, skip_if_unavailable, ...): not used here
        }
        last_key = Some(k);
    }
    out.retain(|s| !s.id.is_empty());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_repo_file() {
        let text = "[main]\ncachedir=/x\n\n[baseos]\nname=Rocky $releasever - BaseOS\nbaseurl=http://a/$releasever/\n  http://b/$releasever/\ngpgcheck=1\ngpgkey=file:///etc/pki/k\nenabled=1\npriority=5\n[debug]\nmirrorlist=http://m\nenabled=0\n";
        let s = parse(text, Path::new("r.repo")).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(
            s[0].baseurl,
            ["http://a/$releasever/", "http://b/$releasever/"]
        );
        assert!(s[0].gpgcheck && s[0].enabled);
        assert_eq!(s[0].priority, 5);
        assert!(!s[1].enabled);
        let e = parse("[x]\nenabled=maybe\n", Path::new("r.repo")).unwrap_err();
        assert!(e.contains("r.repo:2"), "{e}");
    }
}
