use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    // Rust ignores SIGPIPE, so printing into a closed pipe (`icdbench plan … | head`) would panic;
    // the default action ends the process quietly, as other command-line tools do.
    #[cfg(unix)]
    // SAFETY: called first thing in main, before any thread starts; SIG_DFL is a valid handler.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    icdbench::device::pin_cpu_numerics();
    let cli = icdbench::cli::Cli::parse();
    match icdbench::app::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // "Not yet" (`status`, exit 3) is an answer, not an error.
        Err(icdbench::app::AppError::InFlight(why)) => {
            eprintln!("{why}");
            ExitCode::from(3)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
