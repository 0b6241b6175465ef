"""Checks of the CUDA kernels that need no GPU.

* Every ``csrc/ops/cuda/*.cu`` compiles with plain ``nvcc`` for sm_90 without any torch
  include path (the kernels are torch-free by design); skipped when nvcc is absent.
* The selection rules the CUDA kernels use (``csrc/ops/cuda/selection.h``: order-preserving
  keys, radix-select digit choice, tie handling, plus ``kernel_math.h``) are compiled into
  a small host program that replays the kernels' algorithms sequentially (the same
  passes, histograms and ordered sweep as ``block_select.cuh`` and the two selecting
  kernels); its results must equal the PyTorch references. Skipped without a C++ compiler.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
OPS_DIR = ROOT / "csrc" / "ops"
CUDA_DIR = OPS_DIR / "cuda"
sys.path.insert(0, str(ROOT))

from mmclip.ops import reference  # noqa: E402


def _find_nvcc() -> str | None:
    found = shutil.which("nvcc")
    if found:
        return found
    for home in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if home and (Path(home) / "bin" / "nvcc").exists():
            return str(Path(home) / "bin" / "nvcc")
    return None


CU_FILES = sorted(CUDA_DIR.glob("*.cu"))


OPS = (
    "cross_modal_attention_score",
    "attention_guided_mask",
    "masked_gather_scatter",
    "entity_span_mask",
)


def test_each_op_has_its_kernel_and_binding_file():
    names = {p.name for p in CUDA_DIR.iterdir()}
    for op in OPS:
        assert f"{op}_kernel.cu" in names
        assert f"{op}_binding.cpp" in names
    assert "bindings.cpp" not in names, "one binding file per op, beside its kernel"
    assert (CUDA_DIR / "kernels.h").exists()


def test_each_binding_registers_only_its_own_op():
    for op in OPS:
        text = (CUDA_DIR / f"{op}_binding.cpp").read_text()
        registered = set(re.findall(r'm\.impl\("(\w+)"', text))
        assert registered, f"{op}_binding.cpp registers nothing"
        prefixes = {"masked_gather_scatter": ("masked_gather", "masked_scatter")}.get(op, (op,))
        assert all(name.startswith(prefixes) for name in registered), (op, registered)


def _torch_cuda_include_dirs() -> list[str] | None:
    """Include path for a host-only syntax check of the bindings (no GPU, no nvcc)."""
    from torch.utils.cpp_extension import include_paths

    cuda_include = None
    for home in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if home and (Path(home) / "include" / "cuda_runtime.h").exists():
            cuda_include = str(Path(home) / "include")
            break
    dirs = include_paths()
    if cuda_include is None or not any((Path(d) / "c10" / "cuda").is_dir() for d in dirs):
        return None
    return [*dirs, cuda_include]


def test_cuda_bindings_compile_on_the_host(tmp_path):
    """The ATen side of every op's CUDA binding parses and type-checks with the host compiler.

    A CPU build never compiles these files; this catches a broken binding without a GPU.
    A CPU wheel of torch lacks one generated c10/cuda header, so a stand-in is written.
    """
    compiler = shutil.which("g++") or shutil.which("c++")
    dirs = _torch_cuda_include_dirs()
    if compiler is None or dirs is None:
        pytest.skip("needs a C++ compiler, torch's c10/cuda headers and the CUDA toolkit headers")
    stub = tmp_path / "stub" / "c10" / "cuda" / "impl"
    stub.mkdir(parents=True)
    (stub / "cuda_cmake_macros.h").write_text("#pragma once\n#define C10_CUDA_BUILD_SHARED_LIBS\n")
    includes = [f"-I{tmp_path / 'stub'}", *(f"-I{d}" for d in dirs), f"-I{OPS_DIR}"]

    def check(source: Path) -> tuple[Path, int, str]:
        cmd = [compiler, "-std=c++20", "-fsyntax-only", "-Wall", *includes, str(source)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        return source, proc.returncode, proc.stdout + proc.stderr

    sources = sorted(CUDA_DIR.glob("*_binding.cpp"))
    assert len(sources) == len(OPS)
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(check, sources))
    failures = [f"--- {src.name} (exit {rc}) ---\n{log}" for src, rc, log in results if rc != 0]
    assert not failures, "host compile of the CUDA bindings failed:\n" + "\n".join(failures)


def test_kernel_sources_are_torch_free():
    for path in [
        *CU_FILES,
        *CUDA_DIR.glob("*.cuh"),
        CUDA_DIR / "kernels.h",
        CUDA_DIR / "selection.h",
    ]:
        text = path.read_text()
        for banned in ("<torch/", "<ATen/", "<c10/", '"ATen/', '"c10/', '"torch/'):
            assert banned not in text, f"{path.name} includes {banned}"


def _compile_cu(nvcc: str, source: Path, out_dir: Path) -> tuple[Path, int, str]:
    cmd = [
        nvcc,
        "-c",
        "-std=c++17",
        "--expt-relaxed-constexpr",
        "-arch=sm_90",
        "-O3",
        # what torch's CUDAExtension adds: no implicit half / bfloat16 conversions
        "-D__CUDA_NO_HALF_OPERATORS__",
        "-D__CUDA_NO_HALF_CONVERSIONS__",
        "-D__CUDA_NO_BFLOAT16_CONVERSIONS__",
        "-D__CUDA_NO_HALF2_OPERATORS__",
        "-I",
        str(OPS_DIR),
        str(source),
        "-o",
        str(out_dir / (source.stem + ".o")),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    return source, proc.returncode, " ".join(cmd) + "\n" + proc.stdout + proc.stderr


def test_cuda_kernels_compile_with_plain_nvcc(tmp_path):
    nvcc = _find_nvcc()
    if nvcc is None:
        pytest.skip("nvcc not found (set CUDA_HOME or put nvcc on PATH)")
    assert CU_FILES, "no .cu files found"
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda s: _compile_cu(nvcc, s, tmp_path), CU_FILES))
    failures = [f"--- {src.name} (exit {rc}) ---\n{log}" for src, rc, log in results if rc != 0]
    assert not failures, "nvcc failed:\n" + "\n".join(failures)
    for src, _, log in results:
        assert "warning" not in log.lower(), f"nvcc warned on {src.name}:\n{log}"


# ---------------------------------------------------------------------------------
# Host emulation of the selection algorithms of the CUDA kernels.

EMULATOR_SOURCE = r"""
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "cuda/selection.h"

