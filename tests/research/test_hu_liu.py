"""Reading Hu & Liu's annotated sentences, and their features mapped to our labels."""

from __future__ import annotations

from research.topics import hu_liu
from research.topics.evaluate import reviews


def test_sentences_their_topics_and_sentiment_are_read_review_by_review(tmp_path):
    (tmp_path / "Cam.txt").write_text(
        "*** header, no sentence ***\n"
        "[t]great camera\n"
        "picture quality[+3], price[+1]##the pictures are sharp and it was cheap .\n"
        "##i bought it last week .\n"
        "[t]meh\n"
        "camera[-2]##not what i hoped .\n"
        "menu[+1], size[-1]##easy menus but bulky .\n"
    )
    sentences = hu_liu.read(tmp_path, ("Cam.txt",))
    assert [(s.review, s.sentiment, s.annotated) for s in sentences] == [
        (0, 1, True),
        (0, 0, False),  # no opinion: neutral, and no topic
        (1, -1, True),
        (1, None, True),  # opinions that cancel out: no sentiment to measure
    ]
    assert sentences[0].topics == {"product quality", "value for money"}
    assert sentences[2].topics == {hu_liu.GENERAL}  # the product itself
    assert sentences[3].topics == {"ease of use", "fit and appearance"}
    # a review is read as the stage reads one: its sentences joined, each a span of the text
    texts, spans, order = reviews(sentences)
    assert [texts[0][a:b] for a, b in spans[0]] == [sentences[0].text, sentences[1].text] and order == [0, 1, 2, 3]


def test_features_map_to_labels_by_the_documented_table():
    assert hu_liu.topic_of("battery life") == "product quality"
    assert hu_liu.topic_of("customer service") == "customer service"
    assert hu_liu.topic_of("ease of use") == "ease of use"
    assert hu_liu.topic_of("Weight") == "fit and appearance"
    assert hu_liu.topic_of("dvd player") == hu_liu.GENERAL
    assert hu_liu.topic_of("t-zone") is None
