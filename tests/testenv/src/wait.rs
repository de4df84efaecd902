//! Polling for a condition that other processes make true (FRR, the kernel, a speaker).

use std::{
    thread,
    time::{Duration, Instant},
};

/// Calls `check` every `every` until it returns `Some`, or gives up after `timeout` (after one
/// last call).
pub fn wait_for<T>(
    timeout: Duration,
    every: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() > deadline {
            return None;
        }
        thread::sleep(every);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_condition_that_holds_later_is_waited_for() {
        let mut calls = 0;
        let value = wait_for(Duration::from_secs(1), Duration::from_millis(1), || {
            calls += 1;
            (calls == 3).then_some(calls)
        });
        assert_eq!(value, Some(3));
    }

    #[test]
    fn a_condition_that_never_holds_gives_none_after_the_timeout() {
        let start = Instant::now();
        let value: Option<()> =
            wait_for(Duration::from_millis(30), Duration::from_millis(5), || None);
        assert_eq!(value, None);
        assert!(start.elapsed() >= Duration::from_millis(30));
    }
}
