//! Typed values of `-l` resources and arrays: sizes, durations, node and select specs.
//!
//! Parsers return a [`ValueError`] with the character offset inside the value, so the caller
//! can point at file, line and column.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

/// A malformed value: what is wrong and where (char offset inside the value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueError {
    /// Character offset of the problem inside the value.
    pub offset: usize,
    /// What is wrong.
    pub message: String,
    /// What a valid value looks like.
    pub hint: Option<String>,
}

impl ValueError {
    fn new(offset: usize, message: impl Into<String>) -> Self {
        ValueError {
            offset,
            message: message.into(),
            hint: None,
        }
    }
    fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
    /// Shifts the offset by `by` characters (for values embedded in a larger word).
    pub fn shifted(mut self, by: usize) -> Self {
        self.offset += by;
        self
    }
}

/// Bytes per TORQUE word (`w` suffix) on the 64-bit systems pbsimage targets.
pub const WORD_BYTES: u64 = 8;

/// A memory size. TORQUE units are binary: `4gb` is 4 GiB, `500mb` is 500 MiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Size(u64);

impl Size {
    /// A size of `bytes`.
    pub fn from_bytes(bytes: u64) -> Self {
        Size(bytes)
    }
    /// The size in bytes.
    pub fn bytes(self) -> u64 {
        self.0
    }

    /// Parses a size as both qsubs do (`to_size` in TORQUE's and OpenPBS's `attr_fn_size.c`):
    /// a whole number, then an optional multiplier `k m g t p` (binary: 2^10 … 2^50), then an
    /// optional `b` (bytes, the default) or `w` (words, 8 bytes), any case: `10G`, `500m`,
    /// `7500MB`, `1t`, `4gb`, `100kw`, `4096`.
    pub fn parse(s: &str) -> Result<Size, ValueError> {
        const UNITS: &str = "qsub sizes are a whole number, then k, m, g, t or p (powers of 1024), then an \
             optional b (bytes) or w (words): 500mb, 10G, 1t, 100kw";
        let digits = s.chars().take_while(char::is_ascii_digit).count();
        if digits == 0 {
            return Err(ValueError::new(0, format!("`{s}` is not a size")).with_hint(UNITS));
        }
        let number: u64 = s[..digits]
            .parse()
            .map_err(|_| ValueError::new(0, format!("`{s}` is too large")))?;
        let mut rest = s[digits..]
            .chars()
            .map(|c| c.to_ascii_lowercase())
            .peekable();
        let power = match rest.peek() {
            Some(&c) => match "kmgtp".find(c) {
                Some(i) => {
                    rest.next();
                    i as u32 + 1
                }
                None => 0,
            },
            None => 0,
        };
        let word = match rest.next() {
            None | Some('b') => false,
            Some('w') => true,
            Some(_) => {
                return Err(ValueError::new(
                    digits,
                    format!("unknown size unit `{}`", &s[digits..]),
                )
                .with_hint(UNITS));
            }
        };
        if rest.next().is_some() {
            return Err(
                ValueError::new(digits, format!("unknown size unit `{}`", &s[digits..]))
                    .with_hint(UNITS),
            );
        }
        let mult = 1024u64.pow(power) * if word { WORD_BYTES } else { 1 };
        number
            .checked_mul(mult)
            .map(Size)
            .ok_or_else(|| ValueError::new(0, format!("`{s}` is too large")))
    }

    /// The Kubernetes quantity with the largest exact binary suffix: `4Gi`, `500Mi`, `123`.
    pub fn to_quantity(self) -> String {
        const UNITS: [(&str, u64); 5] = [
            ("Pi", 1 << 50),
            ("Ti", 1 << 40),
            ("Gi", 1 << 30),
            ("Mi", 1 << 20),
            ("Ki", 1 << 10),
        ];
        if self.0 == 0 {
            return "0".into();
        }
        for (suffix, unit) in UNITS {
            if self.0.is_multiple_of(unit) {
                return format!("{}{suffix}", self.0 / unit);
            }
        }
        self.0.to_string()
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(&str, u64); 5] = [
            ("pb", 1 << 50),
            ("tb", 1 << 40),
            ("gb", 1 << 30),
            ("mb", 1 << 20),
            ("kb", 1 << 10),
        ];
        for (suffix, unit) in UNITS {
            if self.0 != 0 && self.0.is_multiple_of(unit) {
                return write!(f, "{}{suffix}", self.0 / unit);
            }
        }
        write!(f, "{}b", self.0)
    }
}

