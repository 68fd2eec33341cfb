//! Byte counters for the long stages of an export or a restore, read by
//! whoever draws progress (the binary's progress bar), written by the
//! library as bytes stream past.
//!
//! The library only counts; it never prints and never looks at a clock.
//! A display reads [`Meter::read`] a few times a second and works out the
//! rate and the time left itself.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

/// What the bytes of a [`Reading`] are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Nothing long is running.
    Idle,
    /// Export: dumping the sources into the spool. The total is an
    /// estimate (the servers' data sizes); the dumps come out a little
    /// larger or smaller.
    Dumping,
    /// Export: writing the archive (bytes of data going in).
    Archiving,
    /// Verify or restore: reading the archive (bytes of the archive file).
    Verifying,
    /// Restore: loading the unpacked files into the targets (bytes of
    /// those files).
    Loading,
}

impl Stage {
    const ALL: [Stage; 5] = [
        Stage::Idle,
        Stage::Dumping,
        Stage::Archiving,
        Stage::Verifying,
        Stage::Loading,
    ];

    /// A word for a progress line: `dumping`, `archiving`, ….
    pub fn name(self) -> &'static str {
        match self {
            Stage::Idle => "idle",
            Stage::Dumping => "dumping",
            Stage::Archiving => "archiving",
            Stage::Verifying => "verifying",
            Stage::Loading => "loading",
        }
    }
}

/// One look at a [`Meter`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reading {
    /// The stage running.
    pub stage: Stage,
    /// Bytes done in this stage.
    pub done: u64,
    /// Bytes this stage is expected to take (0: unknown).
    pub total: u64,
    /// Bumped at every stage start, so a display notices a restart of the
    /// same stage.
    pub epoch: u64,
}

/// Shared byte counters; clones count into the same place. The default
/// meter counts for nobody, which costs one atomic add per megabyte.
///
/// A stage may have parts (restore and transfer: one per database, named
/// `mongo circle_ci`, `postgres circle`): bytes counted for a part count
/// for the stage too, and [`Meter::parts`] reads them, in the order they
/// began, for a display that shows one bar per database.
#[derive(Clone, Debug, Default)]
pub struct Meter {
    inner: Arc<Inner>,
    /// The part this handle counts into besides the stage.
    part: Option<Arc<PartInner>>,
}

#[derive(Debug, Default)]
struct Inner {
    stage: AtomicU8,
    done: AtomicU64,
    total: AtomicU64,
    epoch: AtomicU64,
    parts: std::sync::Mutex<Vec<Arc<PartInner>>>,
}

#[derive(Debug, Default)]
struct PartInner {
    name: String,
    done: AtomicU64,
    total: AtomicU64,
}

/// How far one part of a stage got (see [`Meter::parts`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartReading {
    /// `mongo <database>` or `postgres <database>`.
    pub name: String,
    /// Bytes done.
    pub done: u64,
    /// Bytes expected (0: unknown).
    pub total: u64,
}

impl Meter {
    /// A meter at [`Stage::Idle`].
    pub fn new() -> Meter {
        Meter::default()
    }

    /// What is running and how far it got.
    pub fn read(&self) -> Reading {
        let stage = self.inner.stage.load(Ordering::Acquire);
        Reading {
            stage: Stage::ALL
                .get(usize::from(stage))
                .copied()
                .unwrap_or(Stage::Idle),
            done: self.inner.done.load(Ordering::Relaxed),
            total: self.inner.total.load(Ordering::Relaxed),
            epoch: self.inner.epoch.load(Ordering::Relaxed),
        }
    }

