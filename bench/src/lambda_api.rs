//! Figure 4 (cold init, peak RSS): a minimal Lambda runtime API on 127.0.0.1 that a function
//! process polls, as on Lambda.
//!
//! One measurement spawns the function's process with `AWS_LAMBDA_RUNTIME_API` pointing here and
//! takes the time from just before the spawn to the first `GET .../runtime/invocation/next`: the
//! cold init. With an event, it answers that poll with the event, waits for the function's
//! response (or error), and the next poll ends the run. The process is then killed and its peak
//! resident set read from `wait4`'s rusage.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

use crate::cgroup::LambdaCpuShare;

const NEXT: &str = "/2018-06-01/runtime/invocation/next";
const INIT_ERROR: &str = "/2018-06-01/runtime/init/error";

pub struct Spawn {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// The function's stdout and stderr go here.
    pub log: PathBuf,
    /// Runs the process under Lambda's CPU share at a memory size (figure 6).
    pub cpu_share: Option<Arc<LambdaCpuShare>>,
}

#[derive(Debug, Clone)]
pub struct Outcome {
    /// Spawn to first poll.
    pub init: Duration,
    /// Event handed out to response received.
    pub invoke: Option<Duration>,
    /// `response` or `error`, with the body the function sent.
    pub result: Option<(String, Vec<u8>)>,
    /// Peak resident set size of the process, KiB.
    pub max_rss_kib: i64,
    /// With a CPU share: the CPU time the process used from the event handed out to its answer.
    pub invoke_cpu: Option<Duration>,
    /// Wall-clock instants the event was handed out and answered, to pick the AWS calls of the
    /// invocation out of a recording.
    pub invoke_window: Option<(SystemTime, SystemTime)>,
}

enum Message {
    Next(oneshot::Sender<Option<(String, Arc<Vec<u8>>)>>),
    Result { kind: String, body: Vec<u8> },
    InitError(Vec<u8>),
}

struct Request {
    method: String,
    path: String,
    body: Vec<u8>,
}

async fn read_request(
    reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
) -> std::io::Result<Option<Request>> {
    let mut line = String::new();
    if reader.read_line(&mut line).await? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    let mut headers = HashMap::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).await? == 0 {
            return Ok(None);
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
        }
    }
    let mut body = Vec::new();
    if let Some(length) = headers
        .get("content-length")
        .and_then(|v| v.parse::<usize>().ok())
    {
        body.resize(length, 0);
        reader.read_exact(&mut body).await?;
    } else if headers
        .get("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let mut size_line = String::new();
            reader.read_line(&mut size_line).await?;
            let size = usize::from_str_radix(size_line.trim().split(';').next().unwrap_or("0"), 16)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).await?;
            if size == 0 {
                break;
            }
            chunk.truncate(size);
            body.extend_from_slice(&chunk);
        }
    }
    Ok(Some(Request { method, path, body }))
}

async fn serve_connection(
    stream: TcpStream,
    messages: mpsc::UnboundedSender<Message>,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    while let Some(request) = read_request(&mut reader).await? {
        if request.method == "GET" && request.path == NEXT {
            let (tx, rx) = oneshot::channel();
            if messages.send(Message::Next(tx)).is_err() {
                return Ok(());
            }
            // No event: the run is over; leave the poll hanging, as Lambda does between invokes.
            let Ok(Some((request_id, body))) = rx.await else {
                std::future::pending::<()>().await;
                return Ok(());
            };
            let deadline = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64)
                + 900_000;
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nLambda-Runtime-Aws-Request-Id: {request_id}\r\n\
                 Lambda-Runtime-Deadline-Ms: {deadline}\r\n\
                 Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:123456789012:function:bench\r\n\
                 Lambda-Runtime-Trace-Id: Root=1-00000000-000000000000000000000000;Sampled=0\r\n\
                 Content-Length: {}\r\n\r\n",
                body.len()
            );
            write.write_all(head.as_bytes()).await?;
            write.write_all(&body).await?;
        } else if request.method == "POST" {
            let message = if request.path == INIT_ERROR {
                Message::InitError(request.body)
            } else {
                let kind = request.path.rsplit('/').next().unwrap_or_default().to_string();
                Message::Result {
                    kind,
                    body: request.body,
                }
            };
            let _ = messages.send(message);
            let body = br#"{"status":"OK"}"#;
            let head = format!(
                "HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            write.write_all(head.as_bytes()).await?;
            write.write_all(body).await?;
        } else {
            write
                .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                .await?;
        }
        write.flush().await?;
    }
    Ok(())
}

