//! The SDK client every configuration gets (`pipeline_msk_auth::sdk_https_client`, built without
//! the SDK's default client) honours the proxy environment as the default client does. Its own
//! test binary: it sets `HTTP_PROXY` for the whole process.

use aws_credential_types::Credentials;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// Answers one request as a forward proxy would relay DynamoDB's answer, and returns its request
/// line.
async fn one_request_proxy(listener: TcpListener) -> String {
    let (socket, _) = listener.accept().await.unwrap();
    let mut reader = BufReader::new(socket);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).await.unwrap();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).await.unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap();
            }
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).await.unwrap();
    let payload = r#"{"TableNames":["through-the-proxy"]}"#;
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.0\r\nContent-Length: {}\r\n\r\n{payload}",
        payload.len()
    );
    reader.get_mut().write_all(response.as_bytes()).await.unwrap();
    request_line
}

#[tokio::test]
async fn requests_go_through_the_proxy_the_environment_names() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = format!("http://{}", listener.local_addr().unwrap());
    // This test binary runs this one test: nothing else reads the environment meanwhile.
    std::env::set_var("HTTP_PROXY", &proxy);
    std::env::remove_var("NO_PROXY");
    std::env::remove_var("no_proxy");
    let proxied = tokio::spawn(one_request_proxy(listener));
    // A host that does not resolve: only the proxy can answer for it.
    let sdk = pipeline_adapters::aws::sdk_config_loader()
        .region(aws_config::Region::new("eu-west-1"))
        .endpoint_url("http://dynamodb.eu-west-1.example.invalid")
        .credentials_provider(Credentials::new(
            "AKIAIOSFODNN7EXAMPLE",
            "secret",
            None,
            None,
            "test",
        ))
        .load()
        .await;
    let tables = aws_sdk_dynamodb::Client::new(&sdk)
        .list_tables()
        .send()
        .await
        .expect("the proxy answered");
    assert_eq!(tables.table_names(), ["through-the-proxy"]);
    let request_line = proxied.await.unwrap();
    assert!(
        request_line.starts_with("POST http://dynamodb.eu-west-1.example.invalid/"),
        "an absolute-form request to the proxy: {request_line:?}"
    );
}
