//! The `Authorization` header as clients really send it: the `Bearer` scheme in any case and
//! with extra spaces is accepted (RFC 7235 §2.1, RFC 6750 §2.1), while a wrong key, another
//! scheme or a missing header gets 401.

mod common;

use common::{agent, start};
use serde_json::{json, Value};

const KEY: &str = "sk-auth-test";

/// GETs `/v1/models` with `authorization` as the raw header value; the status.
fn models_with(base: &str, authorization: Option<&str>) -> u16 {
    let mut req = agent().get(format!("{base}/v1/models"));
    if let Some(v) = authorization {
        req = req.header("Authorization", v);
    }
    req.call().unwrap().status().as_u16()
}

#[test]
fn bearer_scheme_in_any_case_is_accepted_and_wrong_keys_are_not() {
    let server = start(|s| s.api_key = Some(KEY.into()));
    let base = server.base_url();
    for ok in [
        format!("Bearer {KEY}"),
        format!("bearer {KEY}"),
        format!("BEARER {KEY}"),
        format!("Bearer   {KEY}"),
    ] {
        assert_eq!(models_with(&base, Some(&ok)), 200, "{ok:?}");
    }
    for bad in [
        None,
        Some(format!("Bearer {KEY}x")),
        Some(format!("Bearer {}", &KEY[..KEY.len() - 1])),
        Some(format!("Basic {KEY}")),
        Some(format!("Bearer{KEY}")),
        Some(KEY.to_string()),
    ] {
        assert_eq!(models_with(&base, bad.as_deref()), 401, "{bad:?}");
    }
    // A chat request with a lowercase scheme is answered too.
    let mut resp = agent()
        .post(format!("{base}/v1/chat/completions"))
        .header("Content-Type", "application/json")
        .header("Authorization", &format!("bearer {KEY}"))
        .send(
            json!({"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1})
                .to_string()
                .as_bytes(),
        )
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body: Value = serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(body["usage"]["completion_tokens"], 1, "{body}");
    server.shutdown().unwrap();
}
