"""NoiseRobustTrainer in a real transformers.Trainer: each step's left-out words and loss
are what noisebench's own WordSelection and loss give, driven by hand with the same logits
and step numbers; the masking diagnostics reach the Trainer's log history."""

from __future__ import annotations

import pytest
import torch
import yaml
from datasets import Dataset
from transformers import (
    BertForTokenClassification,
    BertTokenizerFast,
    DataCollatorForTokenClassification,
    TrainingArguments,
)

from noisebench.hf import NoiseRobustTrainer
from noisebench.training.losses import build_loss
from noisebench.training.methods import IGNORE, POSTERIOR_CUTOFF, WordSelection
from noisebench.training.targets import span_targets

NAMES = ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
NOISY_WORDS = {"john", "paris"}  # every fourth one is labelled O: missed entities
BATCH, EPOCHS = 16, 2


def noisy_sentences(path) -> list[tuple[list[str], list[int]]]:
    """The fixture's CoNLL sentences, every fourth john and paris labelled O."""
    sentences, missed = [], 0
    for block in path.read_text().strip().split("\n\n"):
        words, tags = [], []
        for line in block.splitlines():
            word, tag = line.split()
            if word in NOISY_WORDS:
                missed += 1
                tag = "O" if missed % 4 == 0 else tag
            words.append(word)
            tags.append(NAMES.index(tag))
        sentences.append((words, tags))
    return sentences


@pytest.fixture(scope="module")
def train_set(ner_dir, tiny_model) -> Dataset:
    """One token per word ([CLS] words [SEP]): word i sits at position i + 1."""
    tokenizer = BertTokenizerFast.from_pretrained(tiny_model)
    rows = {"input_ids": [], "labels": []}
    for words, tags in noisy_sentences(ner_dir / "train.txt"):
        rows["input_ids"].append(tokenizer.convert_tokens_to_ids(["[CLS]", *words, "[SEP]"]))
        rows["labels"].append([IGNORE, *tags, IGNORE])
    return Dataset.from_dict(rows)


class RecordingTrainer(NoiseRobustTrainer):
    """Keeps each training step's logits, given and kept labels, and loss."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.records: list[dict] = []

    def selected_labels(self, logits, labels):
        self.kept = super().selected_labels(logits, labels)
        return self.kept

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs["labels"]
        loss, outputs = super().compute_loss(model, inputs, True, num_items_in_batch)
        if model.training:
            self.records.append(
                {
                    "step": self.state.global_step,
                    "logits": outputs.logits.detach().clone(),
                    "labels": labels.clone(),
                    "kept": self.kept.clone(),
                    "loss": loss.detach().clone(),
                }
            )
        return (loss, outputs) if return_outputs else loss


def initial_model(tiny_model) -> BertForTokenClassification:
    """The tiny BERT with a seeded classifier for ``NAMES``, without dropout (so a batch
    of 16 and 2 micro-batches of 8 see the same model)."""
    torch.manual_seed(0)
    return BertForTokenClassification.from_pretrained(
        tiny_model,
        num_labels=len(NAMES),
        id2label=dict(enumerate(NAMES)),
        label2id={name: i for i, name in enumerate(NAMES)},
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )


def train(tmp_path, tiny_model, train_set, arguments=None, **options) -> RecordingTrainer:
    """A run of ``EPOCHS`` epochs (``arguments`` override TrainingArguments)."""
    model = initial_model(tiny_model)
    settings = {
        "output_dir": str(tmp_path / "out"),
        "per_device_train_batch_size": BATCH,
        "num_train_epochs": EPOCHS,
        "learning_rate": 2e-2,
        "lr_scheduler_type": "constant",
        "use_cpu": True,
        "report_to": [],
        "seed": 0,
        "save_strategy": "no",
        "disable_tqdm": True,
    }
    args = TrainingArguments(**(settings | (arguments or {})))
    tokenizer = BertTokenizerFast.from_pretrained(tiny_model)
    trainer = RecordingTrainer(
        model=model,
        args=args,
        train_dataset=train_set,
        data_collator=DataCollatorForTokenClassification(tokenizer),
        **options,
    )
    trainer.train()
    return trainer


def hand_soft_targets(labels: torch.Tensor, eps: float) -> torch.Tensor:
    """Span targets of each row's words, at positions 1..n (one token per word)."""
    soft = torch.zeros(*labels.shape, len(NAMES))
    for row, given in enumerate(labels.tolist()):
        words = [tag for tag in given if tag != IGNORE]
        soft[row, 1 : len(words) + 1] = torch.from_numpy(span_targets(words, NAMES, "IOB2", eps))
    return soft


