"""Saving a converted model as an mlx-community folder: weights, config.json, the source's tokenizer,
licence and card, and sentence-transformers files; written beside or inside the destination and moved in,
so that a stop never leaves a folder that mixes two models."""

from __future__ import annotations

import fcntl
import functools
import glob
import json
import os
import re
import shutil
import socket
import uuid
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten

from . import loading
from .models import ARCHITECTURES
from .registry import ModelSpec
from .stats import checkpoint_stats
from .textfile import try_writing_in
from .tokenize import read_json

COPY_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "added_tokens.json",
)
_LICENCE = re.compile(r"(licen[cs]e|notice|copying)", re.IGNORECASE)  # the source's files copied with the model
CARD_NOTE = "> Converted by `mlx-embed convert`"  # starts the note on a converted folder's README.md
# sentence-transformers files the converted folder gets from the spec the source loads with (so a
# registry model's settings, or a pooling folder at another path, survive the new folder's name)
ST_FILES = ("modules.json", "sentence_bert_config.json", "config_sentence_transformers.json", "1_Pooling/config.json")
# our pooling -> the sentence-transformers flag that selects it (the loader's tables, inverted)
_POOLING_FLAGS = {
    loading.ST_POOLING[mode]: flag for flag, mode in loading.ST_POOLING_FLAGS.items() if mode in loading.ST_POOLING
}


def check_destination(dst: Path, overwrite: bool, src: Path | None = None) -> None:
    """Refuse a non-empty ``dst`` unless ``overwrite``, and then, where no earlier conversion wrote it, one that
    holds weights or any file a conversion from ``src`` writes: replacing those would lose someone's files."""
    if dst.is_symlink() and not dst.exists():
        raise FileExistsError(f"{dst} links to {os.readlink(dst)}, which does not exist: create it or pick another folder")
    _remove_stale_partials(dst)
    if not dst.exists():
        _check_writable(next(p for p in dst.parents if p.exists()), dst)
        return
    if not dst.is_dir():
        raise FileExistsError(f"destination {dst} is a file: give a folder to write the converted model to")
    _check_writable(dst, dst)
    if not any(dst.iterdir()):
        return
    if not overwrite:
        raise FileExistsError(f"{dst} exists and is not empty; pass overwrite=True or pick another folder")
    ours = (dst / loading.INSTALLING).exists() or _earlier_conversion(dst) is not None
    # "._*": macOS's AppleDouble files beside each file on exFAT and SMB, which loading skips
    weights = [p.name for p in sorted(dst.glob("*.safetensors*")) if not p.name.startswith("._")]
    foreign = [name for name in weights if not ours or name != "model.safetensors"]
    if not ours:  # the names this conversion writes (from ``src``): in someone else's folder they are theirs
        written = {"config.json", "tokenizer.json", *(name.split("/")[0] for name in ST_FILES)}
        if src is not None:
            written |= {p.name for p in src.iterdir() if p.is_file() and (
                p.name in COPY_FILES or p.name == "README.md" or _LICENCE.match(p.name))}
        foreign = sorted(p.name for p in dst.iterdir() if p.name in written) + foreign
    if foreign:
        raise FileExistsError(
            f"{dst} holds {', '.join(foreign)}, which no earlier `mlx-embed convert` wrote: overwriting replaces "
            "only a converted model's files (a folder's *.safetensors files are what loads; a conversion also "
            "writes its config.json, model card, licence, tokenizer and sentence-transformers files). Move them or "
            "pick another folder"
        )


def _check_writable(folder: Path, dst: Path) -> None:
    """``folder`` (``dst`` or the folder its missing parents will be made in) takes new files."""
    try:
        try_writing_in(folder)
    except OSError as err:
        raise PermissionError(
            f"cannot write the converted model to {dst}: {folder} refuses new files "
            f"({(err.strerror or str(err)).lower()}); pick another folder"
        ) from None


