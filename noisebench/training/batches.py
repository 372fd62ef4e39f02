"""Words to model inputs: tokenise once (cached), align labels, batch by length, collate.

Labels go on each word's first sub-token (the others get -100, ignored by every loss);
a word cut off by ``max_length`` has no position (-1) and is left out of scoring.
Tokenisation is cached under ``$NOISEBENCH_HOME/tokenized`` keyed by the tokenizer, the
words and ``max_length``, so reruns and sweeps tokenise each split once.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from noisebench.data import loading as data


@dataclass
class Encoded:
    """One split tokenised: sub-token ids per sentence and each word's first sub-token."""

    input_ids: list[np.ndarray]  # per sentence, (T,) int64 with special tokens
    word_starts: list[np.ndarray]  # per sentence, (n_words,) position, -1 if cut off
    tags: list[np.ndarray]  # per sentence, (n_words,) label ids
    clean_tags: list[np.ndarray] | None = None  # the same, clean, where the data has them
    # per sentence, (n_words, classes) float32 target distributions (--span-smoothing)
    soft_tags: list[np.ndarray] | None = None
    # per sentence, (n_words,) bool: words left out of training (the split's ``ignore``)
    ignore: list[np.ndarray] | None = None

    def lengths(self) -> np.ndarray:
        return np.array([len(ids) for ids in self.input_ids])


def encode(tokenizer, dataset, max_length: int, cache_root: Path | None) -> Encoded:
    """Tokenise words (cached by tokenizer, words and max_length); attach tags."""
    tokens = dataset.data.table.column("tokens").to_pylist()
    flat, offsets = data.flat_tags(dataset)
    tags = np.split(flat, offsets[1:-1])
    clean = None
    if "clean_tags" in dataset.column_names:
        clean_flat, _ = data.flat_tags(dataset, "clean_tags")
        clean = np.split(clean_flat, offsets[1:-1])
    flags = data.ignored(dataset)
    ignore = None if flags is None else np.split(flags, offsets[1:-1])
    key = hashlib.sha256()
    key.update(tokenizer.backend_tokenizer.to_str().encode())
    key.update(json.dumps([max_length, tokens]).encode())
    cache = cache_root / f"{key.hexdigest()[:24]}.npz" if cache_root else None
    if cache is not None and cache.is_file():
        stored = np.load(cache)
        ids = np.split(stored["ids"], stored["id_offsets"][1:-1])
        starts = np.split(stored["starts"], stored["start_offsets"][1:-1])
        return Encoded(ids, starts, tags, clean, ignore=ignore)
    ids, starts = _tokenize(tokenizer, tokens, max_length)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        temporary = cache.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(
            temporary,
            ids=np.concatenate(ids),
            starts=np.concatenate(starts),
            id_offsets=np.cumsum([0] + [len(i) for i in ids]),
            start_offsets=np.cumsum([0] + [len(s) for s in starts]),
        )
        os.replace(temporary, cache)
    return Encoded(ids, starts, tags, clean, ignore=ignore)


def _tokenize(tokenizer, tokens: list[list[str]], max_length: int):
    # A word the tokenizer turns into nothing (a lone control character, say) would have
    # no first sub-token: it is fed as the unknown token instead.
    vocabulary = sorted({w for sentence in tokens for w in sentence})
    pieces = tokenizer(vocabulary, add_special_tokens=False)["input_ids"]
    empty = {w for w, p in zip(vocabulary, pieces, strict=True) if not p}
    if empty:
        tokens = [[tokenizer.unk_token if w in empty else w for w in s] for s in tokens]
    encoded = tokenizer(tokens, is_split_into_words=True, truncation=True, max_length=max_length)
    ids, starts = [], []
    for i, sentence in enumerate(tokens):
        word_ids = encoded.word_ids(i)
        first = np.full(len(sentence), -1, dtype=np.int64)
        for position in range(len(word_ids) - 1, -1, -1):
            if word_ids[position] is not None:
                first[word_ids[position]] = position
        ids.append(np.asarray(encoded["input_ids"][i], dtype=np.int64))
        starts.append(first)
    return ids, starts


def length_grouped_batches(lengths: np.ndarray, batch_size: int, rng) -> list[np.ndarray]:
    """Shuffled batches of similar length: sort within random mega-batches of 50."""
    order = rng.permutation(len(lengths))
    batches = []
    mega = batch_size * 50
    for begin in range(0, len(order), mega):
        chunk = order[begin : begin + mega]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def collate(encoded: Encoded, indices: np.ndarray, pad_id: int, with_labels: bool = True):
    """Pad a batch to its longest sentence: ``input_ids``, ``attention_mask``, ``labels``
    (-100 everywhere but each word's first sub-token), ``clean_labels`` laid out the
    same where the split has clean labels, and ``soft_labels`` (B, T, classes) where it
    has soft targets (zero rows where ``labels`` is -100)."""
    width = max(len(encoded.input_ids[i]) for i in indices)
    input_ids = np.full((len(indices), width), pad_id, dtype=np.int64)
    attention = np.zeros((len(indices), width), dtype=np.int64)
    labels = np.full((len(indices), width), -100, dtype=np.int64)
    with_clean = with_labels and encoded.clean_tags is not None
    clean = np.full((len(indices), width), -100, dtype=np.int64) if with_clean else None
    with_soft = with_labels and encoded.soft_tags is not None
    if with_soft:
        classes = encoded.soft_tags[indices[0]].shape[1]
        soft = np.zeros((len(indices), width, classes), dtype=np.float32)
    for row, i in enumerate(indices):
        ids, starts = encoded.input_ids[i], encoded.word_starts[i]
        input_ids[row, : len(ids)] = ids
        attention[row, : len(ids)] = 1
        if with_labels:
            kept = starts >= 0
            labels[row, starts[kept]] = encoded.tags[i][kept]
            if encoded.ignore is not None:  # words left out of training: no loss
                labels[row, starts[kept & encoded.ignore[i]]] = -100
            if with_clean:
                clean[row, starts[kept]] = encoded.clean_tags[i][kept]
            if with_soft:
                soft[row, starts[kept]] = encoded.soft_tags[i][kept]
    batch = {
        "input_ids": torch.from_numpy(input_ids),
        "attention_mask": torch.from_numpy(attention),
    }
    if with_labels:
        batch["labels"] = torch.from_numpy(labels)
    if with_clean:
        batch["clean_labels"] = torch.from_numpy(clean)
    if with_soft:
        batch["soft_labels"] = torch.from_numpy(soft)
    return batch


def prefetched(items: Iterable, depth: int = 2) -> Iterator:
    """``items`` in order, made by a background thread up to ``depth`` ahead, so that
    preparing the next batch overlaps the current step. An exception raised while
    making an item is raised here, in its place; closing the iterator early (a failed
    step) stops the thread."""
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    end = object()

    def offer(entry) -> bool:
        while not stop.is_set():
            try:
                ready.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not offer((item, None)):
                    return
        except BaseException as error:  # handed to the consumer, raised there
            offer((end, error))
            return
        offer((end, None))

    thread = threading.Thread(target=produce, name="noisebench-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item, error = ready.get()
            if error is not None:
                raise error
            if item is end:
                return
            yield item
    finally:
        stop.set()
        thread.join()
