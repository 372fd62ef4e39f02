"""Review samples out, reviewed labels back in: the data stage of a review (datasets,
never models), one job per module.

    noisebench review sample my-data --split validation -n 300 --seed 0 -o review
    noisebench review merge my-data export.json -o my-data-reviewed

- ``spans``: a sentence's labels as word spans and back, in any scheme;
- ``sampling``: the draw (uniform, or from a pool the caller chose) and its manifest;
- ``files``: the one writer of review folders (``review sample``, ``detect -o``);
- ``answers``: what reviewers said, as tasks of annotations;
- ``labelstudio``: reading a Label Studio JSON export;
- ``conll``: the edited ``review.conll``, written and read;
- ``resolve``: several reviewers' annotations of a task as one answer, or none;
- ``merging``: the reviewed labels written back into the data;
- ``history``: the reviews merged into a dataset so far, and how each was drawn.
"""
