//! Progress of long loops, reported on stderr: bars on a terminal; without one (a batch job's log
//! file) plain lines, each counter's state at most once per interval; nothing when quiet. The
//! BERT runtime and the tasks see only a plain callback ([`Progress::advance`]), never a
//! terminal type.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Bars (a terminal).
    Bars,
    /// Plain lines: a counter's state at most once per interval, and every log line.
    Lines(Duration),
    /// Nothing but errors.
    Quiet,
}

impl Style {
    /// Bars when stderr is a terminal, else plain lines every `interval`; `quiet` silences both.
    pub fn for_stderr(quiet: bool, interval: Duration) -> Style {
        match (quiet, std::io::stderr().is_terminal()) {
            (true, _) => Style::Quiet,
            (false, true) => Style::Bars,
            (false, false) => Style::Lines(interval),
        }
    }
}

/// One counter: a bar, or the state of plain lines.
pub struct Progress {
    bar: ProgressBar,
    lines: Option<Lines>,
}

/// A counter's plain-line state.
struct Lines {
    unit: String,
    total: usize,
    started: Instant,
    interval: Duration,
    /// Items done and when the last line was printed.
    state: Mutex<(usize, Instant)>,
}

impl Lines {
    fn advance(&self, n: usize) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.0 += n;
        if state.1.elapsed() >= self.interval || state.0 == self.total {
            state.1 = Instant::now();
            eprintln!("{}", self.line(state.0));
        }
    }

    /// `sentences: 1200/2600 (46%), 85.3/s, ETA 16 s` (`0.317/s`, `5.00/s` below 10 per second).
    fn line(&self, done: usize) -> String {
        let seconds = self.started.elapsed().as_secs_f64();
        let rate = done as f64 / seconds.max(1e-9);
        let eta = match done {
            0 => "unknown".to_string(),
            _ => duration((self.total - done.min(self.total)) as f64 / rate),
        };
        // Three significant digits below 10 per second (a training step's rate is a fraction).
        let rate = match rate {
            r if r < 1.0 => format!("{r:.3}"),
            r if r < 10.0 => format!("{r:.2}"),
            r => format!("{r:.1}"),
        };
        format!(
            "  {}: {done}/{} ({:.0}%), {rate}/s, ETA {eta}",
            self.unit,
            self.total,
            100.0 * done as f64 / self.total.max(1) as f64
        )
    }
}

/// `42 s`, `12 min`, `3.5 h`.
fn duration(seconds: f64) -> String {
    match seconds {
        s if s < 120.0 => format!("{s:.0} s"),
        s if s < 7200.0 => format!("{:.0} min", s / 60.0),
        s => format!("{:.1} h", s / 3600.0),
    }
}

impl Progress {
    /// A counter of `total` items called `unit` (`sentences`, `checkpoints`), shown in `style`.
    pub fn styled(total: usize, unit: &str, style: Style) -> Progress {
        let bar = match style {
            Style::Bars => ProgressBar::new(total as u64),
            Style::Lines(_) | Style::Quiet => ProgressBar::hidden(),
        };
        let template = format!("{{bar:30}} {{pos}}/{{len}} {unit} ({{per_sec}}, ETA {{eta}})");
        bar.set_style(ProgressStyle::with_template(&template).expect("valid template"));
        let lines = match style {
            Style::Lines(interval) => Some(Lines {
                unit: unit.to_string(),
                total,
                started: Instant::now(),
                interval,
                state: Mutex::new((0, Instant::now())),
            }),
            Style::Bars | Style::Quiet => None,
        };
        Progress { bar, lines }
    }

    /// The callback that advances this counter by the given number of items.
    pub fn advance(&self) -> impl Fn(usize) + '_ {
        |n| self.add(n)
    }

    /// Advance by one item.
    pub fn tick(&self) {
        self.add(1);
    }

    fn add(&self, n: usize) {
        self.bar.inc(n as u64);
        if let Some(lines) = &self.lines {
            lines.advance(n);
        }
    }

    /// Remove the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// Counters drawn together, one above the other (the grid's checkpoints over each checkpoint's
/// sentences), with lines printed above them.
pub struct Board {
    bars: MultiProgress,
    style: Style,
}

impl Board {
    /// An empty board showing progress in `style`.
    pub fn new(style: Style) -> Board {
        Board {
            bars: MultiProgress::new(),
            style,
        }
    }

    /// A new counter on the board.
    pub fn counter(&self, total: usize, unit: &str) -> Progress {
        let counter = Progress::styled(total, unit, self.style);
        Progress {
            bar: self.bars.add(counter.bar),
            lines: counter.lines,
        }
    }

    /// Take a finished counter off the board.
    pub fn remove(&self, counter: Progress) {
        counter.finish();
        self.bars.remove(&counter.bar);
    }

    /// Print a line above the bars, or as a plain line without a terminal (not when quiet).
    pub fn println(&self, line: &str) {
        match self.style {
            Style::Bars => {
                let _ = self.bars.println(line);
            }
            Style::Lines(_) => eprintln!("{line}"),
            Style::Quiet => {}
        }
    }

    /// A line for a log file only: printed as a plain line, but not among the bars of a
    /// terminal, which show the same thing.
    pub fn log(&self, line: &str) {
        if let Style::Lines(_) = self.style {
            eprintln!("{line}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_give_done_total_rate_and_eta() {
        let lines = Lines {
            unit: "sentences".into(),
            total: 200,
            started: Instant::now() - Duration::from_secs(10),
            interval: Duration::from_secs(60),
            state: Mutex::new((0, Instant::now())),
        };
        assert_eq!(lines.line(50), "  sentences: 50/200 (25%), 5.00/s, ETA 30 s");
        assert_eq!(lines.line(3), "  sentences: 3/200 (2%), 0.300/s, ETA 11 min");
        assert_eq!(lines.line(0), "  sentences: 0/200 (0%), 0.000/s, ETA unknown");
        assert_eq!(duration(90.0), "90 s");
        assert_eq!(duration(600.0), "10 min");
        assert_eq!(duration(9000.0), "2.5 h");
    }
}