/// A duration in seconds, written `[[[DD:]HH:]MM:]SS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Duration(u64);

impl Duration {
    /// A duration of `secs` seconds.
    pub fn from_secs(secs: u64) -> Self {
        Duration(secs)
    }
    /// The duration in seconds.
    pub fn secs(self) -> u64 {
        self.0
    }

    /// Parses `[[[DD:]HH:]MM:]SS` or a number of seconds.
    pub fn parse(s: &str) -> Result<Duration, ValueError> {
        let fields: Vec<&str> = s.split(':').collect();
        if fields.len() > 4 {
            return Err(
                ValueError::new(0, format!("`{s}` has more than four fields"))
                    .with_hint("durations are [[[DD:]HH:]MM:]SS, e.g. 01:30:00"),
            );
        }
        const SCALE: [u64; 4] = [86_400, 3_600, 60, 1];
        let scales = &SCALE[4 - fields.len()..];
        let mut total: u64 = 0;
        let mut offset = 0;
        for (field, scale) in fields.iter().zip(scales) {
            if field.is_empty() || !field.chars().all(|c| c.is_ascii_digit()) {
                return Err(
                    ValueError::new(offset, format!("`{field}` in `{s}` is not a number"))
                        .with_hint("durations are [[[DD:]HH:]MM:]SS, e.g. 01:30:00"),
                );
            }
            let v: u64 = field
                .parse()
                .map_err(|_| ValueError::new(offset, format!("`{s}` is too large")))?;
            total = v
                .checked_mul(*scale)
                .and_then(|x| total.checked_add(x))
                .ok_or_else(|| ValueError::new(offset, format!("`{s}` is too large")))?;
            offset += field.chars().count() + 1;
        }
        Ok(Duration(total))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        write!(f, "{:02}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
    }
}

fn parse_count(s: &str, what: &str, offset: usize) -> Result<u32, ValueError> {
    if s.is_empty() || !s.chars().all(|c| c.is_ascii_digit()) {
        return Err(ValueError::new(
            offset,
            format!("{what} must be a whole number, not `{s}`"),
        ));
    }
    let n: u32 = s
        .parse()
        .map_err(|_| ValueError::new(offset, format!("{what} `{s}` is too large")))?;
    if n == 0 {
        return Err(ValueError::new(
            offset,
            format!("{what} must be at least 1"),
        ));
    }
    Ok(n)
}

/// One `+`-separated group of a TORQUE `nodes=` spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeGroup {
    /// Nodes of this shape.
    pub count: u32,
    /// A named host instead of a count.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Processors per node (`ppn`).
    pub ppn: u32,
    /// GPUs per node.
    pub gpus: u32,
    /// Node properties (`:ib`, `:bigmem`), recorded.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub properties: Vec<String>,
}

/// TORQUE `nodes=N:ppn=M:gpus=G:property+...`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeSpec {
    /// Node groups joined by `+`.
    pub groups: Vec<NodeGroup>,
}

fn is_hostname(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
        && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
}

