//! Figure 6: duration per batch at Lambda's CPU share. Our consumer binary and the seed as a
//! Python process each run as a function against the local runtime API ([`crate::lambda_api`]),
//! writing into the local stack, under the CPU quota of a Lambda memory size
//! ([`crate::cgroup`]). Each run is a fresh process given one batch; ours writes into a fresh
//! window table each time, so every run is a first delivery, not a replay. The seed's `put_item`s
//! overwrite, so one table serves all its runs.
//!
//! With a recording proxy in front of moto, each case is also run once more through it, at the
//! largest memory size, and the calls of that invocation are metered in AWS's billing units
//! ([`crate::meter`]): the request side of the cost model.

use std::path::PathBuf;
use std::sync::Arc;

use crate::dynamo::FreshTables;
use serde_json::json;

use crate::cgroup::LambdaCpuShare;
use crate::lambda_api::{run_once, Outcome, Spawn};
use crate::manifest::{EventFile, Manifest};
use crate::timing::Timing;

pub struct ShareRun {
    pub events: PathBuf,
    pub memory_mb: Vec<u32>,
    pub runs: usize,
    pub consumer: PathBuf,
    /// The seed's runtime loop (`bench/python/seed_lambda.py`) and the Python that runs it.
    pub python: PathBuf,
    pub seed_lambda: PathBuf,
    /// A table of the seed's shape, created by the caller.
    pub seed_table: String,
    pub log: PathBuf,
    /// `(endpoint, recording)`: a recording proxy in front of moto and the file it appends to.
    pub metered: Option<(String, PathBuf)>,
    pub timeout: std::time::Duration,
}

#[derive(Clone, Copy, PartialEq)]
enum Side {
    Ours,
    Seed,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Ours => "ours",
            Side::Seed => "seed_python",
        }
    }
}

struct Case<'a> {
    side: Side,
    file: &'a EventFile,
    body: Arc<Vec<u8>>,
}

fn emit(value: serde_json::Value) {
    println!("{value}");
}

impl ShareRun {
    fn spawn(&self, case: &Case, memory_mb: u32, tables: Option<&FreshTables>) -> Spawn {
        let mut env = vec![
            (
                "AWS_LAMBDA_FUNCTION_NAME".to_string(),
                format!("share-{}", case.side.name()),
            ),
            (
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE".to_string(),
                memory_mb.to_string(),
            ),
            ("AWS_LAMBDA_FUNCTION_VERSION".to_string(), "$LATEST".to_string()),
        ];
        let (program, args) = match case.side {
            Side::Ours => {
                env.extend(tables.map(FreshTables::env).unwrap_or_default());
                (self.consumer.clone(), vec![])
            }
            Side::Seed => {
                env.push(("DYNAMODB_TABLE_NAME".to_string(), self.seed_table.clone()));
                (self.python.clone(), vec![self.seed_lambda.display().to_string()])
            }
        };
        Spawn {
            program,
            args,
            env,
            log: self.log.clone(),
            cpu_share: None,
        }
    }

    /// One cold process given the batch once; ours into a fresh window table.
    async fn invoke(
        &self,
        client: &aws_sdk_dynamodb::Client,
        case: &Case<'_>,
        memory_mb: u32,
        share: Option<Arc<LambdaCpuShare>>,
        endpoint: Option<&str>,
    ) -> anyhow::Result<Outcome> {
        let tables = match case.side {
            Side::Ours => Some(FreshTables::create(client, "share").await?),
            Side::Seed => None,
        };
        let mut spawn = self.spawn(case, memory_mb, tables.as_ref());
        spawn.cpu_share = share;
        if let Some(endpoint) = endpoint {
            spawn
                .env
                .push(("AWS_ENDPOINT_URL".to_string(), endpoint.to_string()));
        }
        let outcome = run_once(&spawn, Some(case.body.clone()), self.timeout).await;
        if let Some(tables) = &tables {
            tables.delete(client).await?;
        }
        let outcome = outcome?;
        match &outcome.result {
            Some((kind, _)) if kind == "response" => Ok(outcome),
            Some((kind, text)) => anyhow::bail!(
                "{} on {}: the function answered {kind}: {}",
                case.side.name(),
                case.file.label(),
                String::from_utf8_lossy(text)
            ),
            None => anyhow::bail!("{} on {}: no response", case.side.name(), case.file.label()),
        }
    }

