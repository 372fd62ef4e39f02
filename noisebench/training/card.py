"""The model card (``model/README.md``) of a saved run: Hugging Face's format, YAML front
matter then Markdown, so the facts noisebench knows about a model travel with its folder.

The metadata (``huggingface_hub.ModelCardData``): ``library_name: transformers``,
``pipeline_tag: token-classification``, tags, the base model where it is on the Hub, and
a ``model-index`` of the test split's scores, each named for the labels it was scored
against (clean labels, the labels as given, or reviewed sentences: a random sample, or a
designed review's weighted by its design).
The body: the training set-up, the scores with their 95% intervals, the noise the model
was trained under, and how to run it in transformers' ``pipeline`` (with
``aggregation_strategy="first"``: noisebench labels a word's first sub-token only).
"""

from __future__ import annotations

from pathlib import Path

from noisebench._version import __version__
from noisebench.data import sources

CARD = "README.md"
SNIPPET_MODEL = 'MODEL = "."  # this folder (its path from where you run this), or its Hub id'


def base_model(spec: str) -> str | None:
    """The Hub id of ``--model`` where it has one (a built-in model's, or a Hub id
    given as such); None for a local folder."""
    from noisebench.data import loading

    if spec in sources.SOURCES:
        return sources.get_source(spec).hub_id or None
    if loading.HUB_ID.match(spec) and not Path(spec).expanduser().exists():
        return spec
    return None


def labels_named(kind: str | None) -> str:
    """What a split was scored against, as a card says it."""
    return {
        "clean": "clean labels",
        "noisy": "noisy labels",
        "as given": "the labels as given",
        "reviewed": "reviewed sentences",
    }.get(kind or "as given", kind or "the labels as given")


def card(results: dict, example: list[str] | None = None, fingerprint: str | None = None) -> str:
    """The card of the run whose ``results.json`` is ``results``."""
    from huggingface_hub import EvalResult, ModelCardData

    config, train = results["config"], results["train"]
    scored = train.get("scored_labels", {})
    dataset = results.get("dataset") or str(config["data"])
    types = sorted({name.split("-", 1)[-1] for name in results["labels"] if name != "O"})
    test = results["splits"].get("test")
    measured = []  # (metric, value, name) on the test split
    if test is not None:
        against = labels_named(scored.get("test"))
        named = [("f1", "entity F1"), ("precision", "entity precision"),
                 ("recall", "entity recall"), ("ece", "expected calibration error")]  # fmt: skip
        measured += [(m, test[m], f"{name} (test, {against})") for m, name in named]
        reviewed = test.get("reviewed")
        if reviewed is not None:
            drawn = (
                "of a designed review, weighted by its design"
                if (test.get("review") or {}).get("designed")
                else "drawn at random"
            )
            measured.append(("f1", reviewed["f1"], f"entity F1 (test, {reviewed['n_sentences']}"
                             f" reviewed sentences {drawn})"))  # fmt: skip
    evaluations = [
        EvalResult(
            task_type="token-classification",
            task_name="Named entity recognition",
            dataset_type=dataset,
            dataset_name=dataset,
            dataset_split="test",
            metric_type=metric,
            metric_value=round(float(value), 4),
            metric_name=name,
        )
        for metric, value, name in measured
    ]
    metadata = ModelCardData(
        library_name="transformers",
        pipeline_tag="token-classification",
        base_model=base_model(str(config["model"])),
        tags=["noisebench", "token-classification", "ner", "label-noise", str(config["loss"])],
        model_name=results["run"],
        eval_results=evaluations or None,
    )
    intro = (
        f"A token classifier for {', '.join(types) or 'its labels'} ({results['scheme']}"
        f" tags), fine-tuned from `{config['model']}` on `{config['data']}` by"
        f" [noisebench](https://pypi.org/project/noisebench/) {__version__}"
        f" with the {_loss(config)} loss{_method(config)}."
    )
    scores = [
        "## Scores",
        "",
        "Entity F1 (seqeval's, micro) with its 95% interval (sentences as a random"
        " sample; linearised ratio, Student t), and top-label calibration (ECE, 10 bins).",
        "",
        "| split | scored against | sentences | F1 | 95% interval | precision | recall | ECE |",
        "|---|---|---:|---:|---|---:|---:|---:|",
        *_score_rows(results, scored),
        "",
        "## The noise it was trained under",
        "",
        *_noise(results),
        "",
    ]
    training = ["## Training", "", *_key_values(_set_up(results, fingerprint)), ""]
    return _document(metadata, results["run"], intro, training, scores, usage(example))


def _key_values(rows) -> list[str]:
    return ["| | |", "|---|---|", *(f"| {key} | {value} |" for key, value in rows)]


def _document(metadata, title: str, intro: str, *sections: list[str]) -> str:
    """YAML front matter, then the title, the introduction and ``sections``."""
    body = [f"# {title}", "", intro, ""]
    for section in sections:
        body += section
    return f"---\n{metadata.to_yaml()}\n---\n\n" + "\n".join(body)


def usage(example: list[str] | None = None) -> list[str]:
    """The card's last section: the model in transformers' ``pipeline``, and why
    ``aggregation_strategy="first"``."""
    return [
        "## Use",
        "",
        "```python",
        "from transformers import pipeline",
        "",
        SNIPPET_MODEL,
        'tagger = pipeline("token-classification", model=MODEL, aggregation_strategy="first")',
        f"print(tagger({' '.join(example or ['John', 'lives', 'in', 'Berlin'])!r}))",
        "```",
        "",
        '`aggregation_strategy="first"`, not `"simple"`: noisebench trains and predicts each'
        " word's label on its first sub-token only (as transformers' `run_ner` does), so"
        ' the other sub-tokens\' labels are untrained; `"simple"` reads them and splits'
        ' words (`angela mer` + `##kel`), `"first"` gives each word its first'
        " sub-token's label.",
        "",
    ]