impl NodeSpec {
    /// Parses TORQUE's `nodes=` value (`2:ppn=4+1:ppn=2:gpus=1`).
    pub fn parse(s: &str) -> Result<NodeSpec, ValueError> {
        let mut groups = Vec::new();
        let mut offset = 0;
        for group in s.split('+') {
            let mut parts = group.split(':');
            let first = parts.next().unwrap_or_default();
            let (count, host) = if first.chars().next().is_some_and(|c| c.is_ascii_digit()) {
                (parse_count(first, "node count", offset)?, None)
            } else if is_hostname(first) {
                (1, Some(first.to_owned()))
            } else {
                return Err(ValueError::new(
                    offset,
                    format!("`{first}` is neither a node count nor a host name"),
                )
                .with_hint("write nodes=N:ppn=M, e.g. nodes=2:ppn=8"));
            };
            let mut g = NodeGroup {
                count,
                host,
                ppn: 1,
                gpus: 0,
                properties: Vec::new(),
            };
            let mut at = offset + first.chars().count() + 1;
            for part in parts {
                match part.split_once('=') {
                    Some(("ppn", v)) => g.ppn = parse_count(v, "ppn", at + 4)?,
                    Some(("gpus", v)) => g.gpus = parse_count(v, "gpus", at + 5)?,
                    Some((k, _)) => {
                        return Err(ValueError::new(
                            at,
                            format!("unknown node attribute `{k}` in nodes spec"),
                        )
                        .with_hint("node attributes are ppn=N, gpus=N, or a bare property name"));
                    }
                    None if is_hostname(part) => g.properties.push(part.to_owned()),
                    None => {
                        return Err(ValueError::new(
                            at,
                            format!("`{part}` is not a valid node property"),
                        ));
                    }
                }
                at += part.chars().count() + 1;
            }
            groups.push(g);
            offset += group.chars().count() + 1;
        }
        let spec = NodeSpec { groups };
        check_totals(s, spec.groups.iter().map(|g| (g.count, g.ppn)))?;
        Ok(spec)
    }

    /// Nodes in all groups.
    pub fn node_count(&self) -> u32 {
        self.groups.iter().map(|g| g.count).sum()
    }
    /// Processor slots in all groups.
    pub fn slots(&self) -> u32 {
        self.groups.iter().map(|g| g.count * g.ppn).sum()
    }
}

/// One chunk of a PBS Pro `select=` statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Chunk {
    /// Chunks of this shape.
    pub count: u32,
    /// CPUs per chunk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ncpus: Option<u32>,
    /// Memory per chunk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mem: Option<Size>,
    /// GPUs per chunk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ngpus: Option<u32>,
    /// MPI ranks per chunk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mpiprocs: Option<u32>,
    /// OpenMP threads per rank.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ompthreads: Option<u32>,
    /// Other resources of the chunk, recorded.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub other: BTreeMap<String, String>,
}

/// PBS Pro `select=N:ncpus=..:mem=..:ngpus=..+...`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Select {
    /// Chunk specifications joined by `+`.
    pub chunks: Vec<Chunk>,
}

impl Select {
    /// Parses PBS Pro's `select=` value (`2:ncpus=8:mpiprocs=8+1:ncpus=4`).
    pub fn parse(s: &str) -> Result<Select, ValueError> {
        let mut chunks = Vec::new();
        let mut offset = 0;
        for text in s.split('+') {
            let mut chunk = Chunk {
                count: 1,
                ncpus: None,
                mem: None,
                ngpus: None,
                mpiprocs: None,
                ompthreads: None,
                other: BTreeMap::new(),
            };
            let mut at = offset;
            for (i, part) in text.split(':').enumerate() {
                match part.split_once('=') {
                    None if i == 0 => chunk.count = parse_count(part, "chunk count", at)?,
                    None => {
                        return Err(ValueError::new(
                            at,
                            format!("`{part}` in select must be resource=value"),
                        ));
                    }
                    Some((k, v)) => {
                        let vat = at + k.chars().count() + 1;
                        match k {
                            "ncpus" => chunk.ncpus = Some(parse_count(v, "ncpus", vat)?),
                            "ngpus" => chunk.ngpus = Some(parse_count(v, "ngpus", vat)?),
                            "mpiprocs" => chunk.mpiprocs = Some(parse_count(v, "mpiprocs", vat)?),
                            "ompthreads" => {
                                chunk.ompthreads = Some(parse_count(v, "ompthreads", vat)?)
                            }
                            "mem" => chunk.mem = Some(Size::parse(v).map_err(|e| e.shifted(vat))?),
                            _ if k.is_empty() => {
                                return Err(ValueError::new(at, "empty resource name in select"));
                            }
                            _ => {
                                chunk.other.insert(k.to_owned(), v.to_owned());
                            }
                        }
                    }
                }
                at += part.chars().count() + 1;
            }
            chunks.push(chunk);
            offset += text.chars().count() + 1;
        }
        let select = Select { chunks };
        check_totals(
            s,
            select
                .chunks
                .iter()
                .map(|c| (c.count, c.mpiprocs.or(c.ncpus).unwrap_or(1))),
        )?;
        Ok(select)
    }

