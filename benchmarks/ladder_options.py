"""The options both KLD benchmarks take: which model's quant ladder, against which reference
variant, on which corpus cut into how many chunks of n_ctx tokens (same names, same defaults)."""

from __future__ import annotations

import argparse


def ladder_parser(description: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--model", default="smollm2_135m")
    ap.add_argument("--reference", default="f16")
    ap.add_argument("--quants", default="q8_0,q6_k,q4_k_m,q4_0,q3_k_m,q2_k")
    ap.add_argument("--corpus", default="embedded")
    ap.add_argument("--n-ctx", type=int, default=512)
    ap.add_argument("--chunks", type=int, default=20)
    return ap
