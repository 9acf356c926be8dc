//! Create / Update / Delete orchestration. Create and Update are idempotent: they create what is
//! missing, bring drifted topic configs back to the stack's values, grant the consumer's ACLs,
//! accept what already matches, refuse what they cannot change, and return only when the
//! metadata shows every topic (so no consumer can race a half-created topic).

use std::collections::BTreeMap;
use std::time::Duration;

use thiserror::Error;
use tracing::{info, warn};

use crate::domain::{self, DeletionPolicy, PlanProblem, TopicSpec};
use crate::event::{ProviderResponse, Request, TopicsProperties};
use crate::ports::{AdminError, Connector, TopicAdmin};

#[derive(Debug, Error)]
pub enum HandlerError {
    #[error("{}", join_problems(.0))]
    Plan(Vec<PlanProblem>),
    #[error(transparent)]
    Admin(#[from] AdminError),
    #[error("topics not visible in the cluster metadata after {waited:?}: {topics:?}")]
    NotVisible { topics: Vec<String>, waited: Duration },
}

fn join_problems(problems: &[PlanProblem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// How long Create/Update wait for new topics to appear in the metadata.
#[derive(Debug, Clone, Copy)]
pub struct VisibilityWait {
    pub attempts: u32,
    pub interval: Duration,
}

impl Default for VisibilityWait {
    fn default() -> Self {
        Self {
            attempts: 30,
            interval: Duration::from_secs(2),
        }
    }
}

/// Prefix of the physical id; the id stays the same across updates so CloudFormation never
/// issues a Delete for a replaced resource.
pub const PHYSICAL_ID_PREFIX: &str = "kafka-topics/";

pub async fn handle<C: Connector>(
    request: Request,
    connector: &C,
    wait: VisibilityWait,
) -> Result<ProviderResponse, HandlerError> {
    match request {
        Request::Create {
            logical_resource_id,
            properties,
        } => {
            let id = format!("{PHYSICAL_ID_PREFIX}{logical_resource_id}");
            ensure_topics(id, &properties, None, connector, wait).await
        }
        Request::Update {
            physical_resource_id,
            properties,
            previous,
        } => {
            let previous_topics = previous.as_ref().map(|p| p.topics.as_slice());
            ensure_topics(
                physical_resource_id,
                &properties,
                previous_topics,
                connector,
                wait,
            )
            .await
        }
        Request::Delete {
            physical_resource_id,
            properties,
        } => delete(physical_resource_id, &properties, connector).await,
    }
}

async fn ensure_topics<C: Connector>(
    physical_resource_id: String,
    properties: &TopicsProperties,
    previous: Option<&[TopicSpec]>,
    connector: &C,
    wait: VisibilityWait,
) -> Result<ProviderResponse, HandlerError> {
    let admin = connector.connect(&properties.connection).await?;
    let existing = admin.list_topics().await?;
    let plan = domain::plan(&properties.topics, &existing, previous).map_err(HandlerError::Plan)?;
    if !plan.no_longer_managed.is_empty() {
        warn!(topics = ?plan.no_longer_managed, "topics removed from the stack are kept in the cluster");
    }

    let mut created = Vec::new();
    for spec in &plan.create {
        match admin.create_topic(spec).await {
            Ok(()) => {
                info!(topic = %spec.name, partitions = spec.partitions, replication_factor = spec.replication_factor, configs = ?spec.configs, "created topic");
                created.push(spec.name.clone());
            }
            // Someone created it between our listing and our request: the visibility check
            // below verifies its partition count like any other existing topic.
            Err(AdminError::AlreadyExists(name)) => info!(topic = %name, "topic appeared concurrently"),
            Err(e) => return Err(e.into()),
        }
    }

    let mut waiting = Vec::new();
    for attempt in 0..wait.attempts.max(1) {
        let existing = admin.list_topics().await?;
        if let Err(problems) = domain::plan(&properties.topics, &existing, previous) {
            return Err(HandlerError::Plan(problems));
        }
        waiting = domain::not_yet_visible(&properties.topics, &existing);
        if waiting.is_empty() {
            break;
        }
        if attempt + 1 < wait.attempts {
            tokio::time::sleep(wait.interval).await;
        }
    }
    if !waiting.is_empty() {
        return Err(HandlerError::NotVisible {
            topics: waiting,
            waited: wait.interval * wait.attempts,
        });
    }

    // Existing topics may have been created elsewhere or altered by hand: converge their configs.
    let actual = admin
        .describe_topic_configs(&names_owned(&properties.topics))
        .await?;
    let changes = domain::config_changes(&properties.topics, previous, &actual);
    for change in &changes {
        admin
            .alter_topic_configs(&change.topic, &change.set, &change.reset)
            .await?;
        info!(topic = %change.topic, set = ?change.set, reset = ?change.reset, "topic configs updated");
    }
    let reconfigured: Vec<String> = changes.into_iter().map(|c| c.topic).collect();

    if let Some(access) = &properties.consumer_access {
        let acls = domain::consumer_acls(access, &properties.topics);
        admin.create_acls(&acls).await?;
        info!(principal = %access.principal, rules = acls.len(), "consumer ACLs in place");
    }
    info!(created = ?created, reconfigured = ?reconfigured, unchanged = ?plan.unchanged, "topics ready");
    let mut response = response(physical_resource_id, properties, &created);
    response
        .data
        .insert("Reconfigured".into(), reconfigured.join(","));
    Ok(response)
}

async fn delete<C: Connector>(
    physical_resource_id: String,
    properties: &TopicsProperties,
    connector: &C,
) -> Result<ProviderResponse, HandlerError> {
    if properties.deletion_policy == DeletionPolicy::Retain {
        info!(topics = ?names(&properties.topics), "deletion policy is retain: topics and their data are kept");
        return Ok(response(physical_resource_id, properties, &[]));
    }
    let admin = connector.connect(&properties.connection).await?;
    if let Some(access) = &properties.consumer_access {
        admin
            .delete_acls(&domain::consumer_acls(access, &properties.topics))
            .await?;
        info!(principal = %access.principal, "consumer ACLs removed");
    }
    for spec in &properties.topics {
        match admin.delete_topic(&spec.name).await {
            Ok(()) => info!(topic = %spec.name, "deleted topic"),
            Err(AdminError::UnknownTopic(name)) => info!(topic = %name, "topic already gone"),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(response(physical_resource_id, properties, &[]))
}

fn names(topics: &[TopicSpec]) -> Vec<&str> {
    topics.iter().map(|t| t.name.as_str()).collect()
}

fn names_owned(topics: &[TopicSpec]) -> Vec<String> {
    topics.iter().map(|t| t.name.clone()).collect()
}

fn response(
    physical_resource_id: String,
    properties: &TopicsProperties,
    created: &[String],
) -> ProviderResponse {
    let data = BTreeMap::from([
        ("Topics".to_string(), names(&properties.topics).join(",")),
        ("Created".to_string(), created.join(",")),
    ]);
    ProviderResponse {
        physical_resource_id,
        data,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::domain::{AclBinding, ConsumerAccess};
    use crate::event::{Auth, ConnectionSettings};

    #[derive(Debug, Clone, PartialEq, Eq)]
    struct FakeTopic {
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
    }

    /// An in-memory cluster.
    #[derive(Default, Clone)]
    struct FakeCluster {
        topics: Arc<Mutex<BTreeMap<String, FakeTopic>>>,
        acls: Arc<Mutex<BTreeSet<AclBinding>>>,
        connects: Arc<Mutex<u32>>,
        alters: Arc<Mutex<u32>>,
        /// Topics that "appear" only after this many list calls (slow metadata propagation).
        lagging_lists: Arc<Mutex<u32>>,
    }

    impl FakeCluster {
        fn with(topics: &[(&str, i32)]) -> Self {
            let cluster = Self::default();
            for (name, partitions) in topics {
                cluster.topics.lock().unwrap().insert(
                    (*name).into(),
                    FakeTopic {
                        partitions: *partitions,
                        replication_factor: 3,
                        configs: BTreeMap::new(),
                    },
                );
            }
            cluster
        }
        fn snapshot(&self) -> BTreeMap<String, FakeTopic> {
            self.topics.lock().unwrap().clone()
        }
        fn configs(&self, name: &str) -> BTreeMap<String, String> {
            self.topics.lock().unwrap()[name].configs.clone()
        }
    }

    impl TopicAdmin for FakeCluster {
        async fn list_topics(&self) -> Result<BTreeMap<String, usize>, AdminError> {
            let mut lag = self.lagging_lists.lock().unwrap();
            if *lag > 0 {
                *lag -= 1;
                return Ok(BTreeMap::new());
            }
            Ok(self
                .topics
                .lock()
                .unwrap()
                .iter()
                .map(|(n, t)| (n.clone(), t.partitions as usize))
                .collect())
        }
        async fn create_topic(&self, spec: &TopicSpec) -> Result<(), AdminError> {
            let mut topics = self.topics.lock().unwrap();
            if topics.contains_key(&spec.name) {
                return Err(AdminError::AlreadyExists(spec.name.clone()));
            }
            topics.insert(
                spec.name.clone(),
                FakeTopic {
                    partitions: spec.partitions,
                    replication_factor: spec.replication_factor,
                    configs: spec.configs.clone(),
                },
            );
            Ok(())
        }
        async fn describe_topic_configs(
            &self,
            names: &[String],
        ) -> Result<BTreeMap<String, BTreeMap<String, String>>, AdminError> {
            let topics = self.topics.lock().unwrap();
            names
                .iter()
                .map(|n| {
                    topics
                        .get(n)
                        .map(|t| (n.clone(), t.configs.clone()))
                        .ok_or_else(|| AdminError::UnknownTopic(n.clone()))
                })
                .collect()
        }
        async fn alter_topic_configs(
            &self,
            name: &str,
            set: &BTreeMap<String, String>,
            reset: &[String],
        ) -> Result<(), AdminError> {
            *self.alters.lock().unwrap() += 1;
            let mut topics = self.topics.lock().unwrap();
            let topic = topics
                .get_mut(name)
                .ok_or_else(|| AdminError::UnknownTopic(name.into()))?;
            topic.configs.extend(set.clone());
            for key in reset {
                topic.configs.remove(key);
            }
            Ok(())
        }
        async fn delete_topic(&self, name: &str) -> Result<(), AdminError> {
            self.topics
                .lock()
                .unwrap()
                .remove(name)
                .map(|_| ())
                .ok_or_else(|| AdminError::UnknownTopic(name.into()))
        }
        async fn create_acls(&self, acls: &[AclBinding]) -> Result<(), AdminError> {
            self.acls.lock().unwrap().extend(acls.iter().cloned());
            Ok(())
        }
        async fn delete_acls(&self, acls: &[AclBinding]) -> Result<(), AdminError> {
            let mut held = self.acls.lock().unwrap();
            for acl in acls {
                held.remove(acl);
            }
            Ok(())
        }
    }

    impl Connector for FakeCluster {
        type Admin = FakeCluster;
        async fn connect(&self, _settings: &ConnectionSettings) -> Result<FakeCluster, AdminError> {
            *self.connects.lock().unwrap() += 1;
            Ok(self.clone())
        }
    }

    const FAST: VisibilityWait = VisibilityWait {
        attempts: 5,
        interval: Duration::from_millis(1),
    };

    fn props(topics: &[(&str, i32, i16)], deletion: DeletionPolicy) -> TopicsProperties {
        TopicsProperties {
            connection: ConnectionSettings {
                bootstrap_servers: vec!["localhost:9092".into()],
                auth: Auth::None,
                tls: false,
            },
            deletion_policy: deletion,
            topics: topics
                .iter()
                .map(|(n, p, r)| TopicSpec {
                    name: (*n).into(),
                    partitions: *p,
                    replication_factor: *r,
                    configs: BTreeMap::from([("retention.ms".to_string(), "1000".to_string())]),
                })
                .collect(),
            consumer_access: None,
        }
    }

    async fn create(cluster: &FakeCluster, properties: TopicsProperties) -> ProviderResponse {
        let request = Request::Create {
            logical_resource_id: "T".into(),
            properties,
        };
        handle(request, cluster, FAST).await.unwrap()
    }

    fn with_access(mut properties: TopicsProperties) -> TopicsProperties {
        properties.consumer_access = Some(ConsumerAccess {
            principal: "User:consumer".into(),
            groups: vec!["group".into()],
        });
        properties
    }

    #[tokio::test]
    async fn create_sets_configs_and_grants_the_consumer_acls() {
        let cluster = FakeCluster::default();
        let response = create(
            &cluster,
            with_access(props(&[("a", 2, 3)], DeletionPolicy::Retain)),
        )
        .await;
        assert_eq!(cluster.configs("a")["retention.ms"], "1000");
        assert_eq!(
            response.data["Reconfigured"], "",
            "created with its configs: nothing to alter"
        );
        assert_eq!(*cluster.alters.lock().unwrap(), 0);
        assert_eq!(cluster.acls.lock().unwrap().len(), 2 + 2 + 1);
    }

    #[tokio::test]
    async fn update_converges_drifted_configs_once() {
        let cluster = FakeCluster::with(&[("a", 2)]);
        cluster
            .topics
            .lock()
            .unwrap()
            .get_mut("a")
            .unwrap()
            .configs
            .insert("retention.ms".into(), "5".into());
        let p = props(&[("a", 2, 3)], DeletionPolicy::Retain);
        let update = |p: TopicsProperties| Request::Update {
            physical_resource_id: "kafka-topics/T".into(),
            properties: p.clone(),
            previous: Some(p),
        };
        let response = handle(update(p.clone()), &cluster, FAST).await.unwrap();
        assert_eq!(response.data["Reconfigured"], "a");
        assert_eq!(cluster.configs("a")["retention.ms"], "1000");
        handle(update(p), &cluster, FAST).await.unwrap();
        assert_eq!(
            *cluster.alters.lock().unwrap(),
            1,
            "a converged topic is not altered again"
        );
    }

    #[tokio::test]
    async fn deleting_with_the_delete_policy_also_revokes_the_acls() {
        let cluster = FakeCluster::default();
        let p = with_access(props(&[("a", 1, 1)], DeletionPolicy::Delete));
        create(&cluster, p.clone()).await;
        assert!(!cluster.acls.lock().unwrap().is_empty());
        handle(
            Request::Delete {
                physical_resource_id: "kafka-topics/T".into(),
                properties: p,
            },
            &cluster,
            FAST,
        )
        .await
        .unwrap();
        assert!(cluster.acls.lock().unwrap().is_empty());
        assert!(cluster.snapshot().is_empty());
    }

    #[tokio::test]
    async fn create_makes_missing_topics_and_keeps_existing_ones() {
        let cluster = FakeCluster::with(&[("a", 4)]);
        let request = Request::Create {
            logical_resource_id: "Topics".into(),
            properties: props(&[("a", 4, 3), ("b", 2, 3)], DeletionPolicy::Retain),
        };
        let response = handle(request, &cluster, FAST).await.unwrap();
        assert_eq!(response.physical_resource_id, "kafka-topics/Topics");
        assert_eq!(response.data["Created"], "b");
        assert_eq!(response.data["Topics"], "a,b");
        let b = &cluster.snapshot()["b"];
        assert_eq!((b.partitions, b.replication_factor), (2, 3));
    }

    #[tokio::test]
    async fn repeating_an_update_changes_nothing_and_keeps_the_physical_id() {
        let cluster = FakeCluster::default();
        let p = props(&[("a", 4, 3)], DeletionPolicy::Retain);
        create(&cluster, p.clone()).await;
        let before = cluster.snapshot();
        let update = Request::Update {
            physical_resource_id: "kafka-topics/T".into(),
            properties: p.clone(),
            previous: Some(p),
        };
        let response = handle(update, &cluster, FAST).await.unwrap();
        assert_eq!(response.physical_resource_id, "kafka-topics/T");
        assert_eq!(response.data["Created"], "");
        assert_eq!(cluster.snapshot(), before);
    }

    #[tokio::test]
    async fn update_refuses_a_partition_change_and_touches_nothing() {
        let cluster = FakeCluster::with(&[("a", 4)]);
        let update = Request::Update {
            physical_resource_id: "kafka-topics/T".into(),
            properties: props(&[("a", 8, 3), ("b", 1, 3)], DeletionPolicy::Retain),
            previous: Some(props(&[("a", 4, 3)], DeletionPolicy::Retain)),
        };
        let err = handle(update, &cluster, FAST).await.unwrap_err();
        assert!(
            err.to_string()
                .contains("exists with 4 partitions but 8 are wanted"),
            "{err}"
        );
        assert!(
            !cluster.snapshot().contains_key("b"),
            "nothing is created when the plan is refused"
        );
    }

    #[tokio::test]
    async fn waits_until_metadata_shows_the_new_topics() {
        let cluster = FakeCluster::default();
        *cluster.lagging_lists.lock().unwrap() = 3; // first list + two lagging visibility checks
        let request = Request::Create {
            logical_resource_id: "T".into(),
            properties: props(&[("a", 1, 1)], DeletionPolicy::Retain),
        };
        handle(request, &cluster, FAST).await.unwrap();
    }

    #[tokio::test]
    async fn fails_when_topics_never_become_visible() {
        let cluster = FakeCluster::default();
        *cluster.lagging_lists.lock().unwrap() = 100;
        let request = Request::Create {
            logical_resource_id: "T".into(),
            properties: props(&[("a", 1, 1)], DeletionPolicy::Retain),
        };
        let err = handle(request, &cluster, FAST).await.unwrap_err();
        assert!(matches!(err, HandlerError::NotVisible { .. }), "{err}");
    }

    #[tokio::test]
    async fn retained_delete_keeps_topics_and_never_connects() {
        let cluster = FakeCluster::with(&[("a", 4)]);
        let request = Request::Delete {
            physical_resource_id: "kafka-topics/T".into(),
            properties: props(&[("a", 4, 3)], DeletionPolicy::Retain),
        };
        handle(request, &cluster, FAST).await.unwrap();
        assert!(cluster.snapshot().contains_key("a"));
        assert_eq!(*cluster.connects.lock().unwrap(), 0);
    }

    #[tokio::test]
    async fn delete_policy_removes_topics_and_tolerates_missing_ones() {
        let cluster = FakeCluster::with(&[("a", 4)]);
        let request = Request::Delete {
            physical_resource_id: "kafka-topics/T".into(),
            properties: props(&[("a", 4, 3), ("gone", 1, 3)], DeletionPolicy::Delete),
        };
        handle(request, &cluster, FAST).await.unwrap();
        assert!(cluster.snapshot().is_empty());
    }
}
