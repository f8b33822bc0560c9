//! Graceful shutdown: a request in flight when the stop signal arrives is still answered.

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::harness::TestServer;

#[tokio::test]
async fn in_flight_requests_finish_after_the_stop_signal() {
    let server = TestServer::start().await;
    let address = server.url.trim_start_matches("http://").to_owned();
    let body = br#"{"name":"Finished during shutdown"}"#;
    let head = format!(
        "POST /admin/v1/organizations HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        server.admin_token,
        body.len()
    );
    let mut stream = TcpStream::connect(&address).await.expect("connect");
    stream.write_all(head.as_bytes()).await.expect("head");
    stream.write_all(&body[..10]).await.expect("first half");
    tokio::time::sleep(Duration::from_millis(100)).await;

    let app = std::sync::Arc::clone(&server.app);
    let stopping = tokio::spawn(server.stop());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!stopping.is_finished(), "the server stopped with a request in flight");

    stream.write_all(&body[10..]).await.expect("second half");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("response");
    assert!(response.starts_with("HTTP/1.1 201"), "{response}");
    tokio::time::timeout(Duration::from_secs(5), stopping).await.expect("stops after the request").expect("task");
    assert_eq!(app.organizations().await.expect("list").len(), 1);

    assert!(TcpStream::connect(&address).await.is_err(), "no new connections after shutdown");
}
