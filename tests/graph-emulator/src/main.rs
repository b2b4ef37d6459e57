//! `graph-emulator --port 9090 [--host 127.0.0.1] [--workers N]`: runs the emulator until
//! Ctrl-C, with no apps or users; seed them through the control API (see README.md).

use graph_emulator::{Emulator, Options};
use std::net::{IpAddr, SocketAddr};

fn usage() -> ! {
    eprintln!("usage: graph-emulator [--port PORT] [--host ADDR] [--workers N]");
    std::process::exit(2)
}

fn parse_args() -> Options {
    let mut options = Options {
        workers: std::thread::available_parallelism().map_or(2, usize::from),
        ..Options::default()
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match arg.as_str() {
            "--port" => options
                .addr
                .set_port(value().parse().unwrap_or_else(|_| usage())),
            "--host" => {
                options.addr = SocketAddr::new(
                    value().parse::<IpAddr>().unwrap_or_else(|_| usage()),
                    options.addr.port(),
                )
            }
            "--workers" => options.workers = value().parse().unwrap_or_else(|_| usage()),
            "-h" | "--help" => usage(),
            _ => usage(),
        }
    }
    options
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let emu = Emulator::start_with(parse_args()).await?;
    println!("graph emulator listening on {}", emu.url());
    println!(
        "  identity: {}/{{tenant}}/oauth2/v2.0/authorize and /token",
        emu.url()
    );
    println!("  graph:    {}/v1.0", emu.url());
    println!("  control:  {}/_emulator/", emu.url());
    tokio::signal::ctrl_c().await?;
    Ok(())
}
