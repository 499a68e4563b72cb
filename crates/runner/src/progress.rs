//! Progress of long loops, reported on stderr: bars on a terminal. The BERT runtime and the tasks
//! see only a plain callback ([`Progress::advance`]), never a terminal type.

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// One counter with a bar (hidden when stderr is not a terminal).
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A counter of `total` items called `unit` (`sentences`, `checkpoints`).
    pub fn new(total: usize, unit: &str) -> Progress {
        let bar = ProgressBar::new(total as u64);
        let template = format!("{{bar:30}} {{pos}}/{{len}} {unit} ({{per_sec}}, ETA {{eta}})");
        bar.set_style(ProgressStyle::with_template(&template).expect("valid template"));
        Progress { bar }
    }

    /// The callback that advances this counter by the given number of items.
    pub fn advance(&self) -> impl Fn(usize) + '_ {
        |n| self.bar.inc(n as u64)
    }

    /// Advance by one item.
    pub fn tick(&self) {
        self.bar.inc(1);
    }

    /// Remove the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// Counters drawn together, one above the other (the grid's checkpoints over each checkpoint's
/// sentences), with lines printed above them.
#[derive(Default)]
pub struct Board {
    bars: MultiProgress,
}

impl Board {
    /// An empty board.
    pub fn new() -> Board {
        Board::default()
    }

    /// A new counter on the board.
    pub fn counter(&self, total: usize, unit: &str) -> Progress {
        Progress {
            bar: self.bars.add(Progress::new(total, unit).bar),
        }
    }

    /// Take a finished counter off the board.
    pub fn remove(&self, counter: Progress) {
        counter.finish();
        self.bars.remove(&counter.bar);
    }

    /// Print a line above the bars (on its own when stderr is not a terminal).
    pub fn println(&self, line: &str) {
        let _ = self.bars.println(line);
    }
}
