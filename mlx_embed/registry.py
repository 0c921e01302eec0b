"""The models mlx_embed knows: what each one needs to give the embeddings its authors published."""

from __future__ import annotations

import difflib
import numbers
import re
from dataclasses import dataclass, field

from .pooling import POOLERS

POOLINGS = tuple(POOLERS)  # ("mean", "cls", "last_token")


@dataclass(frozen=True)
class ModelSpec:
    """How to turn one model's hidden states into the embedding its authors intended.

    ``query_prompt`` may contain ``{task}``, filled with ``default_task`` unless a task is given.
    ``matryoshka`` is the inclusive range of output dims the model was trained to be truncated to,
    or None when only the full ``dim`` is meaningful.
    ``end_token`` is appended to every input when the tokenizer did not add it (Qwen3-Embedding
    pools the hidden state of ``<|endoftext|>``).
    """

    alias: str
    hub_id: str
    architecture: str
    pooling: str
    dim: int
    max_length: int
    normalize: bool = True
    matryoshka: tuple[int, int] | None = None
    query_prompt: str = ""
    document_prompt: str = ""
    default_task: str | None = None
    end_token: str | None = None
    padding_side: str = "right"
    languages: tuple[str, ...] = ("en",)
    upstream_id: str = ""
    parameters: int = 0
    aliases: tuple[str, ...] = field(default=())
    lowercase: bool = False  # sentence-transformers' do_lower_case: texts lowered before tokenizing
    include_prompt: bool = True  # False: mean pooling leaves the prompt's tokens out
    default_prompt: str = ""  # what encode() prepends when given no prompt (default_prompt_name)

    def format_query_prompt(self, task: str | None = None) -> str:
        if task is not None and not isinstance(task, str):
            raise TypeError(f"task must be a str or None, got {type(task).__name__}")
        if "{task}" not in self.query_prompt or self.default_task is None:  # a folder's own prompt, as written
            if task is not None:
                raise ValueError(
                    f"{self.alias} takes no task instruction: leave task out, or pass prompt=... to encode() instead"
                )
            return self.query_prompt
        if task is not None and not task.strip():
            raise ValueError("task must not be empty: pass task=None for the model's default task")
        if task is not None and "{task}" in task:
            raise ValueError(
                f"task={task!r} holds the placeholder '{{task}}': pass the instruction itself, "
                "e.g. task='Given a question, retrieve passages that answer it'"
            )
        return self.query_prompt.format(task=task or self.default_task)

    def allowed_dims(self) -> str:
        if self.matryoshka is None:
            return (f"{self.dim} only (the model was not trained for truncated embeddings; to truncate anyway, "
                    "slice the returned vectors and re-normalize them yourself)")
        lo, hi = self.matryoshka
        return f"any integer from {lo} to {hi}"

    def check_dim(self, dim: int | None) -> int:
        if dim is None:
            return self.dim
        if isinstance(dim, bool) or not isinstance(dim, numbers.Integral):
            raise TypeError(f"dim must be an int, got {type(dim).__name__}")
        dim = int(dim)
        lo, hi = self.matryoshka or (self.dim, self.dim)
        if not lo <= dim <= hi:
            raise ValueError(f"dim={dim} is not allowed for {self.alias}: allowed is {self.allowed_dims()}")
        return dim


QWEN3_TASK = "Given a web search query, retrieve relevant passages that answer the query"

REGISTRY: dict[str, ModelSpec] = {
    spec.alias: spec
    for spec in (
        ModelSpec(
            alias="qwen3-0.6b",
            hub_id="mlx-community/Qwen3-Embedding-0.6B-4bit-DWQ",
            upstream_id="Qwen/Qwen3-Embedding-0.6B",
            architecture="qwen3",
            pooling="last_token",
            dim=1024,
            max_length=8192,
            matryoshka=(32, 1024),
            query_prompt="Instruct: {task}\nQuery:",
            default_task=QWEN3_TASK,
            end_token="<|endoftext|>",
            padding_side="left",
            languages=("multilingual",),
            parameters=595_776_512,
            aliases=("qwen3", "qwen3-embedding-0.6b"),
        ),
        ModelSpec(
            alias="minilm",
            hub_id="mlx-community/all-MiniLM-L6-v2-4bit",
            upstream_id="sentence-transformers/all-MiniLM-L6-v2",
            architecture="bert",
            pooling="mean",
            dim=384,
            max_length=256,
            parameters=22_713_216,
            aliases=("all-minilm-l6-v2", "minilm-l6"),
        ),
        ModelSpec(
            alias="bge-small",
            hub_id="mlx-community/bge-small-en-v1.5-4bit",
            upstream_id="BAAI/bge-small-en-v1.5",
            architecture="bert",
            pooling="cls",
            dim=384,
            max_length=512,
            query_prompt="Represent this sentence for searching relevant passages: ",
            parameters=33_360_000,
            aliases=("bge-small-en-v1.5",),
        ),
    )
}

_BY_NAME = {
    name.lower(): spec
    for spec in REGISTRY.values()
    for name in (spec.alias, spec.hub_id, spec.upstream_id, *spec.aliases)
}


def find(name: str) -> ModelSpec | None:
    """The spec for an alias, an mlx-community id or the upstream Hub id, else None."""
    return _BY_NAME.get(name.lower())


def did_you_mean(name: str) -> str:
    """`` (did you mean 'minilm'?)`` for a misspelt alias, else ``""``. Hub ids ("org/name") get none: any
    may exist on the Hub. Nor does a name whose numbers differ (another size, depth or bit width)."""
    key = re.sub(r"[\s_]+", "-", name.strip().lower())
    if "/" in key:
        return ""
    names = {n: spec for spec in REGISTRY.values() for n in (spec.alias, *spec.aliases)}
    digits = re.findall(r"\d", key)
    close = difflib.get_close_matches(key, [n for n in names if re.findall(r"\d", n) == digits], n=1, cutoff=0.9)
    if not close and len(key) >= 3:  # the start of a name: "qwen", "bge"
        close = [n for n in names if n.startswith(key) and re.findall(r"\d", n)[: len(digits)] == digits][:1]
    return f" (did you mean {names[close[0]].alias!r}?)" if close else ""


def get(alias: str) -> ModelSpec:
    spec = find(alias)
    if spec is None:
        raise ValueError(f"Unknown model {alias!r}{did_you_mean(alias)}. Known aliases: {', '.join(REGISTRY)}")
    return spec


def markdown_table() -> str:
    """The README's model table, generated from the registry (tests check README.md holds it)."""
    rows = [
        "| alias | Hub id | architecture | pooling | dim | max length | query prompt |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in REGISTRY.values():
        dims = f"{s.dim} (Matryoshka {s.matryoshka[0]}..{s.matryoshka[1]})" if s.matryoshka else str(s.dim)
        prompt = f"`{s.query_prompt!r}`" if s.query_prompt else "none"
        also = f" (also {', '.join(f'`{a}`' for a in s.aliases)})" if s.aliases else ""
        rows.append(f"| `{s.alias}`{also} | `{s.hub_id}` | {s.architecture} | {s.pooling} | {dims} | {s.max_length} | {prompt} |")
    return "\n".join(rows)
