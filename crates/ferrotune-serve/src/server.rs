//! Routes and their glue: `GET /v1/models`, `POST /v1/chat/completions`,
//! `POST /v1/completions`, `GET /health`.
//!
//! A request flows through these modules, each readable on its own:
//!
//! | module | what it does |
//! |---|---|
//! | `request_log` | one tracing line per request (method, path, status, latency, tokens) |
//! | `auth` | the `API_KEY` bearer check on `/v1` (401) |
//! | `validate` | body parsing and field checks → a `Job`, or an OpenAI error |
//! | `chat` | chat messages → prompt ids, tool schemas, `tool_choice`, tool-call parsing |
//! | `admission` | bounded in-flight sequences (429 past `MAX_CONCURRENT + MAX_QUEUE`) |
//! | `answer` | the whole JSON answer (`stream` false) |
//! | `sse` | the server-sent-event answer (`stream` true) |

mod admission;
mod answer;
mod auth;
mod chat;
mod request_log;
mod sse;
mod validate;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ferrotune_data::template::Template;
use ferrotune_infer::chat::ChatModel;
use serde_json::{json, Value};
use tokio::sync::mpsc::unbounded_channel;

use crate::engine::SeqRequest;
use crate::error::ApiError;
use crate::settings::ServeSettings;
use admission::Admission;
use validate::{Job, Kind};

/// Everything the handlers share.
#[derive(Debug)]
pub struct ApiState {
    chat: ChatModel,
    template: Template,
    engine: Sender<SeqRequest>,
    admission: Arc<Admission>,
    settings: ServeSettings,
    created: u64,
    next_id: AtomicU64,
}

impl ApiState {
    /// The state over a loaded chat model, its template (for tool formats) and the engine's
    /// sender.
    pub fn new(
        chat: ChatModel,
        template: Template,
        engine: Sender<SeqRequest>,
        settings: ServeSettings,
    ) -> Self {
        let capacity = settings.max_concurrent + settings.max_queue;
        Self {
            chat,
            template,
            engine,
            admission: Arc::new(Admission::new(capacity)),
            settings,
            created: unix_now(),
            next_id: AtomicU64::new(1),
        }
    }

    fn new_id(&self, prefix: &str) -> String {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        format!("{prefix}-{:08x}{:012x}", rand::random::<u32>(), n)
    }
}

/// The router with every route, the API-key check on `/v1`, the body limit and request logs.
pub fn router(state: Arc<ApiState>) -> Router {
    let v1 = Router::new()
        .route("/v1/models", get(list_models))
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/completions", post(completions))
        .route_layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            auth::require_api_key,
        ));
    Router::new()
        .merge(v1)
        .route("/health", get(health))
        .fallback(|req: Request| async move { ApiError::not_found(req.uri().path()) })
        .method_not_allowed_fallback(|req: Request| async move {
            ApiError::invalid(
                None,
                format!(
                    "method {} is not allowed on {}",
                    req.method(),
                    req.uri().path()
                ),
            )
            .with_status(StatusCode::METHOD_NOT_ALLOWED)
        })
        .layer(DefaultBodyLimit::max(state.settings.max_body_bytes))
        .layer(middleware::from_fn(request_log::log_requests))
        .with_state(state)
}

async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn list_models(State(state): State<Arc<ApiState>>) -> Json<Value> {
    Json(json!({
        "object": "list",
        "data": [{
            "id": state.settings.model_name,
            "object": "model",
            "created": state.created,
            "owned_by": "ferrotune",
        }],
    }))
}

async fn chat_completions(
    State(state): State<Arc<ApiState>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match chat::chat_job(&state, body) {
        Ok(job) => run_job(state, job).await,
        Err(e) => e.into_response(),
    }
}

async fn completions(
    State(state): State<Arc<ApiState>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match validate::text_job(&state, body) {
        Ok(job) => run_job(state, job).await,
        Err(e) => e.into_response(),
    }
}

/// Submits the job's sequences and answers, streamed or whole.
async fn run_job(state: Arc<ApiState>, job: Job) -> Response {
    let Some(permit) = state.admission.try_acquire(job.n) else {
        return ApiError::overloaded(state.admission.capacity).into_response();
    };
    let (tx, rx) = unbounded_channel();
    for index in 0..job.n {
        let mut sampling = job.sampling.clone();
        sampling.params.seed = sampling.params.seed.wrapping_add(index as u64);
        let req = SeqRequest {
            index,
            prompt_ids: job.prompt_ids.clone(),
            sampling,
            max_new_tokens: job.max_new_tokens,
            stop: job.stop.clone(),
            open_json: job.tools.as_ref().and_then(|t| t.open_json.clone()),
            events: tx.clone(),
        };
        if state.engine.send(req).is_err() {
            return ApiError::internal("the generation engine has stopped")
                .with_status(StatusCode::SERVICE_UNAVAILABLE)
                .into_response();
        }
    }
    drop(tx);
    let id = state.new_id(if job.kind == Kind::Chat {
        "chatcmpl"
    } else {
        "cmpl"
    });
    if job.stream {
        sse::stream_answer(state, job, id, rx, permit)
    } else {
        answer::whole_answer(state, job, id, rx, permit).await
    }
}

/// Seconds since the Unix epoch (OpenAI's `created`).
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
