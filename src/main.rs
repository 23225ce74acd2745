//! The `chops` binary: parse the command line, set up logging and the runtime, run.

use clap::Parser;

fn main() {
    let cli = match chops::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                chops::cli::EXIT_USAGE
            } else {
                0
            };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    chops::logging::init();
    let rt = match runtime(&cli.command).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("chops: cannot start the runtime: {e}");
            std::process::exit(chops::cli::EXIT_USAGE);
        }
    };
    let code = rt.block_on(chops::cli::run(cli));
    std::process::exit(code);
}

/// `chops serve` and `chops act` (long-lived, several things at once) get two worker threads. A
/// one-shot command such as `chops check` runs on this thread alone: its probes all wait on the
/// network, and handing each answer from the I/O driver to another thread cost more CPU (futex
/// wake-ups, context switches) than the work itself.
fn runtime(command: &chops::cli::Command) -> tokio::runtime::Builder {
    use chops::cli::Command;
    match command {
        Command::Serve(_) | Command::Act { .. } => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(2);
            b
        }
        _ => tokio::runtime::Builder::new_current_thread(),
    }
}
