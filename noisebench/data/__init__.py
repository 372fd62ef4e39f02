"""The data stage: built-in sources, the real-noise benchmark, loading, tag schemes,
label noise and noise profiles. Imports flow one way: sources <- realnoise (registers
``noisebench:<variant>`` as a family of built datasets), sources <- loading <- profiles
<- noise; schemes is below them all."""

from noisebench.data import realnoise  # noqa: F401  (registers noisebench:<variant>)
