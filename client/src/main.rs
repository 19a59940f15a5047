//! `stelgano`: the sTELgano command-line client (thin entry point; the commands live in `cli`).

mod cli;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("stelgano: error: cannot start the async runtime: {e}");
            return std::process::ExitCode::from(cli::exit::ERROR);
        }
    };
    let code = runtime.block_on(cli::run(args));
    std::process::ExitCode::from(code)
}
