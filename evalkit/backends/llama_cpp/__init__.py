"""In-process llama.cpp through llama-cpp-python: every call into its internals and ctypes is here.

- `backend`: `LlamaCppBackend` (TextGeneration, TokenAccess, StateAccess), `open_backend`
- `drafters`: speculative decoding's prompt-lookup and draft-model drafters, which model may draft
- `mtp`: multi-token-prediction drafting that shares the target's KV cache (Gemma 4 assistants)
- `native`: calls that are not a loaded model's (quantize a file, the build's system info)
- `ggml`: ggml's version and devices, read with ctypes from the libraries llama-cpp-python loaded
- `log`: llama.cpp's log routed into a buffer; imported first so that nothing loads unrouted

Modules here import the third-party package as `import llama_cpp` (absolute: this package is
`evalkit.backends.llama_cpp` and never shadows it).
"""

from evalkit.backends.llama_cpp import log  # noqa: F401  (routes llama.cpp's log before any load)
from evalkit.backends.llama_cpp.backend import (
    BACKEND,
    LlamaCppBackend,
    LoadFacts,
    ModelDrafter,
    PromptLookupDrafter,
    VocabTokenizer,
    mtp_drafter_name,
    open_backend,
    open_file,
    parse_load_log,
    refuse_mtp_only,
)

__all__ = [
    "BACKEND",
    "LlamaCppBackend",
    "LoadFacts",
    "ModelDrafter",
    "PromptLookupDrafter",
    "VocabTokenizer",
    "mtp_drafter_name",
    "open_backend",
    "open_file",
    "parse_load_log",
    "refuse_mtp_only",
]
