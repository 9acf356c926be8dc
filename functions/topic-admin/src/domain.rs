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
    /// Topic-level configs (e.g. retention.ms) the topic must have; other keys keep the broker's
    /// defaults.
    pub configs: BTreeMap<String, String>,
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
    /// A config key or value that Kafka would reject or that cannot be compared.
    InvalidConfig {
        name: String,
        key: String,
        reason: &'static str,
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
            Self::InvalidConfig { name, key, reason } => {
                write!(f, "topic {name}: config {key:?} is invalid: {reason}")
            }
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
        for (key, value) in &spec.configs {
            let reason = if key.is_empty()
                || !key
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.')
            {
                Some("keys are lower-case words separated by dots, like retention.ms")
            } else if value.is_empty() {
                Some("the value is empty")
            } else {
                None
            };
            if let Some(reason) = reason {
                problems.push(PlanProblem::InvalidConfig {
                    name: spec.name.clone(),
                    key: key.clone(),
                    reason,
                });
            }
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

/// Config keys to set and to reset to the broker default on one existing topic.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConfigChange {
    pub topic: String,
    pub set: BTreeMap<String, String>,
    /// Keys an earlier deployment set that the stack no longer names.
    pub reset: Vec<String>,
}

/// Compares each wanted topic's configs with what the cluster reports (`actual`: topic -> key ->
/// value) and, on updates, with the previous properties. Topics already right yield no change,
/// so repeating a deployment sends nothing.
pub fn config_changes(
    desired: &[TopicSpec],
    previous: Option<&[TopicSpec]>,
    actual: &BTreeMap<String, BTreeMap<String, String>>,
) -> Vec<ConfigChange> {
    let empty = BTreeMap::new();
    let mut changes = Vec::new();
    for spec in desired {
        let current = actual.get(&spec.name).unwrap_or(&empty);
        let set: BTreeMap<String, String> = spec
            .configs
            .iter()
            .filter(|(key, value)| current.get(*key) != Some(*value))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect();
        let reset: Vec<String> = previous
            .and_then(|p| p.iter().find(|old| old.name == spec.name))
            .map(|old| {
                old.configs
                    .keys()
                    .filter(|key| !spec.configs.contains_key(*key))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        if !set.is_empty() || !reset.is_empty() {
            changes.push(ConfigChange {
                topic: spec.name.clone(),
                set,
                reset,
            });
        }
    }
    changes
}

/// What a Kafka ACL applies to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum AclResource {
    Topic(String),
    Group(String),
    Cluster,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AclOperation {
    Read,
    Describe,
    DescribeConfigs,
}

/// One ALLOW rule for a principal on a literal resource, from any host.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct AclBinding {
    pub resource: AclResource,
    pub principal: String,
    pub operation: AclOperation,
}

/// The SASL/SCRAM user of the consumer account and the consumer groups its event source
/// mappings use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerAccess {
    /// A Kafka principal, `User:<name>`.
    pub principal: String,
    pub groups: Vec<String>,
}

/// The least a Lambda Kafka event source mapping needs to consume `topics` with `access.groups`:
/// read and describe the topics, join and commit in its groups, and read the cluster's dynamic
/// configuration. Nothing else: no write, create, delete or alter.
pub fn consumer_acls(access: &ConsumerAccess, topics: &[TopicSpec]) -> Vec<AclBinding> {
    let rule = |resource: AclResource, operation| AclBinding {
        resource,
        principal: access.principal.clone(),
        operation,
    };
    let mut acls = Vec::new();
    for topic in topics {
        acls.push(rule(AclResource::Topic(topic.name.clone()), AclOperation::Read));
        acls.push(rule(
            AclResource::Topic(topic.name.clone()),
            AclOperation::Describe,
        ));
    }
    for group in &access.groups {
        acls.push(rule(AclResource::Group(group.clone()), AclOperation::Read));
        acls.push(rule(AclResource::Group(group.clone()), AclOperation::Describe));
    }
    acls.push(rule(AclResource::Cluster, AclOperation::DescribeConfigs));
    acls
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, partitions: i32, rf: i16) -> TopicSpec {
        TopicSpec {
            name: name.into(),
            partitions,
            replication_factor: rf,
            configs: BTreeMap::new(),
        }
    }

    fn with_configs(mut spec: TopicSpec, configs: &[(&str, &str)]) -> TopicSpec {
        spec.configs = configs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        spec
    }

    fn actual(topics: &[(&str, &[(&str, &str)])]) -> BTreeMap<String, BTreeMap<String, String>> {
        topics
            .iter()
            .map(|(name, configs)| {
                (
                    name.to_string(),
                    configs
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                )
            })
            .collect()
    }

    #[test]
    fn configs_already_in_place_need_no_change() {
        let desired = [with_configs(spec("a", 1, 1), &[("retention.ms", "100")])];
        let cluster = actual(&[("a", &[("retention.ms", "100"), ("cleanup.policy", "delete")])]);
        assert!(config_changes(&desired, Some(&desired), &cluster).is_empty());
    }

    #[test]
    fn drifted_or_missing_configs_are_set() {
        let desired = [with_configs(
            spec("a", 1, 1),
            &[("retention.ms", "100"), ("min.insync.replicas", "2")],
        )];
        let cluster = actual(&[("a", &[("retention.ms", "5")])]);
        let changes = config_changes(&desired, None, &cluster);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].topic, "a");
        assert_eq!(
            changes[0]
                .set
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect::<Vec<_>>(),
            vec![("min.insync.replicas", "2"), ("retention.ms", "100")]
        );
        assert!(changes[0].reset.is_empty());
    }

    #[test]
    fn keys_dropped_from_the_stack_are_reset_to_the_default() {
        let previous = [with_configs(
            spec("a", 1, 1),
            &[("retention.ms", "100"), ("segment.ms", "9")],
        )];
        let desired = [with_configs(spec("a", 1, 1), &[("retention.ms", "100")])];
        let cluster = actual(&[("a", &[("retention.ms", "100"), ("segment.ms", "9")])]);
        let changes = config_changes(&desired, Some(&previous), &cluster);
        assert_eq!(changes.len(), 1);
        assert!(changes[0].set.is_empty());
        assert_eq!(changes[0].reset, vec!["segment.ms".to_string()]);
    }

    #[test]
    fn invalid_config_keys_and_values_are_refused() {
        let desired = [with_configs(
            spec("a", 1, 1),
            &[("Retention MS", "1"), ("retention.ms", "")],
        )];
        let problems = plan(&desired, &cluster(&[]), None).unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].to_string().contains("config"));
    }

    #[test]
    fn consumer_acls_grant_read_and_describe_only() {
        let access = ConsumerAccess {
            principal: "User:consumer".into(),
            groups: vec!["g1".into()],
        };
        let acls = consumer_acls(&access, &[spec("t1", 1, 1), spec("t2", 1, 1)]);
        assert_eq!(acls.len(), 2 * 2 + 2 + 1);
        assert!(acls.iter().all(|a| a.principal == "User:consumer"));
        assert!(acls.contains(&AclBinding {
            resource: AclResource::Topic("t2".into()),
            principal: "User:consumer".into(),
            operation: AclOperation::Read,
        }));
        assert!(acls.contains(&AclBinding {
            resource: AclResource::Group("g1".into()),
            principal: "User:consumer".into(),
            operation: AclOperation::Read,
        }));
        assert_eq!(
            acls.iter().filter(|a| a.resource == AclResource::Cluster).count(),
            1,
            "only DescribeConfigs on the cluster"
        );
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
