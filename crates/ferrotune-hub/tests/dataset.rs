//! Hub datasets: the cache layout found offline, the offline error, and listing + download
//! against a local HTTP server that answers like the hub (no test touches the internet).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};

use ferrotune_hub::resolve::dataset::{resolve_dataset, DatasetFiles, DatasetRequest};
use ferrotune_hub::resolve::HubOptions;
use ferrotune_hub::HubError;

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

fn train(repo: &str) -> DatasetRequest<'_> {
    DatasetRequest {
        repo,
        subset: None,
        folder: None,
        split: "train",
    }
}

fn options(cache: &Path, offline: bool, endpoint: &str) -> HubOptions {
    HubOptions {
        cache_dir: Some(cache.to_path_buf()),
        offline,
        endpoint: endpoint.to_string(),
        ..HubOptions::default()
    }
}

/// Writes `files` (path, content) into `<cache>/datasets--org--name/snapshots/<COMMIT>/` and
/// points `refs/main` at it.
fn fake_cache(cache: &Path, repo: &str, files: &[(&str, &str)]) {
    let folder = cache.join(format!("datasets--{}", repo.replace('/', "--")));
    let snapshot = folder.join("snapshots").join(COMMIT);
    for (path, content) in files {
        let dest = snapshot.join(path);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::write(dest, content).unwrap();
    }
    std::fs::create_dir_all(folder.join("refs")).unwrap();
    std::fs::write(folder.join("refs/main"), format!("{COMMIT}\n")).unwrap();
}

#[test]
fn cached_dataset_is_found_offline() {
    let dir = tempfile::tempdir().unwrap();
    fake_cache(
        dir.path(),
        "org/demo",
        &[
            ("README.md", "# demo"),
            ("en/train-00000-of-00002.parquet", "a"),
            ("en/train-00001-of-00002.parquet", "b"),
            ("en/test-00000-of-00001.parquet", "c"),
            ("zh/train.jsonl", "{}"),
            ("en/train-00002-of-00002.parquet.incomplete", "partial"),
        ],
    );
    // Offline, and an endpoint that would refuse connections: only the cache can answer.
    let opts = options(dir.path(), true, "http://127.0.0.1:9");
    let snapshot = dir
        .path()
        .join("datasets--org--demo/snapshots")
        .join(COMMIT);
    let en = DatasetRequest {
        subset: Some("en"),
        ..train("org/demo")
    };
    assert_eq!(
        resolve_dataset(&en, &opts).unwrap(),
        DatasetFiles {
            commit: COMMIT.to_string(),
            snapshot: snapshot.clone(),
            files: vec![
                snapshot.join("en/train-00000-of-00002.parquet"),
                snapshot.join("en/train-00001-of-00002.parquet"),
            ],
        }
    );
    let zh = DatasetRequest {
        subset: Some("zh"),
        ..train("org/demo")
    };
    assert_eq!(
        resolve_dataset(&zh, &opts).unwrap().files,
        [snapshot.join("zh/train.jsonl")]
    );
    // A commit hash as the revision needs no ref file.
    let by_commit = HubOptions {
        revision: COMMIT.to_string(),
        ..opts.clone()
    };
    std::fs::remove_file(dir.path().join("datasets--org--demo/refs/main")).unwrap();
    assert_eq!(resolve_dataset(&en, &by_commit).unwrap().files.len(), 2);

    // The cached snapshot lacks the split: offline, the error says which splits it has.
    fake_cache(dir.path(), "org/demo", &[]);
    let err = resolve_dataset(
        &DatasetRequest {
            split: "validation",
            ..en
        },
        &opts,
    )
    .unwrap_err();
    assert!(matches!(err, HubError::NoDataFiles { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("its splits are [\"test\", \"train\"]"),
        "{err}"
    );
}

#[test]
fn offline_miss_names_dataset_cache_and_fix() {
    let dir = tempfile::tempdir().unwrap();
    let opts = options(dir.path(), true, "http://127.0.0.1:9");
    let err = resolve_dataset(&train("org/missing"), &opts).unwrap_err();
    assert!(matches!(err, HubError::DatasetOffline { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "dataset `org/missing` (revision `main`) is not in the hugging face cache at {} and \
             offline mode is on (HF_HUB_OFFLINE or offline: true); hint: download it elsewhere \
             (`huggingface-cli download --repo-type dataset org/missing`) into that cache, or \
             download its data files and set `file_name` in dataset_info.json",
            dir.path().display()
        )
    );

    // Online but the hub cannot be reached (nothing listens on the port): same error kind.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let err = resolve_dataset(
        &train("org/missing"),
        &options(dir.path(), false, &endpoint),
    )
    .unwrap_err();
    assert!(matches!(err, HubError::DatasetOffline { .. }), "{err}");
    assert!(err.to_string().contains("is unreachable"), "{err}");

    let err = resolve_dataset(&train("not a repo"), &opts).unwrap_err();
    assert!(err.to_string().contains("not a hub dataset id"), "{err}");
}

/// A one-thread HTTP/1.1 server answering `routes` (path → body) with 200 and anything else
/// with 404; returns its base URL and the log of requested paths.
fn serve(routes: Vec<(String, Vec<u8>)>) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let log = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&log);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap_or(0);
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                    break;
                }
            }
            let path = request_line
                .split(' ')
                .nth(1)
                .unwrap_or_default()
                .to_string();
            seen.lock().unwrap().push(path.clone());
            let (status, body) = match routes.iter().find(|(p, _)| *p == path) {
                Some((_, body)) => ("200 OK", body.clone()),
                None => ("404 Not Found", b"not found".to_vec()),
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    (base, log)
}

