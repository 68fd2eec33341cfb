//! Progress on standard error for the long stages of circle-export: bytes
//! done of the total, bytes/s, and the time left. On a terminal, indicatif
//! bars redrawn in place — one for the stage and one per database the
//! stage works on (`Meter::parts`); elsewhere (nohup, cron, systemd,
//! `| tee`) a plain line every [`PERIOD`] or every 5 % of a stage,
//! whichever comes first, as stage lines of [`crate::log`] (so `--log-format
//! json` makes them JSON); with `--json` or `-q`, nothing but the result.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use circle_export::{Meter, Reading, Stage};
use indicatif::{MultiProgress, ProgressDrawTarget, ProgressStyle};

/// How often the bar is redrawn.
const TICK: Duration = Duration::from_millis(250);
/// The window the rate is measured over.
const WINDOW: Duration = Duration::from_secs(5);
/// Off a terminal: the longest time between two progress lines.
pub const PERIOD: Duration = Duration::from_secs(30);
/// Off a terminal: a line each time a stage is this much further (‰).
const STEP_PER_MILLE: u64 = 50;

/// Draws a [`Meter`] on standard error until dropped, and prints progress
/// lines above it.
pub struct ProgressBar {
    prefix: &'static str,
    shared: Arc<Shared>,
    ticker: Option<std::thread::JoinHandle<()>>,
}

struct Shared {
    stop: AtomicBool,
    /// The bars, on a terminal.
    multi: Option<MultiProgress>,
    quiet: bool,
}

/// When the next periodic line is due (off a terminal).
#[derive(Default)]
struct Due {
    epoch: u64,
    last: Option<Instant>,
    /// The last ‰ of the stage a line was printed at.
    step: u64,
}

impl Due {
    /// Whether a line is due for `reading` at `now`: a stage's first
    /// reading with bytes done, then every [`PERIOD`], or when the stage
    /// went another 5 % of its total.
    fn check(&mut self, reading: &Reading, now: Instant) -> bool {
        if reading.stage == Stage::Idle || reading.done == 0 {
            return false;
        }
        if reading.epoch != self.epoch {
            *self = Due {
                epoch: reading.epoch,
                ..Due::default()
            };
        }
        let per_mille = (reading.done.min(reading.total) * 1000)
            .checked_div(reading.total)
            .unwrap_or(0);
        let due = match self.last {
            None => true,
            Some(last) => {
                now.duration_since(last) >= PERIOD || per_mille >= self.step + STEP_PER_MILLE
            }
        };
        if due {
            self.last = Some(now);
            self.step = per_mille - per_mille % STEP_PER_MILLE;
        }
        due
    }
}

impl ProgressBar {
    /// Starts showing `meter`: as bars when `bar` (standard error is a
    /// terminal), else as periodic lines. With `quiet` (`--json`), nothing:
    /// neither the meter nor [`ProgressBar::line`].
    pub fn start(prefix: &'static str, meter: Meter, bar: bool, quiet: bool) -> ProgressBar {
        // A bar redrawn in place has no place among JSON log lines.
        let bar = bar && !quiet && crate::log::format() == crate::log::Format::Text;
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            multi: bar
                .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(4))),
            quiet,
        });
        let ticker = (!quiet).then(|| {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || match &shared.multi {
                Some(multi) => tick(&shared, multi, &meter),
                None => periodic(&shared, &meter),
            })
        });
        ProgressBar {
            prefix,
            shared,
            ticker,
        }
    }

    /// Prints one progress line (`<prefix>: <text>`) above the bars.
    pub fn line(&self, text: &str) {
        if self.shared.quiet {
            return;
        }
        match &self.shared.multi {
            Some(multi) => {
                let _ = multi.println(format!("{}: {text}", self.prefix));
            }
            None => crate::log::stage(text),
        }
    }
}

impl Drop for ProgressBar {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(ticker) = self.ticker.take() {
            ticker.thread().unpark();
            let _ = ticker.join();
        }
        if let Some(multi) = &self.shared.multi {
            let _ = multi.clear();
        }
    }
}

