//! Accounts no scriptlet creates: pbsimage runs no `%pre` (`groupadd -r ssh_keys`) and no
//! `systemd-sysusers`, so the users and groups packages need come from here, as
//! systemd-sysusers would make them: `/usr/lib/sysusers.d/*.conf` declarations first, then,
//! for a name some package's files are owned by and nothing declares, a deterministic id.
//!
//! Ids are fixed before any layer is written (a file's owner is a number in the layer): the
//! setup package's `/etc/passwd` and `/etc/group`, the numeric ids that the base packages'
//! sysusers.d files declare, then [`fallback_id`], a function of the name and of those ids
//! only. The image's `/etc/passwd` and `/etc/group` then get a line for every account that
//! the setup package lacks ([`Accounts::extend`]), in the job's layer.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

use super::IdMap;
use crate::rpm::{FileInfo, RpmError, RpmReader};

/// The lowest and highest id given to an account nothing numbers (systemd's system range,
/// above what setup and Fedora's static allocations use).
const FALLBACK_IDS: std::ops::RangeInclusive<u32> = 200..=999;

/// One `sysusers.d` line that makes an account.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SysUser {
    /// `u` (a user and its group), `g` (a group) or `m` (a user in a group).
    pub kind: char,
    /// The user's or group's name.
    pub name: String,
    /// The id asked for, when numeric.
    pub id: Option<u32>,
    /// `u`: the primary group by id (`uid:gid`); `m`: the group.
    pub group: Option<String>,
    /// `u`: the GECOS field.
    pub gecos: Option<String>,
    /// `u`: the home directory.
    pub home: Option<String>,
    /// `u`: the login shell.
    pub shell: Option<String>,
}

/// Whether a package ships sysusers.d files.
pub fn has_sysusers(files: &[FileInfo]) -> bool {
    files.iter().any(|f| is_sysusers(&f.path) && !f.ghost)
}

fn is_sysusers(path: &str) -> bool {
    path.strip_prefix("/usr/lib/sysusers.d/")
        .is_some_and(|n| n.ends_with(".conf") && !n.contains('/'))
}

/// The sysusers.d declarations of the RPM at `path`, read from its payload.
pub fn sysusers_of(path: &std::path::Path) -> Result<Vec<SysUser>, RpmError> {
    Ok(crate::rpm::read_texts(path, is_sysusers, 256 << 10)?
        .iter()
        .flat_map(|t| parse(t))
        .collect())
}

/// Splits a sysusers.d line into fields: white space separates, double quotes group.
fn fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let (mut quoted, mut any) = (false, false);
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(cur);
    }
    out
}

/// The `u`, `g` and `m` lines of a sysusers.d file (`r` ranges and comments are skipped).
pub fn parse(text: &str) -> Vec<SysUser> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let f = fields(line);
        let get = |i: usize| {
            f.get(i)
                .filter(|s| s.as_str() != "-" && !s.is_empty())
                .cloned()
        };
        let kind = match f.first().map(String::as_str) {
            Some("u") | Some("u!") => 'u',
            Some("g") => 'g',
            Some("m") => 'm',
            _ => continue,
        };
        let Some(name) = get(1) else { continue };
        let idf = get(2);
        let (id, group) = match kind {
            'm' => (None, idf),
            _ => match idf.as_deref().map(|s| s.split_once(':').unwrap_or((s, ""))) {
                Some((id, gid)) => (id.parse().ok(), (!gid.is_empty()).then(|| gid.to_owned())),
                None => (None, None),
            },
        };
        out.push(SysUser {
            kind,
            name,
            id,
            group,
            gecos: get(3),
            home: get(4),
            shell: get(5),
        });
    }
    out
}

/// The id of an account nothing numbers: from a hash of its name into 200–999, moving up
/// past ids already `taken` (wrapping). Depends on the name and `taken` only, so every layer
/// that meets the name gives it the same id.
pub fn fallback_id(name: &str, taken: &BTreeSet<u32>) -> u32 {
    // FNV-1a: stable across platforms and versions (unlike std's hasher).
    let mut h: u32 = 0x811c_9dc5;
    for b in name.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    let (lo, hi) = (*FALLBACK_IDS.start(), *FALLBACK_IDS.end());
    let span = hi - lo + 1;
    let start = h % span;
    (0..span)
        .map(|i| lo + (start + i) % span)
        .find(|id| !taken.contains(id))
        .unwrap_or(lo + start)
}

