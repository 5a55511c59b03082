//! Hub datasets (`hf_hub_url` in LLaMA-Factory's `dataset_info.json`): the data files of one
//! split, found in the Hugging Face cache or downloaded into it.
//!
//! 1. The cache is looked at first, without network: `<cache>/datasets--org--name/refs/<revision>`
//!    names a commit whose files are in `snapshots/<commit>/` (the `huggingface_hub` layout);
//!    when that snapshot holds data files for the split, they are used.
//! 2. Otherwise (unless offline) `<endpoint>/api/datasets/<repo>/revision/<revision>` gives the
//!    commit (`sha`) and every file of the repository (`siblings[].rfilename`); the split's data
//!    files are chosen from that list and downloaded from
//!    `<endpoint>/datasets/<repo>/resolve/<commit>/<file>` into `snapshots/<commit>/<file>`, then
//!    `refs/<revision>` is written.
//!
//! Choosing the files follows the default data-file patterns of Hugging Face `datasets`
//! (`data_files.py`, the rules `load_dataset` applies to a repository without a loading script
//! or `configs` in its README), on files with an extension LLaMA-Factory reads (`FILEEXT2TYPE`:
//! arrow, csv, json, jsonl, parquet, txt):
//! - `folder` (`data_dir`) keeps the files under that folder, and paths are taken relative to it;
//!   `subset` (the config name) keeps the files inside a folder of that name;
//! - if some file is named `data/<split>-NNNNN-of-NNNNN*.*`, those names define the splits;
//! - else a directory named after the split (`**/train/**`, `**/*_train_*/**`) defines it;
//! - else the file name does (`**/train[-._ 0-9]*`, `**/*[-._ 0-9]train[-._ 0-9]*`); the split
//!   `train` also answers to `training`, `validation` to `valid`/`dev`/`val`, `test` to
//!   `testing`/`eval`/`evaluation`;
//! - else every file belongs to `train`.
//!
//! When the chosen files have several types, the most common one is kept (ties: parquet, jsonl,
//! json, csv, txt, arrow), since one dataset is read by one builder.

use super::download::{create_dir, FetchError, Fetcher};
use super::{is_commit_hash, looks_like_repo_id, HubOptions};
use crate::error::{HubError, Result};
use std::path::{Path, PathBuf};

/// Extensions read as data files, in order of preference when a split mixes types.
const DATA_EXTENSIONS: &[&str] = &["parquet", "jsonl", "json", "csv", "txt", "arrow"];

/// Characters that may surround a split keyword in a file or folder name (`datasets`'
/// `NON_WORDS_CHARS`: `-._ ` and digits).
fn is_separator(c: char) -> bool {
    matches!(c, '-' | '.' | '_' | ' ') || c.is_ascii_digit()
}

/// Which part of a hub dataset to fetch (the `dataset_info.json` keys of one entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetRequest<'a> {
    /// Repository id, `org/name` (`hf_hub_url`).
    pub repo: &'a str,
    /// Configuration name: the folder of the repository holding that subset (`subset`).
    pub subset: Option<&'a str>,
    /// Sub-folder of the repository to read (`folder`).
    pub folder: Option<&'a str>,
    /// Split to read, e.g. `train` (`split`).
    pub split: &'a str,
}

/// The local data files of one split of a hub dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetFiles {
    /// The commit the files come from (40 hex digits).
    pub commit: String,
    /// `<cache>/datasets--org--name/snapshots/<commit>`.
    pub snapshot: PathBuf,
    /// The split's data files inside `snapshot`, sorted by repository path; all of one type.
    pub files: Vec<PathBuf>,
}