def _earlier_conversion(dst: Path) -> dict | None:
    """The ``mlx_embed`` block of ``dst``'s config.json, where a conversion wrote it."""
    try:
        info = read_json(dst / "config.json").get("mlx_embed")
    except ValueError:
        return None
    return info if isinstance(info, dict) else None


def _copied_before(dst: Path, marker: Path) -> list[str]:
    """The files an earlier conversion copied into ``dst``, from its config.json or, after a stop while they
    were being replaced, from ``marker``; none where no conversion wrote ``dst``. Plain names in ``dst`` only."""
    earlier = _earlier_conversion(dst)
    if earlier is not None:
        names = earlier.get("copied", COPY_FILES)  # conversions before "copied" copied only these
    else:
        try:
            names = json.loads(marker.read_text()) if marker.is_file() else []
        except ValueError:
            names = []
    if not isinstance(names, list | tuple):
        return []
    return [n for n in names if isinstance(n, str) and n == Path(n).name and n not in ("", ".", "..")]


def _install(built: Path, dst: Path) -> None:
    """Move the files of ``built`` into ``dst``: by renaming the folder where ``dst`` is new (``built`` is its
    sibling); else file by file from inside ``dst`` (one file system), replacing directory entries rather than
    writing through a link into another folder. There ``dst``'s config.json goes first and the new one comes
    last, so that a stop in between leaves a folder that does not load rather than one that mixes two models,
    marked as a conversion's for the next ``--overwrite``. Files the earlier conversion copied that this one
    lacks are removed; other files stay."""
    if built.parent != dst:
        built.rename(dst)
        return
    marker = dst / loading.INSTALLING
    names = _copied_before(dst, marker)
    marker.write_text(json.dumps(names))
    (dst / "config.json").unlink(missing_ok=True)
    stale = [*dst.glob("*.safetensors*")] + [dst / name for name in names if not (built / name).exists()]
    for path in stale:
        if path.is_file() or path.is_symlink():
            path.unlink()
    for path in sorted(built.rglob("*"), key=lambda p: p == built / "config.json"):
        if path.is_file():
            target = dst / path.relative_to(built)
            if target.parent != dst and target.parent.is_symlink():  # a link to a folder elsewhere: replaced, not written through
                target.parent.unlink()
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
    marker.unlink()


PARTIAL = ".mlx-embed-partial-"  # + host-pid-random: a conversion's folder before it is moved in


