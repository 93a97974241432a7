//! When an asynchronous action (Hetzner action, DigitalOcean action, Scaleway task) finishes.
//! Tests want it counted in observations (a poll of the action or of its resource), so that
//! they run fast and the same every time; people and benchmarks want wall time (`--action-ms`).

use std::time::{Duration, Instant};

/// How long actions take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pace {
    /// Running for this many observations, finished at the next one (0: finished when created).
    Polls(u32),
    /// Running for this long, whoever looks (zero: finished when created).
    Wall(Duration),
}

impl Default for Pace {
    /// Two polls: every client has to wait at least once, and tests stay fast.
    fn default() -> Self {
        Pace::Polls(2)
    }
}

/// The clock of one action.
#[derive(Clone, Debug)]
pub struct Timer {
    pace: Pace,
    started: Instant,
    seen: u32,
}

impl Timer {
    /// Starts an action's clock now.
    pub fn start(pace: Pace) -> Timer {
        Timer {
            pace,
            started: Instant::now(),
            seen: 0,
        }
    }

    /// Whether the action is finished before anyone looked (`Polls(0)`, a zero duration).
    pub fn instant(&self) -> bool {
        matches!(self.pace, Pace::Polls(0)) || self.pace == Pace::Wall(Duration::ZERO)
    }

    /// One observation; `true` when it finds the action finished.
    pub fn observe(&mut self) -> bool {
        match self.pace {
            Pace::Polls(n) if self.seen >= n => true,
            Pace::Polls(_) => {
                self.seen += 1;
                false
            }
            Pace::Wall(d) => self.started.elapsed() >= d,
        }
    }

    /// Whether wall time alone has finished the action (never for `Polls`).
    pub fn due(&self) -> bool {
        matches!(self.pace, Pace::Wall(d) if self.started.elapsed() >= d)
    }

    /// Progress in percent while running: rising, below 100.
    pub fn progress(&self) -> u32 {
        let pct = match self.pace {
            Pace::Polls(n) => u128::from(self.seen) * 100 / (u128::from(n) + 1),
            Pace::Wall(d) => self.started.elapsed().as_millis() * 100 / d.as_millis().max(1),
        };
        u32::try_from(pct.min(99)).unwrap_or(99)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polls_finish_at_the_observation_after_n() {
        let mut t = Timer::start(Pace::Polls(2));
        assert!(!t.instant());
        assert!(!t.observe());
        assert_eq!(t.progress(), 33);
        assert!(!t.observe());
        assert_eq!(t.progress(), 66);
        assert!(!t.due());
        assert!(t.observe());
        assert!(Timer::start(Pace::Polls(0)).instant());
    }

    #[test]
    fn wall_time_finishes_whoever_looks() {
        let mut t = Timer::start(Pace::Wall(Duration::from_millis(50)));
        assert!(!t.observe() && !t.due());
        std::thread::sleep(Duration::from_millis(60));
        assert!(t.due() && t.observe());
        assert_eq!(t.progress(), 99);
        assert!(Timer::start(Pace::Wall(Duration::ZERO)).instant());
    }
}
