"""The data stage: built-in sources, the real-noise benchmark, loading, tag schemes,
label noise, noise profiles and reviews. Imports flow one way: sources <- realnoise <-
loading (which lists the built dataset families) <- profiles <- noise, and review/ on
loading; schemes is below them all."""
