//! `pipeline-bench`: the Rust side of `scripts/bench.sh`. Every subcommand prints one JSON line
//! per measurement on stdout (collected by `bench/python/report.py`) and a readable line on stderr.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use pipeline_bench::events::{capped_event, sensor_event, BenchEvent, FixedIdRegistry};
use pipeline_bench::manifest::{EventFile, Manifest};
use pipeline_bench::{cpu, timing::Timing};
use pipeline_domain::simulate::ValueFormat;
use serde_json::json;

#[derive(Parser)]
#[command(about = "Benchmarks of the pipeline's consumer and producer (see scripts/bench.sh)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Writes the benchmark events (JSON and Glue Avro) and their manifest into a directory.
    Events {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 100)]
        devices: u32,
        /// Records of the first batch (spread evenly over the devices).
        #[arg(long, default_value_t = 10_000)]
        sensor_records: u32,
        /// Payload cap of the second batch.
        #[arg(long, default_value_t = pipeline_bench::events::PAYLOAD_CAP_BYTES)]
        batch_bytes: usize,
        /// Frame Avro values with the ids of the Glue registry the environment points at (the
        /// local stack), so a consumer running against it can decode them.
        #[arg(long)]
        registry: bool,
    },
    /// Figure 1: the consumer's CPU path per batch against a bare serde_json parse.
    Cpu {
        #[arg(long)]
        events: PathBuf,
        #[arg(long, default_value_t = 20)]
        runs: usize,
    },
    /// Figure 2: one batch end to end into DynamoDB (AWS_ENDPOINT_URL: the local moto).
    Dynamo {
        #[arg(long)]
        events: PathBuf,
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Only this batch (e.g. sensors-10k).
        #[arg(long)]
        batch: Option<String>,
    },
    /// Figure 3: producer records/s to the broker (KAFKA_BOOTSTRAP_SERVERS) with the registry.
    Produce {
        #[arg(long, default_value_t = 100)]
        devices: u32,
        #[arg(long, default_value_t = 1_000)]
        readings_per_device: u32,
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Also write each format's records here for the Python producer (`<dir>/<format>.records`).
        #[arg(long)]
        dump: Option<PathBuf>,
        /// Names the broker in the output (the stack's, or another one the env points at).
        #[arg(long, default_value = "stack")]
        broker_label: String,
    },
    /// Figure 4, memory: peak RSS of the consumer's batch loop on the worst batch that fits
    /// --batch-bytes (zlib Avro documents and store events at the consumer's bounds), in process.
    Memory {
        #[arg(long, default_value_t = pipeline_bench::events::PAYLOAD_CAP_BYTES)]
        batch_bytes: usize,
    },
    /// Figure 6: duration per batch of our consumer binary and the seed under Lambda's CPU share
    /// at each memory size (a cgroup v1 CPU quota; skipped, saying why, where none can be made),
    /// and with --metered-endpoint what each sends to AWS per batch, in billing units.
    Share {
        #[arg(long)]
        events: PathBuf,
        #[arg(long, value_delimiter = ',', default_values_t = [128, 512, 1024, 1769])]
        memory_mb: Vec<u32>,
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Our consumer binary.
        #[arg(long)]
        consumer: PathBuf,
        #[arg(long)]
        python: PathBuf,
        #[arg(long)]
        seed_lambda: PathBuf,
        /// A table of the seed's shape (seed_baseline.py table --create).
        #[arg(long)]
        seed_table: String,
        #[arg(long)]
        log: PathBuf,
        /// A recording proxy in front of moto (throttle_proxy.py --rate 0 --record FILE --record-bodies).
        #[arg(long, requires = "calls")]
        metered_endpoint: Option<String>,
        /// The proxy's recording.
        #[arg(long)]
        calls: Option<PathBuf>,
        #[arg(long, default_value_t = 300)]
        timeout_secs: u64,
    },
    /// Figure 4: spawns a function against a local Lambda runtime API; prints the cold init
    /// (spawn to first poll) and, with --event, the peak RSS over one invocation.
    Lambda {
        /// What is measured (a label in the output).
        #[arg(long)]
        name: String,
        #[arg(long)]
        event: Option<PathBuf>,
        #[arg(long, default_value_t = 5)]
        runs: usize,
        #[arg(long)]
        log: PathBuf,
        #[arg(long, default_value_t = 120)]
        timeout_secs: u64,
        /// Give the consumer its own window and explicit-events tables for these runs (deleted
        /// after): the explicit-events table holds the partition ledgers, and two events that use
        /// the same offsets for other records would rightly be refused as a re-created topic.
        #[arg(long)]
        fresh_tables: bool,
        /// The program and its arguments.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
}

fn emit(value: serde_json::Value) {
    println!("{value}");
}

