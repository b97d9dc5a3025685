//! The `duet` command line: parses arguments, calls the libraries, prints. See `duet --help`.

mod calibrate_cmd;
mod cli;
mod commands;
mod replay_cmd;
mod report_cmd;
mod sweep;
mod trace_cmd;
mod validate_cmd;

fn main() -> std::process::ExitCode {
    match cli::run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