using namespace mmclip;
using namespace mmclip::cuda;

static double read_double() { std::string s; std::cin >> s; return std::strtod(s.c_str(), nullptr); }
static long long read_int() { long long v = 0; std::cin >> v; return v; }

// Sequential replay of block_radix_select (block_select.cuh): same passes, same digit rule.
static SelectThreshold radix_select(const std::vector<uint64_t>& keys, int n) {
  SelectThreshold result{~uint64_t{0}, 0, true};
  const int count = static_cast<int>(keys.size());
  if (n <= 0 || count <= 0) return result;
  if (n > count) n = count;
  uint64_t prefix = 0, known = 0;
  int remaining = n;
  for (int shift = kKeyBits - kRadixBits; shift >= 0; shift -= kRadixBits) {
    int hist[kRadixBins] = {0};
    for (uint64_t u : keys) {
      if ((u & known) == prefix) ++hist[(u >> shift) & (kRadixBins - 1)];
    }
    int above = 0;
    const int digit = radix_choose_digit(hist, remaining, &above);
    prefix |= static_cast<uint64_t>(digit) << shift;
    known |= static_cast<uint64_t>(kRadixBins - 1) << shift;
    remaining -= above;
  }
  return {prefix, remaining, false};
}

// The ordered sweep of the kernels: equal keys ranked in index order.
static std::vector<char> taken_flags(const std::vector<uint64_t>& keys, const SelectThreshold& th) {
  std::vector<char> taken(keys.size(), 0);
  int equal_rank = 0;
  for (size_t i = 0; i < keys.size(); ++i) {
    const bool equal = !th.none && keys[i] == th.threshold;
    taken[i] = select_taken(th, keys[i], equal_rank);
    equal_rank += equal;
  }
  return taken;
}

static int selfcheck() {
  const double d[] = {-INFINITY, -1e308, -2.5, -1.0, -4.9e-324, -0.0, 0.0, 4.9e-324, 1e-300,
                      0.5, 1.0, 1.0000000000000002, 3.0, 1e308, INFINITY};
  const int nd = sizeof(d) / sizeof(d[0]);
  for (int i = 0; i < nd; ++i) {
    for (int j = 0; j < nd; ++j) {
      if ((d[i] > d[j]) != (ordered_bits(d[i]) > ordered_bits(d[j]))) return 1;
      if ((d[i] == d[j]) != (ordered_bits(d[i]) == ordered_bits(d[j]))) return 2;
    }
  }
  const float f[] = {-INFINITY, -3.0f, -1e-45f, -0.0f, 0.0f, 1e-45f, 1e-30f, 0.25f, 0.5f,
                     0.99999994f, 1.0f, INFINITY};
  const int nf = sizeof(f) / sizeof(f[0]);
  for (int i = 0; i < nf; ++i) {
    for (int j = 0; j < nf; ++j) {
      if ((f[i] > f[j]) != (ordered_bits(f[i]) > ordered_bits(f[j]))) return 3;
      if ((f[i] == f[j]) != (ordered_bits(f[i]) == ordered_bits(f[j]))) return 4;
      // top-up keys: smaller noise first, candidates before everything else
      const uint64_t ki = entity_topup_select_key(true, f[i]), kj = entity_topup_select_key(true, f[j]);
      if ((f[i] < f[j]) != (ki > kj)) return 5;
      if (ki <= entity_topup_select_key(false, f[j])) return 6;
    }
  }
  // key_before agrees with the uint64 order with index tie-break.
  for (int i = 0; i < nd; ++i) {
    for (int j = 0; j < nd; ++j) {
      const bool before = key_before(d[i], 3, d[j], 5);
      const uint64_t a = ordered_bits(d[i]), b = ordered_bits(d[j]);
      if (before != (a > b || (a == b && 3 < 5))) return 7;
    }
  }
  return 0;
}

