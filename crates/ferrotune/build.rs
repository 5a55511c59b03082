//! Records the versions of key libraries, as resolved in the workspace `Cargo.lock`, for
//! `ferrotune env`: one `FERROTUNE_VERSION_<NAME>` environment variable per library.

use std::path::{Path, PathBuf};

/// Libraries whose resolved versions `ferrotune env` prints.
const LIBRARIES: [&str; 4] = ["candle-core", "tokenizers", "minijinja", "safetensors"];

/// One `[[package]]` entry of `Cargo.lock`.
struct Package {
    name: String,
    version: String,
    /// Workspace members have no `source` line.
    is_member: bool,
    /// Dependency entries: `"name"` or `"name version"` when the name is ambiguous.
    dependencies: Vec<String>,
}

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let lock_path = manifest_dir
        .ancestors()
        .map(|dir| dir.join("Cargo.lock"))
        .find(|p| p.exists());
    let packages = match &lock_path {
        Some(path) => {
            println!("cargo:rerun-if-changed={}", path.display());
            parse_lock(path)
        }
        None => Vec::new(),
    };
    for library in LIBRARIES {
        let var = format!(
            "FERROTUNE_VERSION_{}",
            library.to_uppercase().replace('-', "_")
        );
        println!(
            "cargo:rustc-env={var}={}",
            resolved_versions(&packages, library)
        );
    }
}

/// Versions of `library` that workspace members depend on directly; all locked versions when no
/// member names it; `not in Cargo.lock` when absent.
fn resolved_versions(packages: &[Package], library: &str) -> String {
    let locked: Vec<&str> = packages
        .iter()
        .filter(|p| p.name == library)
        .map(|p| p.version.as_str())
        .collect();
    let mut used: Vec<String> = Vec::new();
    for member in packages.iter().filter(|p| p.is_member) {
        for dep in &member.dependencies {
            let mut parts = dep.split_whitespace();
            if parts.next() != Some(library) {
                continue;
            }
            let version = match (parts.next(), locked.as_slice()) {
                (Some(version), _) => version.to_string(),
                (None, [only]) => only.to_string(),
                (None, _) => continue,
            };
            if !used.contains(&version) {
                used.push(version);
            }
        }
    }
    if used.is_empty() {
        used = locked.iter().map(|v| v.to_string()).collect();
    }
    if used.is_empty() {
        "not in Cargo.lock".to_string()
    } else {
        used.join(", ")
    }
}

/// A line-based reader of the `Cargo.lock` v3/v4 format (enough for names, versions,
/// sources and dependency lists).
fn parse_lock(path: &Path) -> Vec<Package> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut packages = Vec::new();
    let mut current: Option<Package> = None;
    let mut in_dependencies = false;
    for line in text.lines() {
        let line = line.trim();
        if line == "[[package]]" {
            packages.extend(current.take());
            current = Some(Package {
                name: String::new(),
                version: String::new(),
                is_member: true,
                dependencies: Vec::new(),
            });
            in_dependencies = false;
            continue;
        }
        let Some(package) = current.as_mut() else {
            continue;
        };
        if in_dependencies {
            if line == "]" {
                in_dependencies = false;
            } else {
                package
                    .dependencies
                    .push(unquote(line.trim_end_matches(',')));
            }
        } else if let Some(value) = line.strip_prefix("name = ") {
            package.name = unquote(value);
        } else if let Some(value) = line.strip_prefix("version = ") {
            package.version = unquote(value);
        } else if line.starts_with("source = ") {
            package.is_member = false;
        } else if line.starts_with("dependencies = [") {
            in_dependencies = !line.ends_with(']');
        } else if line.starts_with('[') {
            // A new table such as [metadata].
            packages.extend(current.take());
        }
    }
    packages.extend(current);
    packages
}

fn unquote(text: &str) -> String {
    text.trim().trim_matches('"').to_string()
}