    /// Chunks in all specifications (one node each).
    pub fn node_count(&self) -> u32 {
        self.chunks.iter().map(|c| c.count).sum()
    }
    /// MPI slots in all chunks (`mpiprocs`, else `ncpus`).
    pub fn slots(&self) -> u32 {
        self.chunks
            .iter()
            .map(|c| c.count * c.mpiprocs.or(c.ncpus).unwrap_or(1))
            .sum()
    }
}

/// The most nodes a job may span: one pod per node, and an Indexed Job has at most this
/// many completions.
pub const MAX_NODES: u64 = 100_000;

/// Checks that `(count, slots per node)` groups add up to at most [`MAX_NODES`] nodes and a
/// slot count that fits (`PBS_NP` is a u32).
fn check_totals(s: &str, groups: impl Iterator<Item = (u32, u32)>) -> Result<(), ValueError> {
    let (mut nodes, mut slots) = (0u64, 0u64);
    for (count, per) in groups {
        nodes += u64::from(count);
        slots += u64::from(count) * u64::from(per);
    }
    if nodes > MAX_NODES {
        return Err(ValueError::new(
            0,
            format!("`{s}` asks for {nodes} nodes; at most {MAX_NODES} are supported"),
        )
        .with_hint("one pod runs per node, and a Kubernetes Indexed Job has at most 100000"));
    }
    if slots > u64::from(u32::MAX) {
        return Err(ValueError::new(
            0,
            format!("`{s}` asks for {slots} processor slots, more than any cluster has"),
        ));
    }
    Ok(())
}

/// The most array elements a job may have (the Kubernetes Indexed Job limit).
pub const MAX_ARRAY_ELEMENTS: u64 = 100_000;

/// A range of array indices `start-end:step`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct IndexRange {
    /// First index.
    pub start: u32,
    /// Last index (inclusive).
    pub end: u32,
    /// Step between indexes.
    pub step: u32,
}

impl IndexRange {
    /// Indexes in the range.
    pub fn len(&self) -> u64 {
        u64::from((self.end - self.start) / self.step) + 1
    }
    /// Whether the range has no index.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// A job array: `-t 0-99%5`, `-t 1,3,5-7`, PBS Pro `-J 1-100:2%10`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArraySpec {
    /// Index ranges joined by `,`.
    pub ranges: Vec<IndexRange>,
    /// At most this many elements at once (`%N`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slot_limit: Option<u32>,
}

impl ArraySpec {
    /// Parses `-t`/`-J` (`1-10`, `0-20:2`, `1,3,5-7%2`).
    pub fn parse(s: &str) -> Result<ArraySpec, ValueError> {
        let (list, limit) = match s.split_once('%') {
            Some((l, lim)) => {
                let at = l.chars().count() + 1;
                (l, Some(parse_count(lim, "array slot limit", at)?))
            }
            None => (s, None),
        };
        let num = |t: &str, at: usize| -> Result<u32, ValueError> {
            if t.is_empty() || !t.chars().all(|c| c.is_ascii_digit()) {
                return Err(ValueError::new(at, format!("`{t}` is not an array index"))
                    .with_hint("arrays are written 0-99, 1,3,5-7, 1-100:2 or 0-99%5"));
            }
            t.parse()
                .map_err(|_| ValueError::new(at, format!("array index `{t}` is too large")))
        };
        let mut ranges = Vec::new();
        let mut offset = 0;
        for item in list.split(',') {
            let (span, step) = match item.split_once(':') {
                Some((span, step)) => (
                    span,
                    parse_count(step, "array step", offset + span.chars().count() + 1)?,
                ),
                None => (item, 1),
            };
            let range = match span.split_once('-') {
                Some((a, b)) => {
                    let start = num(a, offset)?;
                    let end = num(b, offset + a.chars().count() + 1)?;
                    if end < start {
                        return Err(ValueError::new(
                            offset,
                            format!("array range `{span}` ends before it starts"),
                        ));
                    }
                    IndexRange {
                        start,
                        end: start + (end - start) / step * step,
                        step,
                    }
                }
                None => {
                    let i = num(span, offset)?;
                    IndexRange {
                        start: i,
                        end: i,
                        step: 1,
                    }
                }
            };
            ranges.push(range);
            offset += item.chars().count() + 1;
        }
        let spec = ArraySpec {
            ranges,
            slot_limit: limit,
        };
        if spec.len() > MAX_ARRAY_ELEMENTS {
            return Err(ValueError::new(
                0,
                format!(
                    "array `{s}` has {} elements; at most {MAX_ARRAY_ELEMENTS} are supported",
                    spec.len()
                ),
            ));
        }
        Ok(spec)
    }

