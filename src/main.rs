//! The `mb-stats` binary: parse the command line, run the library, map errors to exit codes.

use clap::Parser;
use clap::error::ErrorKind;

fn main() {
    let cli = match mb_stats::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) =>
        {
            e.exit()
        }
        Err(e) => {
            // clap's message is several paragraphs (what is wrong, usage, hint); keep the first,
            // on one line: it names the flag ("required arguments were not provided: --effect").
            let rendered = e.render().to_string();
            let first: Vec<&str> = rendered
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect();
            let line = match first.is_empty() {
                true => "error: invalid arguments".to_string(),
                false => first.join(" "),
            };
            eprintln!("{line}");
            std::process::exit(2);
        }
    };
    if let Err(e) = mb_stats::commands::run(cli) {
        eprintln!("error: {e}");
        std::process::exit(e.exit_code());
    }
}
