//! The `m365-sync` binary: a shim over the library.

/// mimalloc: a sync run parses Graph pages on one thread and frees them on another, and
/// SQLite allocates for every row; glibc's allocator made both a visible share of a pull.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    m365_sync::cli::main()
}
