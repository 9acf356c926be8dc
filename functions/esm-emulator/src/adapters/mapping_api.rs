//! A loopback HTTP/1.1 endpoint that answers the Lambda API's event source mapping reads
//! ([`crate::aws_api`]) from the running mapping's status. One request per connection; requests
//! have no body, so nothing but the request head is read.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, warn};

use crate::aws_api::{respond, ApiResponse, MappingDescription};
use crate::status::SharedStatus;

/// Longest request head accepted; a mapping read is a few hundred bytes.
const MAX_HEAD_BYTES: usize = 16 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ApiBindError {
    #[error("the mapping API listens on loopback only, not on {0}")]
    NotLoopback(SocketAddr),
    #[error("cannot listen on {address}: {message}")]
    Bind { address: SocketAddr, message: String },
}

/// Binds the endpoint (loopback addresses only: it has no authentication).
pub async fn bind(address: SocketAddr) -> Result<TcpListener, ApiBindError> {
    if !address.ip().is_loopback() {
        return Err(ApiBindError::NotLoopback(address));
    }
    TcpListener::bind(address).await.map_err(|e| ApiBindError::Bind {
        address,
        message: e.to_string(),
    })
}

/// The method and request target of a request head, once it is complete.
pub fn request_line(head: &[u8]) -> Option<Result<(String, String), String>> {
    let end = head.windows(4).position(|w| w == b"\r\n\r\n")?;
    let text = match std::str::from_utf8(&head[..end]) {
        Ok(text) => text,
        Err(_) => return Some(Err("request head is not UTF-8".into())),
    };
    let line = text.lines().next().unwrap_or_default();
    let mut parts = line.split(' ');
    Some(match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(method), Some(target), Some(version), None)
            if version.starts_with("HTTP/1.") && target.starts_with('/') =>
        {
            Ok((method.to_string(), target.to_string()))
        }
        _ => Err(format!("malformed request line {line:?}")),
    })
}

fn render(response: &ApiResponse) -> Vec<u8> {
    let body = response.body.to_string();
    let reason = match response.status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Error",
    };
    let mut head = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        response.status,
        body.len()
    );
    if let Some(error_type) = response.error_type {
        head.push_str(&format!("x-amzn-ErrorType: {error_type}\r\n"));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

async fn handle(
    mut stream: TcpStream,
    description: &MappingDescription,
    shared: &SharedStatus,
) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut buffer = [0u8; 2048];
    let parsed = loop {
        let n = stream.read(&mut buffer).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buffer[..n]);
        if let Some(parsed) = request_line(&head) {
            break parsed;
        }
        if head.len() > MAX_HEAD_BYTES {
            break Err(format!("request head longer than {MAX_HEAD_BYTES} bytes"));
        }
    };
    let response = match parsed {
        Ok((method, target)) => {
            let status = shared
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            debug!(%method, %target, "mapping API request");
            respond(&method, &target, &[(description, &status)])
        }
        Err(message) => ApiResponse {
            status: 400,
            error_type: Some("InvalidParameterValueException"),
            body: serde_json::json!({ "Type": "User", "Message": message }),
        },
    };
    stream.write_all(&render(&response)).await?;
    stream.shutdown().await
}

/// Serves until the task is dropped or aborted.
pub async fn serve(listener: TcpListener, description: MappingDescription, shared: SharedStatus) {
    loop {
        match listener.accept().await {
            Ok((stream, _peer)) => {
                if let Err(error) = handle(stream, &description, &shared).await {
                    debug!(%error, "mapping API connection ended early");
                }
            }
            Err(error) => {
                warn!(%error, "mapping API: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_line_is_read_once_the_head_is_complete() {
        assert_eq!(
            request_line(b"GET /2015-03-31/event-source-mappings/ HTTP/1.1\r\nHost: x\r\n"),
            None
        );
        assert_eq!(
            request_line(
                b"GET /2015-03-31/event-source-mappings/?FunctionName=consumer HTTP/1.1\r\nHost: x\r\n\r\n"
            ),
            Some(Ok((
                "GET".into(),
                "/2015-03-31/event-source-mappings/?FunctionName=consumer".into()
            )))
        );
        assert!(matches!(request_line(b"GET\r\n\r\n"), Some(Err(_))));
        assert!(matches!(
            request_line(b"GET http://elsewhere/ HTTP/1.1\r\n\r\n"),
            Some(Err(_))
        ));
    }

    #[tokio::test]
    async fn only_loopback_addresses_are_served() {
        let public: SocketAddr = "0.0.0.0:0".parse().unwrap();
        assert_eq!(bind(public).await.unwrap_err(), ApiBindError::NotLoopback(public));
        assert!(bind("127.0.0.1:0".parse().unwrap()).await.is_ok());
    }

    #[test]
    fn errors_carry_the_aws_error_type_header() {
        let rendered = String::from_utf8(render(&ApiResponse {
            status: 404,
            error_type: Some("ResourceNotFoundException"),
            body: serde_json::json!({"Type": "User", "Message": "gone"}),
        }))
        .unwrap();
        assert!(rendered.starts_with("HTTP/1.1 404 Not Found\r\n"));
        assert!(rendered.contains("\r\nx-amzn-ErrorType: ResourceNotFoundException\r\n"));
        let (_, body) = rendered.split_once("\r\n\r\n").unwrap();
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(body).unwrap()["Message"],
            "gone"
        );
    }
}
