//! Downloading a repository's model files into the Hugging Face cache layout.
//!
//! Files are fetched from `<endpoint>/<repo>/resolve/<revision>/<file>` with a blocking HTTP
//! client; the commit is read from the `X-Repo-Commit` response header (as `huggingface_hub`
//! does). Each file is written to `snapshots/<commit>/<file>.incomplete` and renamed when
//! complete, then `refs/<revision>` is written, so an interrupted download is never mistaken for
//! a cached model. Files are stored directly in the snapshot folder (no `blobs/` symlinks),
//! which `huggingface_hub` also reads.

use super::{is_commit_hash, repo_folder, OFFLINE_HINT};
use crate::error::{HubError, Result};
use std::path::{Path, PathBuf};

/// Files fetched when present; a 404 for these is not an error.
const OPTIONAL_FILES: &[&str] = &[
    "tokenizer.json",
    "tokenizer_config.json",
    "generation_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
];

/// A hub client for one repository at one revision.
pub(super) struct Fetcher<'a> {
    agent: ureq::Agent,
    /// `""` for models, `"datasets/"` for datasets: the URL segment before the repository id.
    kind: &'static str,
    repo: &'a str,
    revision: &'a str,
    /// The hub base URL, without a trailing `/`.
    pub(super) endpoint: &'a str,
    token: Option<&'a str>,
}

/// What a GET returned.
pub(super) enum Fetched {
    /// 200: the body, written to the destination; the `X-Repo-Commit` header if sent.
    Saved { commit: Option<String> },
    /// 404.
    Missing,
}

/// Downloads `repo` into `cache_dir` and returns its snapshot folder.
pub(super) fn download_repo(
    repo: &str,
    opts: &super::HubOptions,
    cache_dir: &Path,
) -> Result<PathBuf> {
    let fetcher = Fetcher::new("", repo, &opts.revision, opts);
    let folder = repo_folder(cache_dir, repo);
    // config.json comes first: it tells us the commit, and whether the hub is reachable at all.
    let staging = folder.join("snapshots").join(".downloading");
    let config_tmp = staging.join("config.json");
    let commit = match fetcher.get("config.json", &config_tmp) {
        Ok(Fetched::Saved { commit }) => commit,
        Ok(Fetched::Missing) => {
            return Err(HubError::Download {
                url: fetcher.url("config.json"),
                msg: format!(
                    "404 not found: `{repo}` has no config.json at revision `{}` (or it is \
                     private: set HF_TOKEN)",
                    opts.revision
                ),
            })
        }
        Err(FetchError::Http(msg)) => {
            return Err(HubError::Download {
                url: fetcher.url("config.json"),
                msg,
            })
        }
        Err(FetchError::Unreachable(msg)) => {
            return Err(HubError::Offline {
                repo: repo.to_string(),
                revision: opts.revision.clone(),
                cache_dir: cache_dir.to_path_buf(),
                reason: format!("the hub at {} is unreachable ({msg})", fetcher.endpoint),
                hint: OFFLINE_HINT,
            })
        }
    }
    .or_else(|| is_commit_hash(&opts.revision).then(|| opts.revision.clone()))
    .filter(|c| is_commit_hash(c))
    .ok_or_else(|| HubError::Download {
        url: fetcher.url("config.json"),
        msg: "the response has no X-Repo-Commit header with a commit hash; pass a 40-hex \
              commit as the revision"
            .to_string(),
    })?;
    let snapshot = folder.join("snapshots").join(&commit);
    create_dir(&snapshot)?;
    rename(&config_tmp, &snapshot.join("config.json"))?;
    let _ = std::fs::remove_dir(&staging);

    for file in OPTIONAL_FILES {
        fetcher.get_checked(file, &snapshot)?;
    }
    let index = "model.safetensors.index.json";
    if fetcher.get_checked(index, &snapshot)? {
        for shard in shard_names(&snapshot.join(index))? {
            if !fetcher.get_checked(&shard, &snapshot)? {
                return Err(missing(
                    &fetcher,
                    &shard,
                    "listed in the index but not found",
                ));
            }
        }
    } else if !fetcher.get_checked("model.safetensors", &snapshot)? {
        return Err(missing(
            &fetcher,
            "model.safetensors",
            "not found, and there is no model.safetensors.index.json; only safetensors \
             weights are downloaded",
        ));
    }
    let ref_file = folder.join("refs").join(&opts.revision);
    if !is_commit_hash(&opts.revision) {
        create_dir(ref_file.parent().unwrap_or(&folder))?;
        std::fs::write(&ref_file, &commit).map_err(|e| HubError::io(&ref_file, e))?;
    }
    Ok(snapshot)
}

fn missing(fetcher: &Fetcher<'_>, file: &str, msg: &str) -> HubError {
    HubError::Download {
        url: fetcher.url(file),
        msg: format!("404: {file} {msg}"),
    }
}

/// Why a GET failed.
pub(super) enum FetchError {
    /// A transport-level failure (DNS, connect, TLS): the hub cannot be reached.
    Unreachable(String),
    /// The hub answered with an error status, or the body could not be stored.
    Http(String),
}

