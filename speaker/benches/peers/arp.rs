//! What the client's ARP replies (`common::probe`: a request for the VIP every 10 ms) say
//! about one event: when another node answered, the longest silence, the longest time two MACs
//! answered.

/// A node whose replies stop for longer than this has stopped answering (the client asks every
/// 10 ms).
const SPAN_GAP: f64 = 0.2;

/// What the client saw around one event at `at` seconds, the owner being `owner`.
pub struct Outcome {
    /// When another node first answered, after the event.
    pub moved: Option<f64>,
    /// The longest time without any answer after the event.
    pub gap: f64,
    /// The longest time two nodes both answered, and whether they still did when the probe
    /// ended.
    pub two_macs: (f64, bool),
    /// When the owner fell silent, after the event (None: it was silent already).
    pub owner_last: Option<f64>,
    pub end: f64,
}

/// Each node's answering spans: runs of replies without a silence longer than [`SPAN_GAP`].
fn spans(replies: &[(f64, String)]) -> Vec<(String, f64, f64)> {
    let mut spans: Vec<(String, f64, f64)> = Vec::new();
    for (t, node) in replies {
        match spans.iter_mut().rev().find(|(n, _, _)| n == node) {
            Some(span) if t - span.2 <= SPAN_GAP => span.2 = *t,
            _ => spans.push((node.clone(), *t, *t)),
        }
    }
    spans
}

pub fn outcome(replies: &[(f64, String)], owner: &str, at: f64, end: f64) -> Outcome {
    let after: Vec<&(f64, String)> = replies.iter().filter(|(t, _)| *t >= at).collect();
    let moved = after.iter().find(|(_, n)| n != owner).map(|(t, _)| t - at);
    let spans = spans(replies);
    // The owner's span that was running at the event: when it ended is when the owner fell
    // silent (answers after a silence, e.g. once its link is back, are a span of their own).
    let owner_last = spans
        .iter()
        .find(|(n, start, stop)| n == owner && *start <= at && *stop >= at - SPAN_GAP)
        .map(|(_, _, stop)| (stop - at).max(0.0));
    let mut times: Vec<f64> = vec![at];
    times.extend(after.iter().map(|(t, _)| *t));
    times.push(end);
    let gap = times.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
    let mut two_macs = (0.0, false);
    for (i, (a, a_start, a_end)) in spans.iter().enumerate() {
        for (b, b_start, b_end) in &spans[i + 1..] {
            let overlap = a_end.min(*b_end) - a_start.max(*b_start);
            if a != b && overlap > two_macs.0 {
                two_macs = (overlap, a_end.min(*b_end) > end - 0.5);
            }
        }
    }
    Outcome {
        moved,
        gap,
        two_macs,
        owner_last,
        end: end - at,
    }
}