    /// Number of elements (overlapping ranges count twice, as they do in TORQUE).
    pub fn len(&self) -> u64 {
        self.ranges.iter().map(IndexRange::len).sum()
    }
    /// Whether no resource was requested.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Compact form for the job wrapper: `start-end:step` items joined by commas.
    pub fn compact(&self) -> String {
        self.ranges
            .iter()
            .map(|r| format!("{}-{}:{}", r.start, r.end, r.step))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// The merged `-l` resource list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Resources {
    /// TORQUE `nodes=`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nodes: Option<NodeSpec>,
    /// PBS Pro `select=`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub select: Option<Select>,
    /// `procs=`: processors anywhere.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub procs: Option<u32>,
    /// `ncpus=`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ncpus: Option<u32>,
    /// `ngpus=`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ngpus: Option<u32>,
    /// `mem=`: memory of the whole job.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mem: Option<Size>,
    /// `pmem=`: memory per process.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pmem: Option<Size>,
    /// `vmem=`: virtual memory (recorded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vmem: Option<Size>,
    /// `pvmem=`: virtual memory per process (recorded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pvmem: Option<Size>,
    /// `walltime=`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub walltime: Option<Duration>,
    /// `cput=`: CPU time (recorded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cput: Option<Duration>,
    /// Cray ALPS `mppwidth=`: processing elements (MPI ranks) in all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mppwidth: Option<u32>,
    /// Cray `mppnppn=`: ranks per node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mppnppn: Option<u32>,
    /// Cray `mppdepth=`: threads (cpus) per rank.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mppdepth: Option<u32>,
    /// Cray `size=`: cores in all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u32>,
    /// Resources with no Kubernetes mapping, kept verbatim (`gres`, `feature`, `place`, ...;
    /// valueless ones such as NCI's `wd` with an empty value).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub other: BTreeMap<String, String>,
}

/// Valueless resources that need no mapping: `wd` (NCI Gadi: start in the submission
/// directory; a pbsimage job starts in its working directory, the job's files, anyway).
pub const VALUELESS_MAPPED: &[&str] = &["wd"];

/// Resource names TORQUE, Moab and PBS Pro define that pbsimage keeps but does not map.
pub const KNOWN_UNMAPPED: &[&str] = &[
    "arch",
    "cpuclock",
    "ddisk",
    "depend",
    "epilogue",
    "feature",
    "file",
    "flags",
    "gattr",
    "geometry",
    "gmetric",
    "gres",
    "host",
    "hostlist",
    "image",
    "latency",
    "loglevel",
    "minprocspeed",
    "minpreempttime",
    "minwclimit",
    "naccesspolicy",
    "nice",
    "opsys",
    "other",
    "partition",
    "pcput",
    "place",
    "pref",
    "procs_bitmap",
    "prologue",
    "qos",
    "reqattr",
    "retrycc",
    "retrycount",
    "signal",
    "software",
    "spriority",
    "tpn",
    "trl",
    "var",
    "vnode",
];

/// Outcome of merging one `name=value` into [`Resources`].
pub enum Merge {
    /// Set on a field of [`Resources`].
    Mapped,
    /// Kept in `other`; the caller warns.
    Unmapped,
    /// Not a resource qsub knows; the caller warns.
    Unknown,
}

impl Resources {
    /// A resource given without a value (`-l wd`), as PBS Pro takes it: recorded with an
    /// empty value.
    pub fn merge_valueless(&mut self, name: &str) -> Merge {
        self.other.insert(name.to_owned(), String::new());
        if VALUELESS_MAPPED.contains(&name) {
            Merge::Mapped
        } else {
            Merge::Unmapped
        }
    }

