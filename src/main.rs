fn main() -> std::process::ExitCode {
    pbsimage::cli::main()
}

// Metadata parsing allocates hundreds of thousands of small strings; mimalloc makes the
// cold index build markedly faster than the system allocator (scripts/bench-resolve).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
