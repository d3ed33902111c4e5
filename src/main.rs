//! Thin: parse, set up logging, run, print the error once, exit with its code.
#![deny(unsafe_code)]
use clap::Parser;

fn main() {
    let cli = cro::cli::args::Cli::parse();
    use cro::cli::args::Command;
    let is_worker = matches!(cli.command, Command::Worker { .. });
    let is_service = matches!(cli.command, Command::Reconcile { service: true, .. });
    let log = match cro::cli::logging::init(
        &cli.log_level,
        cli.log_dir.as_deref(),
        cli.log_keep,
        is_worker,
        is_service,
    ) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("cro: error: {e}");
            std::process::exit(e.exit_code());
        }
    };
    let code = match cro::cli::commands::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("cro: error: {e}");
            e.exit_code()
        }
    };
    drop(log);
    std::process::exit(code);
}
