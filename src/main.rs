use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    icdbench::device::pin_cpu_numerics();
    let cli = icdbench::cli::Cli::parse();
    match icdbench::app::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
