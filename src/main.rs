//! The `mb-stats` binary: parse the command line, run the library, map errors to exit codes.

use clap::Parser;
use clap::error::ErrorKind;

fn main() {
    let cli = match mb_stats::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => e.exit(),
        Err(e) => {
            // clap's message is several lines (usage, hint); keep the one that says what is wrong.
            let rendered = e.render().to_string();
            eprintln!("{}", rendered.lines().next().unwrap_or("error: invalid arguments"));
            std::process::exit(2);
        }
    };
    if let Err(e) = mb_stats::commands::run(cli) {
        eprintln!("error: {e}");
        std::process::exit(e.exit_code());
    }
}