/// Finds the data files of `req` in the cache, or downloads them; see the module doc.
///
/// `opts.revision` is the branch, tag or commit (`main` by default).
///
/// Errors: [`HubError::NotFound`] for a malformed repository id or ref file,
/// [`HubError::DatasetOffline`] when the files are not cached and offline mode is on or the hub
/// is unreachable, [`HubError::NoDataFiles`] when the repository has no file for the split,
/// [`HubError::Download`] when the hub answers with an error, [`HubError::Io`] on file-system
/// failures.
pub fn resolve_dataset(req: &DatasetRequest<'_>, opts: &HubOptions) -> Result<DatasetFiles> {
    if !looks_like_repo_id(req.repo) {
        return Err(HubError::NotFound {
            path: PathBuf::from(req.repo),
            msg: "`hf_hub_url` is not a hub dataset id like `org/name`".to_string(),
        });
    }
    let cache_dir = opts.resolved_cache_dir();
    let folder = dataset_folder(&cache_dir, req.repo);
    let cached = cached_files(req, &folder, &opts.revision)?;
    if let Some(Ok(found)) = cached {
        return Ok(found);
    }
    let offline = |reason: String| HubError::DatasetOffline {
        repo: req.repo.to_string(),
        revision: opts.revision.clone(),
        cache_dir: cache_dir.clone(),
        reason,
    };
    if opts.offline {
        // A cached snapshot without the split says more than "offline" does.
        if let Some(Err(no_files)) = cached {
            return Err(no_files);
        }
        return Err(offline(
            "offline mode is on (HF_HUB_OFFLINE or offline: true)".to_string(),
        ));
    }

    let lister = Fetcher::new("datasets/", req.repo, &opts.revision, opts);
    let api_path = format!(
        "datasets/{}/revision/{}",
        req.repo,
        super::download::percent_encode(&opts.revision, false)
    );
    let info = match lister.api_json(&api_path) {
        Ok(Some(info)) => info,
        Ok(None) => {
            return Err(HubError::Download {
                url: format!("{}/api/{api_path}", lister.endpoint),
                msg: format!(
                    "404 not found: no dataset `{}` at revision `{}` (or it is private or \
                     gated: set HF_TOKEN)",
                    req.repo, opts.revision
                ),
            })
        }
        Err(FetchError::Unreachable(msg)) => {
            return Err(offline(format!(
                "the hub at {} is unreachable ({msg})",
                lister.endpoint
            )))
        }
        Err(FetchError::Http(msg)) => {
            return Err(HubError::Download {
                url: format!("{}/api/{api_path}", lister.endpoint),
                msg,
            })
        }
    };
    let bad_info = |msg: &str| HubError::Download {
        url: format!("{}/api/{api_path}", lister.endpoint),
        msg: msg.to_string(),
    };
    let commit = info
        .get("sha")
        .and_then(|v| v.as_str())
        .filter(|c| is_commit_hash(c))
        .ok_or_else(|| bad_info("the answer has no `sha` with a 40-hex commit"))?
        .to_string();
    let siblings = info
        .get("siblings")
        .and_then(|v| v.as_array())
        .ok_or_else(|| bad_info("the answer has no `siblings` list of files"))?;
    let all: Vec<String> = siblings
        .iter()
        .filter_map(|s| s.get("rfilename")?.as_str())
        .filter(|name| is_safe_relative(name))
        .map(str::to_string)
        .collect();
    let chosen = select_data_files(&all, req)?;

    let snapshot = folder.join("snapshots").join(&commit);
    let fetcher = Fetcher::new("datasets/", req.repo, &commit, opts);
    for file in &chosen {
        if !fetcher.get_checked(file, &snapshot)? {
            return Err(HubError::Download {
                url: fetcher.url(file),
                msg: format!("404: {file} is listed by the hub but not found"),
            });
        }
    }
    if !is_commit_hash(&opts.revision) {
        let ref_file = folder.join("refs").join(&opts.revision);
        create_dir(ref_file.parent().unwrap_or(&folder))?;
        std::fs::write(&ref_file, &commit).map_err(|e| HubError::io(&ref_file, e))?;
    }
    Ok(DatasetFiles {
        files: chosen.iter().map(|f| snapshot.join(f)).collect(),
        commit,
        snapshot,
    })
}

/// `<cache>/datasets--org--name`, a dataset's folder in the hub cache.
pub fn dataset_folder(cache_dir: &Path, repo: &str) -> PathBuf {
    cache_dir.join(format!("datasets--{}", repo.replace('/', "--")))
}

/// The split's files in the cached snapshot of `revision`: `None` when there is no snapshot,
/// `Some(Err)` when the snapshot has no data files for the request.
fn cached_files(
    req: &DatasetRequest<'_>,
    folder: &Path,
    revision: &str,
) -> Result<Option<Result<DatasetFiles>>> {
    let Some(commit) = super::cached_commit(folder, revision)? else {
        return Ok(None);
    };
    let snapshot = folder.join("snapshots").join(&commit);
    if !snapshot.is_dir() {
        return Ok(None);
    }
    let mut all = Vec::new();
    list_relative(&snapshot, "", &mut all)?;
    Ok(Some(select_data_files(&all, req).map(|chosen| {
        DatasetFiles {
            files: chosen.iter().map(|f| snapshot.join(f)).collect(),
            commit,
            snapshot,
        }
    })))
}

