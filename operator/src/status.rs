//! The `MetalLB` status: four conditions computed from the outcome of a reconcile. Pure; the
//! reconciler supplies the clock.
//!
//! `Available`, `Upgradeable`, `Progressing` and `Degraded` are always written together, in
//! that order. Exactly one of `Available`, `Progressing` and `Degraded` is `True`;
//! `Upgradeable` follows `Available`. A condition that is `False` carries its own name as
//! reason and an empty message. Unlike the Go operator, `lastTransitionTime` only moves when
//! the status of a condition changes (the `metav1.Condition` contract), so an unchanged outcome
//! writes nothing and cannot start a reconcile loop.

use k8s_openapi::{
    api::apps::v1::{DaemonSet, Deployment},
    apimachinery::pkg::apis::meta::v1::Time,
};
use metallb_api::condition::{Condition, ConditionStatus};

/// Type of the condition that is `True` when the operands are deployed and ready.
pub const AVAILABLE: &str = "Available";
/// Type of the condition that follows `Available`.
pub const UPGRADEABLE: &str = "Upgradeable";
/// Type of the condition that is `True` while the operands roll out.
pub const PROGRESSING: &str = "Progressing";
/// Type of the condition that is `True` when the operator cannot do its work.
pub const DEGRADED: &str = "Degraded";

/// Why a `MetalLB` resource is `Degraded`; the variant name is the condition reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DegradedReason {
    /// The resource is not named `metallb`.
    IncorrectMetalLBResourceName,
    /// The spec breaks a validation rule (normally refused by the webhook first).
    InvalidSpec,
    /// The operands could not be built from the spec.
    RenderFailed,
    /// The API server refused an operand.
    ApplyFailed,
}

impl DegradedReason {
    /// The condition reason.
    pub fn as_str(self) -> &'static str {
        match self {
            DegradedReason::IncorrectMetalLBResourceName => "IncorrectMetalLBResourceName",
            DegradedReason::InvalidSpec => "InvalidSpec",
            DegradedReason::RenderFailed => "RenderFailed",
            DegradedReason::ApplyFailed => "ApplyFailed",
        }
    }
}

/// What a reconcile found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Everything applied and ready.
    Available {
        /// The readiness counts.
        message: String,
    },
    /// Applied, not ready yet.
    Progressing {
        /// What is still missing.
        message: String,
    },
    /// The operator cannot deploy this resource.
    Degraded {
        /// Why.
        reason: DegradedReason,
        /// What is wrong, for the administrator.
        message: String,
    },
}

/// The four conditions for `outcome`, observed at `generation`, keeping the transition times
/// of `previous` conditions whose status does not change.
pub fn conditions(
    outcome: &Outcome,
    generation: Option<i64>,
    previous: &[Condition],
    now: &Time,
) -> Vec<Condition> {
    let (winner, reason, message) = match outcome {
        Outcome::Available { message } => (AVAILABLE, AVAILABLE, message.as_str()),
        Outcome::Progressing { message } => (PROGRESSING, PROGRESSING, message.as_str()),
        Outcome::Degraded { reason, message } => (DEGRADED, reason.as_str(), message.as_str()),
    };
    [AVAILABLE, UPGRADEABLE, PROGRESSING, DEGRADED]
        .into_iter()
        .map(|type_| {
            let is_true = type_ == winner
                || (type_ == UPGRADEABLE && matches!(outcome, Outcome::Available { .. }));
            let (status, reason, message) = match (is_true, type_) {
                (true, UPGRADEABLE) => (ConditionStatus::True, UPGRADEABLE, ""),
                (true, _) => (ConditionStatus::True, reason, message),
                (false, _) => (ConditionStatus::False, type_, ""),
            };
            let last_transition_time = previous
                .iter()
                .find(|c| c.type_ == type_ && c.status == status)
                .map_or_else(|| now.clone(), |c| c.last_transition_time.clone());
            Condition {
                type_: type_.to_owned(),
                status,
                observed_generation: generation,
                last_transition_time,
                reason: reason.to_owned(),
                message: message.to_owned(),
            }
        })
        .collect()
}

