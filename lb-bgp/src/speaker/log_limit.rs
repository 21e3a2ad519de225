//! A bound on the warnings one peer can cause: a flood of malformed UPDATEs must not become
//! a flood of log lines (10 s of one once wrote 464 MB of log).

use std::time::{Duration, Instant};

/// Lines allowed per window.
const LINES: u32 = 5;
/// The window.
const WINDOW: Duration = Duration::from_secs(10);

/// Lets [`LINES`] lines through per [`WINDOW`] and counts the rest.
#[derive(Debug, Clone, Default)]
pub(crate) struct LogLimit {
    window: Option<Instant>,
    lines: u32,
    suppressed: u64,
}

impl LogLimit {
    /// Whether a line may be written at `now`; when it may, how many were suppressed since
    /// the last one written (say so in the line).
    pub(crate) fn allow(&mut self, now: Instant) -> Option<u64> {
        if self
            .window
            .is_none_or(|start| now.saturating_duration_since(start) >= WINDOW)
        {
            self.window = Some(now);
            self.lines = 0;
        }
        if self.lines >= LINES {
            self.suppressed += 1;
            return None;
        }
        self.lines += 1;
        Some(std::mem::take(&mut self.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_lines_per_ten_seconds_then_the_count_of_the_rest() {
        let t0 = Instant::now();
        let mut l = LogLimit::default();
        let first: Vec<Option<u64>> = (0..1000u64)
            .map(|i| l.allow(t0 + Duration::from_millis(i)))
            .collect();
        assert_eq!(first.iter().filter(|a| a.is_some()).count(), 5);
        assert!(first.iter().take(5).all(|a| *a == Some(0)));
        // The next window: the first line says how many were left out.
        assert_eq!(l.allow(t0 + WINDOW), Some(995));
        assert_eq!(l.allow(t0 + WINDOW), Some(0));
    }
}
