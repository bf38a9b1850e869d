"""Text corpora for perplexity and KL divergence, each identified by the sha256 of its text.

`embedded` (the default) is the English prose every CPython ships in `pydoc_data.topics`: the
reference documentation behind `help("if")`, `help("with")` ... (about 465,000 characters, some
113,000 SmolLM2 tokens). It needs no network and no extra package, which is why it is the
default, but it is mostly technical English with code samples, so its perplexities are not
comparable with published wikitext-2 figures; the text (and so its hash) changes between Python
releases, and every cache and record carries that hash. `wikitext2` is the wikitext-2-raw-v1
test split through `datasets` (the file llama-perplexity is usually run on); any other value is
a path to a UTF-8 text file. `responses:<task>` (task=kld only) is not a text: it names a
generation task whose prompts the reference answers (evalkit/runners/kld_responses.py).
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from pydantic import BaseModel

from evalkit.errors import TaskError

WIKITEXT_DATASET = ("Salesforce/wikitext", "wikitext-2-raw-v1", "test")
RESPONSES = "responses:"


class Corpus(BaseModel):
    name: str  # "embedded", "wikitext2" or the file path as given
    description: str
    sha256: str
    n_chars: int
    text: str


def responses_task(spec: str) -> str | None:
    """The task named by `responses:<task>` (stress, constraints, a task file), else None."""
    key = spec.strip()
    if not key.startswith(RESPONSES):
        return None
    task = key[len(RESPONSES):].strip()
    if not task:
        raise TaskError("task.corpus=responses:<task> needs a task name, e.g. responses:stress")
    return task


def load_corpus(spec: str) -> Corpus:
    """The corpus `task.corpus` names; a one-line TaskError when it cannot be had."""
    key = spec.strip()
    if responses_task(key) is not None:
        raise TaskError(
            f"task.corpus={key}: the reference's answers to a task's prompts are a task=kld corpus "
            "only; perplexity needs a text (embedded, wikitext2 or a file)"
        )
    if key == "embedded":
        text, desc = embedded_text(), (
            f"pydoc_data.topics of Python {sys.version.split()[0]} (topics joined in sorted-key order)"
        )
    elif key in ("wikitext2", "wikitext-2"):
        text, desc = _wikitext2(), "wikitext-2-raw-v1 test split (Salesforce/wikitext via datasets)"
    else:
        path = Path(key).expanduser()
        if not path.is_file():
            raise TaskError(
                f"task.corpus: '{spec}' is neither 'embedded', 'wikitext2' nor an existing text file"
            )
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise TaskError(f"task.corpus: cannot read {path} as UTF-8 text: {exc}") from None
        desc = f"file {path.resolve()}"
    if not text.strip():
        raise TaskError(f"task.corpus: '{spec}' is empty")
    return Corpus(
        name=key,
        description=desc,
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        n_chars=len(text),
        text=text,
    )


def embedded_text() -> str:
    """Python's own help topics, in a fixed order so the same interpreter gives the same bytes."""
    from pydoc_data.topics import topics

    return "\n\n".join(topics[k].strip("\n") for k in sorted(topics))


def _wikitext2() -> str:
    try:
        import datasets
    except ImportError:
        raise TaskError("task.corpus=wikitext2 needs the 'datasets' package: pip install datasets") from None
    name, config, split = WIKITEXT_DATASET
    try:
        datasets.logging.set_verbosity_error()
        datasets.disable_progress_bars()
        ds = datasets.load_dataset(name, config, split=split)
    except Exception as exc:  # offline, hub errors, ... all mean the same thing to the user
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise TaskError(
            f"task.corpus=wikitext2: cannot load {name} ({config}, {split}) through datasets "
            f"(offline?): {first}; pass a local copy with task.corpus=/path/to/wiki.test.raw"
        ) from None
    # Rows keep their own newlines: joined as they come, they are the raw wiki.test.raw text.
    return "".join(ds["text"])