    pub async fn run(&self, sdk: &aws_config::SdkConfig) -> anyhow::Result<()> {
        if let Err(error) = LambdaCpuShare::probe() {
            // Not faked: the figure is absent from the table, with the reason.
            eprintln!("[share] skipped: {error}");
            emit(json!({"figure": "share", "skipped": error.to_string()}));
            return Ok(());
        }
        let client = aws_sdk_dynamodb::Client::new(sdk);
        let manifest = Manifest::load(&self.events)?;
        let mut cases = Vec::new();
        for file in &manifest.events {
            let body = Arc::new(std::fs::read(file.path(&self.events))?);
            cases.push(Case {
                side: Side::Ours,
                file,
                body: body.clone(),
            });
            if file.format == "json" {
                cases.push(Case {
                    side: Side::Seed,
                    file,
                    body,
                });
            }
        }
        for &memory_mb in &self.memory_mb {
            for case in &cases {
                let share = Arc::new(LambdaCpuShare::create(case.side.name(), memory_mb)?);
                let mut invokes = Vec::new();
                let mut cpus = Vec::new();
                for _ in 0..self.runs.max(1) {
                    let outcome = self
                        .invoke(&client, case, memory_mb, Some(share.clone()), None)
                        .await?;
                    invokes.extend(outcome.invoke);
                    cpus.extend(outcome.invoke_cpu);
                }
                let throttled = share.throttled_periods()?;
                let invoke = Timing::from_samples(invokes);
                let cpu = Timing::from_samples(cpus);
                eprintln!(
                    "[share] {:<22} {:<11} {memory_mb:>5} MB (quota {:>6} us per {} us): invoke best {:>9.1} ms (median {:.1}), CPU {:.1} ms, throttled in {throttled} periods",
                    case.file.label(),
                    case.side.name(),
                    share.quota_us,
                    crate::cgroup::CFS_PERIOD_US,
                    invoke.best_ms,
                    invoke.median_ms,
                    cpu.best_ms,
                );
                emit(
                    json!({"figure": "share", "impl": case.side.name(), "batch": case.file.batch,
                            "format": case.file.format, "records": case.file.records,
                            "bytes": case.file.bytes, "memory_mb": memory_mb,
                            "quota_us": share.quota_us, "period_us": crate::cgroup::CFS_PERIOD_US,
                            "invoke": invoke, "cpu": cpu, "throttled_periods": throttled}),
                );
            }
        }
        if let Some((endpoint, recording)) = &self.metered {
            let memory_mb = self.memory_mb.iter().copied().max().unwrap_or(1_769);
            for case in &cases {
                let outcome = self
                    .invoke(&client, case, memory_mb, None, Some(endpoint))
                    .await?;
                let (from, to) = outcome
                    .invoke_window
                    .ok_or_else(|| anyhow::anyhow!("no invocation window"))?;
                let usage = crate::meter::usage(&std::fs::read_to_string(recording)?, from, to)?;
                eprintln!(
                    "[share] {:<22} {:<11} sends per batch: {} DynamoDB write units, {} read units, S3 {} PUT-class and {} GET-class, SQS {} requests; calls {:?}",
                    case.file.label(),
                    case.side.name(),
                    usage.dynamodb_write_units,
                    usage.dynamodb_read_units,
                    usage.s3_put_class,
                    usage.s3_get_class,
                    usage.sqs_billed_requests,
                    usage.calls,
                );
                emit(
                    json!({"figure": "share_usage", "impl": case.side.name(), "batch": case.file.batch,
                            "format": case.file.format, "records": case.file.records,
                            "usage": usage}),
                );
            }
        }
        Ok(())
    }
}
