//! The `duet` command line: parses arguments, calls the libraries, prints. See `duet --help`.

mod calibrate_cmd;
mod cli;
mod commands;
mod replay_cmd;
mod report_cmd;
mod serve_cmd;
mod sweep;
mod trace_cmd;
mod validate_cmd;

use cli::{Cli, Command};

/// Parses the command line and runs the command.
fn run() -> anyhow::Result<()> {
    use clap::{CommandFactory, FromArgMatches};
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let typed = matches.subcommand_matches("validate").map(duet_args::record::typed_ids).unwrap_or_default();
    match cli.command {
        Command::Sim(a) => commands::sim(&a.sim, a.out.as_deref(), a.overwrite, a.timeline.as_deref()),
        Command::Sweep(a) if a.list => sweep::list(&a.config, a.out, a.shard.as_deref()),
        Command::Sweep(a) => sweep::sweep(&a.config, a.out, a.shard.as_deref(), a.jobs),
        Command::Capacity(a) if a.list => sweep::capacity_list(&a.config),
        Command::Capacity(a) => sweep::capacity(&a.config, a.out, a.jobs),
        Command::Report(a) => {
            let files = report_cmd::run(&report_cmd::ReportOptions {
                results: a.results,
                out: a.out,
                rate: a.rate,
                timeline_seconds: a.timeline_seconds,
                calibration: a.calibration,
            })?;
            for f in files {
                println!("wrote {}", f.display());
            }
            Ok(())
        }
        Command::Bench(a) => match a.serve {
            Some(cli::BenchCommand::Serve(s)) => serve_cmd::run(&s),
            None => commands::bench(&a.sim, a.runs),
        },
        Command::Trace(t) => trace_cmd::run(t),
        Command::Models => commands::models(),
        Command::Gpus => commands::gpus(),
        Command::RooflineCheck(a) => commands::roofline_check(&a),
        Command::Calibrate(c) => calibrate_cmd::run(c),
        Command::Validate(a) => validate_cmd::run(&a.sim, &typed, &a.replay, a.out.as_deref()),
        Command::Replay(a) => replay_cmd::run(&a.sim, &a.out, a.overwrite, a.dry_run, a.device_scale),
    }
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
