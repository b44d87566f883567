//! Waking a worker for rows written in its own process, without a NOTIFY (which would serialise
//! every commit on the server; see `migrations/outbox_wake.sql`). The writer signals before its
//! transaction commits, so a woken worker that finds nothing looks again a few times in quick
//! succession ([`Chase`]) before it goes back to its poll.

use std::time::Duration;

/// The pauses (ms) after a wake that found nothing yet, before the worker polls again.
const CHASE_MS: [u64; 6] = [1, 2, 4, 8, 16, 32];

/// Where a worker is between a wake and its next poll.
#[derive(Debug, Default)]
pub struct Chase(Option<usize>);

impl Chase {
    /// A wake arrived: the next empty look is followed by the first short pause.
    pub fn woken(&mut self) {
        self.0 = Some(0);
    }

    /// How long to wait after a look that found `nothing` (or something): the next short pause
    /// while a wake is being chased and nothing was found, else `poll` (and the chase ends).
    pub fn wait(&mut self, nothing: bool, poll: Duration) -> Duration {
        match self.0 {
            Some(i) if nothing && i < CHASE_MS.len() => {
                self.0 = Some(i + 1);
                Duration::from_millis(CHASE_MS[i])
            }
            _ => {
                self.0 = None;
                poll
            }
        }
    }

    /// True while no wake is being chased (the wait is the poll).
    pub fn polling(&self) -> bool {
        self.0.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wake_is_chased_with_growing_pauses_then_the_poll_returns() {
        let poll = Duration::from_secs(1);
        let mut c = Chase::default();
        assert_eq!(c.wait(true, poll), poll);
        assert!(c.polling());
        c.woken();
        let pauses: Vec<u64> = (0..7)
            .map(|_| c.wait(true, poll).as_millis() as u64)
            .collect();
        assert_eq!(pauses, [1, 2, 4, 8, 16, 32, 1000]);
        assert!(c.polling());
        // Finding something ends the chase at once.
        c.woken();
        assert_eq!(c.wait(false, poll), poll);
        assert!(c.polling());
    }
}
