"""Leaderboards: aggregate complete runs over seeds, pivot, write, and gate regressions.

    noisebench leaderboard runs --out lb --plots
    noisebench leaderboard runs --baseline lb.json --fail-on f1:-0.5 --fail-on ece:+0.02

Every complete run contributes one record per (split, metric). A cell pools the runs whose
settings (``run_settings``: the resolved config but the seed) are equal, and aggregates
them over seeds: mean, sample standard deviation, n, and a 95% Student-t confidence
interval when n >= 3. Pivots put loss configurations in rows and noise rates in columns;
where the runs of one table differ in another setting, every row names it
(``ce epochs=4``). F1, precision and recall are shown and compared in percentage points;
ECE, MCE, Brier and NLL as fractions. By default the tables go to ``<runs>/leaderboard/``.

One module per step, each importing only those above it in this list:

- ``labels``: what a row, a table and a column are called (``gce q=0.7``, ``rate 0.20``)
- ``settings``: which settings tell runs apart, and the row labels that name them
- ``records``: run folders -> one record per (run, split, metric)
- ``tuning``: ``--tuned``, the best (lr, q, s) per loss on validation F1
- ``cells``: records -> cells aggregated over seeds (mean, std, n, CI)
- ``tables``: cells -> pivots (loss rows x noise-rate columns), reliability panels
- ``gate``: baselines and the regression gate (JUnit XML for CI)
- ``render``: pivots and the gate as text: cells, footnotes, Markdown, CSV, rich tables
- ``outputs``: the four on-disk formats, written atomically, in a folder swapped in whole

The whole leaderboard as the command makes it, verdict and detections included, is
``studies.board``, above this package and ``studies.verdict``.
"""
