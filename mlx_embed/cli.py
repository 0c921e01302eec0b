"""``mlx-embed``: command-line entry points over the public API."""

from __future__ import annotations

import argparse
import importlib
import io
import json
import math
import os
import re
import sys
import warnings
from pathlib import Path
from typing import Callable

from mlx_embed.registry import POOLINGS
from mlx_embed.textfile import check_writable, printable, read_lines, terminal_width

# Subcommands that live with their feature: each module has add_arguments(parser) and run(args) -> int.
FEATURE_COMMANDS: dict[str, tuple[str, str]] = {
    "eval": ("mlx_embed.eval.runner", "retrieval metrics of one or more models on the bundled RU/EN/ZH/code corpora"),
    "profile": ("mlx_embed.profile", "load time, RSS, swap, MLX memory, throughput and latency of models, each in a fresh process"),
    "fit": ("mlx_embed.fit", "which models fit a RAM budget (e.g. an 8 GB Mac), with what batch size and input length"),
}

DEMO_TEXTS = [
    "A man is eating food.",
    "Someone is having a meal.",
    "The new movie is awesome.",
    "The film was a great success.",
    "How do I reset my password?",
]


def _similarity(args) -> int:
    import mlx_embed

    texts = _argv_texts(args.texts) or DEMO_TEXTS
    embedder = mlx_embed.load(args.model, revision=args.revision, pooling=args.pooling)
    print(f"model: {embedder.spec.alias}  dim: {embedder.dim}  source: {embedder.source} ({embedder.path})")
    vectors = embedder.encode(texts, normalize=True)
    sims = vectors @ vectors.T  # cosine, also for models that score by dot product
    labels = [printable(t) if args.full else _shortened(printable(t), 32) for t in texts]
    width = max(terminal_width(label) for label in labels)
    print(" " * (width + 3) + "".join(f"{i:>7d}" for i in range(len(texts))))
    for i, (label, row) in enumerate(zip(labels, sims)):
        print(f"{i:>2d} {label}{' ' * (width - terminal_width(label))}" + "".join(f"{s:7.3f}" for s in row))
    return 0


def _shortened(text: str, columns: int) -> str:
    """``text`` cut to at most ``columns`` terminal columns, with "..." where it was cut."""
    if terminal_width(text) <= columns:
        return text
    used = 0
    for end, c in enumerate(text):
        used += terminal_width(c)
        if used > columns - 3:
            return text[:end] + "..."
    return text


def _warn_blank(texts: list[str]) -> None:
    blank = [i + 1 for i, t in enumerate(texts) if not t.strip()]
    if blank:
        shown = ", ".join(map(str, blank[:5])) + (", ..." if len(blank) > 5 else "")
        warnings.warn(
            f"{len(blank)} of {len(texts)} lines are blank (line {shown}): each still gets a row, so that row i is "
            "line i; drop them from the file if they should not be in an index",
            UserWarning,
        )


def _argv_texts(texts: list[str]) -> list[str]:
    """TEXT arguments, refused where they are not UTF-8 (Python keeps such bytes as lone surrogates)."""
    for i, text in enumerate(texts):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as err:
            byte = text[err.start].encode("utf-8", "surrogateescape")
            raise ValueError(f"TEXT {i + 1} is not UTF-8 (byte 0x{byte.hex()} at character {err.start}): give UTF-8 text, "
                             "e.g. convert it with `iconv -f latin1 -t utf-8`") from None
    return texts


_STDOUT_NAMES = ("-", "/dev/stdout", "/dev/fd/1", "/proc/self/fd/1")


