//! Request logs with tracing: one line per request, never a header (so never the API key).

use std::time::Instant;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;

/// Token counts a handler attaches to its response for the request log.
#[derive(Debug, Clone, Copy)]
pub(super) struct LoggedTokens {
    /// Prompt tokens.
    pub(super) prompt: usize,
    /// Generated tokens over all choices.
    pub(super) completion: usize,
}

/// One log line per request: method, path (no query), status, latency and tokens; never
/// headers, so never the API key.
pub(super) async fn log_requests(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let start = Instant::now();
    let resp = next.run(req).await;
    let latency_ms = start.elapsed().as_secs_f64() * 1e3;
    let status = resp.status().as_u16();
    match resp.extensions().get::<LoggedTokens>() {
        Some(t) => {
            tracing::info!(%method, %path, status, latency_ms, prompt_tokens = t.prompt, completion_tokens = t.completion, "request")
        }
        None => tracing::info!(%method, %path, status, latency_ms, "request"),
    }
    resp
}
