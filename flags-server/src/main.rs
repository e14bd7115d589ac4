//! `flags`: the command-line entry point. Parses arguments and hands them
//! to the library (`flags::run`), which runs one subcommand and turns
//! its error into a message and a non-zero exit.

use std::process::ExitCode;

use clap::Parser;
use flags::cli::Cli;

fn main() -> ExitCode {
    flags::run(Cli::parse())
}