    /// Merges one `name=value`; later values replace earlier ones, as with repeated `-l`.
    pub fn merge(&mut self, name: &str, value: &str) -> Result<Merge, ValueError> {
        let at = name.chars().count() + 1;
        let shift = |e: ValueError| e.shifted(at);
        match name {
            "nodes" => self.nodes = Some(NodeSpec::parse(value).map_err(shift)?),
            "select" => self.select = Some(Select::parse(value).map_err(shift)?),
            "procs" => self.procs = Some(parse_count(value, "procs", at)?),
            "ncpus" => self.ncpus = Some(parse_count(value, "ncpus", at)?),
            "ngpus" | "gpus" => self.ngpus = Some(parse_count(value, name, at)?),
            "mem" => self.mem = Some(Size::parse(value).map_err(shift)?),
            "pmem" => self.pmem = Some(Size::parse(value).map_err(shift)?),
            "vmem" => self.vmem = Some(Size::parse(value).map_err(shift)?),
            "pvmem" => self.pvmem = Some(Size::parse(value).map_err(shift)?),
            "walltime" => self.walltime = Some(Duration::parse(value).map_err(shift)?),
            "cput" => self.cput = Some(Duration::parse(value).map_err(shift)?),
            "mppwidth" => self.mppwidth = Some(parse_count(value, name, at)?),
            "mppnppn" => self.mppnppn = Some(parse_count(value, name, at)?),
            "mppdepth" => self.mppdepth = Some(parse_count(value, name, at)?),
            "size" => self.size = Some(parse_count(value, name, at)?),
            _ => {
                self.other.insert(name.to_owned(), value.to_owned());
                return Ok(if KNOWN_UNMAPPED.contains(&name) {
                    Merge::Unmapped
                } else {
                    Merge::Unknown
                });
            }
        }
        Ok(Merge::Mapped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sizes as `to_size` (TORQUE and OpenPBS `attr_fn_size.c`) reads them: number, an
    /// optional k/m/g/t/p (any case, powers of 1024), an optional b or w (8-byte words).
    #[test]
    fn sizes_are_read_as_qsub_reads_them() {
        let cases: &[(&str, u64)] = &[
            ("4gb", 4 << 30),
            ("500MB", 500 << 20),
            ("10G", 10 << 30),   // PBS Pro select mem=10G: the b is optional
            ("500m", 500 << 20), // mem=500m
            ("7500M", 7500 << 20),
            ("1t", 1 << 40),
            ("2P", 2 << 50),
            ("123", 123), // no unit: bytes
            ("1000b", 1000),
            ("2w", 16), // words are 8 bytes
            ("1kw", 8192),
            ("3Gw", 3 << 33),
        ];
        for &(s, bytes) in cases {
            assert_eq!(Size::parse(s).map(Size::bytes), Ok(bytes), "{s}");
        }
        assert_eq!(Size::parse("4gb").unwrap().to_quantity(), "4Gi");
        assert_eq!(Size::parse("1536mb").unwrap().to_quantity(), "1536Mi");
        assert_eq!(Size::parse("1000b").unwrap().to_quantity(), "1000");
        assert_eq!(Size::parse("4gb").unwrap().to_string(), "4gb");
        // What to_size refuses: no number, an unknown unit, two units, trailing text.
        for bad in [
            "gb",
            "4x",
            "4gib",
            "4bb",
            "4bw",
            "4gbx",
            "4 gb",
            "-4gb",
            "99999999999pb",
        ] {
            assert!(Size::parse(bad).is_err(), "{bad}");
        }
        let e = Size::parse("4gib").unwrap_err();
        assert_eq!(e.offset, 1);
        assert!(e.hint.unwrap().contains("10G"));
    }

    proptest::proptest! {
        /// Every size to_size accepts is the byte count TORQUE's conversion gives:
        /// number << shift, times 8 for words.
        #[test]
        fn every_qsub_size_round_trips(n in 0u64..1 << 20, unit in 0usize..6, bw in 0usize..3, upper: bool) {
            let mult = ["", "k", "m", "g", "t", "p"][unit];
            let suffix = ["", "b", "w"][bw];
            let mut text = format!("{n}{mult}{suffix}");
            if upper {
                text = text.to_ascii_uppercase();
            }
            let expected = (u128::from(n) << (10 * unit)) * if bw == 2 { 8 } else { 1 };
            let Ok(expected) = u64::try_from(expected) else {
                // Past 2^64 bytes: refused, never wrapped.
                proptest::prop_assert!(Size::parse(&text).is_err(), "{}", text);
                return Ok(());
            };
            proptest::prop_assert_eq!(Size::parse(&text).map(Size::bytes), Ok(expected), "{}", text);
            // And back: the canonical form reads as the same size.
            let size = Size::parse(&text).unwrap();
            proptest::prop_assert_eq!(Size::parse(&size.to_string()).unwrap(), size);
        }
    }

    #[test]
    fn durations() {
        assert_eq!(Duration::parse("30").unwrap().secs(), 30);
        assert_eq!(Duration::parse("10:00").unwrap().secs(), 600);
        assert_eq!(Duration::parse("01:30:00").unwrap().secs(), 5400);
        assert_eq!(Duration::parse("2:00:00:00").unwrap().secs(), 172_800);
        assert_eq!(Duration::parse("100:00:00").unwrap().secs(), 360_000);
        assert_eq!(Duration::parse("1:2:3:4:5").unwrap_err().offset, 0);
        assert_eq!(Duration::parse("01:xx:00").unwrap_err().offset, 3);
        assert!(Duration::parse("1::00").is_err());
        assert_eq!(Duration::from_secs(5400).to_string(), "01:30:00");
    }

    #[test]
    fn nodes() {
        let n = NodeSpec::parse("2:ppn=4:gpus=1:bigmem+node07:ppn=2").unwrap();
        assert_eq!(n.node_count(), 3);
        assert_eq!(n.slots(), 10);
        assert_eq!(n.groups[0].properties, ["bigmem"]);
        assert_eq!(n.groups[1].host.as_deref(), Some("node07"));
        assert_eq!(NodeSpec::parse("1:ppn=x").unwrap_err().offset, 6);
        assert!(NodeSpec::parse("0").is_err());
        assert!(NodeSpec::parse("1:foo=2").is_err());
    }

    #[test]
    fn select() {
        let s = Select::parse("2:ncpus=8:mpiprocs=4:mem=4gb:ngpus=1+ncpus=1").unwrap();
        assert_eq!(s.node_count(), 3);
        assert_eq!(s.slots(), 9);
        assert_eq!(s.chunks[0].mem.unwrap().bytes(), 4 << 30);
        assert_eq!(Select::parse("1:mem=4x").unwrap_err().offset, 7);
    }

    #[test]
    fn arrays() {
        let a = ArraySpec::parse("0-9%2").unwrap();
        assert_eq!(a.len(), 10);
        assert_eq!(a.slot_limit, Some(2));
        let b = ArraySpec::parse("1,3,5-7,10-20:5").unwrap();
        assert_eq!(b.len(), 1 + 1 + 3 + 3);
        assert_eq!(b.compact(), "1-1:1,3-3:1,5-7:1,10-20:5");
        assert!(ArraySpec::parse("5-1").is_err());
        assert!(ArraySpec::parse("0-100000").is_err());
        assert!(ArraySpec::parse("0-99999").is_ok());
        assert!(ArraySpec::parse("a-b").is_err());
    }
}