def trainer_card(trainer) -> str:
    """The card of a ``hf.NoiseRobustTrainer``'s model: its loss, method and smoothing,
    the Trainer's settings, and its last evaluation (on the evaluation dataset's labels
    as given: the Trainer knows no clean labels)."""
    from huggingface_hub import ModelCardData

    model, args = trainer.model, trainer.args
    name = str(getattr(model.config, "_name_or_path", "") or "")
    loss = type(trainer.loss).__name__
    method, *_ = trainer.method_options
    evaluated = [e for e in trainer.state.log_history if any(k.startswith("eval_") for k in e)]
    metadata = ModelCardData(
        library_name="transformers", pipeline_tag="token-classification",
        base_model=base_model(name),
        tags=["noisebench", "token-classification", "label-noise"],
    )  # fmt: skip
    rows = [
        ("base model", f"`{name or 'unknown'}`"),
        ("loss", f"`{loss}`" + "".join(f", {k} = {getattr(trainer.loss, k)}"
                                       for k in ("q", "s") if hasattr(trainer.loss, k))),
        ("method", method),
        ("span smoothing", f"{trainer.span_smoothing} (distance {trainer.span_distance})"),
        ("epochs, learning rate, batch", f"{args.num_train_epochs}, {args.learning_rate},"
                                         f" {args.per_device_train_batch_size}"),
        ("bf16", str(bool(args.bf16))),
        ("seed", str(args.seed)),
        ("noisebench", __version__),
    ]  # fmt: skip
    intro = (
        "A token classifier trained with noisebench's `NoiseRobustTrainer`"
        f" ([noisebench](https://pypi.org/project/noisebench/) {__version__})."
    )
    training = ["## Training", "", *_key_values(rows), ""]
    evaluation = ["## Last evaluation (the evaluation dataset's labels as given)", "",
                  *_key_values(evaluated[-1].items() if evaluated else
                               [("—", "no evaluation was run")]), ""]  # fmt: skip
    return _document(metadata, Path(args.output_dir).name, intro, training, evaluation, usage())


def write(model_dir: Path, results: dict, example=None, fingerprint=None) -> Path:
    """``model_dir/README.md``, the card of the run whose results are ``results``."""
    path = Path(model_dir) / CARD
    path.write_text(card(results, example, fingerprint), encoding="utf-8")
    return path


def _loss(config: dict) -> str:
    loss = str(config["loss"]).upper()
    settings = [f"{k} = {config[k]}" for k in ("q", "s") if config.get(k) is not None]
    return f"{loss} ({', '.join(settings)})" if settings else loss


def _method(config: dict) -> str:
    method = config.get("method") or "none"
    return "" if method == "none" else f" and `--method {method}`"


def _set_up(results: dict, fingerprint: str | None) -> list[tuple[str, str]]:
    config, train = results["config"], results["train"]
    noise = (
        f"{config.get('noise')} at rate {config.get('rate')} (noisebench corrupt)"
        if config.get("rate")
        else "none added (the labels as given)"
    )
    data = f"`{config['data']}`" + (f" (fingerprint `{fingerprint[:16]}`)" if fingerprint else "")
    rows = [
        ("data", data),
        ("training sentences", str(config.get("max_train_samples") or "all")),
        ("labels", ", ".join(f"`{name}`" for name in results["labels"])),
        ("base model", f"`{config['model']}`"),
        ("loss", _loss(config)),
        ("method", str(config.get("method") or "none")),
        ("noise added", noise),
        ("epochs", f"{train.get('epochs_run')} run of {config.get('epochs')}, the best"
                   f" ({train.get('best_epoch')}) chosen on the validation split's"
                   f" {labels_named(train.get('validation_labels'))}"),
        ("learning rate, batch", f"{config.get('lr')}, {config.get('batch_size')}"),
        ("precision", str(train.get("precision"))),
        ("seed", str(config.get("seed"))),
        ("noisebench", results.get("versions", {}).get("noisebench", __version__)),
    ]  # fmt: skip
    return rows


def _score_rows(results: dict, scored: dict) -> list[str]:
    rows = []
    for split in ("validation", "test"):
        found = results["splits"].get(split)
        if found is None:
            continue
        parts = [(labels_named(scored.get(split)), found)]
        if found.get("reviewed") is not None:
            drawn = (
                "designed review, weighted"
                if (found.get("review") or {}).get("designed")
                else "random sample"
            )
            parts.append((f"reviewed sentences ({drawn})", found["reviewed"]))
        for against, scores in parts:
            interval = scores.get("f1_interval")
            shown = f"{interval[0]:.4f} – {interval[1]:.4f}" if interval else "—"
            rows.append(
                f"| {split} | {against} | {scores['n_sentences']:,} | {scores['f1']:.4f} |"
                f" {shown} | {scores['precision']:.4f} | {scores['recall']:.4f} |"
                f" {scores['ece']:.4f} |"
            )
    return rows


def _noise(results: dict) -> list[str]:
    noise = results["train"].get("label_noise")
    if not noise:
        return [
            "The training labels have no clean version to compare with: how noisy they are is"
            " unknown here (`noisebench review` measures it on a reviewed sample)."
        ]
    return [
        f"Against their clean version, {noise['token_error_rate']:.1%} of the training"
        f" words' labels differ, and {noise['entity_noise_level']:.1%} of the entities"
        " (entity noise level)."
    ]
