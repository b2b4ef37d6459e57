//! The `m365-sync` binary: a shim over the library.

fn main() -> std::process::ExitCode {
    m365_sync::cli::main()
}