/// Every file under `dir` as a `/`-separated path relative to the snapshot, skipping hidden
/// entries and unfinished downloads (`*.incomplete`).
fn list_relative(dir: &Path, prefix: &str, out: &mut Vec<String>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| HubError::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| HubError::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name.ends_with(".incomplete") {
            continue;
        }
        let rel = format!("{prefix}{name}");
        let path = entry.path();
        if path.is_dir() {
            list_relative(&path, &format!("{rel}/"), out)?;
        } else {
            out.push(rel);
        }
    }
    Ok(())
}

/// A repository path that stays inside the snapshot folder.
fn is_safe_relative(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && !path.contains('\\')
        && path.split('/').all(|seg| !seg.is_empty() && seg != "..")
}

/// The extension of a repository path, if it is one of [`DATA_EXTENSIONS`].
fn data_extension(path: &str) -> Option<&'static str> {
    let name = path.rsplit('/').next()?;
    let ext = name.rsplit_once('.')?.1;
    DATA_EXTENSIONS.iter().copied().find(|e| *e == ext)
}

/// The keywords `datasets` accepts for a split (`SPLIT_KEYWORDS`); other splits are their name.
fn split_keywords(split: &str) -> Vec<&str> {
    match split {
        "train" => vec!["train", "training"],
        "validation" => vec!["validation", "valid", "dev", "val"],
        "test" => vec!["test", "testing", "eval", "evaluation"],
        other => vec![other],
    }
}

/// Whether `text` contains `keyword` with a separator on each side.
fn contains_delimited(text: &str, keyword: &str) -> bool {
    text.match_indices(keyword).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + keyword.len()..].chars().next();
        before.is_some_and(is_separator) && after.is_some_and(is_separator)
    })
}

/// `**/{keyword}[sep]*` or `**/*[sep]{keyword}[sep]*` on the file name.
fn file_name_matches(name: &str, keyword: &str) -> bool {
    name.strip_prefix(keyword)
        .and_then(|rest| rest.chars().next())
        .is_some_and(is_separator)
        || contains_delimited(name, keyword)
}

/// `**/{keyword}/**` or `**/*[sep]{keyword}[sep]*/**` on the folders of `path`.
fn folder_matches(path: &str, keyword: &str) -> bool {
    let mut folders: Vec<&str> = path.split('/').collect();
    folders.pop();
    folders
        .iter()
        .any(|d| *d == keyword || contains_delimited(d, keyword))
}

/// The split named by `data/<split>-NNNNN-of-NNNNN*.*`, if `path` has that form.
fn sharded_split(path: &str) -> Option<&str> {
    let name = path.strip_prefix("data/")?;
    if name.contains('/') {
        return None;
    }
    let bytes = name.as_bytes();
    // `-` + 5 digits + `-of-` + 5 digits is 15 bytes; something must follow with a `.`.
    (1..name.len()).find_map(|i| {
        let tail = bytes.get(i..i + 15)?;
        let digits = |r: std::ops::Range<usize>| tail[r].iter().all(u8::is_ascii_digit);
        let shaped = tail[0] == b'-' && digits(1..6) && &tail[6..10] == b"-of-" && digits(10..15);
        (shaped && name[i + 15..].contains('.')).then(|| &name[..i])
    })
}