int main() {
  std::string mode;
  while (std::cin >> mode) {
    if (mode == "selfcheck") {
      std::printf("%d\n", selfcheck());
    } else if (mode == "guided") {
      const int P = static_cast<int>(read_int());
      const int n_mask = static_cast<int>(read_int());
      const double tau = read_double();
      std::vector<double> scores(P);
      std::vector<float> noise(P);
      for (auto& s : scores) s = read_double();
      for (auto& u : noise) u = static_cast<float>(read_double());
      std::vector<uint64_t> keys(P);
      for (int p = 0; p < P; ++p) keys[p] = guided_mask_select_key(scores[p], noise[p], tau);
      const auto taken = taken_flags(keys, radix_select(keys, n_mask));
      std::string out;
      for (char t : taken) out += t ? '1' : '0';
      std::printf("%s\n", out.c_str());
    } else if (mode == "entity") {
      // Replays entity_span_mask_kernel for one sample.
      const int L = static_cast<int>(read_int());
      const int S = static_cast<int>(read_int());
      const float entity_prob = static_cast<float>(read_double());
      const double target = read_double(), lo = read_double(), hi = read_double();
      const long long mask_id = read_int();
      std::vector<int> flags(L);
      std::vector<long long> ids(L), rand_ids(L);
      std::vector<float> token_noise(L), action_noise(L);
      int n = 0;
      for (int l = 0; l < L; ++l) {
        const long long att = read_int(), spec = read_int();
        flags[l] = (att && !spec) ? 1 : 0;
        n += flags[l];
      }
      for (auto& v : ids) v = read_int();
      for (auto& v : rand_ids) v = read_int();
      for (auto& v : token_noise) v = static_cast<float>(read_double());
      for (auto& v : action_noise) v = static_cast<float>(read_double());
      const MaskBudget budget = entity_mask_budget(n, target, lo, hi);
      long long count = 0;
      for (int s = 0; s < S; ++s) {
        const long long start = read_int(), end = read_int();
        const float noise = static_cast<float>(read_double());
        if (!(noise < entity_prob)) continue;
        if (start < 0 || end > L || end < start) continue;
        int added = 0;
        for (long long l = start; l < end; ++l) added += flags[l] == 1;
        if (count + added > budget.max) continue;
        for (long long l = start; l < end; ++l) if (flags[l] & 1) flags[l] = 3;
        count += added;
      }
      long long need = budget.target - count;
      need = need < 0 ? 0 : (need > L ? L : need);
      std::vector<uint64_t> keys(L);
      for (int l = 0; l < L; ++l) keys[l] = entity_topup_select_key(flags[l] == 1, token_noise[l]);
      const auto taken = taken_flags(keys, radix_select(keys, static_cast<int>(need)));
      for (int l = 0; l < L; ++l) {
        const bool chosen = (flags[l] & 2) || taken[l];
        std::printf("%lld ", chosen ? replacement_id(ids[l], action_noise[l], rand_ids[l], mask_id) : ids[l]);
      }
      std::printf("\n");
      for (int l = 0; l < L; ++l) {
        const bool chosen = (flags[l] & 2) || taken[l];
        std::printf("%lld ", chosen ? ids[l] : kIgnoreIndex);
      }
      std::printf("\n");
    }
  }
  return 0;
}
"""


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    cxx = shutil.which("g++") or shutil.which("clang++") or shutil.which("c++")
    if cxx is None:
        pytest.skip("no C++ compiler")
    work = tmp_path_factory.mktemp("cuda_emulation")
    src = work / "emulator.cpp"
    src.write_text(EMULATOR_SOURCE)
    exe = work / "emulator"
    proc = subprocess.run(
        [cxx, "-std=c++17", "-O1", "-Wall", "-I", str(OPS_DIR), str(src), "-o", str(exe)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr

    def run(text: str) -> list[str]:
        out = subprocess.run([str(exe)], input=text, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return out.stdout.splitlines()

    return run


def _hex(values) -> str:
    return " ".join(float(v).hex() for v in values)


def test_selection_keys_selfcheck(emulator):
    assert emulator("selfcheck\n") == ["0"]


@pytest.mark.parametrize("tau", [0.0, 0.5, 1.0, float("inf")])
@pytest.mark.parametrize("num_patches", [1, 7, 196, 300, 1030])
def test_guided_mask_selection_matches_reference(emulator, tau, num_patches):
    gen = torch.Generator().manual_seed(
        num_patches * 31 + int(tau * 7 if tau != float("inf") else 99)
    )
    batch = 6
    # Few distinct scores: many exact ties (tau == 0 orders them by index); some zeros.
    scores = torch.randint(0, 5, (batch, num_patches), generator=gen).double() / 4
    scores[1] = torch.rand(num_patches, generator=gen, dtype=torch.float64)
    noise = torch.rand(batch, num_patches, generator=gen)
    noise[2] = 0.5  # equal noise: ties for every tau
    lines = []
    n_masks = []
    for b in range(batch):
        n_mask = [0, num_patches, num_patches // 2, (3 * num_patches) // 4, 1, num_patches - 1][b]
        n_masks.append(n_mask)
        lines.append(f"guided {num_patches} {n_mask} {float(tau).hex()}")
        lines.append(_hex(scores[b].tolist()))
        lines.append(_hex(noise[b].tolist()))
    got = emulator("\n".join(lines) + "\n")
    assert len(got) == batch
    for b in range(batch):
        _, _, mask = reference.attention_guided_mask(
            scores[b : b + 1], noise[b : b + 1], n_masks[b], tau
        )
        expected = "".join("1" if m else "0" for m in mask[0].tolist())
        assert got[b] == expected, f"row {b}, n_mask {n_masks[b]}, tau {tau}"


@pytest.mark.parametrize("length", [1, 16, 128, 300])
def test_entity_mask_selection_matches_reference(emulator, length):
    gen = torch.Generator().manual_seed(length)
    batch = 8
    attention = torch.rand(batch, length, generator=gen) < 0.85
    attention[0] = False
    special = torch.zeros(batch, length, dtype=torch.bool)
    special[:, 0] = True
    if length > 2:
        special[:, -1] = True
    ids = torch.randint(5, 1000, (batch, length), generator=gen)
    random_ids = torch.randint(5, 1000, (batch, length), generator=gen)
    token_noise = torch.rand(batch, length, generator=gen)
    token_noise[3] = 0.25  # all equal: ties resolved by index
    token_noise[4, ::2] = 0.5
    action_noise = torch.rand(batch, length, generator=gen)
    spans, offsets = [], [0]
    for _ in range(batch):
        for _ in range(int(torch.randint(0, 9, (1,), generator=gen))):
            start = int(torch.randint(0, length, (1,), generator=gen))
            end = min(length, start + int(torch.randint(0, 6, (1,), generator=gen)))
            spans.append((start, end))
        offsets.append(len(spans))
    spans_t = torch.tensor(spans, dtype=torch.long).reshape(-1, 2)
    span_noise = torch.rand(len(spans), generator=gen)
    params = dict(entity_prob=0.6, target_ratio=0.3, min_ratio=0.1, max_ratio=0.5)
    mask_token_id = 4
    exp_ids, exp_labels = reference.entity_span_mask(
        ids,
        attention,
        special,
        torch.tensor(offsets),
        spans_t,
        span_noise,
        token_noise,
        action_noise,
        random_ids,
        params["entity_prob"],
        params["target_ratio"],
        params["min_ratio"],
        params["max_ratio"],
        mask_token_id,
    )
    lines = []
    for b in range(batch):
        sample_spans = list(range(offsets[b], offsets[b + 1]))
        lines.append(
            f"entity {length} {len(sample_spans)} {float(params['entity_prob']).hex()} "
            f"{float(params['target_ratio']).hex()} {float(params['min_ratio']).hex()} "
            f"{float(params['max_ratio']).hex()} {mask_token_id}"
        )
        lines.append(
            " ".join(f"{int(a)} {int(s)}" for a, s in zip(attention[b], special[b], strict=True))
        )
        lines.append(" ".join(str(int(v)) for v in ids[b]))
        lines.append(" ".join(str(int(v)) for v in random_ids[b]))
        lines.append(_hex(token_noise[b].tolist()))
        lines.append(_hex(action_noise[b].tolist()))
        for s in sample_spans:
            lines.append(f"{spans[s][0]} {spans[s][1]} {float(span_noise[s]).hex()}")
    got = emulator("\n".join(lines) + "\n")
    assert len(got) == 2 * batch
    for b in range(batch):
        assert [int(v) for v in got[2 * b].split()] == exp_ids[b].tolist(), f"masked_ids row {b}"
        assert [int(v) for v in got[2 * b + 1].split()] == exp_labels[b].tolist(), f"labels row {b}"
