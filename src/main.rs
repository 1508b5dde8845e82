fn main() -> std::process::ExitCode {
    pbsimage::cli::main()
}