/// Chooses the data files of `req` among the repository paths `all` (see the module doc);
/// returns them sorted, as paths of the repository.
fn select_data_files(all: &[String], req: &DatasetRequest<'_>) -> Result<Vec<String>> {
    let folder = req
        .folder
        .map(|f| f.trim_matches('/'))
        .filter(|f| !f.is_empty());
    // (repository path, path the patterns see)
    let mut candidates: Vec<(&str, &str)> = all
        .iter()
        .filter(|p| data_extension(p).is_some())
        .filter_map(|p| {
            let rel = match folder {
                Some(f) => p.strip_prefix(f)?.strip_prefix('/')?,
                None => p.as_str(),
            };
            Some((p.as_str(), rel))
        })
        .collect();
    if let Some(subset) = req.subset {
        candidates = candidates
            .into_iter()
            .filter_map(|(p, rel)| {
                let mut start = 0;
                for segment in rel.split('/') {
                    start += segment.len() + 1;
                    if segment == subset {
                        return Some((p, rel.get(start..).filter(|r| !r.is_empty())?));
                    }
                }
                None
            })
            .collect();
    }
    let wanted = {
        let mut w = format!("split `{}`", req.split);
        if let Some(subset) = req.subset {
            w.push_str(&format!(" of subset `{subset}`"));
        }
        if let Some(folder) = folder {
            w.push_str(&format!(" in folder `{folder}`"));
        }
        w
    };
    let no_files = |found: String| HubError::NoDataFiles {
        repo: req.repo.to_string(),
        wanted: wanted.clone(),
        found,
    };
    if candidates.is_empty() {
        let mut readable: Vec<&str> = all
            .iter()
            .filter(|p| data_extension(p).is_some())
            .map(String::as_str)
            .collect();
        readable.truncate(20);
        return Err(no_files(format!(
            "the readable data files (arrow, csv, json, jsonl, parquet, txt) there are {readable:?}"
        )));
    }

    let defaults = ["train", "validation", "test"];
    let sharded: Vec<(&str, &str)> = candidates
        .iter()
        .filter_map(|&(p, rel)| Some((p, sharded_split(rel)?)))
        .collect();
    let (chosen, splits): (Vec<&str>, Vec<String>) = if !sharded.is_empty() {
        let splits = sharded.iter().map(|(_, s)| s.to_string()).collect();
        let chosen = sharded
            .iter()
            .filter(|(_, s)| *s == req.split)
            .map(|(p, _)| *p)
            .collect();
        (chosen, splits)
    } else {
        // Folder names first, then file names (`ALL_DEFAULT_PATTERNS` order).
        let rule = |in_folder: bool, rel: &str, split: &str| {
            let name = rel.rsplit('/').next().unwrap_or(rel);
            split_keywords(split).iter().any(|k| {
                if in_folder {
                    folder_matches(rel, k)
                } else {
                    file_name_matches(name, k)
                }
            })
        };
        let ruled = [true, false].into_iter().find_map(|in_folder| {
            let rule = |rel: &str, split: &str| rule(in_folder, rel, split);
            let present: Vec<String> = defaults
                .iter()
                .filter(|s| candidates.iter().any(|(_, rel)| rule(rel, s)))
                .map(|s| s.to_string())
                .collect();
            (!present.is_empty()).then(|| {
                let chosen = candidates
                    .iter()
                    .filter(|(_, rel)| defaults.contains(&req.split) && rule(rel, req.split))
                    .map(|(p, _)| *p)
                    .collect();
                (chosen, present)
            })
        });
        ruled.unwrap_or_else(|| {
            // No split appears in any name: every file is `train`.
            let chosen = if req.split == "train" {
                candidates.iter().map(|(p, _)| *p).collect()
            } else {
                Vec::new()
            };
            (chosen, vec!["train".to_string()])
        })
    };
    if chosen.is_empty() {
        let mut splits = splits;
        splits.sort();
        splits.dedup();
        return Err(no_files(format!("its splits are {splits:?}")));
    }
    Ok(one_type(chosen))
}