/// Spawns the function once and measures it (see the module docs).
pub async fn run_once(
    spawn: &Spawn,
    event: Option<Arc<Vec<u8>>>,
    timeout: Duration,
) -> anyhow::Result<Outcome> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let acceptor = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(serve_connection(stream, tx.clone()));
        }
    });
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&spawn.log)?;
    let mut command = Command::new(&spawn.program);
    if let Some(share) = &spawn.cpu_share {
        share.confine(&mut command);
    }
    let cpu_used = || -> anyhow::Result<Option<Duration>> {
        spawn
            .cpu_share
            .as_ref()
            .map(|share| share.cpu_used())
            .transpose()
            .map_err(Into::into)
    };
    let started = Instant::now();
    let child = command
        .args(&spawn.args)
        .envs(spawn.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("AWS_LAMBDA_RUNTIME_API", address.to_string())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot start {}: {e}", spawn.program.display()))?;
    let pid = child.id() as libc::pid_t;

    let result = async {
        let mut init = None;
        let mut handed_out: Option<Instant> = None;
        let mut handed_out_at = SystemTime::now();
        let mut cpu_at_hand_out = None;
        let mut invoke = None;
        let mut invoke_cpu = None;
        let mut invoke_window = None;
        let mut outcome = None;
        loop {
            let message = tokio::time::timeout_at((started + timeout).into(), rx.recv())
                .await
                .map_err(|_| {
                    anyhow::anyhow!(
                        "no answer from the function within {timeout:?}; see {}",
                        spawn.log.display()
                    )
                })?
                .ok_or_else(|| anyhow::anyhow!("runtime API stopped"))?;
            match message {
                Message::Next(reply) => {
                    init.get_or_insert_with(|| started.elapsed());
                    match (&event, handed_out) {
                        (Some(body), None) => {
                            cpu_at_hand_out = cpu_used()?;
                            handed_out_at = SystemTime::now();
                            handed_out = Some(Instant::now());
                            let _ = reply.send(Some((uuid::Uuid::new_v4().to_string(), body.clone())));
                        }
                        _ => {
                            let _ = reply.send(None);
                            break;
                        }
                    }
                }
                Message::Result { kind, body } => {
                    invoke = handed_out.map(|t| t.elapsed());
                    invoke_window = Some((handed_out_at, SystemTime::now()));
                    invoke_cpu = match (cpu_at_hand_out, cpu_used()?) {
                        (Some(before), Some(after)) => Some(after.saturating_sub(before)),
                        _ => None,
                    };
                    outcome = Some((kind, body));
                }
                Message::InitError(body) => {
                    anyhow::bail!("init error: {}", String::from_utf8_lossy(&body))
                }
            }
        }
        Ok((
            init.unwrap_or_default(),
            invoke,
            outcome,
            invoke_cpu,
            invoke_window,
        ))
    }
    .await;

    // SAFETY: plain syscalls on the child we spawned and have not reaped.
    let max_rss_kib = unsafe {
        libc::kill(pid, libc::SIGKILL);
        let mut status = 0;
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::wait4(pid, &mut status, 0, &mut usage);
        usage.ru_maxrss
    };
    acceptor.abort();
    let (init, invoke, result, invoke_cpu, invoke_window) = result?;
    Ok(Outcome {
        init,
        invoke,
        result,
        max_rss_kib,
        invoke_cpu,
        invoke_window,
    })
}