impl<'a> Fetcher<'a> {
    /// A client for `repo` at `revision`; `kind` is `""` for models, `"datasets/"` for datasets.
    pub(super) fn new(
        kind: &'static str,
        repo: &'a str,
        revision: &'a str,
        opts: &'a super::HubOptions,
    ) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(std::time::Duration::from_secs(20)))
            // A server that accepts and then stalls must not hang the run: bound the request
            // and the wait for the response head. The body has no total bound (shards can
            // take long on a slow link).
            .timeout_send_request(Some(std::time::Duration::from_secs(60)))
            .timeout_recv_response(Some(std::time::Duration::from_secs(60)))
            .build()
            .into();
        Fetcher {
            agent,
            kind,
            repo,
            revision,
            endpoint: opts.endpoint.trim_end_matches('/'),
            token: opts.token.as_deref(),
        }
    }

    /// `<endpoint>/[datasets/]<repo>/resolve/<revision>/<file>`, revision and file
    /// percent-encoded as `huggingface_hub` does.
    pub(super) fn url(&self, file: &str) -> String {
        format!(
            "{}/{}{}/resolve/{}/{}",
            self.endpoint,
            self.kind,
            self.repo,
            percent_encode(self.revision, false),
            percent_encode(file, true)
        )
    }

    /// GETs `<endpoint>/api/<path>` and parses the body as JSON; `Ok(None)` on 404.
    pub(super) fn api_json(
        &self,
        path: &str,
    ) -> std::result::Result<Option<serde_json::Value>, FetchError> {
        let url = format!("{}/api/{path}", self.endpoint);
        let mut request = self.agent.get(&url);
        if let Some(token) = self.token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        let response = request
            .call()
            .map_err(|e| FetchError::Unreachable(e.to_string()))?;
        let status = response.status().as_u16();
        if status == 404 {
            return Ok(None);
        }
        if status != 200 {
            return Err(FetchError::Http(format!(
                "{url}: http status {status}{}",
                auth_hint(status)
            )));
        }
        let body = response
            .into_body()
            .read_to_string()
            .map_err(|e| FetchError::Http(format!("{url}: reading the body: {e}")))?;
        serde_json::from_str(&body)
            .map(Some)
            .map_err(|e| FetchError::Http(format!("{url}: invalid json: {e}")))
    }

    /// Like [`Fetcher::get`] into `snapshot/<file>` (skipped if already there); `Ok(false)` on
    /// 404, any other failure is a [`HubError::Download`].
    pub(super) fn get_checked(&self, file: &str, snapshot: &Path) -> Result<bool> {
        let dest = snapshot.join(file);
        if dest.is_file() {
            return Ok(true);
        }
        match self.get(file, &dest) {
            Ok(Fetched::Saved { .. }) => Ok(true),
            Ok(Fetched::Missing) => Ok(false),
            Err(FetchError::Unreachable(msg) | FetchError::Http(msg)) => Err(HubError::Download {
                url: self.url(file),
                msg,
            }),
        }
    }

    /// GETs `file` into `dest`, writing `dest.incomplete` and renaming it when complete.
    fn get(&self, file: &str, dest: &Path) -> std::result::Result<Fetched, FetchError> {
        let url = self.url(file);
        let mut request = self.agent.get(&url);
        if let Some(token) = self.token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        tracing::info!(%url, "downloading");
        let response = request
            .call()
            .map_err(|e| FetchError::Unreachable(e.to_string()))?;
        let status = response.status().as_u16();
        if status == 404 {
            return Ok(Fetched::Missing);
        }
        if status != 200 {
            return Err(FetchError::Http(format!(
                "http status {status}{}",
                auth_hint(status)
            )));
        }
        let commit = response
            .headers()
            .get("x-repo-commit")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let tmp = PathBuf::from(format!("{}.incomplete", dest.display()));
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(|e| {
                FetchError::Http(format!("cannot create {}: {e}", parent.display()))
            })?;
        }
        let mut out = std::fs::File::create(&tmp)
            .map_err(|e| FetchError::Http(format!("cannot create {}: {e}", tmp.display())))?;
        let mut body = response.into_body().into_reader();
        std::io::copy(&mut body, &mut out)
            .map_err(|e| FetchError::Http(format!("interrupted writing {}: {e}", tmp.display())))?;
        std::fs::rename(&tmp, dest)
            .map_err(|e| FetchError::Http(format!("cannot rename {}: {e}", tmp.display())))?;
        Ok(Fetched::Saved { commit })
    }
}

/// The hint for an authorization failure status, or nothing.
fn auth_hint(status: u16) -> &'static str {
    match status {
        401 | 403 => "; the repository may be gated or private: set HF_TOKEN",
        _ => "",
    }
}

/// Percent-encodes everything but unreserved characters (RFC 3986), and `/` when `keep_slash`.
pub(super) fn percent_encode(text: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || (keep_slash && b == b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The distinct shard file names in a `model.safetensors.index.json` `weight_map`.
fn shard_names(index: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(index).map_err(|e| HubError::io(index, e))?;
    let bad = |msg: String| HubError::NotFound {
        path: index.to_path_buf(),
        msg,
    };
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| bad(format!("invalid json: {e}")))?;
    let map = value
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| bad("has no `weight_map` object".to_string()))?;
    let mut shards: Vec<String> = Vec::new();
    for (tensor, file) in map {
        let file = file
            .as_str()
            .filter(|f| !f.contains("..") && !f.starts_with('/'))
            .ok_or_else(|| bad(format!("weight_map[{tensor:?}] is not a plain file name")))?;
        if !shards.iter().any(|s| s == file) {
            shards.push(file.to_string());
        }
    }
    Ok(shards)
}

pub(super) fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| HubError::io(dir, e))
}

fn rename(from: &Path, to: &Path) -> Result<()> {
    std::fs::rename(from, to).map_err(|e| HubError::io(from, e))
}