/// On a terminal: the stage's bar and one per part, refreshed every
/// [`TICK`]; all removed when the stage ends or another begins.
fn tick(shared: &Shared, multi: &MultiProgress, meter: &Meter) {
    let mut epoch = None;
    // Each bar with its name and whether it shows a total.
    let mut bars: Vec<(String, indicatif::ProgressBar, bool)> = Vec::new();
    let clear = |bars: &mut Vec<(String, indicatif::ProgressBar, bool)>| {
        for (_, bar, _) in bars.drain(..) {
            bar.finish_and_clear();
            multi.remove(&bar);
        }
    };
    while !shared.stop.load(Ordering::Relaxed) {
        std::thread::park_timeout(TICK);
        if shared.stop.load(Ordering::Relaxed) {
            break;
        }
        let reading = meter.read();
        if reading.stage == Stage::Idle || epoch != Some(reading.epoch) {
            clear(&mut bars);
            epoch = Some(reading.epoch);
        }
        if reading.stage == Stage::Idle {
            continue;
        }
        let estimate = reading.stage == Stage::Dumping;
        let mut shown = vec![(reading.stage.name().to_owned(), reading.done, reading.total)];
        shown.extend(meter.parts().into_iter().map(|p| (p.name, p.done, p.total)));
        for (name, done, total) in shown {
            let index = match bars.iter().position(|(n, _, _)| *n == name) {
                Some(index) => index,
                None => {
                    let bar = multi.add(indicatif::ProgressBar::no_length());
                    bar.set_style(style(estimate, false));
                    bar.set_message(name.clone());
                    bars.push((name, bar, false));
                    bars.len() - 1
                }
            };
            let (_, bar, shows_total) = &mut bars[index];
            let known = total > 0 && done <= total;
            if known != *shows_total {
                bar.set_style(style(estimate, known));
                *shows_total = known;
            }
            if known {
                bar.set_length(total);
            } else {
                bar.unset_length();
            }
            bar.set_position(done);
        }
    }
    clear(&mut bars);
}

/// A bar's look: `loading  [#####·····]  412.0 MiB / 1.0 GiB  85.3 MiB/s
/// ETA 7s`; totals that are estimates (dumping) get a `~`; without a
/// total (or past its estimate), bytes and rate only.
fn style(estimate: bool, known: bool) -> ProgressStyle {
    ProgressStyle::with_template(&template(estimate, known))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("#>.")
}

fn template(estimate: bool, known: bool) -> String {
    if known {
        format!(
            "{{msg:<24}} [{{bar:24}}] {{binary_bytes}} / {}{{binary_total_bytes}}  \
             {{binary_bytes_per_sec}}  ETA {{eta}}",
            if estimate { "~" } else { "" }
        )
    } else {
        "{msg:<24} {binary_bytes}  {binary_bytes_per_sec}".to_owned()
    }
}

/// Off a terminal: a stage line (`dumping 412.0 MiB / ~1.0 GiB (40 %),
/// 85.3 MiB/s, ETA 0:00:07`) when one is due.
fn periodic(shared: &Shared, meter: &Meter) {
    let mut rate = Rate::default();
    let mut due = Due::default();
    while !shared.stop.load(Ordering::Relaxed) {
        std::thread::park_timeout(TICK);
        if shared.stop.load(Ordering::Relaxed) {
            break;
        }
        let reading = meter.read();
        let now = Instant::now();
        let bytes_per_second = rate.sample(&reading, now);
        if due.check(&reading, now) {
            crate::log::stage(&render_plain(&reading, bytes_per_second));
        }
    }
}

/// A progress line without a bar: stage, bytes, share, rate, time left.
fn render_plain(reading: &Reading, bytes_per_second: Option<f64>) -> String {
    let human = circle_export::export::human_bytes;
    let estimate = reading.stage == Stage::Dumping;
    let known = reading.total > 0 && reading.done <= reading.total;
    let mut line = format!("{} {}", reading.stage.name(), human(reading.done));
    if known {
        line.push_str(&format!(
            " / {}{} ({} %)",
            if estimate { "~" } else { "" },
            human(reading.total),
            reading.done * 100 / reading.total
        ));
    }
    if let Some(rate) = bytes_per_second {
        line.push_str(&format!(", {}/s", human(rate as u64)));
        if known && rate > 0.0 {
            let left = ((reading.total - reading.done) as f64 / rate).min(99.0 * 3600.0) as u64;
            line.push_str(&format!(
                ", ETA {}:{:02}:{:02}",
                left / 3600,
                left / 60 % 60,
                left % 60
            ));
        }
    }
    line
}

