//! Builds the libsolv shim (src/resolve/solv/shim.c) against the system libsolv.

fn main() {
    println!("cargo:rerun-if-changed=src/resolve/solv/shim.c");
    let lib = pkg_config::Config::new()
        .atleast_version("0.7.20")
        .cargo_metadata(false)
        .probe("libsolv")
        .unwrap_or_else(|e| {
            panic!(
                "pbsimage solves with libsolv (as dnf does) and needs its development files: \
                 apt-get install libsolv-dev (Debian/Ubuntu) or dnf install libsolv-devel \
                 (Fedora/EL).\n{e}"
            )
        });
    let mut build = cc::Build::new();
    build.file("src/resolve/solv/shim.c").warnings(true);
    for p in &lib.include_paths {
        build.include(p);
    }
    build.compile("pbssolv");
    // After the shim, so that the linker resolves the shim's references to libsolv.
    for p in &lib.link_paths {
        println!("cargo:rustc-link-search=native={}", p.display());
    }
    for l in &lib.libs {
        println!("cargo:rustc-link-lib={l}");
    }
}
