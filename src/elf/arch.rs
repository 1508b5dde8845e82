//! Machine types: ELF `e_machine` → rpm architectures and the Kubernetes `kubernetes.io/arch`.

use serde::Serialize;

/// An architecture pbsimage can build images for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// x86-64 (`x86_64`).
    X86_64,
    /// 32-bit x86 (`i686`).
    I686,
    /// 64-bit ARM (`aarch64`).
    Aarch64,
    /// 64-bit POWER, little-endian (`ppc64le`).
    Ppc64le,
    /// 64-bit POWER, big-endian (`ppc64`).
    Ppc64,
    /// IBM Z (`s390x`).
    S390x,
    /// 64-bit RISC-V (`riscv64`).
    Riscv64,
    /// 32-bit ARM, hard float (`armv7hl`).
    Armv7hl,
}

const EM_386: u16 = 3;
const EM_ARM: u16 = 40;
const EM_PPC64: u16 = 21;
const EM_S390: u16 = 22;
const EM_X86_64: u16 = 62;
const EM_AARCH64: u16 = 183;
const EM_RISCV: u16 = 243;

impl Arch {
    /// The architecture of an ELF header's machine, class and byte order.
    pub fn from_elf(machine: u16, class64: bool, little_endian: bool) -> Option<Arch> {
        Some(match (machine, class64) {
            (EM_X86_64, true) => Arch::X86_64,
            (EM_386, false) => Arch::I686,
            (EM_AARCH64, true) => Arch::Aarch64,
            (EM_PPC64, true) if little_endian => Arch::Ppc64le,
            (EM_PPC64, true) => Arch::Ppc64,
            (EM_S390, true) => Arch::S390x,
            (EM_RISCV, true) => Arch::Riscv64,
            (EM_ARM, false) => Arch::Armv7hl,
            _ => return None,
        })
    }

    /// The name yum uses (`$basearch`, package arch).
    pub fn rpm_name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::I686 => "i686",
            Arch::Aarch64 => "aarch64",
            Arch::Ppc64le => "ppc64le",
            Arch::Ppc64 => "ppc64",
            Arch::S390x => "s390x",
            Arch::Riscv64 => "riscv64",
            Arch::Armv7hl => "armv7hl",
        }
    }

    /// Package architectures that can satisfy this object's needs, best first.
    pub fn package_arches(self) -> &'static [&'static str] {
        match self {
            Arch::X86_64 => &["x86_64", "noarch"],
            Arch::I686 => &["i686", "i586", "i486", "i386", "noarch"],
            Arch::Aarch64 => &["aarch64", "noarch"],
            Arch::Ppc64le => &["ppc64le", "noarch"],
            Arch::Ppc64 => &["ppc64", "noarch"],
            Arch::S390x => &["s390x", "noarch"],
            Arch::Riscv64 => &["riscv64", "noarch"],
            Arch::Armv7hl => &["armv7hl", "armv7l", "noarch"],
        }
    }

    /// The `kubernetes.io/arch` label value (and OCI `architecture`).
    pub fn kube_name(self) -> &'static str {
        match self {
            Arch::X86_64 => "amd64",
            // 32-bit x86 programs run on amd64 nodes (no cluster has 386 nodes to match).
            Arch::I686 => "amd64",
            Arch::Aarch64 => "arm64",
            Arch::Ppc64le => "ppc64le",
            Arch::Ppc64 => "ppc64",
            Arch::S390x => "s390x",
            Arch::Riscv64 => "riscv64",
            Arch::Armv7hl => "arm",
        }
    }

    /// `$LIB` in rpaths, as EL's loader expands it.
    pub fn lib_dir(self) -> &'static str {
        match self {
            Arch::I686 | Arch::Armv7hl => "lib",
            _ => "lib64",
        }
    }

    /// `$PLATFORM` (`AT_PLATFORM`).
    pub fn platform(self) -> &'static str {
        match self {
            Arch::Armv7hl => "v7l",
            a => a.rpm_name(),
        }
    }

    /// The loader's default library directories on an EL system.
    pub fn default_lib_dirs(self) -> &'static [&'static str] {
        match self.lib_dir() {
            "lib" => &["/lib", "/usr/lib"],
            _ => &["/lib64", "/usr/lib64"],
        }
    }

    /// Whether repositories of `basearch` carry packages for this object (x86_64 repos carry
    /// i686 multilib packages).
    pub fn served_by(self, basearch: &str) -> bool {
        self.rpm_name() == basearch || (self == Arch::I686 && basearch == "x86_64")
    }

    /// The base architecture repositories are named after.
    pub fn parse_basearch(s: &str) -> Option<Arch> {
        Some(match s {
            "x86_64" => Arch::X86_64,
            "i386" | "i686" => Arch::I686,
            "aarch64" => Arch::Aarch64,
            "ppc64le" => Arch::Ppc64le,
            "ppc64" => Arch::Ppc64,
            "s390x" => Arch::S390x,
            "riscv64" => Arch::Riscv64,
            "armhfp" | "armv7hl" => Arch::Armv7hl,
            _ => return None,
        })
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.rpm_name())
    }
}
