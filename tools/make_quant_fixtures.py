"""Build the GGUF dequantization reference fixture.

Writes
  fixtures/gguf/quant_types.gguf                  one tensor per GGML type, ne = [512, 4]
  fixtures/gguf/quant_types.expected.safetensors  the same tensors dequantized by gguf-py, F32 [4, 512]

Types: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 (quantized from seeded random
float32 data with gguf.quants.quantize) and Q4_K, Q5_K, Q6_K (gguf-py cannot quantize
these, so their blocks are seeded random bytes whose f16 super-block scales `d` / `dmin`
are overwritten with finite values in [0.001, 0.05]). Tensor names are `t.<type lower>`.

The expected values come from reading the written file back with GGUFReader and calling
gguf.quants.dequantize, so they are the reference decoding of exactly the bytes on disk.

Run from the repository root (deterministic, safe to re-run):
  /work/pyref/venv/bin/python tools/make_quant_fixtures.py
Requirements: tools/requirements.txt
"""
import os

import numpy as np
from gguf import GGUFReader, GGUFWriter, GGML_QUANT_SIZES, GGMLQuantizationType as T
from gguf.quants import dequantize, quantize
from safetensors.numpy import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "fixtures", "gguf")
ROWS, COLS = 4, 512
QUANTIZABLE = ["F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1"]
# K-quants: byte offsets of the f16 scale fields inside one block (ggml-common.h layouts):
#   Q4_K block_q4_K (144 B): d @0, dmin @2, scales[12], qs[128]
#   Q5_K block_q5_K (176 B): d @0, dmin @2, scales[12], qh[32], qs[128]
#   Q6_K block_q6_K (210 B): ql[128], qh[64], scales[16] (int8), d @208
RANDOM_BLOCKS = {"Q4_K": [0, 2], "Q5_K": [0, 2], "Q6_K": [208]}


def source_values(rng: np.random.Generator) -> np.ndarray:
    """Seeded float32 [ROWS, COLS] data with a few exact zeros and outliers."""
    x = rng.standard_normal((ROWS, COLS)).astype(np.float32)
    x *= np.linspace(0.1, 3.0, ROWS, dtype=np.float32)[:, None]  # a different range per row
    x[0, :32] = 0.0  # one all-zero block
    x[1, 5] = 40.0  # outliers
    x[2, 300] = -25.0
    return x


def random_kquant_blocks(rng: np.random.Generator, qtype: T, scale_offsets: list[int]) -> np.ndarray:
    """Random block bytes for a K-quant with finite small f16 scales, uint8 [ROWS, bytes_per_row]."""
    block_elems, block_bytes = GGML_QUANT_SIZES[qtype]
    n_blocks = ROWS * COLS // block_elems
    raw = rng.integers(0, 256, size=(n_blocks, block_bytes), dtype=np.uint8)
    for off in scale_offsets:
        scale = rng.uniform(0.001, 0.05, size=n_blocks).astype(np.float16)
        raw[:, off : off + 2] = scale.view(np.uint8).reshape(n_blocks, 2)
    return raw.reshape(ROWS, COLS // block_elems * block_bytes)


def main() -> None:
    os.makedirs(OUT_DIR, exist_ok=True)
    gguf_path = os.path.join(OUT_DIR, "quant_types.gguf")
    rng = np.random.default_rng(20261130)
    writer = GGUFWriter(gguf_path, "llama")
    writer.add_description("ferrotune dequantization fixture: one [4, 512] tensor per GGML type")
    for name in QUANTIZABLE + list(RANDOM_BLOCKS):
        qtype = T[name]
        if name in RANDOM_BLOCKS:
            data = random_kquant_blocks(rng, qtype, RANDOM_BLOCKS[name])
        else:
            data = quantize(source_values(rng), qtype)
        if data.dtype == np.uint8:
            writer.add_tensor(f"t.{name.lower()}", data, raw_shape=data.shape, raw_dtype=qtype)
        else:  # F32 / F16 arrays carry their own dtype
            writer.add_tensor(f"t.{name.lower()}", data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

    reader = GGUFReader(gguf_path)
    expected = {}
    for t in reader.tensors:
        assert [int(v) for v in t.shape] == [COLS, ROWS], (t.name, t.shape)
        a = dequantize(t.data, t.tensor_type).astype(np.float32).reshape(ROWS, COLS)
        assert np.isfinite(a).all(), t.name
        expected[t.name] = np.ascontiguousarray(a)
        print(f"{t.name:8s} {t.tensor_type.name:5s} bytes={t.n_bytes:5d} "
              f"min={a.min():+.5f} max={a.max():+.5f} first={a[0, 32:35].tolist()}")
    save_file(expected, os.path.join(OUT_DIR, "quant_types.expected.safetensors"),
              # one metadata key only: safetensors writes the metadata map in hash order
              metadata={"tool": "tools/make_quant_fixtures.py"})
    print("wrote", gguf_path, os.path.getsize(gguf_path), "bytes")


if __name__ == "__main__":
    main()