/// Bytes per second over the last [`WINDOW`], restarted with each stage.
#[derive(Default)]
struct Rate {
    epoch: u64,
    samples: std::collections::VecDeque<(Instant, u64)>,
}

impl Rate {
    fn sample(&mut self, reading: &Reading, now: Instant) -> Option<f64> {
        if reading.epoch != self.epoch {
            self.epoch = reading.epoch;
            self.samples.clear();
        }
        self.samples.push_back((now, reading.done));
        while self.samples.len() > 2
            && self
                .samples
                .front()
                .is_some_and(|(t, _)| now.duration_since(*t) > WINDOW)
        {
            self.samples.pop_front();
        }
        let (t0, d0) = *self.samples.front()?;
        let elapsed = now.duration_since(t0).as_secs_f64();
        (elapsed >= 0.5).then(|| reading.done.saturating_sub(d0) as f64 / elapsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(stage: Stage, done: u64, total: u64) -> Reading {
        Reading {
            stage,
            done,
            total,
            epoch: 1,
        }
    }

    #[test]
    fn a_bar_shows_bytes_rate_and_time_left_and_marks_an_estimate() {
        let known = template(false, true);
        assert!(
            known.contains("{bar:24}") && known.contains("{eta}") && !known.contains('~'),
            "{known}"
        );
        assert!(template(true, true).contains("/ ~{binary_total_bytes}"));
        let unknown = template(true, false);
        assert!(
            !unknown.contains("{bar") && !unknown.contains("{eta}"),
            "{unknown}"
        );
        // Every template is one indicatif accepts.
        for (estimate, known) in [(false, false), (false, true), (true, false), (true, true)] {
            ProgressStyle::with_template(&template(estimate, known)).expect("a valid template");
        }
    }

    #[test]
    fn off_a_terminal_a_line_every_period_or_five_percent() {
        let mut due = Due::default();
        let t0 = Instant::now();
        assert!(!due.check(&reading(Stage::Dumping, 0, 1000), t0));
        assert!(
            due.check(&reading(Stage::Dumping, 10, 1000), t0),
            "the first bytes"
        );
        assert!(!due.check(
            &reading(Stage::Dumping, 40, 1000),
            t0 + Duration::from_secs(1)
        ));
        assert!(
            due.check(
                &reading(Stage::Dumping, 51, 1000),
                t0 + Duration::from_secs(2)
            ),
            "5 %"
        );
        assert!(!due.check(
            &reading(Stage::Dumping, 60, 1000),
            t0 + Duration::from_secs(3)
        ));
        assert!(
            due.check(
                &reading(Stage::Dumping, 61, 1000),
                t0 + Duration::from_secs(2) + PERIOD
            ),
            "30 s"
        );
        let mut next = reading(Stage::Archiving, 1, 1000);
        next.epoch = 2;
        assert!(
            due.check(&next, t0 + Duration::from_secs(40)),
            "a new stage"
        );
        assert_eq!(
            render_plain(
                &reading(Stage::Loading, 512 << 20, 1 << 30),
                Some(64.0 * 1024.0 * 1024.0)
            ),
            "loading 512.0 MiB / 1.0 GiB (50 %), 64.0 MiB/s, ETA 0:00:08"
        );
    }

    #[test]
    fn the_rate_is_measured_over_the_window_and_restarts_with_a_stage() {
        let mut rate = Rate::default();
        let t0 = Instant::now();
        assert_eq!(rate.sample(&reading(Stage::Loading, 0, 100), t0), None);
        let r = rate
            .sample(
                &reading(Stage::Loading, 1000, 10_000),
                t0 + Duration::from_secs(1),
            )
            .expect("a rate after a second");
        assert!((r - 1000.0).abs() < 1e-6, "{r}");
        let mut next = reading(Stage::Archiving, 5, 10);
        next.epoch = 2;
        assert_eq!(rate.sample(&next, t0 + Duration::from_secs(2)), None);
    }
}
