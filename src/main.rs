//! The `mb-stats` binary: parse the command line, run the library, map errors to exit codes.

use clap::Parser;
use clap::error::ErrorKind;

fn main() {
    reuse_freed_memory();
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

/// Keep freed memory for the next allocation instead of returning it to the kernel. A forward
/// pass allocates and frees a batch's activations layer after layer and a bootstrap its columns
/// and designs; glibc hands every block above its mmap threshold (at most 32 MiB) back to the
/// kernel on free, so each next one page-faults its way in again (measured: 5% of a bf16 forward
/// pass, a third of a whole-process `bootstrap`). Served from the heap and never trimmed, freed
/// blocks are reused; the process keeps its peak size until it exits.
fn reuse_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before any other thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}