/// Available or Progressing from the operands as the API server returned them, by the current
/// operator's rules: a Deployment is ready when it observed its generation and has `replicas`
/// ready and updated replicas; a DaemonSet when it observed its generation and its desired,
/// current, ready and updated counts are equal.
pub fn readiness(controller: &Deployment, speaker: &DaemonSet) -> Outcome {
    let parts = [deployment_rollout(controller), daemon_set_rollout(speaker)];
    let summary = |ready: bool| {
        parts
            .iter()
            .filter(|(r, _)| *r == ready)
            .map(|(_, text)| text.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    };
    if parts.iter().all(|(ready, _)| *ready) {
        Outcome::Available {
            message: summary(true),
        }
    } else {
        Outcome::Progressing {
            message: format!("waiting for {}", summary(false)),
        }
    }
}

/// Whether a rollout is complete, and its counts in words.
type Rollout = (bool, String);

fn deployment_rollout(deployment: &Deployment) -> Rollout {
    let name = deployment.metadata.name.as_deref().unwrap_or_default();
    let Some(status) = &deployment.status else {
        return (false, format!("Deployment {name}: no status reported yet"));
    };
    let generation = deployment.metadata.generation;
    if status.observed_generation != generation {
        return (
            false,
            format!(
                "Deployment {name}: generation {} not observed yet",
                generation.unwrap_or_default()
            ),
        );
    }
    let want = deployment.spec.replicas.unwrap_or(1);
    let ready = status.ready_replicas.unwrap_or(0);
    let updated = status.updated_replicas.unwrap_or(0);
    (
        ready == want && updated == want,
        format!("Deployment {name}: {ready}/{want} ready, {updated}/{want} updated"),
    )
}

fn daemon_set_rollout(daemon_set: &DaemonSet) -> Rollout {
    let name = daemon_set.metadata.name.as_deref().unwrap_or_default();
    let Some(status) = &daemon_set.status else {
        return (false, format!("DaemonSet {name}: no status reported yet"));
    };
    let generation = daemon_set.metadata.generation;
    if status.observed_generation != generation {
        return (
            false,
            format!(
                "DaemonSet {name}: generation {} not observed yet",
                generation.unwrap_or_default()
            ),
        );
    }
    let desired = status.desired_number_scheduled;
    let current = status.current_number_scheduled;
    let ready = status.number_ready;
    let updated = status.updated_number_scheduled.unwrap_or(0);
    let text = if desired == 0 {
        format!("DaemonSet {name}: no node matches its nodeSelector and tolerations")
    } else {
        format!(
            "DaemonSet {name}: {ready}/{desired} ready, {updated}/{desired} updated, {current}/{desired} scheduled"
        )
    };
    (
        current == desired && ready == desired && updated == desired,
        text,
    )
}

#[cfg(test)]
mod tests {
    use k8s_openapi::{
        api::apps::v1::{DaemonSetStatus, DeploymentSpec, DeploymentStatus},
        apimachinery::pkg::apis::meta::v1::ObjectMeta,
        jiff::Timestamp,
    };

    use super::*;

    fn at(seconds: i64) -> Time {
        Time(Timestamp::from_second(seconds).unwrap())
    }

    fn by_type<'a>(conditions: &'a [Condition], type_: &str) -> &'a Condition {
        conditions.iter().find(|c| c.type_ == type_).unwrap()
    }

    fn deployment(generation: i64, status: Option<(i64, i32, i32)>) -> Deployment {
        Deployment {
            metadata: ObjectMeta {
                name: Some("controller".into()),
                generation: Some(generation),
                ..ObjectMeta::default()
            },
            spec: DeploymentSpec {
                replicas: Some(1),
                ..DeploymentSpec::default()
            },
            status: status.map(|(observed, ready, updated)| DeploymentStatus {
                observed_generation: Some(observed),
                ready_replicas: Some(ready),
                updated_replicas: Some(updated),
                ..DeploymentStatus::default()
            }),
        }
    }

    fn daemon_set(generation: i64, counts: Option<(i64, i32, i32, i32, i32)>) -> DaemonSet {
        DaemonSet {
            metadata: ObjectMeta {
                name: Some("speaker".into()),
                generation: Some(generation),
                ..ObjectMeta::default()
            },
            spec: Default::default(),
            status: counts.map(
                |(observed, desired, current, ready, updated)| DaemonSetStatus {
                    observed_generation: Some(observed),
                    desired_number_scheduled: desired,
                    current_number_scheduled: current,
                    number_ready: ready,
                    updated_number_scheduled: Some(updated),
                    ..DaemonSetStatus::default()
                },
            ),
        }
    }

    #[test]
    fn the_four_conditions_come_in_order_with_one_winner_and_the_generation() {
        let outcome = Outcome::Progressing {
            message: "waiting".into(),
        };
        let conditions = conditions(&outcome, Some(4), &[], &at(100));
        let types: Vec<_> = conditions.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, [AVAILABLE, UPGRADEABLE, PROGRESSING, DEGRADED]);
        let progressing = by_type(&conditions, PROGRESSING);
        assert_eq!(progressing.status, ConditionStatus::True);
        assert_eq!(progressing.reason, "Progressing");
        assert_eq!(progressing.message, "waiting");
        for other in [AVAILABLE, UPGRADEABLE, DEGRADED] {
            let c = by_type(&conditions, other);
            assert_eq!(
                (c.status, c.reason.as_str(), c.message.as_str()),
                (ConditionStatus::False, other, "")
            );
        }
        assert!(conditions.iter().all(|c| c.observed_generation == Some(4)));
    }

    #[test]
    fn upgradeable_is_true_exactly_when_available_is() {
        let available = conditions(
            &Outcome::Available {
                message: "ready".into(),
            },
            Some(1),
            &[],
            &at(1),
        );
        assert_eq!(
            by_type(&available, UPGRADEABLE).status,
            ConditionStatus::True
        );
        assert_eq!(by_type(&available, AVAILABLE).reason, "Available");
        let degraded = conditions(
            &Outcome::Degraded {
                reason: DegradedReason::ApplyFailed,
                message: "refused".into(),
            },
            Some(1),
            &[],
            &at(1),
        );
        assert_eq!(
            by_type(&degraded, UPGRADEABLE).status,
            ConditionStatus::False
        );
    }

    #[test]
    fn degraded_carries_the_specific_reason_and_the_message() {
        let conditions = conditions(
            &Outcome::Degraded {
                reason: DegradedReason::IncorrectMetalLBResourceName,
                message: "Incorrect MetalLB resource name: other".into(),
            },
            Some(1),
            &[],
            &at(1),
        );
        let degraded = by_type(&conditions, DEGRADED);
        assert_eq!(degraded.status, ConditionStatus::True);
        assert_eq!(degraded.reason, "IncorrectMetalLBResourceName");
        assert_eq!(degraded.message, "Incorrect MetalLB resource name: other");
    }

    #[test]
    fn reasons_are_camel_case_words_the_crd_pattern_accepts() {
        // Stricter than metallb_api::condition::REASON_PATTERN: letters and digits only.
        for reason in [
            DegradedReason::IncorrectMetalLBResourceName,
            DegradedReason::InvalidSpec,
            DegradedReason::RenderFailed,
            DegradedReason::ApplyFailed,
        ]
        .map(DegradedReason::as_str)
        .into_iter()
        .chain([AVAILABLE, UPGRADEABLE, PROGRESSING, DEGRADED])
        {
            assert!(
                reason.starts_with(|c: char| c.is_ascii_alphabetic())
                    && reason.chars().all(|c| c.is_ascii_alphanumeric()),
                "{reason}"
            );
        }
    }

    #[test]
    fn transition_times_move_only_when_a_status_changes() {
        let progressing = |m: &str| Outcome::Progressing { message: m.into() };
        let first = conditions(&progressing("1/3 ready"), Some(1), &[], &at(10));
        let second = conditions(&progressing("2/3 ready"), Some(1), &first, &at(20));
        assert_eq!(by_type(&second, PROGRESSING).last_transition_time, at(10));
        assert_eq!(by_type(&second, PROGRESSING).message, "2/3 ready");
        let third = conditions(
            &Outcome::Available {
                message: "ready".into(),
            },
            Some(1),
            &second,
            &at(30),
        );
        assert_eq!(by_type(&third, PROGRESSING).last_transition_time, at(30));
        assert_eq!(by_type(&third, AVAILABLE).last_transition_time, at(30));
        assert_eq!(by_type(&third, DEGRADED).last_transition_time, at(10));
        let again = conditions(
            &Outcome::Available {
                message: "ready".into(),
            },
            Some(1),
            &third,
            &at(40),
        );
        assert_eq!(
            again, third,
            "an unchanged outcome gives identical conditions"
        );
    }

    #[test]
    fn operands_without_status_are_progressing() {
        let outcome = readiness(&deployment(1, None), &daemon_set(1, None));
        assert_eq!(
            outcome,
            Outcome::Progressing {
                message: "waiting for Deployment controller: no status reported yet; DaemonSet speaker: no status reported yet".into()
            }
        );
    }

    #[test]
    fn operands_are_available_when_every_count_matches() {
        let outcome = readiness(
            &deployment(2, Some((2, 1, 1))),
            &daemon_set(3, Some((3, 2, 2, 2, 2))),
        );
        assert_eq!(
            outcome,
            Outcome::Available {
                message: "Deployment controller: 1/1 ready, 1/1 updated; DaemonSet speaker: 2/2 ready, 2/2 updated, 2/2 scheduled".into()
            }
        );
    }

    #[test]
    fn any_lagging_count_or_generation_keeps_it_progressing() {
        let ready_deployment = deployment(1, Some((1, 1, 1)));
        let lagging = [
            (1, Some((1, 3, 3, 2, 3))), // one speaker not ready
            (1, Some((1, 3, 3, 3, 2))), // one speaker not updated
            (1, Some((1, 3, 2, 2, 2))), // one speaker not scheduled
            (2, Some((1, 3, 3, 3, 3))), // new generation not observed
        ];
        for (generation, counts) in lagging {
            let outcome = readiness(&ready_deployment, &daemon_set(generation, counts));
            let Outcome::Progressing { message } = outcome else {
                panic!("{counts:?} must not be available");
            };
            assert!(
                message.starts_with("waiting for DaemonSet speaker: "),
                "{message}"
            );
            assert!(!message.contains("Deployment"), "{message}");
        }
        let outcome = readiness(
            &deployment(1, Some((1, 0, 1))),
            &daemon_set(1, Some((1, 1, 1, 1, 1))),
        );
        assert_eq!(
            outcome,
            Outcome::Progressing {
                message: "waiting for Deployment controller: 0/1 ready, 1/1 updated".into()
            }
        );
    }

    #[test]
    fn a_speaker_set_matching_no_node_says_so() {
        let outcome = readiness(
            &deployment(1, Some((1, 1, 1))),
            &daemon_set(1, Some((1, 0, 0, 0, 0))),
        );
        let Outcome::Available { message } = outcome else {
            panic!("equal counts are ready");
        };
        assert!(
            message.contains("no node matches its nodeSelector"),
            "{message}"
        );
    }
}