fn timing_json(t: &Timing) -> serde_json::Value {
    json!({"best_ms": t.best_ms, "median_ms": t.median_ms, "runs": t.runs})
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Events {
            out,
            devices,
            sensor_records,
            batch_bytes,
            registry,
        } => rt.block_on(write_events(out, devices, sensor_records, batch_bytes, registry)),
        Command::Cpu { events, runs } => {
            let manifest = Manifest::load(&events)?;
            for file in &manifest.events {
                let bytes = std::fs::read(file.path(&events))?;
                let figures = cpu::measure(&rt, &bytes, file.records, &file.schemas, runs)?;
                let floor_ratio = figures.ours.best_ms / figures.bare_scan.best_ms;
                let gain = figures.through_runtime_parse.best_ms / figures.ours.best_ms;
                eprintln!(
                    "[cpu] {:<22} ours {:>8.2} ms | through the runtime's parse {:>8.2} ms ({gain:.2}x) | scan floor {:>7.2} ms (ours {floor_ratio:.2}x) | Value parse {:>7.2} ms | breakdown: envelope {:.2} (the runtime's {:.2}), decode {:.2}, group {:.2} ms",
                    file.label(),
                    figures.ours.best_ms,
                    figures.through_runtime_parse.best_ms,
                    figures.bare_scan.best_ms,
                    figures.bare_value_parse.best_ms,
                    figures.envelope_parse.best_ms,
                    figures.envelope_parse_runtime.best_ms,
                    figures.decode_only.best_ms,
                    figures.group_only.best_ms,
                );
                let base = json!({"figure": "cpu", "batch": file.batch, "format": file.format,
                                  "records": file.records, "bytes": file.bytes});
                for (name, t) in [
                    ("ours", &figures.ours),
                    ("ours_through_runtime_parse", &figures.through_runtime_parse),
                    ("serde_json_value", &figures.bare_value_parse),
                    ("serde_json_scan", &figures.bare_scan),
                    ("ours_envelope_parse", &figures.envelope_parse),
                    ("ours_envelope_parse_runtime", &figures.envelope_parse_runtime),
                    ("ours_decode_only", &figures.decode_only),
                    ("ours_group_only", &figures.group_only),
                ] {
                    let mut line = base.clone();
                    line["impl"] = json!(name);
                    line["timing"] = timing_json(t);
                    line["windows_written"] = json!(figures.windows_written);
                    emit(line);
                }
            }
            Ok(())
        }
        Command::Share {
            events,
            memory_mb,
            runs,
            consumer,
            python,
            seed_lambda,
            seed_table,
            log,
            metered_endpoint,
            calls,
            timeout_secs,
        } => rt.block_on(async {
            let sdk = pipeline_adapters::aws::load_sdk_config().await;
            pipeline_bench::share::ShareRun {
                events,
                memory_mb,
                runs,
                consumer,
                python,
                seed_lambda,
                seed_table,
                log,
                metered: metered_endpoint.zip(calls),
                timeout: std::time::Duration::from_secs(timeout_secs),
            }
            .run(&sdk)
            .await
        }),
        Command::Dynamo { events, runs, batch } => rt.block_on(dynamo(events, runs, batch)),
        Command::Produce {
            devices,
            readings_per_device,
            runs,
            dump,
            broker_label,
        } => rt.block_on(produce(devices, readings_per_device, runs, dump, broker_label)),
        Command::Memory { batch_bytes } => {
            let f = pipeline_bench::memory::measure(&rt, batch_bytes)?;
            eprintln!(
                "[memory] worst batch: {} records, {} bytes, {} stored, {} poison {:?}; peak RSS {:.1} MiB (before the batch {:.1} MiB)",
                f.records,
                f.event_bytes,
                f.summary.store_events + f.summary.explicit_events,
                f.summary.poison,
                f.summary.poison_by_reason,
                f.peak_rss_mib,
                f.baseline_rss_mib
            );
            emit(
                json!({"figure": "memory", "impl": "ours", "case": "worst-6mb", "records": f.records,
                        "bytes": f.event_bytes, "poison": f.summary.poison,
                        "stored": f.summary.store_events + f.summary.explicit_events,
                        "max_rss_mib": f.peak_rss_mib, "baseline_rss_mib": f.baseline_rss_mib}),
            );
            Ok(())
        }
        Command::Lambda {
            name,
            event,
            runs,
            log,
            timeout_secs,
            fresh_tables,
            command,
        } => rt.block_on(async {
            if !fresh_tables {
                return lambda(name, event, runs, log, timeout_secs, vec![], command).await;
            }
            let sdk = pipeline_adapters::aws::load_sdk_config().await;
            let client = aws_sdk_dynamodb::Client::new(&sdk);
            let tables = pipeline_bench::dynamo::FreshTables::create(&client, &name).await?;
            let outcome = lambda(name, event, runs, log, timeout_secs, tables.env(), command).await;
            tables.delete(&client).await?;
            outcome
        }),
    }
}

