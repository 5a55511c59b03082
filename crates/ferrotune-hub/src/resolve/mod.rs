//! Turning `model_name_or_path` into files on disk.
//!
//! In order:
//! 1. a local `.gguf` file gives [`ModelSource::Gguf`];
//! 2. a local folder with `config.json` gives [`ModelSource::HfDir`]; a folder without
//!    `config.json` but with exactly one `.gguf` file gives [`ModelSource::Gguf`];
//! 3. otherwise the text is a hub repository id (`org/name`), looked up in the Hugging Face cache
//!    (`<cache>/models--org--name/refs/<revision>` names a commit whose files are in
//!    `snapshots/<commit>/`, the layout of `huggingface_hub`);
//! 4. if it is not cached and downloads are allowed, the config, tokenizer and safetensors
//!    weights are downloaded into that same layout (see `download`).
//!
//! Hub datasets (`datasets--org--name` in the same cache) are found or downloaded by
//! [`dataset::resolve_dataset`].

pub mod dataset;
mod download;

use crate::error::{HubError, Result};
use std::path::{Path, PathBuf};

/// What the user can do when a repository cannot be fetched.
pub const OFFLINE_HINT: &str = "download it elsewhere and copy the folder, or set \
    model_name_or_path to a local folder or .gguf file";

/// Where a model's files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// A Hugging Face style folder with `config.json` (and usually safetensors and tokenizer files).
    HfDir(PathBuf),
    /// A single GGUF file holding weights, config and tokenizer.
    Gguf(PathBuf),
}

/// How to reach the Hugging Face hub and its local cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubOptions {
    /// The hub cache folder (the one holding `models--org--name`); `None` means the default
    /// that [`HubOptions::from_env`] would pick.
    pub cache_dir: Option<PathBuf>,
    /// Branch, tag or 40-hex commit to use; `main` by default.
    pub revision: String,
    /// Access token sent as `Authorization: Bearer <token>`, for gated or private repositories.
    pub token: Option<String>,
    /// Never touch the network; only local paths and the cache are used.
    pub offline: bool,
    /// Hub base URL, `https://huggingface.co` by default.
    pub endpoint: String,
}

impl Default for HubOptions {
    fn default() -> Self {
        HubOptions {
            cache_dir: None,
            revision: "main".to_string(),
            token: None,
            offline: false,
            endpoint: "https://huggingface.co".to_string(),
        }
    }
}

impl HubOptions {
    /// Options from the environment variables `huggingface_hub` reads: `HF_HUB_CACHE`, else
    /// `HF_HOME` + `/hub`, else `~/.cache/huggingface/hub`; `HF_TOKEN`, else the token file
    /// `HF_TOKEN_PATH` or `<HF_HOME>/token`; `HF_HUB_OFFLINE` (`1`/`true`/`yes`/`on`);
    /// `HF_ENDPOINT`.
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let hf_home = var("HF_HOME").map(PathBuf::from).or_else(|| {
            var("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| var("HOME").map(|h| Path::new(&h).join(".cache")))
                .map(|c| c.join("huggingface"))
        });
        let cache_dir = var("HF_HUB_CACHE")
            .map(PathBuf::from)
            .or_else(|| hf_home.as_ref().map(|h| h.join("hub")));
        let token_file = var("HF_TOKEN_PATH")
            .map(PathBuf::from)
            .or_else(|| hf_home.as_ref().map(|h| h.join("token")));
        let token = var("HF_TOKEN").or_else(|| {
            let text = std::fs::read_to_string(token_file?).ok()?;
            Some(text.trim().to_string()).filter(|t| !t.is_empty())
        });
        let offline = var("HF_HUB_OFFLINE").is_some_and(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "1" | "true" | "yes" | "on"
            )
        });
        let defaults = HubOptions::default();
        HubOptions {
            cache_dir,
            token,
            offline,
            endpoint: var("HF_ENDPOINT")
                .map(|e| e.trim_end_matches('/').to_string())
                .unwrap_or(defaults.endpoint),
            revision: defaults.revision,
        }
    }

    /// The cache folder in use: [`HubOptions::cache_dir`] or the environment's default.
    pub fn resolved_cache_dir(&self) -> PathBuf {
        self.cache_dir
            .clone()
            .or_else(|| HubOptions::from_env().cache_dir)
            .unwrap_or_else(|| PathBuf::from(".cache/huggingface/hub"))
    }
}