#[test]
fn lists_downloads_and_then_reads_the_cache() {
    let info = serde_json::json!({
        "id": "org/demo",
        "sha": COMMIT,
        "siblings": [
            {"rfilename": ".gitattributes"},
            {"rfilename": "README.md"},
            {"rfilename": "data/train-00000-of-00002.parquet"},
            {"rfilename": "data/train-00001-of-00002.parquet"},
            {"rfilename": "data/test-00000-of-00001.parquet"},
            {"rfilename": "../escape-00000-of-00001.parquet"},
        ],
    });
    let resolve = |file: &str| format!("/datasets/org/demo/resolve/{COMMIT}/{file}");
    let (endpoint, log) = serve(vec![
        (
            "/api/datasets/org/demo/revision/main".to_string(),
            info.to_string().into_bytes(),
        ),
        (
            resolve("data/train-00000-of-00002.parquet"),
            b"shard zero".to_vec(),
        ),
        (
            resolve("data/train-00001-of-00002.parquet"),
            b"shard one".to_vec(),
        ),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let got = resolve_dataset(&train("org/demo"), &options(dir.path(), false, &endpoint)).unwrap();
    let snapshot = dir
        .path()
        .join("datasets--org--demo/snapshots")
        .join(COMMIT);
    assert_eq!(got.commit, COMMIT);
    assert_eq!(
        got.files,
        [
            snapshot.join("data/train-00000-of-00002.parquet"),
            snapshot.join("data/train-00001-of-00002.parquet"),
        ]
    );
    assert_eq!(std::fs::read(&got.files[0]).unwrap(), b"shard zero");
    assert_eq!(std::fs::read(&got.files[1]).unwrap(), b"shard one");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("datasets--org--demo/refs/main")).unwrap(),
        COMMIT
    );
    assert_eq!(
        *log.lock().unwrap(),
        [
            "/api/datasets/org/demo/revision/main".to_string(),
            resolve("data/train-00000-of-00002.parquet"),
            resolve("data/train-00001-of-00002.parquet"),
        ]
    );

    // Second time: served from the cache, no request.
    let again =
        resolve_dataset(&train("org/demo"), &options(dir.path(), false, &endpoint)).unwrap();
    assert_eq!(again, got);
    assert_eq!(log.lock().unwrap().len(), 3);

    // A listed file the hub cannot serve is a download error naming its URL.
    let test = DatasetRequest {
        split: "test",
        ..train("org/demo")
    };
    let err = resolve_dataset(&test, &options(dir.path(), false, &endpoint)).unwrap_err();
    assert!(matches!(err, HubError::Download { .. }), "{err}");
    assert!(
        err.to_string()
            .contains(&resolve("data/test-00000-of-00001.parquet")),
        "{err}"
    );

    // An unknown dataset: the listing's 404 becomes a download error with the token hint.
    let err =
        resolve_dataset(&train("org/other"), &options(dir.path(), false, &endpoint)).unwrap_err();
    assert!(err.to_string().contains("no dataset `org/other`"), "{err}");
    assert!(err.to_string().contains("HF_TOKEN"), "{err}");
}
