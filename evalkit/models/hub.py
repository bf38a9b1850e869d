"""GGUF files on the Hugging Face Hub, fetched into the standard HF cache.

A config names a repository and a file name or glob (`*UD-Q4_K_XL*.gguf`), as llama.cpp's
`-hf repo:quant` does, because uploaders rename files between revisions. A file already in the
cache is used without any network access.
"""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

from evalkit.errors import ModelError

_SPLIT = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$")


def hub_path(repo: str, pattern: str, revision: str | None = None) -> Path:
    """Local path of the GGUF matching `pattern` in `repo`, downloading it if needed."""
    cached = _from_cache(repo, pattern)
    if cached is not None:
        return cached
    try:
        from huggingface_hub import hf_hub_download, list_repo_files

        names = list_repo_files(repo, revision=revision)
        chosen = _pick(names, pattern)
        if chosen is None:
            raise FileNotFoundError(f"no file matches '{pattern}' (repo has {len(names)} files)")
        paths = [Path(hf_hub_download(repo, name, revision=revision)) for name in chosen]
        return paths[0]  # llama.cpp loads every split from the first one
    except ModelError:
        raise
    except Exception as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise ModelError(
            f"cannot get {repo}/{pattern} from the Hugging Face Hub ({type(exc).__name__}: "
            f"{reason}); download it yourself and pass model.path=/path/to/file.gguf"
        ) from None


def _pick(names: list[str], pattern: str) -> list[str] | None:
    """The matching file, or every part of a split GGUF; mmproj projectors never match.

    MTP drafters (`mtp-*.gguf`, also under `MTP/`) match only a pattern that names them: Gemma 4
    repositories ship `MTP/mtp-...-Q8_0.gguf` beside the weights, and `*Q8_0*.gguf` must not
    pick the drafter (it sorts first).
    """
    wants_drafter = Path(pattern).name.lower().startswith("mtp")
    matches = sorted(
        n
        for n in names
        if n.endswith(".gguf")
        and "mmproj" not in n.lower()
        and (wants_drafter or not _is_drafter(n))
        and (fnmatch.fnmatch(n, pattern) or fnmatch.fnmatch(Path(n).name, pattern))
    )
    if not matches:
        return None
    first = matches[0]
    split = _SPLIT.search(first)
    if split:
        stem = first[: split.start()]
        return [n for n in matches if n.startswith(stem) and _SPLIT.search(n)]
    return [first]


def _is_drafter(name: str) -> bool:
    return Path(name).name.lower().startswith("mtp-") or name.lower().startswith("mtp/")


def _from_cache(repo: str, pattern: str) -> Path | None:
    try:
        from huggingface_hub import scan_cache_dir

        info = scan_cache_dir()
    except Exception:
        return None
    for cached_repo in info.repos:
        if cached_repo.repo_id != repo or cached_repo.repo_type != "model":
            continue
        for revision in sorted(cached_repo.revisions, key=lambda r: r.last_modified, reverse=True):
            files = {f.file_name: f.file_path for f in revision.files}
            chosen = _pick(list(files), pattern)
            if chosen and all(c in files for c in chosen):
                return Path(files[chosen[0]])
    return None