/// Finds (or downloads) the model named by `name_or_path`; see the module doc for the order.
///
/// Errors: [`HubError::NotFound`] for a local path that holds no model, [`HubError::Offline`]
/// when a repository is not cached and cannot be downloaded, [`HubError::Download`] for failed
/// downloads, [`HubError::Io`] for file-system failures.
pub fn resolve_model(name_or_path: &str, opts: &HubOptions) -> Result<ModelSource> {
    let path = Path::new(name_or_path);
    if path.exists() {
        return local_source(path);
    }
    if !looks_like_repo_id(name_or_path) {
        return Err(HubError::NotFound {
            path: path.to_path_buf(),
            msg: "no such file or folder, and not a hub repository id like `org/name`".to_string(),
        });
    }
    let cache_dir = opts.resolved_cache_dir();
    if let Some(snapshot) = cached_snapshot(&cache_dir, name_or_path, &opts.revision)? {
        return local_source(&snapshot);
    }
    if opts.offline {
        return Err(HubError::Offline {
            repo: name_or_path.to_string(),
            revision: opts.revision.clone(),
            cache_dir,
            reason: format!(
                "offline mode is on (HF_HUB_OFFLINE or offline: true), and there is no local \
                 file or folder `{name_or_path}` either"
            ),
            hint: OFFLINE_HINT,
        });
    }
    let snapshot =
        download::download_repo(name_or_path, opts, &cache_dir).map_err(|e| match e {
            HubError::Offline {
                repo,
                revision,
                cache_dir,
                reason,
                hint,
            } => HubError::Offline {
                reason: format!("{reason}; there is no local file or folder `{repo}` either"),
                repo,
                revision,
                cache_dir,
                hint,
            },
            other => other,
        })?;
    local_source(&snapshot)
}

/// A model from an existing local path (see the module doc, steps 1-2).
fn local_source(path: &Path) -> Result<ModelSource> {
    let not_found = |msg: String| HubError::NotFound {
        path: path.to_path_buf(),
        msg,
    };
    if path.is_file() {
        return if has_gguf_extension(path) {
            Ok(ModelSource::Gguf(path.to_path_buf()))
        } else {
            Err(not_found(
                "is a file but not a .gguf; pass a .gguf file or a folder with config.json"
                    .to_string(),
            ))
        };
    }
    if path.join("config.json").is_file() {
        return Ok(ModelSource::HfDir(path.to_path_buf()));
    }
    let entries = std::fs::read_dir(path).map_err(|e| HubError::io(path, e))?;
    let mut ggufs = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| HubError::io(path, e))?;
        let p = entry.path();
        if p.is_file() && has_gguf_extension(&p) {
            ggufs.push(p);
        }
    }
    ggufs.sort();
    match ggufs.as_slice() {
        [one] => Ok(ModelSource::Gguf(one.clone())),
        [] => Err(not_found(
            "folder has no config.json and no .gguf file".to_string(),
        )),
        many => Err(not_found(format!(
            "folder has no config.json and {} .gguf files ({}); pass the path of the one to use",
            many.len(),
            many.iter()
                .filter_map(|p| p.file_name()?.to_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

fn has_gguf_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
}

/// `name` or `org/name` made of the characters the hub allows in repository names.
fn looks_like_repo_id(s: &str) -> bool {
    let part_ok = |p: &str| {
        !p.is_empty()
            && !p.starts_with(['.', '-'])
            && !p.contains("..")
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    let mut parts = s.split('/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(a), None, None) => part_ok(a) && !has_gguf_extension(Path::new(a)),
        (Some(a), Some(b), None) => part_ok(a) && part_ok(b) && !has_gguf_extension(Path::new(b)),
        _ => false,
    }
}

/// `<cache>/models--org--name`, the repository folder in the hub cache.
pub(crate) fn repo_folder(cache_dir: &Path, repo: &str) -> PathBuf {
    cache_dir.join(format!("models--{}", repo.replace('/', "--")))
}

/// Whether `revision` is a full commit hash (then it names a snapshot folder directly).
pub(crate) fn is_commit_hash(revision: &str) -> bool {
    revision.len() == 40 && revision.chars().all(|c| c.is_ascii_hexdigit())
}

/// The commit a cached repo folder (`models--…` or `datasets--…`) has for `revision`: the
/// revision itself when it is a commit hash, else the hash in `refs/<revision>`; `None` when
/// that ref is not cached. A ref file that holds no hash is an error naming it.
pub(crate) fn cached_commit(folder: &Path, revision: &str) -> Result<Option<String>> {
    if is_commit_hash(revision) {
        return Ok(Some(revision.to_string()));
    }
    let ref_file = folder.join("refs").join(revision);
    match std::fs::read_to_string(&ref_file) {
        Ok(text) if is_commit_hash(text.trim()) => Ok(Some(text.trim().to_string())),
        Ok(text) => Err(HubError::NotFound {
            path: ref_file,
            msg: format!("holds {:?}, not a 40-hex commit hash", text.trim()),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(HubError::io(ref_file, e)),
    }
}

/// The snapshot folder of `repo` at `revision`, if it is in the cache and holds a model.
fn cached_snapshot(cache_dir: &Path, repo: &str, revision: &str) -> Result<Option<PathBuf>> {
    let folder = repo_folder(cache_dir, repo);
    let Some(commit) = cached_commit(&folder, revision)? else {
        return Ok(None);
    };
    let snapshot = folder.join("snapshots").join(&commit);
    let usable = snapshot.join("config.json").is_file() || local_source(&snapshot).is_ok();
    Ok(usable.then_some(snapshot))
}