def _npy_path(name: str) -> Path | None:
    """Where ``np.save(name)`` writes: ``name`` with ``.npy`` appended when missing (not to a device or FIFO,
    which is refused as named); None for ``-``, stdout."""
    if name in _STDOUT_NAMES:
        if sys.stdout.isatty():
            raise ValueError(f"--output {name} writes the .npy bytes to stdout, here a terminal: pipe them on, or give a file name")
        return None
    path = Path(name)
    if name.endswith(("/", os.sep)) and not path.is_dir():
        if path.exists():
            raise ValueError(f"--output {name} names a folder, but {path} is a file: drop the trailing /")
        raise ValueError(f"--output {name} names a folder, which does not exist: create it, or give a file name, e.g. "
                         f"{path / 'embeddings.npy'}")
    parent = path.parent.resolve()
    if parent == Path("/dev") or parent.match("/proc/*/fd"):
        raise ValueError(f"--output {name} is a device: give a file name, or --output - for stdout")
    if path.suffix != ".npy" and not path.is_dir() and (path.is_file() or not path.exists()):
        path = path.with_name(path.name + ".npy")
    if path.is_dir():
        raise ValueError(f"--output {name} is a directory: give a file name, e.g. {Path(name) / 'embeddings.npy'}")
    check_writable(path.resolve(), f"--output {name}")  # resolved: a link to a missing folder fails now, not after the work
    return path


def _embed(args) -> int:
    import numpy as np

    import mlx_embed
    from mlx_embed.stats import weight_format

    if args.task is not None and args.kind != "query":
        raise ValueError("--task is for queries: add --kind query")
    if args.prompt is not None and args.kind != "plain":
        raise ValueError(f"--kind {args.kind} uses the model's {args.kind} prompt: drop --prompt, or use --kind plain")
    if bool(args.texts) == (args.input is not None):
        raise ValueError("give TEXTS or --input FILE" + (", not both" if args.texts else ": there is nothing to embed"))
    if args.output == "":
        raise ValueError("--output is empty: give a file name, e.g. embeddings.npy, or leave --output out for JSON")
    output = _npy_path(args.output) if args.output else False
    texts = read_lines(args.input, "--input") if args.input is not None else _argv_texts(args.texts)
    if args.input is not None and not texts:
        warnings.warn(f"--input {args.input} has no lines: there is nothing to embed", UserWarning)
    if args.input is not None:
        _warn_blank(texts)
    embedder = mlx_embed.load(args.model, revision=args.revision, pooling=args.pooling)
    encode = {"query": embedder.encode_query, "document": embedder.encode_document, "plain": embedder.encode}[args.kind]
    options = {"task": args.task} if args.task is not None else {}
    if args.prompt is not None:
        options["prompt"] = args.prompt
    try:
        vectors = encode(texts, batch_size=args.batch_size, dim=args.dim, max_length=args.max_length,
                         truncate=not args.no_truncate, show_progress=args.input is not None and sys.stderr.isatty(),
                         **options)
    except ValueError as err:  # a text's index (from 0) as the row the user counts: line or TEXT, from 1
        where = "on line" if args.input is not None else "is TEXT"
        raise ValueError(re.sub(r"\bat index (\d+)", lambda m: f"{where} {int(m.group(1)) + 1}", str(err))) from None
    if output is not False:
        if output is None:
            npy = io.BytesIO()  # np.save writes a real file with tofile, whose error at a closed pipe is no BrokenPipeError
            np.save(npy, vectors)
            sys.stdout.buffer.write(npy.getbuffer())
            sys.stdout.flush()
        else:
            np.save(output, vectors)
        # which weights made the vectors: an alias may resolve to another checkpoint elsewhere (keep one per index)
        print(f"wrote {vectors.shape} float32 to {output or 'stdout'} (model {embedder.spec.alias}, {weight_format(embedder.config)} "
              f"weights, source: {embedder.source})", file=sys.stderr)
    else:
        json.dump(vectors.tolist(), sys.stdout)
        print()
    return 0


def _convert(args) -> int:
    from mlx_embed.conversion import convert

    report = convert(
        args.src,
        args.dst,
        bits=args.bits,
        group_size=args.group_size,
        recipe=args.recipe,
        rounding=args.rounding,
        overwrite=args.overwrite,
        pooling=args.pooling,
        report=not args.no_report,
    )
    config = json.loads((Path(args.dst).expanduser() / "config.json").read_text())
    if not config["mlx_embed"].get("recipe"):
        kind = f"{args.bits}-bit floats"
    elif args.recipe == "uniform":
        kind = f"uniform {args.bits}-bit g{args.group_size}" + (f", {args.rounding} rounding" if args.rounding else "")
    else:
        kind = args.recipe + (f", {args.rounding} rounding" if args.rounding else "")
    print(f"wrote {args.dst}: {config['mlx_embed']['bits_per_weight']:.2f} bits per weight ({kind})")
    if report is not None:
        print(report.summary())
    return 0


