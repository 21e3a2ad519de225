//! The scripted API server: every request checked in order, answered as the real one would.

use super::*;

/// One request as the API server received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Seen {
    pub(crate) method: Method,
    pub(crate) path: String,
    /// The query string; `None` when empty.
    pub(crate) query: Option<String>,
    pub(crate) content_type: Option<String>,
    /// The JSON body; `Null` when empty.
    pub(crate) body: Value,
}

impl Seen {
    /// The value of query parameter `key`.
    pub(crate) fn param(&self, key: &str) -> Option<&str> {
        self.query.as_deref()?.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k == key).then_some(v)
        })
    }
}

/// Every request of one or more scenarios.
#[derive(Clone, Default)]
pub(crate) struct Log(pub(crate) Arc<Mutex<Vec<Seen>>>);

impl Log {
    pub(crate) fn push(&self, seen: Seen) {
        self.0.lock().unwrap().push(seen);
    }

    pub(crate) fn all(&self) -> Vec<Seen> {
        self.0.lock().unwrap().clone()
    }
}

/// The server side of a mocked client.
pub(crate) struct ApiServer {
    pub(crate) handle: mock::Handle<Request<Body>, Response<Body>>,
    pub(crate) log: Log,
}

/// A client whose requests go to the returned [`ApiServer`], logged into `log`.
pub(crate) fn mock_client(log: &Log) -> (Client, ApiServer) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    (
        Client::new(service, "default"),
        ApiServer {
            handle,
            log: log.clone(),
        },
    )
}

/// The answer to one request.
pub(crate) struct Reply(pub(crate) mock::SendResponse<Response<Body>>);

impl Reply {
    pub(crate) fn send(self, code: u16, body: &Value) {
        self.0.send_response(
            Response::builder()
                .status(code)
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(Body::from(serde_json::to_vec(body).unwrap()))
                .unwrap(),
        );
    }

    pub(crate) fn ok(self, body: &Value) {
        self.send(200, body);
    }

    /// 200 with a watch stream of `events` (one JSON object a line), then its end.
    pub(crate) fn watch_events(self, events: &[Value]) {
        let mut bytes = Vec::new();
        for e in events {
            bytes.extend(serde_json::to_vec(e).unwrap());
            bytes.push(b'\n');
        }
        self.0.send_response(
            Response::builder()
                .status(200)
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(Body::from(bytes))
                .unwrap(),
        );
    }

    pub(crate) fn created(self, body: &Value) {
        self.send(201, body);
    }

    /// A `Status` failure, as the API server sends it.
    pub(crate) fn fail(self, code: u16, reason: &str) {
        self.send(
            code,
            &json!({
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "reason": reason,
                "code": code,
                "message": format!("mock API server: {reason}"),
            }),
        );
    }
}

impl ApiServer {
    /// The next request, within [`WAIT`].
    pub(crate) async fn next(&mut self) -> (Seen, Reply) {
        self.next_within(WAIT)
            .await
            .expect("the expected request did not come")
    }

    /// The next request, or `None` when none comes within `wait`.
    pub(crate) async fn next_within(&mut self, wait: Duration) -> Option<(Seen, Reply)> {
        let (request, send) = timeout(wait, self.handle.next_request())
            .await
            .ok()?
            .expect("the client is gone");
        let (parts, body) = request.into_parts();
        let bytes = timeout(WAIT, body.collect_bytes())
            .await
            .expect("the request body did not come")
            .expect("a readable request body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("a JSON request body")
        };
        let seen = Seen {
            method: parts.method,
            path: parts.uri.path().to_string(),
            query: parts
                .uri
                .query()
                .filter(|q| !q.is_empty())
                .map(String::from),
            content_type: parts
                .headers
                .get(http::header::CONTENT_TYPE)
                .map(|v| v.to_str().unwrap().to_string()),
            body,
        };
        self.log.push(seen.clone());
        Some((seen, Reply(send)))
    }

    /// The next request, which must be `method path`.
    pub(crate) async fn expect(&mut self, method: Method, path: &str) -> (Seen, Reply) {
        let (seen, reply) = self.next().await;
        assert_eq!(
            (&seen.method, seen.path.as_str()),
            (&method, path),
            "unexpected request: {seen:#?}"
        );
        (seen, reply)
    }

    /// The next request, which must be a GET of one object without query.
    pub(crate) async fn expect_get(&mut self, path: &str) -> Reply {
        let (seen, reply) = self.expect(Method::GET, path).await;
        assert_eq!(seen.query, None, "{seen:#?}");
        assert_eq!(seen.body, Value::Null, "{seen:#?}");
        reply
    }

    /// The next request, which must be a JSON create (POST) into `path`.
    pub(crate) async fn expect_create(&mut self, path: &str) -> (Seen, Reply) {
        let (seen, reply) = self.expect(Method::POST, path).await;
        assert_eq!(seen.query, None, "{seen:#?}");
        assert_eq!(seen.content_type.as_deref(), Some("application/json"));
        (seen, reply)
    }

    /// The next request, which must be a JSON replace (PUT) of `path`.
    pub(crate) async fn expect_replace(&mut self, path: &str) -> (Seen, Reply) {
        let (seen, reply) = self.expect(Method::PUT, path).await;
        assert_eq!(seen.query, None, "{seen:#?}");
        assert_eq!(seen.content_type.as_deref(), Some("application/json"));
        (seen, reply)
    }

    /// The next request, which must be a JSON merge patch of `path` with exactly `body`.
    pub(crate) async fn expect_merge_patch(&mut self, path: &str, body: &Value) -> Reply {
        let (seen, reply) = self.expect_patch(path).await;
        assert_eq!(&seen.body, body, "body of the patch of {path}");
        reply
    }

    /// The next request, which must be a JSON merge patch of `path`.
    pub(crate) async fn expect_patch(&mut self, path: &str) -> (Seen, Reply) {
        let (seen, reply) = self.expect(Method::PATCH, path).await;
        assert_eq!(seen.query, None, "{seen:#?}");
        assert_eq!(seen.content_type.as_deref(), Some(MERGE_PATCH), "{seen:#?}");
        (seen, reply)
    }

    /// Fails if a request arrives within [`QUIET`].
    pub(crate) async fn assert_quiet(&mut self) {
        if let Ok(Some((r, _))) = timeout(QUIET, self.handle.next_request()).await {
            panic!("unexpected request {} {}", r.method(), r.uri());
        }
    }
}

/// Runs `op` (the code under test) and `script` (the API server's side) together; fails when
/// they do not both finish within a bounded time (an extra request the script does not answer
/// keeps `op` waiting).
pub(crate) async fn drive<T>(op: impl Future<Output = T>, script: impl Future<Output = ()>) -> T {
    timeout(WAIT + WAIT, async { tokio::join!(op, script).0 })
        .await
        .expect("timed out: the code under test made a request the script did not expect")
}
