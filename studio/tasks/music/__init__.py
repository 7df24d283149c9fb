"""The ``music`` task: Theme Transformer (arXiv 2111.04093) at CPU scale.

Modules: ``vocab`` (REMI-like event vocabulary), ``tokenizer`` (MIDI <-> events), ``data``
(corpus, split, cache, user folders), ``themes`` (contrastive retrieval + DBSCAN), ``grammar``
(decoding constraints and online theme labels), ``model`` (theme-conditioned seq2seq and the
prompt baseline), ``pipeline`` (generation), ``render`` (piano roll, audio), ``metrics``,
``train``, ``evaluate``, ``task``, ``cli``.
"""