def _fidelity(args) -> int:
    import mlx_embed
    from mlx_embed import loading
    from mlx_embed.fidelity import compare
    from mlx_embed.stats import quantization_config, weight_format

    reference = mlx_embed.load(loading.full_precision(args.reference), pooling=args.pooling)  # an alias: its full-precision source
    if quantization_config(reference.config):
        warnings.warn(
            f"the reference {args.reference} is quantized ({weight_format(reference.config)}): the report measures "
            "the candidate against it, not against full precision. Give the full-precision model first: "
            "mlx-embed fidelity SOURCE CONVERTED",
            UserWarning,
        )
    candidate = mlx_embed.load(args.candidate, pooling=args.pooling)
    report = compare(reference, candidate)
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.summary())
    return 0


def _models(args) -> int:
    from mlx_embed.registry import REGISTRY

    print(f"{'alias':<12} {'languages':<13} {'pooling':<11} {'dim':>5} {'dims':>9} {'max len':>7} {'params':>7}  hub id")
    for spec in REGISTRY.values():
        langs = ",".join(spec.languages)
        dims = "{}..{}".format(*spec.matryoshka) if spec.matryoshka else str(spec.dim)
        params = f"{spec.parameters / 1e6:.1f}M"
        print(f"{spec.alias:<12} {langs:<13} {spec.pooling:<11} {spec.dim:>5} {dims:>9} {spec.max_length:>7} {params:>7}  {spec.hub_id}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from mlx_embed.conversion import BITS, DEFAULT_BITS, DEFAULT_GROUP_SIZE, GROUP_SIZES, RECIPES, ROUNDINGS

    parser = argparse.ArgumentParser(prog="mlx-embed", description="Text embeddings in pure MLX.")
    sub = parser.add_subparsers(dest="command", required=True)
    model_help = "registry alias, Hugging Face Hub id or local folder (default: minilm)"
    revision_help = "the branch, tag or commit of a Hub model to load (default: main); not for a folder"
    pooling_help = "override the pooling; needed for a folder that is neither a registry model nor has a sentence-transformers pooling config"

    p = sub.add_parser("similarity", help="embed a few sentences and print their cosine similarity matrix")
    p.add_argument("texts", nargs="*", help="sentences (default: a built-in set)")
    p.add_argument("--model", default="minilm", help=model_help)
    p.add_argument("--revision", help=revision_help)
    p.add_argument("--pooling", choices=POOLINGS, help=pooling_help)
    p.add_argument("--full", action="store_true", help="do not shorten long sentences in the table")
    p.set_defaults(func=_similarity)

    p = sub.add_parser("embed", help="embed texts (arguments or a file, one per line) to JSON or .npy")
    p.add_argument("texts", nargs="*", help="texts to embed (or use --input)")
    p.add_argument("--input", help="a UTF-8 file with one text per line (- for stdin)")
    p.add_argument("--output", help="write a .npy file (.npy is appended when missing; - writes the .npy to stdout) instead of JSON on stdout")
    p.add_argument("--model", default="minilm", help=model_help)
    p.add_argument("--revision", help=revision_help)
    p.add_argument("--pooling", choices=POOLINGS, help=pooling_help)
    p.add_argument("--kind", choices=["plain", "query", "document"], default="plain", help="plain (default): no prompt (but a folder's default_prompt_name); query / document: the model's query / document prompt")
    p.add_argument("--batch-size", type=at_least(1), default=32, help="texts per batch (default: 32)")
    p.add_argument("--dim", type=at_least(1), help="truncate to this many dimensions (Matryoshka models only)")
    p.add_argument("--task", help="with --kind query: the task instruction of models that take one (Qwen3)")
    p.add_argument("--prompt", help="with --kind plain: a prompt of your own, put before every text")
    p.add_argument("--max-length", type=at_least(2), help="cut texts at this many tokens (default: the model's max length)")
    p.add_argument("--no-truncate", action="store_true", help="fail on a text over the max length instead of cutting it")
    p.set_defaults(func=_embed)

    p = sub.add_parser("convert", help="convert a HF folder to the mlx-community layout and report fidelity")
    p.add_argument("src", help="source model: a local folder, Hub id or alias of a full-precision model")
    p.add_argument("dst", help="folder to write the converted model to")
    p.add_argument("--bits", type=int, default=DEFAULT_BITS, choices=BITS, help="default bits per weight")
    p.add_argument("--group-size", type=int, default=DEFAULT_GROUP_SIZE, choices=GROUP_SIZES, help="quantization group size")
    p.add_argument(
        "--recipe",
        default="uniform",
        choices=list(RECIPES),
        help="; ".join(f"{name}: {recipe.description}" for name, recipe in RECIPES.items()),
    )
    p.add_argument(
        "--rounding",
        choices=ROUNDINGS,
        help="override the recipe's rounding (mse: fitted scales/biases; gptq: data-aware, runs the model on built-in calibration texts)",
    )
    p.add_argument("--pooling", choices=POOLINGS, help=pooling_help)
    p.add_argument("--overwrite", action="store_true", help="write into a non-empty destination folder")
    p.add_argument("--no-report", action="store_true", help="skip the fidelity report")
    p.set_defaults(func=_convert)

    p = sub.add_parser("fidelity", help="compare a converted model with its full-precision source")
    p.add_argument("reference", help="the full-precision model (alias, Hub id or folder)")
    p.add_argument("candidate", help="the converted model (alias, Hub id or folder)")
    p.add_argument("--pooling", choices=POOLINGS, help=pooling_help)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=_fidelity)

    p = sub.add_parser("models", help="list the registry")
    p.set_defaults(func=_models)

    for name, (module, help_text) in FEATURE_COMMANDS.items():
        feature = importlib.import_module(module)
        p = sub.add_parser(name, help=help_text, description=help_text)
        feature.add_arguments(p)
        p.set_defaults(func=feature.run)
    return parser