    /// The parts of the running stage, in the order they began.
    pub fn parts(&self) -> Vec<PartReading> {
        self.inner
            .parts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|p| PartReading {
                name: p.name.clone(),
                done: p.done.load(Ordering::Relaxed),
                total: p.total.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// A handle that counts into part `name` of the running stage as well
    /// (made when first asked for; the same name is the same part), which
    /// expects `total` more bytes.
    pub(crate) fn part(&self, name: &str, total: u64) -> Meter {
        let mut parts = self
            .inner
            .parts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let part = match parts.iter().find(|p| p.name == name) {
            Some(part) => part.clone(),
            None => {
                let part = Arc::new(PartInner {
                    name: name.to_owned(),
                    ..PartInner::default()
                });
                parts.push(part.clone());
                part
            }
        };
        part.total.fetch_add(total, Ordering::Relaxed);
        Meter {
            inner: self.inner.clone(),
            part: Some(part),
        }
    }

    /// Starts `stage`, expected to take `total` bytes (0: unknown).
    pub(crate) fn begin(&self, stage: Stage, total: u64) {
        self.inner
            .parts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
        self.inner.done.store(0, Ordering::Relaxed);
        self.inner.total.store(total, Ordering::Relaxed);
        self.inner.epoch.fetch_add(1, Ordering::Relaxed);
        let index = Stage::ALL.iter().position(|s| *s == stage).unwrap_or(0);
        self.inner
            .stage
            .store(u8::try_from(index).unwrap_or(0), Ordering::Release);
    }

    /// Expects `bytes` more in this stage (for totals learnt bit by bit).
    pub(crate) fn add_total(&self, bytes: u64) {
        self.inner.total.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Counts `bytes` more done.
    pub(crate) fn add(&self, bytes: u64) {
        self.inner.done.fetch_add(bytes, Ordering::Relaxed);
        if let Some(part) = &self.part {
            part.done.fetch_add(bytes, Ordering::Relaxed);
        }
    }

    /// Back to [`Stage::Idle`], keeping the last stage's counts (so a
    /// caller can read how many bytes it moved).
    pub(crate) fn end(&self) {
        self.inner.epoch.fetch_add(1, Ordering::Relaxed);
        self.inner.stage.store(0, Ordering::Release);
    }
}

/// A reader that counts what passes through it into a [`Meter`].
pub(crate) struct CountingReader<R> {
    inner: R,
    meter: Meter,
}

impl<R> CountingReader<R> {
    pub(crate) fn new(inner: R, meter: Meter) -> CountingReader<R> {
        CountingReader { inner, meter }
    }
}

impl<R: std::io::Read> std::io::Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.meter.add(n as u64);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_count_into_one_place_and_a_stage_start_resets() {
        let meter = Meter::new();
        assert_eq!(meter.read().stage, Stage::Idle);
        let clone = meter.clone();
        clone.begin(Stage::Loading, 100);
        clone.add(30);
        meter.add(12);
        let reading = meter.read();
        assert_eq!(
            (reading.stage, reading.done, reading.total),
            (Stage::Loading, 42, 100)
        );
        let epoch = reading.epoch;
        meter.begin(Stage::Loading, 7);
        let again = clone.read();
        assert_eq!((again.done, again.total), (0, 7));
        assert!(again.epoch > epoch);
        meter.add(3);
        meter.end();
        let ended = clone.read();
        assert_eq!((ended.stage, ended.done, ended.total), (Stage::Idle, 3, 7));
    }

    #[test]
    fn a_part_counts_for_itself_and_the_stage_and_a_stage_start_clears_them() {
        let meter = Meter::new();
        meter.begin(Stage::Loading, 100);
        let a = meter.part("mongo a", 60);
        let b = meter.part("postgres b", 40);
        a.add(10);
        meter.part("mongo a", 0).add(5);
        b.add(7);
        assert_eq!(meter.read().done, 22);
        let parts = meter.parts();
        assert_eq!(
            parts
                .iter()
                .map(|p| (p.name.as_str(), p.done, p.total))
                .collect::<Vec<_>>(),
            [("mongo a", 15, 60), ("postgres b", 7, 40)]
        );
        meter.begin(Stage::Verifying, 1);
        assert!(meter.parts().is_empty());
    }

    #[test]
    fn a_counting_reader_counts_every_byte() {
        use std::io::Read as _;
        let meter = Meter::new();
        let mut reader = CountingReader::new(&b"hello, world"[..], meter.clone());
        let mut out = String::new();
        reader.read_to_string(&mut out).expect("read");
        assert_eq!(meter.read().done, 12);
    }
}