async fn dynamo(events: PathBuf, runs: usize, batch: Option<String>) -> anyhow::Result<()> {
    let sdk = pipeline_adapters::aws::load_sdk_config().await;
    let manifest = Manifest::load(&events)?;
    for file in &manifest.events {
        if batch.as_ref().is_some_and(|b| *b != file.batch) {
            continue;
        }
        let bytes = std::fs::read(file.path(&events))?;
        let f = pipeline_bench::dynamo::measure(&sdk, &bytes, file.records, &file.schemas, runs).await?;
        let total: u64 = f.requests.values().sum();
        let replay_total: u64 = f.replay_requests.values().sum();
        eprintln!(
            "[dynamo] {:<22} ours {:>8.2} ms, {total} requests per batch {:?}, {} windows; replay {:.2} ms, {replay_total} requests; moto floor for these items {:.2} ms ({} BatchWriteItem)",
            file.label(),
            f.first_delivery.best_ms,
            f.requests,
            f.windows_written,
            f.replay.best_ms,
            f.floor_batch_write.best_ms,
            f.floor_requests,
        );
        let mut requests = json!(f.requests);
        requests["total"] = json!(total);
        let mut replay_requests = json!(f.replay_requests);
        replay_requests["total"] = json!(replay_total);
        emit(
            json!({"figure": "dynamo", "batch": file.batch, "format": file.format, "impl": "ours",
                    "records": file.records, "timing": timing_json(&f.first_delivery),
                    "requests": requests, "items_per_batch": f.windows_written}),
        );
        emit(
            json!({"figure": "dynamo", "batch": file.batch, "format": file.format, "impl": "ours_replay",
                    "records": file.records, "timing": timing_json(&f.replay),
                    "requests": replay_requests, "items_per_batch": 0}),
        );
        emit(
            json!({"figure": "dynamo", "batch": file.batch, "format": file.format, "impl": "moto_floor_batch_write",
                    "records": file.records, "timing": timing_json(&f.floor_batch_write),
                    "requests": {"BatchWriteItem": f.floor_requests, "total": f.floor_requests},
                    "items_per_batch": f.windows_written}),
        );
    }
    Ok(())
}

async fn produce(
    devices: u32,
    readings_per_device: u32,
    runs: usize,
    dump: Option<PathBuf>,
    broker: String,
) -> anyhow::Result<()> {
    let sdk = pipeline_adapters::aws::load_sdk_config().await;
    for format in [ValueFormat::Avro, ValueFormat::Json] {
        let f = pipeline_bench::produce::measure(&sdk, format, devices, readings_per_device, runs).await?;
        let rate = f.records as f64 / (f.timing.best_ms / 1000.0);
        eprintln!(
            "[produce] {:<22} ours (rskafka) {} records, best {:.0} ms = {rate:.0} records/s, client CPU {:.0} ms (without the broker: {:.0} ms; publishing alone: {:.0} ms)",
            format!("{broker}/{}", format.as_str()),
            f.records,
            f.timing.best_ms,
            f.cpu.best_ms,
            f.prepare_only.best_ms,
            f.publish_only.best_ms,
        );
        emit(
            json!({"figure": "produce", "case": format.as_str(), "broker": broker, "impl": "ours", "records": f.records,
                    "timing": timing_json(&f.timing), "records_per_s": rate, "cpu": timing_json(&f.cpu),
                    "prepare_only": timing_json(&f.prepare_only), "publish_only": timing_json(&f.publish_only)}),
        );
        let b = pipeline_bench::produce::prepare_breakdown(format, devices, readings_per_device, runs)?;
        eprintln!(
            "[produce] {:<22} ours, breakdown without the broker: simulate {:.0} ms, encode {:.0} ms, event ids {:.0} ms",
            format!("{broker}/{}", format.as_str()),
            b.simulate.best_ms,
            b.encode.best_ms,
            b.event_ids.best_ms
        );
        emit(
            json!({"figure": "produce_breakdown", "case": format.as_str(), "broker": broker,
                    "simulate": timing_json(&b.simulate), "encode": timing_json(&b.encode),
                    "event_ids": timing_json(&b.event_ids)}),
        );
        if let Some(dir) = &dump {
            std::fs::create_dir_all(dir)?;
            let path = dir.join(format!("{}.records", format.as_str()));
            let n = pipeline_bench::produce::dump(&sdk, format, devices, readings_per_device, &path).await?;
            eprintln!(
                "[produce] {n} {} records for the Python producer -> {}",
                format.as_str(),
                path.display()
            );
        }
    }
    Ok(())
}

