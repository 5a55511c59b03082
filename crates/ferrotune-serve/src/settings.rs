//! Server settings from the environment, named as LLaMA-Factory's API reads them
//! (`api.py`, v0.9.5: `API_HOST`, `API_PORT`, `API_KEY`, `API_MODEL_NAME`) plus the limits of
//! the batching engine.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::error::ServeError;

/// How the server binds, authenticates and bounds its work.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeSettings {
    /// Address to bind (`API_HOST`). Default: 127.0.0.1 (loopback only); set 0.0.0.0 to serve
    /// other machines.
    pub host: IpAddr,
    /// Port to bind (`API_PORT`); 0 picks a free one. Default: 8000.
    pub port: u16,
    /// When set (`API_KEY`, non-empty), every `/v1` request needs `Authorization: Bearer <key>`.
    pub api_key: Option<String>,
    /// The model id clients send and `/v1/models` lists (`API_MODEL_NAME`). Default:
    /// `gpt-3.5-turbo`, LLaMA-Factory's.
    pub model_name: String,
    /// Sequences decoded together by the engine (`MAX_CONCURRENT`, ≥ 1). Default: 16.
    pub max_concurrent: usize,
    /// Sequences allowed to wait for a decoding slot (`MAX_QUEUE`); past `max_concurrent +
    /// max_queue` requests are answered 429. Default: 64.
    pub max_queue: usize,
    /// Largest request body in bytes (`API_MAX_BODY_BYTES`); larger ones get 413. Default: 1 MiB.
    pub max_body_bytes: usize,
    /// After SIGINT/SIGTERM, how long in-flight requests may run before they are cancelled.
    /// Default: 30 s.
    pub shutdown_grace: Duration,
}

impl Default for ServeSettings {
    fn default() -> Self {
        Self {
            host: IpAddr::from([127, 0, 0, 1]),
            port: 8000,
            api_key: None,
            model_name: "gpt-3.5-turbo".into(),
            max_concurrent: 16,
            max_queue: 64,
            max_body_bytes: 1 << 20,
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

impl ServeSettings {
    /// The defaults overridden by `API_HOST`, `API_PORT`, `API_KEY`, `API_MODEL_NAME`,
    /// `MAX_CONCURRENT`, `MAX_QUEUE` and `API_MAX_BODY_BYTES` where set.
    ///
    /// Errors: [`ServeError::Setting`] naming the variable and its value when it does not parse.
    pub fn from_env() -> Result<Self, ServeError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// As [`ServeSettings::from_env`], reading variables through `get` (tests).
    ///
    /// Errors: as [`ServeSettings::from_env`].
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ServeError> {
        let mut s = Self::default();
        let var = |name: &'static str| get(name).filter(|v| !v.trim().is_empty());
        if let Some(v) = var("API_HOST") {
            s.host = parse("API_HOST", &v, "an IP address such as 127.0.0.1 or 0.0.0.0")?;
        }
        if let Some(v) = var("API_PORT") {
            s.port = parse("API_PORT", &v, "a port number 0-65535")?;
        }
        s.api_key = var("API_KEY");
        if let Some(v) = var("API_MODEL_NAME") {
            s.model_name = v;
        }
        if let Some(v) = var("MAX_CONCURRENT") {
            s.max_concurrent = parse("MAX_CONCURRENT", &v, "a count ≥ 1")?;
            if s.max_concurrent == 0 {
                return Err(ServeError::Setting {
                    name: "MAX_CONCURRENT",
                    value: v,
                    msg: "must be ≥ 1".into(),
                });
            }
        }
        if let Some(v) = var("MAX_QUEUE") {
            s.max_queue = parse("MAX_QUEUE", &v, "a count ≥ 0")?;
        }
        if let Some(v) = var("API_MAX_BODY_BYTES") {
            s.max_body_bytes = parse("API_MAX_BODY_BYTES", &v, "a size in bytes")?;
        }
        Ok(s)
    }

    /// The socket address to bind.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.port)
    }
}

fn parse<T: std::str::FromStr>(name: &'static str, v: &str, what: &str) -> Result<T, ServeError> {
    v.trim().parse().map_err(|_| ServeError::Setting {
        name,
        value: v.to_string(),
        msg: format!("expected {what}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let s = ServeSettings::from_lookup(|_| None).unwrap();
        assert_eq!(s.addr().to_string(), "127.0.0.1:8000");
        assert_eq!(s.api_key, None);
        let s = ServeSettings::from_lookup(|n| match n {
            "API_HOST" => Some("0.0.0.0".into()),
            "API_PORT" => Some("9001".into()),
            "API_KEY" => Some("sk-1".into()),
            "MAX_CONCURRENT" => Some("4".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(s.addr().to_string(), "0.0.0.0:9001");
        assert_eq!(s.api_key.as_deref(), Some("sk-1"));
        assert_eq!(s.max_concurrent, 4);
        let err = ServeSettings::from_lookup(|n| (n == "API_PORT").then(|| "http".into()))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("API_PORT") && err.contains("\"http\""),
            "{err}"
        );
        let err = ServeSettings::from_lookup(|n| (n == "MAX_CONCURRENT").then(|| "0".into()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("MAX_CONCURRENT"), "{err}");
    }
}