def _remove_stale_partials(dst: Path) -> None:
    """Remove what conversions into ``dst`` killed on this machine (SIGKILL, out of memory) left: their
    hidden folders, a whole model each. A folder whose conversion still runs (its process is alive here, or
    it holds the folder's lock: a process in another PID namespace, a container with this host name), or of
    another machine sharing the disk, stays."""
    host = socket.gethostname()
    candidates = [*dst.glob(PARTIAL + "*")] if dst.is_dir() else []
    candidates += dst.parent.glob(f".{glob.escape(dst.name)}{PARTIAL}*")
    for folder in candidates:
        owner, _, pid = folder.name.rpartition(PARTIAL)[2].rpartition("-")[0].rpartition("-")
        if owner != host or not pid.isdigit() or not folder.is_dir() or folder.is_symlink():
            continue
        try:
            os.kill(int(pid), 0)
            continue  # alive (or another user's: PermissionError)
        except ProcessLookupError:
            pass
        except OSError:
            continue
        try:
            fd = os.open(folder, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released by the kernel when its holder dies
        except OSError:
            continue
        else:
            shutil.rmtree(folder, ignore_errors=True)
        finally:
            os.close(fd)


def save_folder(
    dst: Path, src: Path, model: nn.Module, config: dict, tokenizer_json: dict | None, spec: ModelSpec,
    hub_id: str | None = None,
) -> None:
    """Save ``model`` in the mlx-community layout, with ``config`` (its bits per weight and copied files added),
    the source's tokenizer, licence and notice files (``tokenizer_json`` replacing its tokenizer.json), its
    model card with a note (and ``hub_id``, the source's id on the Hub, as its base model), and
    sentence-transformers files for ``spec``; all into a new hidden folder (beside
    a new ``dst``, inside an existing one, which loading ignores), then moved in (:func:`_install`)."""
    partial = f"{PARTIAL}{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    if dst.exists():
        built = dst / partial
    else:
        dst.parent.mkdir(parents=True, exist_ok=True)
        built = dst.parent / f".{dst.name}{partial}"
    built.mkdir()  # not tempfile.mkdtemp: its mode 0o700 would become the model folder's
    lock = os.open(built, os.O_RDONLY)
    fcntl.flock(lock, fcntl.LOCK_EX)  # see _remove_stale_partials
    try:
        prefix = ARCHITECTURES[config["model_type"]].SAVE_PREFIX
        weights = {prefix + k: v for k, v in tree_flatten(model.parameters())}
        mx.save_safetensors(str(built / "model.safetensors"), weights, metadata={"format": "mlx"})
        config["mlx_embed"]["bits_per_weight"] = round(checkpoint_stats(built, config).bits_per_weight, 4)
        for name in COPY_FILES:
            if name == "tokenizer.json" and tokenizer_json is not None:
                _write_json(built / name, tokenizer_json)
            elif (src / name).exists():
                shutil.copy2(src / name, built / name)
        for path in src.iterdir():
            if path.is_file() and _LICENCE.match(path.name):
                shutil.copy2(path, built / path.name)
        _write_card(src, built, config, hub_id)
        config["mlx_embed"]["copied"] = sorted(p.name for p in built.iterdir() if p.name != "model.safetensors")
        _write_json(built / "config.json", config)
        _write_st_files(built, src, spec)
        _install(built, dst)
    finally:
        shutil.rmtree(built, ignore_errors=True)
        os.close(lock)


# Hugging Face's own rule for a model card's YAML front matter (huggingface_hub.repocard.REGEX_YAML_BLOCK)
_FRONT_MATTER = re.compile(r"^(\s*---(?:\r\n|\r|\n))([\S\s]*?)((?:\r\n|\r|\n)---[ \t]*(\r\n|\n|$))")
# "---" twice, nothing between: the Hub's rule finds no front matter (it wants a line between them), so the
# card would keep two rules under the note and get no library_name; read it as empty front matter.
_EMPTY_FRONT_MATTER = re.compile(r"^(\s*---(?:\r\n|\r|\n))()(---[ \t]*(\r\n|\n|$))")


def _write_card(src: Path, dst: Path, config: dict, hub_id: str | None) -> None:
    """The source's README.md (its model card, with the licence and datasets in its front matter), with a note
    on top saying what was converted and that only MLX loads these weights, and front matter that says so to
    the Hub: ``library_name: mlx``, an ``mlx`` tag and, converted from ``hub_id``, ``base_model``."""
    card = src / "README.md"
    if not card.is_file():
        return
    text = card.read_bytes().decode("utf-8-sig", errors="replace")  # line endings as written
    info = config["mlx_embed"]
    what = f"quantized (`{info['recipe']}` recipe)" if info["recipe"] else f"stored as {config['dtype']}"
    note = (
        f"{CARD_NOTE} from `{hub_id or Path(info['source']).name}`: {what}, {info['bits_per_weight']:.2f} bits "
        "per weight. These are MLX weights: load them with `mlx_embed.load(folder)` (transformers and "
        "sentence-transformers cannot). The card below is the source's.\n\n"
    )
    found = _FRONT_MATTER.match(text) or _EMPTY_FRONT_MATTER.match(text)
    if not found:
        (dst / "README.md").write_text(note + _without_note(text), encoding="utf-8", newline="")
        return
    meta = found.group(2)
    changes = {"library_name": "mlx", "tags": ["mlx"]}
    if hub_id:
        changes |= {"base_model": hub_id, "base_model_relation": "quantized" if info["recipe"] else None}
    meta = _set_front_matter(meta, changes) or meta  # front matter that is not YAML stays as written
    head = f"---\n{meta.rstrip()}\n---\n"
    (dst / "README.md").write_text(head + "\n" + note + _without_note(text[found.end():].lstrip("\r\n")), encoding="utf-8",
                                   newline="")


def _without_note(body: str) -> str:
    """A card body without the note an earlier conversion put on top (a converted folder converted again)."""
    if not body.startswith(CARD_NOTE):
        return body
    end = re.search(r"(\r\n|\n){2,}", body)
    return body[end.end():] if end else ""


def _set_front_matter(meta: str, changes: dict) -> str | None:
    """``meta`` (a card's YAML front matter) with the top-level keys in ``changes`` set (``tags`` extended,
    ``None`` removing a key). Block-style front matter keeps every other line as written (re-serialising it
    would turn ``no`` into ``false``, ``1.10`` into ``1.1`` and drop comments): the lines of the keys set go,
    found from the YAML nodes, and the new values are appended. Other shapes (``{}``, flow style) are
    re-serialised. None where the YAML does not parse into a mapping."""
    try:
        import yaml

        before = yaml.safe_load(meta) or {}
        node = yaml.compose(meta)
    except Exception:  # noqa: BLE001 - not YAML (or no PyYAML): the caller keeps the text
        return None
    if not isinstance(before, dict):
        return None
    after = dict(before)
    tags = before.get("tags") or []
    tags = tags if isinstance(tags, list) else [tags]
    after["tags"] = [*tags, *[t for t in changes["tags"] if t not in tags]]
    after.update({k: v for k, v in changes.items() if k != "tags" and v is not None})
    for key in [k for k, v in changes.items() if v is None]:
        after.pop(key, None)
    dump = functools.partial(yaml.safe_dump, sort_keys=False, allow_unicode=True, width=1 << 16)
    if isinstance(node, yaml.MappingNode) and not node.flow_style:
        drop: set[int] = set()
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value in changes:
                end = value.end_mark.line - (value.end_mark.column == 0)
                drop.update(range(key.start_mark.line, max(end, key.start_mark.line) + 1))
        kept = [line for i, line in enumerate(meta.splitlines()) if i not in drop]
        edited = "\n".join([*kept, dump({k: after[k] for k in changes if k in after}).rstrip()])
        try:
            if _one_of_each_key(edited) and yaml.safe_load(edited) == after:
                return edited
        except Exception:  # noqa: BLE001 - e.g. a "..." end marker: the appended keys make a second document
            pass
    return dump(after).rstrip()


def _one_of_each_key(meta: str) -> bool:
    """Whether no top-level key of ``meta`` appears twice (PyYAML keeps the last; stricter parsers refuse)."""
    import yaml

    keys = [k.value for k, _ in yaml.compose(meta).value]
    return len(keys) == len(set(keys))


def _write_st_files(dst: Path, src: Path, spec: ModelSpec) -> None:
    """The sentence-transformers files that describe ``spec`` (pooling, normalization, max length,
    lowercasing, prompts), keeping the other settings of the source's files. Pooling is written as the
    ``pooling_mode_*`` flags, which sentence-transformers 3 to 6 all read."""
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    if spec.normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
    pooling = {"word_embedding_dimension": spec.dim, **{flag: mode == spec.pooling for mode, flag in _POOLING_FLAGS.items()}}
    pooling["include_prompt"] = spec.include_prompt
    sbert = {**read_json(src / "sentence_bert_config.json"), "max_seq_length": spec.max_length, "do_lower_case": spec.lowercase}
    st_config = read_json(src / "config_sentence_transformers.json")
    prompts = {**(st_config.get("prompts") or {}), "query": spec.format_query_prompt(), "document": spec.document_prompt}
    if not spec.default_prompt:
        st_config["default_prompt_name"] = None
    st_config["prompts"] = prompts
    (dst / "1_Pooling").mkdir(exist_ok=True)
    for name, value in zip(ST_FILES, (modules, sbert, st_config, pooling)):
        _write_json(dst / name, value)


def _write_json(path: Path, value: dict | list) -> None:
    """``value`` as indented UTF-8 JSON (non-ASCII as written, whatever the locale's encoding)."""
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
