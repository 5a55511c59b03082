//! The API key: with `API_KEY` set, every `/v1` request needs `Authorization: Bearer <key>`.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::ApiState;
use crate::error::ApiError;

/// The token of an `Authorization: Bearer <token>` value. The scheme is matched without regard
/// to case (RFC 7235 §2.1: `bearer` and `BEARER` are the same scheme) and may be followed by
/// several spaces (RFC 6750 §2.1: `"Bearer" 1*SP b64token`); `None` for another scheme.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, rest) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim_start_matches(' '))
}

/// 401 unless `Authorization: Bearer <key>` matches `API_KEY` (compared in constant time).
pub(super) async fn require_api_key(
    State(state): State<Arc<ApiState>>,
    req: Request,
    next: Next,
) -> Response {
    if let Some(key) = &state.settings.api_key {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token)
            .unwrap_or("");
        if !bool::from(given.as_bytes().ct_eq(key.as_bytes())) {
            return ApiError::unauthorized().into_response();
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer_token("Bearer sk-1"), Some("sk-1"));
        assert_eq!(bearer_token("bearer sk-1"), Some("sk-1"));
        assert_eq!(bearer_token("BEARER  sk-1"), Some("sk-1"));
        assert_eq!(bearer_token("Basic sk-1"), None);
        assert_eq!(bearer_token("Bearersk-1"), None);
    }
}
