//! An OpenAI-compatible HTTP API over a ferrotune model (LLaMA-Factory's `llamafactory-cli api`,
//! `api/app.py` v0.9.5): any OpenAI client can list the model, chat (streamed or not, with tool
//! calls) and complete plain prompts.
//!
//! | piece | what it does |
//! |---|---|
//! | [`ServeSettings`] | `API_HOST`, `API_PORT`, `API_KEY`, `API_MODEL_NAME`, `MAX_CONCURRENT`, `MAX_QUEUE` |
//! | [`engine`] | one thread owning the model; continuous batching of every running request |
//! | [`server`] | routes, validation with OpenAI-shaped errors, SSE streaming, API key, request logs |
//! | [`run`], [`spawn`] | serve until SIGINT/SIGTERM (graceful), or in the background (tests, tools) |
//!
//! Routes: `GET /v1/models`, `POST /v1/chat/completions`, `POST /v1/completions`, `GET /health`.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let cfg = ferrotune_config::Config::from_overrides(&[
//!     "model_name_or_path=models/SmolLM2-135M-Instruct.Q4_1.gguf".into(),
//!     "template=smollm2".into(),
//! ])?;
//! ferrotune_serve::run(&cfg, ferrotune_serve::ServeSettings::from_env()?)?; // until Ctrl-C
//! # Ok(()) }
//! ```

pub mod engine;
mod error;
pub mod openai;
pub mod server;
mod settings;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use candle_core::Device;
use ferrotune_config::Config;
use ferrotune_data::pipeline::prepare_tokenizer_and_template;
use ferrotune_infer::chat::ChatModel;

pub use engine::Engine;
pub use error::{ApiError, ServeError};
pub use server::{router, ApiState};
pub use settings::ServeSettings;

/// A model loaded for serving: the chat model (prompts, defaults) and its template (tool
/// formats).
#[derive(Debug)]
pub struct LoadedApi {
    chat: ChatModel,
    template: ferrotune_data::template::Template,
}

impl LoadedApi {
    /// Loads what `cfg` names, as [`ChatModel::from_config`] (model, merged adapters, template,
    /// generating keys as the defaults of requests).
    ///
    /// Errors: [`ServeError::Load`] and [`ServeError::Template`].
    pub fn from_config(cfg: &Config) -> Result<Self, ServeError> {
        let chat = ChatModel::from_config(cfg, &Device::Cpu)?;
        let (_, template) =
            prepare_tokenizer_and_template(cfg, chat.generator().tokenizer().clone())
                .map_err(|e| ServeError::Template(e.to_string()))?;
        Ok(Self { chat, template })
    }
}

/// A server running in the background ([`spawn`]).
#[derive(Debug)]
pub struct RunningServer {
    /// The bound address (the real port when 0 was asked).
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), ServeError>>>,
}

impl RunningServer {
    /// `http://<addr>`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Shuts down gracefully (as on SIGTERM) and waits for the server thread.
    ///
    /// Errors: what the server returned.
    pub fn shutdown(mut self) -> Result<(), ServeError> {
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> Result<(), ServeError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(ServeError::Panicked("see the log above".into())),
            None => Ok(()),
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        let _ = self.stop_and_join();
    }
}

/// Binds `settings.addr()` and serves `loaded` on a background thread until
/// [`RunningServer::shutdown`].
///
/// Errors: [`ServeError::Io`] when the address cannot be bound.
pub fn spawn(loaded: LoadedApi, settings: ServeSettings) -> Result<RunningServer, ServeError> {
    let addr = settings.addr();
    let io = move |source| ServeError::Io {
        addr: addr.to_string(),
        source,
    };
    let std_listener = std::net::TcpListener::bind(addr).map_err(io)?;
    std_listener.set_nonblocking(true).map_err(io)?;
    let bound = std_listener.local_addr().map_err(io)?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("ferrotune-api".into())
        .spawn(move || {
            let rt = runtime().map_err(io)?;
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener).map_err(io)?;
                serve(loaded, settings, listener, async {
                    let _ = stop_rx.await;
                })
                .await
            })
        })
        .map_err(io)?;
    Ok(RunningServer {
        addr: bound,
        stop: Some(stop_tx),
        thread: Some(thread),
    })
}

/// Binds `settings.addr()` and serves `cfg`'s model until SIGINT or SIGTERM, then shuts down
/// gracefully: stops accepting, lets in-flight requests finish for `shutdown_grace`, cancels
/// the rest, returns.
///
/// Errors: loading errors, [`ServeError::Io`] for the address.
pub fn run(cfg: &Config, settings: ServeSettings) -> Result<(), ServeError> {
    let loaded = LoadedApi::from_config(cfg)?;
    let addr = settings.addr();
    let io = move |source| ServeError::Io {
        addr: addr.to_string(),
        source,
    };
    let rt = runtime().map_err(io)?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(io)?;
        serve(loaded, settings, listener, shutdown_signal()).await
    })
}

/// A small runtime: the model runs on its own thread, HTTP needs little.
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}

/// Serves on `listener` until `shutdown` resolves, then drains gracefully.
///
/// Errors: [`ServeError::Io`] from the accept loop.
pub async fn serve(
    loaded: LoadedApi,
    settings: ServeSettings,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let addr = listener
        .local_addr()
        .map_or_else(|_| settings.addr().to_string(), |a| a.to_string());
    let engine = Arc::new(Engine::start(
        loaded.chat.generator().clone(),
        settings.max_concurrent,
    ));
    let sender = engine.sender().map_err(|msg| ServeError::Io {
        addr: addr.clone(),
        source: std::io::Error::other(msg),
    })?;
    let grace = settings.shutdown_grace;
    let state = Arc::new(ApiState::new(
        loaded.chat,
        loaded.template,
        sender,
        settings,
    ));
    let app = router(Arc::clone(&state));
    drop(state);
    tracing::info!(%addr, "serving the OpenAI-compatible API");
    let canceller = Arc::clone(&engine);
    let signal = async move {
        shutdown.await;
        tracing::info!("shutting down: no new connections; finishing in-flight requests");
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            tracing::warn!("grace period over: cancelling in-flight requests");
            canceller.cancel_all();
        });
    };
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(signal)
        .await
        .map_err(|source| ServeError::Io { addr, source });
    engine.shutdown();
    tracing::info!("server stopped");
    result
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