def at_least(minimum: float, kind: type = int) -> Callable[[str], float]:
    """An argparse ``type`` for a number >= ``minimum`` (``kind`` float: > 0 when ``minimum`` is 0)."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not math.isfinite(value) or value < minimum or minimum == 0 and not value > 0:
            bound = "> 0" if minimum == 0 else f">= {minimum}"
            raise argparse.ArgumentTypeError(f"must be {'an integer' if kind is int else 'a finite number'} {bound}, got {text!r}")
        return value

    return parse


# The library's advice in its own words -> the same advice in flags
_LOAD_ADVICE = "or pass a local folder: mlx_embed.load('/path/to/folder')"
_FLAGS = {
    "Pass truncate=False to raise instead": "Pass --no-truncate to fail instead",
    "Pass truncate=True to cut them, a larger max_length,": "Drop --no-truncate to cut them, give a larger --max-length,",
    "leave task out, or pass prompt=... to encode() instead": "leave --task out, or use --kind plain --prompt '...' instead",
    "pass prompt=... to encode() instead": "use --kind plain --prompt '...' instead",
    _LOAD_ADVICE: "or pass a local folder: --model /path/to/folder",
    "pass task=None for the model's default task": "leave --task out for the model's default task",
    "use encode_query(texts, task=...) for the model's query instruction": "use --kind query --task '...' for the model's query instruction",
}


def _in_flags(text: str) -> str:
    for said, flag in _FLAGS.items():
        text = text.replace(said, flag)
    return text


_PINNED_ADVICE = re.compile(r"pass revision=('[^']*'|\"[^\"]*\"), or load the snapshot's folder")
_VERSION_HINT = re.compile(r"; for a version, pass revision=('[^']*'|\"[^\"]*\")")


def _without_api_advice(text: str) -> str:
    """For the subcommands without embed's flags: the library's advice names arguments they lack."""
    return text.replace(" Pass truncate=False to raise instead.", "").replace(_LOAD_ADVICE, "or give the path of a local folder")


# Where a message names a keyword as a check's subject or as advice: its start, or after one of these words.
# Nowhere else: a path ("runs/dim=256"), a repr of the user's prompt or a Python example keeps its text.
_SUBJECT = "(?:^|(?<=use )|(?<=Use )|(?<=pass )|(?<=give )|(?<=than )|(?<=so ))"
_ECHOED = re.compile(r"""=('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")""")  # a repr after "=": the user's value


def _flag_names(subparser: argparse.ArgumentParser) -> Callable[[str], str]:
    """Rewrites the library's keyword names in a message as ``subparser``'s flags: ``batch_size must be`` ->
    ``--batch-size must be``, ``use max_length <= 9`` -> ``use --max-length <= 9``, ``pass overwrite=True`` ->
    ``pass --overwrite``; only where the keyword is the subject of a check or of advice (:data:`_SUBJECT`),
    and not ``=None`` / ``=...``, which are Python's."""
    rules = []
    for action in subparser._actions:
        flag = next((o for o in action.option_strings if o.startswith("--")), None)
        if flag is None or action.dest == "help":
            continue
        name = re.escape(action.dest)
        if isinstance(action, argparse._StoreTrueAction):
            rules.append((re.compile(rf"{_SUBJECT}{name}=True\b"), flag))
        rules.append((re.compile(rf"{_SUBJECT}{name}(?=(=(?!None\b|\.\.\.)\S| must | [<>]=? ))"), flag))
        rules.append((re.compile(rf"(?:(?<=drop )|(?<= and )){name}(?=( and (--)?[\w-]+)? to store floats)"), flag))
        rules.append((re.compile(rf"(?<=\0 and ){name}(?==\S)"), flag))  # "x='a' and y=1", x's value hidden
        rules.append((re.compile(rf"(?<=drop ){name}(?=[,;]|\.?$|\. )"), flag))  # not "drop name.txt" in a path

    def rewrite(text: str) -> str:
        quoted = []  # a value the message echoes (prompt='...') is the user's text: kept as it is

        def hide(m: re.Match) -> str:
            quoted.append(m.group(1))
            return f"=\0{len(quoted) - 1}\0"

        text = _ECHOED.sub(hide, text)
        for pattern, flag in rules:
            text = pattern.sub(flag, text)
        return re.sub("\0(\\d+)\0", lambda m: quoted[int(m.group(1))], text)

    return rewrite


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    advice = _in_flags if args.func is _embed else _without_api_advice  # only embed has the flags the advice names
    flags = _flag_names(parser._subparsers._group_actions[0].choices[args.command])

    def says(text: str) -> str:
        if "revision" not in args:  # a subcommand without --revision loads a snapshot at another commit by its folder
            text = _PINNED_ADVICE.sub("pass the snapshot's folder", text)
            text = _VERSION_HINT.sub(r"; for a version, download it with `--revision \1` and pass the snapshot's folder", text)
        return flags(advice(text))

    def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
        print(f"mlx-embed: warning: {says(str(message))}", file=sys.stderr)

    showwarning, warnings.showwarning = warnings.showwarning, show_warning
    try:
        if sys.stdout is None:  # started with stdout closed (`>&-`)
            raise ValueError("stdout is closed: mlx-embed prints its results there; redirect it (> file, > /dev/null) instead")
        status = args.func(args)
        sys.stdout.flush()  # inside the try: a reader that went away is noticed here, not at exit
        return status
    except KeyboardInterrupt:
        print("\nmlx-embed: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`| head`): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0
    except (ValueError, TypeError, OSError, FloatingPointError) as err:
        print(f"mlx-embed: error: {says(str(err))}", file=sys.stderr)
        return 2
    finally:
        warnings.showwarning = showwarning


if __name__ == "__main__":
    sys.exit(main())
