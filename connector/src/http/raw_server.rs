//! Test-only HTTP servers that frame their answers by hand (a chunked body, a length that
//! lies), for the limits wiremock cannot reach: it always sends a `Content-Length`.

/// A loopback HTTP server that answers every request with `head` followed by `body`
/// chunks, then closes the connection: lets a test choose framing reqwest must cope with.
/// Returns the server's base URL, `http://127.0.0.1:{port}`, any path of which answers.
pub(crate) async fn raw_server(head: String, body: Vec<Vec<u8>>) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match socket.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let _ = socket.write_all(head.as_bytes()).await;
            for part in &body {
                let _ = socket.write_all(part).await;
                let _ = socket.flush().await;
            }
            let _ = socket.shutdown().await;
        }
    });
    url
}

/// A `200` head and the chunks of a `transfer-encoding: chunked` body made of `parts`.
pub(crate) fn chunked(parts: &[&[u8]]) -> (String, Vec<Vec<u8>>) {
    let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                transfer-encoding: chunked\r\nconnection: close\r\n\r\n"
        .to_owned();
    let mut body: Vec<Vec<u8>> = parts
        .iter()
        .map(|p| {
            let mut chunk = format!("{:x}\r\n", p.len()).into_bytes();
            chunk.extend_from_slice(p);
            chunk.extend_from_slice(b"\r\n");
            chunk
        })
        .collect();
    body.push(b"0\r\n\r\n".to_vec());
    (head, body)
}