async fn lambda(
    name: String,
    event: Option<PathBuf>,
    runs: usize,
    log: PathBuf,
    timeout_secs: u64,
    extra_env: Vec<(String, String)>,
    command: Vec<String>,
) -> anyhow::Result<()> {
    use pipeline_bench::lambda_api::{run_once, Spawn};
    let (program, args) = command
        .split_first()
        .ok_or_else(|| anyhow::anyhow!("no command"))?;
    let spawn = Spawn {
        program: program.into(),
        args: args.to_vec(),
        env: [
            ("AWS_LAMBDA_FUNCTION_NAME".into(), name.clone()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE".into(), "512".into()),
            ("AWS_LAMBDA_FUNCTION_VERSION".into(), "$LATEST".into()),
        ]
        .into_iter()
        .chain(extra_env)
        .collect(),
        log,
        cpu_share: None,
    };
    let body = match &event {
        Some(path) => Some(std::sync::Arc::new(std::fs::read(path)?)),
        None => None,
    };
    let mut inits = Vec::new();
    let mut invokes = Vec::new();
    let mut max_rss_kib = 0;
    for _ in 0..runs.max(1) {
        let outcome = run_once(&spawn, body.clone(), std::time::Duration::from_secs(timeout_secs)).await?;
        if body.is_some() {
            match &outcome.result {
                Some((kind, _)) if kind == "response" => {}
                Some((kind, text)) => anyhow::bail!(
                    "{name}: the function answered {kind}: {}",
                    String::from_utf8_lossy(text)
                ),
                None => anyhow::bail!("{name}: no response to the event"),
            }
        }
        inits.push(outcome.init);
        invokes.extend(outcome.invoke);
        max_rss_kib = max_rss_kib.max(outcome.max_rss_kib);
    }
    let init = Timing::from_samples(inits);
    let invoke = (!invokes.is_empty()).then(|| Timing::from_samples(invokes));
    eprintln!(
        "[lambda] {name:<22} cold init best {:.1} ms (median {:.1}){}, peak RSS {:.1} MiB",
        init.best_ms,
        init.median_ms,
        invoke
            .as_ref()
            .map(|t| format!(", invoke {:.1} ms", t.best_ms))
            .unwrap_or_default(),
        max_rss_kib as f64 / 1024.0
    );
    emit(
        json!({"figure": "lambda", "impl": name, "event": event.map(|p| p.display().to_string()),
                "init": timing_json(&init), "invoke": invoke.as_ref().map(timing_json),
                "max_rss_mib": max_rss_kib as f64 / 1024.0}),
    );
    Ok(())
}

async fn write_events(
    out: PathBuf,
    devices: u32,
    sensor_records: u32,
    batch_bytes: usize,
    registry: bool,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&out)?;
    let glue = if registry {
        let sdk = pipeline_adapters::aws::load_sdk_config().await;
        let c = pipeline_contracts::contracts();
        let name =
            std::env::var(&c.env_vars.registry_name).unwrap_or_else(|_| c.schema_registry.name.clone());
        Some(pipeline_adapters::glue::GlueSchemaRegistry::new(
            pipeline_adapters::glue::glue_client(&sdk, None).await,
            &name,
        ))
    } else {
        None
    };
    let per_device = (sensor_records / devices.max(1)).max(1);
    let mut manifest = Manifest::default();
    for format in [ValueFormat::Json, ValueFormat::Avro] {
        let first = match &glue {
            Some(g) => sensor_event(g.clone(), "sensors-10k", devices, per_device, format).await?,
            None => sensor_event(FixedIdRegistry, "sensors-10k", devices, per_device, format).await?,
        };
        let second = match &glue {
            Some(g) => capped_event(g.clone(), "batch-6mb", devices, batch_bytes, format).await?,
            None => capped_event(FixedIdRegistry, "batch-6mb", devices, batch_bytes, format).await?,
        };
        for event in [first, second] {
            manifest.events.push(write_event(&out, event)?);
        }
    }
    manifest.save(&out)?;
    for e in &manifest.events {
        eprintln!(
            "[events] {:<22} {:>6} records, {:>9} bytes, {} partitions -> {}",
            e.label(),
            e.records,
            e.bytes,
            e.partitions,
            e.path(&out).display()
        );
    }
    Ok(())
}

fn write_event(out: &std::path::Path, event: BenchEvent) -> anyhow::Result<EventFile> {
    let bytes = serde_json::to_vec(&event.event)?;
    let file = format!("{}.{}.json", event.name, event.format.as_str());
    std::fs::write(out.join(&file), &bytes)?;
    let devices: std::collections::BTreeSet<_> =
        event.event.records().filter_map(|r| r.key.clone()).collect();
    Ok(EventFile {
        batch: event.name,
        format: event.format.as_str().to_string(),
        file,
        records: event.event.record_count(),
        bytes: bytes.len(),
        partitions: event.event.records.len(),
        devices: devices.len(),
        schemas: event.schemas,
    })
}
