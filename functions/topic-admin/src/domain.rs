//! Pure topic reconciliation: which topics to create, which are already right, and which
//! differences cannot be fixed by this function. No I/O here.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// A topic as the stack wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i16,
}

/// What happens to the topics when CloudFormation deletes the resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeletionPolicy {
    /// Keep the topics and their data (the default, see docs/deploy.md).
    #[default]
    Retain,
    /// Delete the topics with the resource.
    Delete,
}

/// The result of comparing the wanted topics with the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TopicPlan {
    /// Missing topics, in the order they were asked for.
    pub create: Vec<TopicSpec>,
    /// Topics that already exist with the wanted partition count.
    pub unchanged: Vec<String>,
    /// Topics the previous properties had but the new ones do not: kept, never deleted on update.
    pub no_longer_managed: Vec<String>,
}

/// A difference the function refuses to paper over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanProblem {
    InvalidName {
        name: String,
        reason: &'static str,
    },
    InvalidPartitions {
        name: String,
        partitions: i32,
    },
    InvalidReplication {
        name: String,
        replication_factor: i16,
    },
    Duplicate {
        name: String,
    },
    /// The topic exists with another partition count. Kafka cannot shrink a topic, and growing it
    /// re-maps keys to partitions, so it is left to an operator (docs/deploy.md).
    PartitionCountDiffers {
        name: String,
        existing: usize,
        wanted: i32,
    },
    /// The replication factor of an existing topic changed between deployments.
    ReplicationChanged {
        name: String,
        previous: i16,
        wanted: i16,
    },
}

impl fmt::Display for PlanProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidName { name, reason } => write!(f, "topic name {name:?} is invalid: {reason}"),
            Self::InvalidPartitions { name, partitions } => {
                write!(f, "topic {name}: partitions must be at least 1, got {partitions}")
            }
            Self::InvalidReplication {
                name,
                replication_factor,
            } => {
                write!(
                    f,
                    "topic {name}: replication factor must be at least 1, got {replication_factor}"
                )
            }
            Self::Duplicate { name } => write!(f, "topic {name} is listed twice"),
            Self::PartitionCountDiffers {
                name,
                existing,
                wanted,
            } => write!(
                f,
                "topic {name} exists with {existing} partitions but {wanted} are wanted; \
                 topic-admin never changes partition counts (see docs/deploy.md)"
            ),
            Self::ReplicationChanged {
                name,
                previous,
                wanted,
            } => write!(
                f,
                "topic {name}: replication factor changed from {previous} to {wanted}; \
                 reassigning replicas of an existing topic is an operator task (see docs/deploy.md)"
            ),
        }
    }
}

/// Kafka's rule for topic names: 1 to 249 characters from [a-zA-Z0-9._-], not "." or "..".
pub fn validate_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("empty");
    }
    if name.len() > 249 {
        return Err("longer than 249 characters");
    }
    if name == "." || name == ".." {
        return Err("\".\" and \"..\" are reserved");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err("only ASCII letters, digits, '.', '_' and '-' are allowed");
    }
    Ok(())
}

fn validate(desired: &[TopicSpec]) -> Vec<PlanProblem> {
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for spec in desired {
        if let Err(reason) = validate_name(&spec.name) {
            problems.push(PlanProblem::InvalidName {
                name: spec.name.clone(),
                reason,
            });
        }
        if spec.partitions < 1 {
            problems.push(PlanProblem::InvalidPartitions {
                name: spec.name.clone(),
                partitions: spec.partitions,
            });
        }
        if spec.replication_factor < 1 {
            problems.push(PlanProblem::InvalidReplication {
                name: spec.name.clone(),
                replication_factor: spec.replication_factor,
            });
        }
        if !seen.insert(spec.name.as_str()) {
            problems.push(PlanProblem::Duplicate {
                name: spec.name.clone(),
            });
        }
    }
    problems
}

/// Compares the wanted topics with what the cluster has (`existing`: name -> partition count)
/// and, on updates, with the previous properties. Returns every problem at once.
pub fn plan(
    desired: &[TopicSpec],
    existing: &BTreeMap<String, usize>,
    previous: Option<&[TopicSpec]>,
) -> Result<TopicPlan, Vec<PlanProblem>> {
    let mut problems = validate(desired);
    let mut result = TopicPlan::default();
    for spec in desired {
        match existing.get(&spec.name) {
            None => result.create.push(spec.clone()),
            Some(&count) => {
                if i32::try_from(count).ok() != Some(spec.partitions) {
                    problems.push(PlanProblem::PartitionCountDiffers {
                        name: spec.name.clone(),
                        existing: count,
                        wanted: spec.partitions,
                    });
                } else {
                    result.unchanged.push(spec.name.clone());
                }
                let before = previous.and_then(|p| p.iter().find(|old| old.name == spec.name));
                if let Some(old) = before {
                    if old.replication_factor != spec.replication_factor {
                        problems.push(PlanProblem::ReplicationChanged {
                            name: spec.name.clone(),
                            previous: old.replication_factor,
                            wanted: spec.replication_factor,
                        });
                    }
                }
            }
        }
    }
    if let Some(previous) = previous {
        for old in previous {
            if !desired.iter().any(|d| d.name == old.name) {
                result.no_longer_managed.push(old.name.clone());
            }
        }
    }
    if problems.is_empty() {
        Ok(result)
    } else {
        Err(problems)
    }
}

