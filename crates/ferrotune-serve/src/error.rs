//! Errors: [`ServeError`] for starting and running the server, [`ApiError`] for one request,
//! answered with OpenAI's error body `{"error": {"message", "type", "param", "code"}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// What can stop the server from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// An environment setting does not parse.
    #[error("environment variable {name}={value:?}: {msg}")]
    Setting {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
        /// What was expected.
        msg: String,
    },
    /// Loading the model, adapters or template failed.
    #[error(transparent)]
    Load(Box<ferrotune_infer::InferError>),
    /// The server thread ended abnormally.
    #[error("the server thread panicked: {0}")]
    Panicked(String),
    /// The template could not be prepared.
    #[error("template: {0}")]
    Template(String),
    /// Binding or serving failed.
    #[error("server at {addr}: {source}; hint: pick a free port with API_PORT")]
    Io {
        /// The address.
        addr: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl From<ferrotune_infer::InferError> for ServeError {
    fn from(e: ferrotune_infer::InferError) -> Self {
        ServeError::Load(Box::new(e))
    }
}

/// An error answer to one request: HTTP status plus OpenAI's error fields.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status: 400, 401, 404, 405, 413, 422, 429, 500 or 503.
    pub status: StatusCode,
    /// What went wrong, for people.
    pub message: String,
    /// OpenAI's error type (`invalid_request_error`, `authentication_error`, ...).
    pub kind: &'static str,
    /// The request field at fault, when one is.
    pub param: Option<String>,
    /// A machine-readable code (`model_not_found`, `context_length_exceeded`, ...).
    pub code: Option<&'static str>,
}

impl ApiError {
    /// 400 `invalid_request_error` about `param`.
    pub fn invalid(param: impl Into<Option<String>>, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            kind: "invalid_request_error",
            param: param.into(),
            code: None,
        }
    }

    /// 422: the body is JSON but does not fit the request schema (a missing field, a wrong
    /// type), as FastAPI (LLaMA-Factory's server) answers.
    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            ..Self::invalid(None, message)
        }
    }

    /// Sets the machine-readable code.
    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    /// Another status with the same fields.
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// 401 for a missing or wrong API key (the key itself is never echoed).
    pub fn unauthorized() -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            message: "invalid or missing API key; hint: send `Authorization: Bearer <API_KEY>`"
                .into(),
            kind: "authentication_error",
            param: None,
            code: Some("invalid_api_key"),
        }
    }

    /// 404 for a path that does not exist.
    pub fn not_found(path: &str) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: format!(
                "no route {path}; routes: GET /v1/models, POST /v1/chat/completions, POST /v1/completions, GET /health"
            ),
            kind: "invalid_request_error",
            param: None,
            code: Some("not_found"),
        }
    }

    /// 429: every decoding slot and queue place is taken.
    pub fn overloaded(capacity: usize) -> Self {
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            message: format!(
                "the server is at capacity ({capacity} sequences running or queued); retry later \
                 (hint: raise MAX_CONCURRENT or MAX_QUEUE)"
            ),
            kind: "rate_limit_error",
            param: None,
            code: Some("rate_limit_exceeded"),
        }
    }

    /// 500 for a failure inside the server.
    pub fn internal(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: message.into(),
            kind: "server_error",
            param: None,
            code: None,
        }
    }

    /// The JSON body `{"error": {...}}`.
    pub fn body(&self) -> serde_json::Value {
        json!({"error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        }})
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}
