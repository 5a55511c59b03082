#!/usr/bin/env bash
# Optional speed-up: installs oneDNN (Debian's libdnnl2), the GEMM library ferrotune opens at
# run time for the large f32 products of training (0.97-1.23x the built-in gemm crate on the
# demo model's 2,048-row products; `cargo run -p ferrotune-model --example bench_gemm`).
# Without it ferrotune uses the gemm crate, with the same results up to f32 rounding.
# Never fails its caller: it only tries, and says what it found.
set -u
have() { ldconfig -p 2>/dev/null | grep -q 'libdnnl\.so\.[23]'; }
if have; then
  echo "oneDNN: installed"
  exit 0
fi
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends libdnnl2 >/dev/null 2>&1 ||
    { apt-get update -q >/dev/null 2>&1 &&
      apt-get install -y -q --no-install-recommends libdnnl2 >/dev/null 2>&1; }
fi
if have; then
  echo "oneDNN: installed libdnnl2"
else
  echo "oneDNN: not installed (needs root and apt-get); training uses the gemm crate"
fi
exit 0
