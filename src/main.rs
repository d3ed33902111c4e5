//! Thin: parse, set up logging, run, print the error once, exit with its code.
use clap::Parser;

fn main() {
    let cli = cro::cli::Cli::parse();
    let is_worker = matches!(cli.command, cro::cli::Command::Worker { .. });
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Workers log to their file in the state dir (stderr is redirected there): no colours.
    let ansi = !is_worker && std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false)
        .init();
    let code = match cro::run::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("cro: error: {e}");
            e.exit_code()
        }
    };
    std::process::exit(code);
}