/// Keeps the files of the most common data type (ties broken by [`DATA_EXTENSIONS`] order),
/// sorted by path.
fn one_type(files: Vec<&str>) -> Vec<String> {
    let count = |ext: &str| {
        files
            .iter()
            .filter(|f| data_extension(f) == Some(ext))
            .count()
    };
    let best = DATA_EXTENSIONS.iter().copied().max_by_key(|e| {
        (
            count(e),
            std::cmp::Reverse(DATA_EXTENSIONS.iter().position(|x| x == e)),
        )
    });
    let mut kept: Vec<String> = files
        .into_iter()
        .filter(|f| data_extension(f) == best)
        .map(str::to_string)
        .collect();
    kept.sort();
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req<'a>(
        split: &'a str,
        subset: Option<&'a str>,
        folder: Option<&'a str>,
    ) -> DatasetRequest<'a> {
        DatasetRequest {
            repo: "org/data",
            subset,
            folder,
            split,
        }
    }

    fn pick(files: &[&str], request: DatasetRequest<'_>) -> Result<Vec<String>> {
        let all: Vec<String> = files.iter().map(|s| s.to_string()).collect();
        select_data_files(&all, &request)
    }

    fn ok(files: &[&str], request: DatasetRequest<'_>) -> Vec<String> {
        pick(files, request).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn sharded_names_define_any_split() {
        let files = [
            ".gitattributes",
            "README.md",
            "data/train_sft-00000-of-00002-abc.parquet",
            "data/train_sft-00001-of-00002-def.parquet",
            "data/test_sft-00000-of-00001.parquet",
            "data/train_gen-00000-of-00001.parquet",
        ];
        assert_eq!(
            ok(&files, req("train_sft", None, None)),
            [
                "data/train_sft-00000-of-00002-abc.parquet",
                "data/train_sft-00001-of-00002-def.parquet"
            ]
        );
        assert_eq!(
            ok(&files, req("test_sft", None, None)),
            ["data/test_sft-00000-of-00001.parquet"]
        );
        let err = pick(&files, req("train", None, None))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(r#"its splits are ["test_sft", "train_gen", "train_sft"]"#),
            "{err}"
        );
        assert_eq!(sharded_split("data/x-00000-of-00001"), None, "no extension");
        assert_eq!(sharded_split("data/sub/train-00000-of-00001.json"), None);
        assert_eq!(sharded_split("train-00000-of-00001.json"), None);
    }

    #[test]
    fn split_in_file_name() {
        let files = [
            "README.md",
            "train.jsonl",
            "alpaca_dev.json",
            "test-2.jsonl",
            "pretraining.jsonl",
            "eval.jsonl",
        ];
        assert_eq!(ok(&files, req("train", None, None)), ["train.jsonl"]);
        // `dev` is a validation keyword, found between separators.
        assert_eq!(
            ok(&files, req("validation", None, None)),
            ["alpaca_dev.json"]
        );
        assert_eq!(
            ok(&files, req("test", None, None)),
            ["eval.jsonl", "test-2.jsonl"]
        );
        // A name outside the default splits is not looked for in file names.
        let err = pick(&files, req("extra", None, None))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(r#"its splits are ["test", "train", "validation"]"#),
            "{err}"
        );
    }

    #[test]
    fn split_in_folder_name_wins_over_file_name() {
        let files = [
            "train/part-0.parquet",
            "train/part-1.parquet",
            "val/test_like_name.parquet",
        ];
        assert_eq!(
            ok(&files, req("train", None, None)),
            ["train/part-0.parquet", "train/part-1.parquet"]
        );
        assert_eq!(
            ok(&files, req("validation", None, None)),
            ["val/test_like_name.parquet"]
        );
        assert!(pick(&files, req("test", None, None)).is_err());
    }

    #[test]
    fn no_split_anywhere_means_everything_is_train() {
        let files = ["README.md", "data.json", "more/extra.json", "script.py"];
        assert_eq!(
            ok(&files, req("train", None, None)),
            ["data.json", "more/extra.json"]
        );
        let err = pick(&files, req("test", None, None))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "dataset `org/data`: no data files for split `test`; its splits are [\"train\"]; \
             hint: set `split`, `subset` or `folder` in the dataset's entry of dataset_info.json"
        );
    }

    #[test]
    fn subset_and_folder_narrow_the_files() {
        let files = [
            "en/train-00000-of-00001.parquet",
            "en/test-00000-of-00001.parquet",
            "zh/train-00000-of-00001.parquet",
            "raw/zh/train.jsonl",
            "raw/zh/train.csv",
            "raw/zh/train.part2.jsonl",
        ];
        assert_eq!(
            ok(&files, req("train", Some("en"), None)),
            ["en/train-00000-of-00001.parquet"]
        );
        assert_eq!(
            ok(&files, req("test", Some("en"), None)),
            ["en/test-00000-of-00001.parquet"]
        );
        // Both `zh` folders hold the subset; the most common type (jsonl) is kept.
        let zh = ok(&files, req("train", Some("zh"), Some("raw")));
        assert_eq!(zh, ["raw/zh/train.jsonl", "raw/zh/train.part2.jsonl"]);
        let err = pick(&files, req("train", Some("fr"), None))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no data files for split `train` of subset `fr`"),
            "{err}"
        );
        assert!(err.contains("\"en/train-00000-of-00001.parquet\""), "{err}");
    }

    #[test]
    fn keyword_boundaries() {
        assert!(file_name_matches("train.json", "train"));
        assert!(file_name_matches("train-00001.json", "train"));
        assert!(file_name_matches("my_train_set.json", "train"));
        assert!(!file_name_matches("trainer.json", "train"));
        assert!(!file_name_matches("pretrain.json", "train"));
        assert!(
            !file_name_matches("train", "train"),
            "needs a character after the keyword"
        );
        assert!(folder_matches("a/train/b.json", "train"));
        assert!(folder_matches("x_train_y/b.json", "train"));
        assert!(
            !folder_matches("train.json", "train"),
            "a file name is not a folder"
        );
        assert!(is_safe_relative("data/a.json"));
        assert!(!is_safe_relative("../a.json"));
        assert!(!is_safe_relative("/etc/passwd"));
    }
}