def replay(trainer: RecordingTrainer, loss_name: str, q, s, warmup: float, eps: float):
    """noisebench's own selection and loss on the recorded logits, step by step: the kept
    labels must be equal, the losses close, the epoch reports equal."""
    steps = len(trainer.records)
    assert [r["step"] for r in trainer.records] == list(range(steps))
    selection = WordSelection("mask-missing", 0, steps, warmup, None, POSTERIOR_CUTOFF, None)
    loss = build_loss(loss_name, q=q, s=s)
    reports = []
    for record in trainer.records:
        kept = selection.select(record["logits"], record["labels"], None, record["step"])
        assert torch.equal(kept, record["kept"])
        soft = hand_soft_targets(record["labels"], eps) if eps else None
        expected = loss(record["logits"], kept, soft)
        torch.testing.assert_close(record["loss"], expected, rtol=1e-5, atol=1e-6)
        if (record["step"] + 1) % (steps // EPOCHS) == 0:
            reports.append(selection.end_epoch())
    assert trainer.masking_reports == reports
    left_out = sum(int((r["kept"] != r["labels"]).sum()) for r in trainer.records)
    assert left_out > 0, "masking never left a word out: the test checks nothing"
    return reports


@pytest.mark.parametrize(
    ("loss_name", "q", "s", "eps"), [("gce", 0.7, None, 0.0), ("sgce", 0.7, 0.1, 0.2)]
)
def test_steps_match_noisebench_selection_and_loss(
    tmp_path, tiny_model, train_set, loss_name, q, s, eps
):
    trainer = train(
        tmp_path, tiny_model, train_set,
        loss=loss_name, q=q, s=s, method="mask-missing", mask_warmup=0.2, span_smoothing=eps,
    )  # fmt: skip
    reports = replay(trainer, loss_name, q, s, 0.2, eps)
    warmup_steps = round(0.2 * len(trainer.records))
    before = trainer.records[:warmup_steps]
    assert all(torch.equal(r["kept"], r["labels"]) for r in before)

    logged = [e for e in trainer.state.log_history if "masking/left_out_share" in e]
    assert [e["epoch"] for e in logged] == [1.0, 2.0]
    for entry, report in zip(logged, reports, strict=True):
        assert entry["masking/left_out_share"] == report["left_out_share"]
        assert entry["masking/thresholds/missing"] == report["thresholds"]["missing"]
        assert entry["masking/scored_words"] == report["scored_words"]
    if eps:  # span smoothing did soften some targets (else the sgce case checks less)
        soft = hand_soft_targets(trainer.records[0]["labels"], eps)
        assert ((soft > 0) & (soft < 1)).any()


def test_gradient_accumulation_matches_one_big_batch(tmp_path, tiny_model, train_set):
    """Micro-batches weighted by their share of the given labels: 2 x 8 sentences make the
    update 16 make (sgce with span smoothing: soft targets take the same path)."""
    options = {"loss": "sgce", "q": 0.7, "s": 0.1, "span_smoothing": 0.2}
    weights = []
    for batch, accumulation in ((BATCH, 1), (BATCH // 2, 2)):
        arguments = {
            "per_device_train_batch_size": batch,
            "gradient_accumulation_steps": accumulation,
            "max_steps": 1,
            "optim": "sgd",
            "learning_rate": 0.5,
            "max_grad_norm": 0.0,
            "weight_decay": 0.0,
        }
        trainer = train(tmp_path, tiny_model, train_set, arguments, **options)
        weights.append({k: v.detach().clone() for k, v in trainer.model.state_dict().items()})
    before = initial_model(tiny_model).classifier.weight.detach()
    assert not torch.allclose(weights[0]["classifier.weight"], before), "the step moved nothing"
    for key in weights[0]:
        torch.testing.assert_close(weights[1][key], weights[0][key], rtol=1e-5, atol=1e-6)


def test_mask_auto_logs_its_votes(tmp_path, tiny_model, train_set):
    trainer = train(
        tmp_path, tiny_model, train_set, {"num_train_epochs": 1}, method="mask-auto",
        mask_warmup=0.2,
    )  # fmt: skip
    (entry,) = [e for e in trainer.state.log_history if "masking/votes/missing" in e]
    (report,) = trainer.masking_reports
    assert report["chosen"] in ("mask-missing", "mask-entity")
    assert report["chosen_by"] == "disagreements"
    assert entry["masking/votes/missing"] == report["votes"]["missing"]

    # evaluation: the loss on the given labels, nothing left out and nothing counted
    metrics = trainer.evaluate(train_set.select(range(BATCH)))
    assert torch.isfinite(torch.tensor(metrics["eval_loss"]))
    assert trainer.selection.end_epoch()["scored_words"] == 0

    # its save writes noisebench's card beside the weights, with that evaluation
    trainer.save_model(str(tmp_path / "saved"))
    text = (tmp_path / "saved" / "README.md").read_text()
    metadata = yaml.safe_load(text.split("---\n")[1])
    assert metadata["pipeline_tag"] == "token-classification"
    assert metadata["library_name"] == "transformers" and "noisebench" in metadata["tags"]
    assert "| method | mask-auto |" in text and f"| eval_loss | {metrics['eval_loss']} |" in text
    assert 'aggregation_strategy="first"' in text
    assert (tmp_path / "saved" / "model.safetensors").is_file()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"method": "oracle-mask"}, "oracle bound"),
        ({"method": "oracle-clean"}, "clean labels"),
        ({"method": "mask-missing", "error_profile": "p.json"}, "mask-auto"),
        ({"method": "mask-everything"}, "unknown method"),
        ({"mask_reading": "sideways", "method": "mask-entity"}, "mask_reading"),
        ({"compute_loss_func": lambda *a, **k: 0}, "computes its own loss"),
    ],
)
def test_refuses_what_it_cannot_do(options, message):
    with pytest.raises(ValueError, match=message):
        NoiseRobustTrainer(model=None, **options)
