"""More human-labelled sentences for the sentiment read-out: Täckström & McDonald's fine-grained sentiment data.

Oscar Täckström and Ryan McDonald, "Discovering fine-grained sentiment with latent variable structured
prediction models", ECIR 2011: 294 product reviews from online sources (books, DVDs, electronics, music, video
games; balanced over the review's own sentiment), split into sentences and each sentence annotated by hand as
positive, negative, neutral, mixed or not relevant. Published by the authors at
github.com/oscartackstrom/sentence-sentiment-data, file ``data/finegrained.txt``, commit
da58c4d997c31aec2e61dc0178eb0863330bb21e ("can be freely used for any friendly purpose, but please cite [1]":
the paper above). Not in this project: the fitting command's ``--tackstrom`` points at that file.

Four of its five domains are outside electronics, the part of the catalogue Hu & Liu's products
(research/topics/hu_liu.py) do not speak for. Its labels are read as the evaluation's classes: positive and
negative as they are, neutral and "not relevant" (a sentence about something else than the product) neutral,
as Hu & Liu's sentences without an annotated opinion are; mixed left out, as their cancelled opinions are.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

CLASS_OF = {"neg": 0, "neu": 1, "nr": 1, "pos": 2}  # SentimentProbe's rows: negative, neutral, positive
LEFT_OUT = frozenset({"mix"})


def read(path: Path) -> tuple[list[str], np.ndarray, list[str]]:
    """The sentences with a class (texts, classes, each one's domain). Reviews are separated by a blank line,
    each opens with its id and a ``domain<TAB>stars`` line, then one ``label<TAB>sentence`` line per sentence."""
    texts: list[str] = []
    classes: list[int] = []
    domains: list[str] = []
    for block in path.read_text(encoding="utf-8").split("\n\n"):
        lines = block.strip().splitlines()
        if len(lines) < 2:
            continue
        domain = lines[1].split("\t")[0]
        for line in lines[2:]:
            label, _, text = line.partition("\t")
            if label in LEFT_OUT or not text.strip():
                continue
            if label not in CLASS_OF:
                raise ValueError(f"{path}: unknown label {label!r} in {line!r}")
            texts.append(text.strip())
            classes.append(CLASS_OF[label])
            domains.append(domain)
    return texts, np.array(classes, dtype=int), domains