/// Names of wanted topics the cluster does not show yet with the wanted partition count.
pub fn not_yet_visible(desired: &[TopicSpec], existing: &BTreeMap<String, usize>) -> Vec<String> {
    desired
        .iter()
        .filter(|spec| existing.get(&spec.name).and_then(|c| i32::try_from(*c).ok()) != Some(spec.partitions))
        .map(|spec| spec.name.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, partitions: i32, rf: i16) -> TopicSpec {
        TopicSpec {
            name: name.into(),
            partitions,
            replication_factor: rf,
        }
    }

    fn cluster(topics: &[(&str, usize)]) -> BTreeMap<String, usize> {
        topics.iter().map(|(n, c)| (n.to_string(), *c)).collect()
    }

    #[test]
    fn creates_only_missing_topics() {
        let desired = [spec("a", 4, 3), spec("b", 2, 3)];
        let plan = plan(&desired, &cluster(&[("a", 4), ("other", 1)]), None).unwrap();
        assert_eq!(plan.create, vec![spec("b", 2, 3)]);
        assert_eq!(plan.unchanged, vec!["a".to_string()]);
        assert!(plan.no_longer_managed.is_empty());
    }

    #[test]
    fn second_run_is_a_no_op() {
        let desired = [spec("a", 4, 3), spec("b", 2, 3)];
        let plan = plan(&desired, &cluster(&[("a", 4), ("b", 2)]), Some(&desired)).unwrap();
        assert!(plan.create.is_empty());
        assert_eq!(plan.unchanged.len(), 2);
    }

    #[test]
    fn refuses_partition_changes_of_existing_topics() {
        let problems = plan(&[spec("a", 8, 3)], &cluster(&[("a", 4)]), None).unwrap_err();
        assert_eq!(
            problems,
            vec![PlanProblem::PartitionCountDiffers {
                name: "a".into(),
                existing: 4,
                wanted: 8
            }]
        );
        assert!(problems[0].to_string().contains("4 partitions but 8"));
    }

    #[test]
    fn refuses_replication_changes_of_existing_topics() {
        let previous = [spec("a", 4, 3)];
        let problems = plan(&[spec("a", 4, 2)], &cluster(&[("a", 4)]), Some(&previous)).unwrap_err();
        assert_eq!(
            problems,
            vec![PlanProblem::ReplicationChanged {
                name: "a".into(),
                previous: 3,
                wanted: 2
            }]
        );
    }

    #[test]
    fn replication_change_of_a_missing_topic_just_creates_it() {
        let previous = [spec("a", 4, 3)];
        let plan = plan(&[spec("a", 4, 2)], &cluster(&[]), Some(&previous)).unwrap();
        assert_eq!(plan.create, vec![spec("a", 4, 2)]);
    }

    #[test]
    fn removed_topics_are_kept_and_reported() {
        let previous = [spec("a", 4, 3), spec("old", 1, 3)];
        let plan = plan(
            &[spec("a", 4, 3)],
            &cluster(&[("a", 4), ("old", 1)]),
            Some(&previous),
        )
        .unwrap();
        assert_eq!(plan.no_longer_managed, vec!["old".to_string()]);
        assert!(plan.create.is_empty());
    }

    #[test]
    fn reports_every_invalid_spec_at_once() {
        let desired = [
            spec("bad name", 0, 0),
            spec("a", 1, 1),
            spec("a", 1, 1),
            spec("..", 1, 1),
        ];
        let problems = plan(&desired, &cluster(&[]), None).unwrap_err();
        assert_eq!(problems.len(), 5, "{problems:?}");
    }

    #[test]
    fn topic_name_rules() {
        assert!(validate_name("sensor-readings").is_ok());
        assert!(validate_name("a.b_c-1").is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name(&"x".repeat(250)).is_err());
        assert!(validate_name("é").is_err());
        assert!(validate_name(".").is_err());
    }

    #[test]
    fn visibility_requires_the_wanted_partition_count() {
        let desired = [spec("a", 4, 3), spec("b", 2, 3)];
        assert_eq!(
            not_yet_visible(&desired, &cluster(&[("a", 4), ("b", 1)])),
            vec!["b".to_string()]
        );
        assert!(not_yet_visible(&desired, &cluster(&[("a", 4), ("b", 2)])).is_empty());
    }
}