/// Adds the numeric ids sysusers.d declares to the owner maps (setup's entries stand).
pub fn declare(users: &mut IdMap, groups: &mut IdMap, decls: &[SysUser]) {
    for d in decls {
        let Some(id) = d.id else { continue };
        match d.kind {
            'u' => {
                users.entry(d.name.clone()).or_insert(id);
                // A user's own group gets the same number unless `uid:gid` says otherwise.
                let gid = d
                    .group
                    .as_deref()
                    .and_then(|g| g.parse().ok())
                    .unwrap_or(id);
                groups.entry(d.name.clone()).or_insert(gid);
            }
            'g' => {
                groups.entry(d.name.clone()).or_insert(id);
            }
            _ => {}
        }
    }
}

/// The uid or gid of a name: the `base` map's (setup's, and what the base packages'
/// sysusers.d numbers), else what the packages at hand declare (`declared`), else
/// [`fallback_id`] against the base ids only, so that every layer gives a name the same id.
pub fn id_of(declared: &IdMap, base: &IdMap, name: &str) -> u32 {
    match base.get(name).or_else(|| declared.get(name)) {
        Some(id) => *id,
        None => fallback_id(name, &base.values().copied().collect()),
    }
}

/// The setup package's account files, and what is added to them.
#[derive(Debug, Clone, Default)]
pub struct Accounts {
    /// setup's `/etc/passwd`.
    pub passwd: String,
    /// setup's `/etc/group`.
    pub group: String,
}

impl Accounts {
    /// Reads `/etc/passwd` and `/etc/group` from the setup package.
    pub fn from_setup(rpm: &mut RpmReader) -> Result<Accounts, RpmError> {
        let mut a = Accounts::default();
        while let Some(e) = rpm.next_entry()? {
            let target = match e.name.as_str() {
                "./etc/passwd" => &mut a.passwd,
                "./etc/group" => &mut a.group,
                _ => continue,
            };
            rpm.data()
                .take(1 << 20)
                .read_to_string(target)
                .map_err(|source| RpmError::Io {
                    path: rpm.path.clone(),
                    source,
                })?;
        }
        Ok(a)
    }

    /// User and group names → ids, as the files list them; `root` is always 0.
    pub fn ids(&self) -> (IdMap, IdMap) {
        let ids = |text: &str| -> IdMap {
            let mut map: IdMap = text
                .lines()
                .filter_map(|line| {
                    let f: Vec<&str> = line.split(':').collect();
                    Some((f.first()?.to_string(), f.get(2)?.parse().ok()?))
                })
                .collect();
            map.insert("root".into(), 0);
            map
        };
        (ids(&self.passwd), ids(&self.group))
    }

