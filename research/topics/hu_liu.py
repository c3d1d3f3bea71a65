"""The human-labelled sentences the topic and sentiment evaluation reads: Hu & Liu's Customer Review Data.

Minqing Hu and Bing Liu, "Mining and summarizing customer reviews", KDD 2004: Amazon reviews of a Canon G3
and a Nikon Coolpix 4300 camera, a Nokia 6610 phone and an Apex AD2600 DVD player, split into sentences by
the authors, each sentence annotated with the product features it gives an opinion on and the opinion's sign
(``picture quality[+3], use[+1]##i 'd highly recommend ...``); a sentence with no opinion carries no feature.
Published by the authors at https://www.cs.uic.edu/~liub/FBS/sentiment-analysis.html for research use;
read here from the copy in github.com/esh-b/Feature-based-opinion-mining, folder ``Datasets/``, commit
18314b45522dd375e6a0f1c321ec6989078a5b7a (the repository states no licence of its own; the data is the
authors'). Not in this project: ``--data`` points at that folder.

Features are product parts ("battery life", "menu"), not topics: ``TOPIC_OF`` maps them to the labels by
keyword, a table fixed before any measurement (docs/relevance.md prints it). A feature naming the product
itself ("camera", "phone", "dvd player") is an opinion on the whole product: no topic (GENERAL), kept for
sentiment. A feature no rule maps stays out of the topic measures too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

# The four products, as the files are named in that folder; the first two are the development half (the
# abstain threshold is chosen on them), the other two the test half every figure is reported on.
DEV_FILES = ("CanonG3.txt", "Nokia6610.txt")
TEST_FILES = ("Nikon.txt", "DVD.txt")
# Nothing is fitted on the four above. What the read-outs are fitted on: the same authors' annotation of nine
# more products (Xiaowen Ding, Bing Liu and Philip S. Yu, "A holistic lexicon-based approach to opinion mining",
# WSDM 2008; same format, same distribution terms), read from the copy in github.com/NLPG11/sentiments, folder
# ``data/training/``, commit 97a12ff9ce7486ad8add0440aee7bd769c06b061 (no licence of its own stated): two
# cameras, a phone, two routers, two music players, a diaper pail and an antivirus; and the fifth product of
# Hu & Liu 2004, a music player, from that repository's ``data/heldout/``. The fitting commands read them all
# from one folder (``--train``): the nine files and that one copied together.
TRAIN_FILES = (
    "Canon PowerShot SD500.txt",
    "Canon S100.txt",
    "Diaper Champ.txt",
    "Hitachi router.txt",
    "Linksys Router.txt",
    "MicroMP3.txt",
    "Nokia 6600.txt",
    "ipod.txt",
    "norton.txt",
    # Hu & Liu 2004's fifth product, neither a development nor a test one: from the same repository's
    # ``data/heldout/`` folder (that repository's name for it; not one of this project's held-out sets).
    "Creative Labs Nomad Jukebox Zen Xtra 40GB.txt",
)

GENERAL = "(the product)"
# The first rule whose keyword the feature contains gives its topic: order matters ("picture quality" is
# product quality, "ease of use" ease of use, "price" value for money before anything else).
TOPIC_OF: list[tuple[str, tuple[str, ...]]] = [
    ("value for money", ("price", "cost", "value", "money", "expens", "cheap", "worth", "deal")),
    ("customer service", ("service", "support", "warranty", "customer", "return", "refund", "rebate", "seller")),
    ("delivery and packaging", ("shipping", "deliver", "packag", "box", "arriv", "ship")),
    ("durability", ("durab", "reliab", "sturdy", "broke", "break", "lifetime", "last")),
    (
        "ease of use",
        (
            "use",
            "menu",
            "manual",
            "instruction",
            "setup",
            "set up",
            "interface",
            "navigat",
            "control",
            "button",
            "key",
            "learn",
            "install",
            "operat",
            "program",
        ),
    ),
    (
        "fit and appearance",
        (
            "size",
            "weight",
            "look",
            "design",
            "style",
            "appearance",
            "finish",
            "body",
            "feel",
            "compact",
            "bulk",
            "heavy",
            "color",
        ),
    ),
    (
        "product quality",
        (
            "picture",
            "photo",
            "image",
            "sound",
            "audio",
            "quality",
            "battery",
            "zoom",
            "lens",
            "flash",
            "focus",
            "screen",
            "lcd",
            "display",
            "reception",
            "signal",
            "speaker",
            "performance",
            "video",
            "movie",
            "play",
            "volume",
            "noise",
            "resolution",
            "speed",
            "memory",
            "radio",
            "earpiece",
            "optic",
            "format",
            "mode",
            "feature",
            "function",
            "viewfinder",
            "picture",
            "print",
            "read",
            "disc",
            "output",
            "scan",
        ),
    ),
]
PRODUCT_NAMES = frozenset(
    [
        "camera",
        "player",
        "phone",
        "dvd",
        "dvd player",
        "g3",
        "canon",
        "apex",
        "nokia",
        "nikon",
        "product",
        "unit",
        "4mp",
        "digital camera",
        "cell phone",
        "coolpix",
        "nokia 6610",
        "canon g3",
        "apex dvd player",
        # the training products (TRAIN_FILES)
        "router",
        "ipod",
        "diaper champ",
        "champ",
        "diaper pail",
        "pail",
        "norton",
        "antivirus",
        "symantec",
        "linksys",
        "6600",
        "nokia 6600",
        "s100",
        "sd500",
        "zen micro",
        "micromp3",
        "nomad",
        "zen",
        "zen xtra",
        "products",
    ]
)
_FEATURE = re.compile(r"([^\[\],]+?)\s*((?:\[[^\]]*\])+)")


def topic_of(feature: str) -> str | None:
    """Our label for a Hu & Liu feature; GENERAL for the product itself; None when no rule maps it."""
    feature = feature.strip().lower()
    if feature in PRODUCT_NAMES:
        return GENERAL
    for label, keywords in TOPIC_OF:
        if any(k in feature for k in keywords):
            return label
    return None


@dataclass(frozen=True)
class Sentence:
    review: int  # the sentence's review within its file
    text: str
    topics: frozenset[str]  # the labels of its features (GENERAL included); empty: no opinion annotated
    sentiment: int | None  # the sign of its summed opinions; 0 without one; None when they cancel out
    annotated: bool  # whether it carries any feature


def parse_line(line: str) -> tuple[list[tuple[str, int]], str]:
    """(features with their sign, sentence text) of one ``features##sentence`` line."""
    head, _, text = line.partition("##")
    features = []
    for name, tags in _FEATURE.findall(head):
        signs = re.findall(r"\[([+-])(\d?)\]", tags)
        sign = sum((1 if s == "+" else -1) * (int(n) if n else 1) for s, n in signs)
        features.append((name.strip(), sign))
    return features, text.strip()


def read(folder: Path, files: tuple[str, ...]) -> list[Sentence]:
    out: list[Sentence] = []
    review = -1
    for name in files:
        for raw in (folder / name).read_text(encoding="latin-1").splitlines():
            line = raw.strip()
            if "[t]" in line:
                review += 1  # each title starts a review
                continue
            if "##" not in line:
                continue  # the header
            features, text = parse_line(line)
            if not text:
                continue
            topics = {topic_of(f) for f, _ in features} - {None}
            total = sum(s for _, s in features)
            sentiment = (total > 0) - (total < 0) if features else 0
            cancelled = bool(features) and total == 0
            out.append(
                Sentence(max(review, 0), text, frozenset(topics), None if cancelled else sentiment, bool(features))
            )
    return out


def single_topic(sentences: list[Sentence]) -> list[int]:
    """The indices of the sentences whose features map to exactly one label (not the product itself): those a
    topic is measured, and fitted, on."""
    return [i for i, s in enumerate(sentences) if len(s.topics) == 1 and GENERAL not in s.topics]
