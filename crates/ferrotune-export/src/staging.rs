//! All-or-nothing output folders: everything is written into a temporary folder beside the
//! target and renamed onto it once complete, so the target is only ever absent or complete
//! (a crash, a full disk or an error mid-export leaves no half-written `export_dir`).

use std::path::{Path, PathBuf};

use crate::error::{ExportError, Result};

/// A temporary folder that becomes `target` on [`Staging::commit`] and is deleted when dropped
/// uncommitted.
#[derive(Debug)]
pub struct Staging {
    target: PathBuf,
    tmp: PathBuf,
    committed: bool,
}

/// `parent/.{name}.{tag}-{pid}`: hidden, beside `target` (same file system, so the rename is
/// atomic), unique to this process.
fn sibling(target: &Path, tag: &str) -> PathBuf {
    let name = target
        .file_name()
        .map_or_else(|| "export".into(), |n| n.to_string_lossy().into_owned());
    let parent = parent_of(target);
    parent.join(format!(".{name}.{tag}-{}", std::process::id()))
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Whether `path` exists and is not an empty folder.
fn occupied(path: &Path) -> Result<bool> {
    if !path.exists() {
        return Ok(false);
    }
    if !path.is_dir() {
        return Ok(true);
    }
    let mut entries = std::fs::read_dir(path).map_err(|e| ExportError::io(path, e))?;
    Ok(entries.next().is_some())
}

impl Staging {
    /// Creates the temporary folder for `target`. A `target` that exists and is not an empty
    /// folder is refused unless `overwrite` (it is then replaced only on commit).
    ///
    /// Errors: [`ExportError::Config`] for an occupied target without `overwrite`,
    /// [`ExportError::Io`] when the folders cannot be created.
    pub fn begin(target: &Path, overwrite: bool) -> Result<Self> {
        if !overwrite && occupied(target)? {
            return Err(ExportError::Config(format!(
                "`export_dir` {} already exists and is not empty; hint: choose a new `export_dir` or set `overwrite_output_dir: true` to replace it",
                target.display()
            )));
        }
        let parent = parent_of(target);
        std::fs::create_dir_all(parent).map_err(|e| ExportError::io(parent, e))?;
        let tmp = sibling(target, "tmp");
        if tmp.exists() {
            // Left by an earlier run of a process with the same id that was killed.
            std::fs::remove_dir_all(&tmp).map_err(|e| ExportError::io(&tmp, e))?;
        }
        std::fs::create_dir(&tmp).map_err(|e| ExportError::io(&tmp, e))?;
        Ok(Self {
            target: target.to_path_buf(),
            tmp,
            committed: false,
        })
    }

    /// The temporary folder to write into.
    pub fn dir(&self) -> &Path {
        &self.tmp
    }

    /// The folder the export becomes.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Renames the temporary folder onto the target (an existing target is first moved aside,
    /// then deleted) and syncs the parent folder.
    ///
    /// Errors: [`ExportError::Io`] naming the folder that could not be renamed or removed.
    pub fn commit(mut self) -> Result<PathBuf> {
        sync(&self.tmp)?;
        let old = sibling(&self.target, "old");
        let replaced = self.target.exists();
        if replaced {
            std::fs::rename(&self.target, &old).map_err(|e| ExportError::io(&self.target, e))?;
        }
        if let Err(e) = std::fs::rename(&self.tmp, &self.target) {
            if replaced {
                // Put the previous export back; the rename error is the one worth reporting.
                let _ = std::fs::rename(&old, &self.target);
            }
            return Err(ExportError::io(&self.target, e));
        }
        self.committed = true;
        sync(parent_of(&self.target))?;
        if replaced {
            let removed = if old.is_dir() {
                std::fs::remove_dir_all(&old)
            } else {
                std::fs::remove_file(&old)
            };
            removed.map_err(|e| ExportError::io(&old, e))?;
        }
        Ok(self.target.clone())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            // Best effort: the error that stopped the export is the one reported.
            let _ = std::fs::remove_dir_all(&self.tmp);
        }
    }
}

/// Flushes a file or folder to disk (`fsync`); folders are synced where the OS allows it.
///
/// Errors: [`ExportError::Io`] naming the path.
pub fn sync(path: &Path) -> Result<()> {
    let file = std::fs::File::open(path).map_err(|e| ExportError::io(path, e))?;
    match file.sync_all() {
        Ok(()) => Ok(()),
        // Some platforms refuse to sync a folder handle; the files in it were synced already.
        Err(_) if path.is_dir() => Ok(()),
        Err(e) => Err(ExportError::io(path, e)),
    }
}

/// Writes `bytes` to `path` and syncs it.
///
/// Errors: [`ExportError::Io`] naming the file.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|e| ExportError::io(path, e))?;
    sync(path)
}

/// Writes `value` as indented JSON (two spaces, as transformers' `to_json_string`) plus a
/// newline, and syncs it.
///
/// Errors: [`ExportError::Write`] if serialization fails, [`ExportError::Io`].
pub fn write_json(path: &Path, value: &serde_json::Value) -> Result<()> {
    let mut text = serde_json::to_string_pretty(value).map_err(|e| ExportError::Write {
        path: path.to_path_buf(),
        msg: e.to_string(),
    })?;
    text.push('\n');
    write_file(path, text.as_bytes())
}
