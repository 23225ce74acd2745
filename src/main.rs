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
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("chops: cannot start the runtime: {e}");
            std::process::exit(chops::cli::EXIT_USAGE);
        }
    };
    let code = rt.block_on(chops::cli::run(cli));
    std::process::exit(code);
}
