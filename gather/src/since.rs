//! From when logs and events are collected: `--since` / `--since-time`, or what `oc adm
//! must-gather --since/--since-time` passes in `MUST_GATHER_SINCE` / `MUST_GATHER_SINCE_TIME`.

use std::time::Duration;

use jiff::Timestamp;
use kube::api::LogParams;
use serde_json::Value;

/// From when logs and events are collected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Since {
    /// Everything.
    #[default]
    All,
    /// The last stretch of this length.
    Last(Duration),
    /// From this time on.
    Time(Timestamp),
}

impl Since {
    /// From `--since` (a Go duration, as `oc` passes it: `1h0m0s`) or `--since-time`
    /// (RFC 3339); at most one of them.
    pub fn parse(since: Option<&str>, since_time: Option<&str>) -> Result<Since, String> {
        match (
            since.filter(|s| !s.is_empty()),
            since_time.filter(|s| !s.is_empty()),
        ) {
            (None, None) => Ok(Since::All),
            (Some(_), Some(_)) => Err("at most one of --since and --since-time".to_owned()),
            (Some(since), None) => metallb_runtime::cli::parse_duration(since)
                .map(Since::Last)
                .map_err(|e| format!("--since: {e}")),
            (None, Some(time)) => time
                .parse::<Timestamp>()
                .map(Since::Time)
                .map_err(|e| format!("--since-time {time:?} is not RFC 3339: {e}")),
        }
    }

    /// The earliest time collected, relative to `now`.
    pub(crate) fn cutoff(&self, now: Timestamp) -> Option<Timestamp> {
        match *self {
            Since::All => None,
            Since::Last(length) => jiff::SignedDuration::try_from(length)
                .ok()
                .and_then(|d| now.checked_sub(d).ok()),
            Since::Time(time) => Some(time),
        }
    }

    /// The log request's `sinceSeconds` / `sinceTime`.
    pub(crate) fn log_params(&self) -> LogParams {
        match *self {
            Since::All => LogParams::default(),
            Since::Last(length) => LogParams {
                since_seconds: Some(length.as_secs().max(1) as i64),
                ..LogParams::default()
            },
            Since::Time(time) => LogParams {
                since_time: Some(time),
                ..LogParams::default()
            },
        }
    }
}

/// Whether `event` happened at or after `cutoff`.
pub(crate) fn recent(event: &Value, cutoff: Option<Timestamp>) -> bool {
    let Some(cutoff) = cutoff else {
        return true;
    };
    let time = ["eventTime", "lastTimestamp", "firstTimestamp"]
        .iter()
        .find_map(|field| event[field].as_str())
        .or_else(|| event["metadata"]["creationTimestamp"].as_str())
        .and_then(|t| t.parse::<Timestamp>().ok());
    time.is_none_or(|time| time >= cutoff)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn since_takes_a_go_duration_or_an_rfc3339_time_but_not_both() {
        assert_eq!(Since::parse(None, Some("")), Ok(Since::All));
        assert_eq!(
            Since::parse(Some("1h0m0s"), None),
            Ok(Since::Last(Duration::from_secs(3600)))
        );
        let time: Timestamp = "2026-12-02T10:00:00Z".parse().unwrap();
        assert_eq!(
            Since::parse(None, Some("2026-12-02T10:00:00Z")),
            Ok(Since::Time(time))
        );
        assert!(Since::parse(Some("1h"), Some("2026-12-02T10:00:00Z")).is_err());
        assert!(Since::parse(None, Some("yesterday")).is_err());
    }

    #[test]
    fn events_before_the_cutoff_are_left_out() {
        let now: Timestamp = "2026-12-02T10:00:00Z".parse().unwrap();
        let cutoff = Since::Last(Duration::from_secs(600)).cutoff(now);
        let at = |t: &str| json!({ "lastTimestamp": t });
        assert!(recent(&at("2026-12-02T09:55:00Z"), cutoff));
        assert!(!recent(&at("2026-12-02T09:45:00Z"), cutoff));
        assert!(
            recent(&json!({}), cutoff),
            "an event without a time is kept"
        );
        assert!(recent(&at("2000-01-01T00:00:00Z"), Since::All.cutoff(now)));
    }
}