    /// The image's `/etc/passwd` and `/etc/group`: setup's, plus a line for every account
    /// that files are owned by (`owners`: user and group names) or sysusers.d declares
    /// (`decls`, every package's) and setup lacks, numbered as the layers numbered them
    /// (`users`, `groups`: the base maps; see [`id_of`]). Returns the two texts and a line per
    /// account added (for the report); `None` if nothing is added.
    pub fn extend(
        &self,
        base_users: &IdMap,
        base_groups: &IdMap,
        owners: &BTreeSet<(String, String)>,
        decls: &[SysUser],
    ) -> Option<(String, String, Vec<String>)> {
        let (mut du, mut dg) = (IdMap::new(), IdMap::new());
        declare(&mut du, &mut dg, decls);
        let users = |name: &str| id_of(&du, base_users, name);
        let groups = |name: &str| id_of(&dg, base_groups, name);
        let names = |text: &str| -> BTreeSet<String> {
            text.lines()
                .filter_map(|l| l.split(':').next())
                .filter(|n| !n.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let (have_users, have_groups) = (names(&self.passwd), names(&self.group));
        let mut new_groups: BTreeMap<String, (u32, BTreeSet<String>, &str)> = BTreeMap::new();
        let mut new_users: BTreeMap<String, (u32, u32, String, String, String, &str)> =
            BTreeMap::new();
        let mut report = Vec::new();
        let group_line = |name: &str, new_groups: &mut BTreeMap<_, _>, why: &'static str| {
            if !have_groups.contains(name) && name != "root" {
                new_groups
                    .entry(name.to_owned())
                    .or_insert_with(|| (groups(name), BTreeSet::new(), why));
            }
        };
        for d in decls {
            match d.kind {
                'g' => group_line(&d.name, &mut new_groups, "sysusers.d"),
                'u' if !have_users.contains(&d.name) && d.name != "root" => {
                    group_line(&d.name, &mut new_groups, "sysusers.d");
                    let gid = match d.group.as_deref() {
                        Some(g) => g.parse().unwrap_or_else(|_| groups(g)),
                        None => groups(&d.name),
                    };
                    new_users.entry(d.name.clone()).or_insert((
                        users(&d.name),
                        gid,
                        d.gecos.clone().unwrap_or_default(),
                        d.home.clone().unwrap_or_else(|| "/".into()),
                        d.shell
                            .clone()
                            .unwrap_or_else(|| "/usr/sbin/nologin".into()),
                        "sysusers.d",
                    ));
                }
                _ => {}
            }
        }
        for (user, group) in owners {
            group_line(group, &mut new_groups, "owns files");
            if !have_users.contains(user) && user != "root" && !new_users.contains_key(user) {
                group_line(user, &mut new_groups, "owns files");
                new_users.insert(
                    user.clone(),
                    (
                        users(user),
                        groups(user),
                        String::new(),
                        "/".into(),
                        "/usr/sbin/nologin".into(),
                        "owns files",
                    ),
                );
            }
        }
        // Memberships (`m`) of the groups added here; setup's own lines stay as they are.
        for d in decls.iter().filter(|d| d.kind == 'm') {
            if let Some(entry) = d.group.as_ref().and_then(|g| new_groups.get_mut(g)) {
                entry.1.insert(d.name.clone());
            }
        }
        if new_users.is_empty() && new_groups.is_empty() {
            return None;
        }
        let mut passwd = self.passwd.clone();
        if !passwd.is_empty() && !passwd.ends_with('\n') {
            passwd.push('\n');
        }
        for (name, (uid, gid, gecos, home, shell, why)) in &new_users {
            passwd.push_str(&format!("{name}:x:{uid}:{gid}:{gecos}:{home}:{shell}\n"));
            report.push(format!("user {name}: uid {uid} ({why})"));
        }
        let mut group = self.group.clone();
        if !group.is_empty() && !group.ends_with('\n') {
            group.push('\n');
        }
        for (name, (gid, members, why)) in &new_groups {
            let members: Vec<&str> = members.iter().map(String::as_str).collect();
            group.push_str(&format!("{name}:x:{gid}:{}\n", members.join(",")));
            report.push(format!("group {name}: gid {gid} ({why})"));
        }
        Some((passwd, group, report))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sysusers_lines() {
        let d = parse(
            "# tss\nu tss 59 \"Account used for TPM access\" /dev/null /sbin/nologin\n\
             g ssh_keys - -\nu dbus 81:81 \"System message bus\" - -\nm dbus wheel\nr - 500-900\n",
        );
        assert_eq!(d.len(), 4);
        assert_eq!(d[0].name, "tss");
        assert_eq!(d[0].id, Some(59));
        assert_eq!(d[0].gecos.as_deref(), Some("Account used for TPM access"));
        assert_eq!(d[0].home.as_deref(), Some("/dev/null"));
        assert_eq!(d[1].kind, 'g');
        assert_eq!(d[1].id, None);
        assert_eq!(d[2].group.as_deref(), Some("81"));
        assert_eq!((d[3].kind, d[3].group.as_deref()), ('m', Some("wheel")));
    }

    #[test]
    fn fallback_ids_are_stable_and_free() {
        let taken = BTreeSet::from([0, 1, 2]);
        let a = fallback_id("ssh_keys", &taken);
        assert_eq!(a, fallback_id("ssh_keys", &taken));
        assert!(FALLBACK_IDS.contains(&a));
        let taken2: BTreeSet<u32> = taken.iter().copied().chain([a]).collect();
        let b = fallback_id("ssh_keys", &taken2);
        assert_ne!(a, b);
        assert!(FALLBACK_IDS.contains(&b));
    }

    #[test]
    fn extends_setup_files() {
        let acc = Accounts {
            passwd: "root:x:0:0:root:/root:/bin/bash\n".into(),
            group: "root:x:0:\nwheel:x:10:\n".into(),
        };
        let mut users = IdMap::from([("root".into(), 0)]);
        let mut groups = IdMap::from([("root".into(), 0), ("wheel".into(), 10)]);
        let decls = parse("u tss 59 \"TPM\" /dev/null /sbin/nologin\nm tss wheel\n");
        declare(&mut users, &mut groups, &decls);
        let owners = BTreeSet::from([("root".to_string(), "ssh_keys".to_string())]);
        let (p, g, report) = acc.extend(&users, &groups, &owners, &decls).unwrap();
        assert!(
            p.contains("tss:x:59:59:TPM:/dev/null:/sbin/nologin\n"),
            "{p}"
        );
        let ssh = id_of(&IdMap::new(), &groups, "ssh_keys");
        assert!(g.contains(&format!("ssh_keys:x:{ssh}:\n")), "{g}");
        assert!(g.contains("tss:x:59:\n"), "{g}");
        assert_eq!(report.len(), 3, "{report:?}");
        // Nothing to add: nothing changes.
        let none = BTreeSet::from([("root".to_string(), "wheel".to_string())]);
        assert!(acc.extend(&users, &groups, &none, &[]).is_none());
    }
}
