"""A small, realistic catalogue for the storefront: what a shopper would see after a pipeline run.

Reviews are listed here in no particular order; their relevance decides the order the API
serves them in, which is what the page must show.
"""

from __future__ import annotations

from datetime import UTC, datetime

from tests.factories import mentions, scored_row

HEADPHONES = "B07HPX2041"
FRENCH_PRESS = "B01FPR0870"
T_SHIRT = "B0BTEE0012"

# product id -> (title, product category, reviews); a review is
# (relevance, rating, title, text, topic, topic confidence, verified purchase, helpful votes, date)
# A table, one review to a few lines as a reader scans it: the formatter would give each field a line.
# fmt: off
PRODUCTS: dict[str, tuple[str, str, list[tuple]]] = {
    HEADPHONES: ("Aurora Wireless Noise-Cancelling Headphones", "Electronics", [
        (0.62, 5, "Great for the commute",
         "Blocks out the train noise almost completely. Pairs with my phone in seconds.",
         "product quality", 0.71, True, 4, "2023-03-02"),
        (0.93, 4, "Excellent sound, average microphone",
         "After three months of daily use: the noise cancelling is outstanding on flights and the bass is "
         "deep without drowning the vocals. Calls are the weak spot, people say I sound distant.",
         "product quality", 0.88, True, 41, "2022-11-14"),
        (0.81, 2, "Hinge cracked after eight months",
         "Sound was great until the left hinge cracked. Careful with the folding mechanism, it is plastic.",
         "durability", 0.83, True, 27, "2023-01-20"),
        (0.74, 5, "Worth every penny",
         "Half the price of the big brands and I honestly cannot hear the difference. Battery lasts a week.",
         "value for money", 0.79, False, 12, "2023-05-08"),
        (0.55, 3, "Box arrived crushed",
         "The headphones were fine but the box was damaged and the charging cable was missing.",
         "delivery and packaging", 0.86, True, 3, "2023-06-30"),
        (0.49, 4, "Easy pairing",
         "The app is optional, pairing and switching between laptop and phone just works.",
         "ease of use", 0.68, None, 1, "2023-07-15"),
        (0.38, 1, "Stopped charging",
         "Stopped charging after a year. Support replaced them, but it took five weeks.",
         "durability", 0.57, True, 0, "2024-02-11"),
    ]),
    FRENCH_PRESS: ("Stainless Steel French Press, 1 Litre", "Home & Kitchen", [
        (0.88, 5, "Keeps coffee hot for an hour",
         "Double-walled steel really works: the second cup is still hot. The mesh filter leaves almost no grounds.",
         "product quality", 0.81, True, 19, "2022-09-03"),
        (0.64, 4, "Solid, a bit heavy",
         "Feels like it will last forever, but it is heavy when full.", "durability", 0.62, True, 5, "2023-02-17"),
        (0.41, 5, "Great gift", "Bought it as a gift, nicely packaged and arrived early.",
         "delivery and packaging", 0.77, False, 0, "2023-12-21"),
    ]),
    "B08TRS5512": ("Trailblazer Running Shoes", "Clothing, Shoes & Jewelry", [
        (0.79, 4, "Runs half a size small",
         "Comfortable on long trail runs, grippy on wet rock. Order half a size up.",
         "fit and appearance", 0.84, True, 22, "2023-04-09"),
        (0.52, 5, "Love the colour", "Looks even better than in the pictures.", "fit and appearance", 0.73, True, 2,
         "2023-08-01"),
    ]),
    "B00VNL7731": ("Greatest Hits, Remastered (Vinyl)", "CDs & Vinyl", [
        (0.83, 5, "The remaster is superb",
         "Warm, clear pressing; the liner notes and lyrics are a treat.", "content and artistry", 0.9, True, 15,
         "2021-10-10"),
        (0.35, 3, "Slight warp", "Plays fine but the record has a slight warp.", "product quality", 0.55, True, 1,
         "2022-01-05"),
    ]),
    "B09FCR3310": ("Hydrating Face Cream with Hyaluronic Acid", "Beauty & Personal Care", [
        (0.76, 5, "My dry skin loves it", "Absorbs quickly, no greasy feel, lasts all day under make-up.",
         "product quality", 0.74, True, 9, "2023-09-12"),
        (0.44, 2, "Too small for the price", "Tiny jar, gone in three weeks.", "value for money", 0.82, True, 3,
         "2023-10-02"),
    ]),
    "B07TRP9021": ("Smartphone Tripod with Bluetooth Remote", "Cell Phones & Accessories", [
        (0.69, 4, "Sturdy and simple", "Sets up in seconds and the remote pairs without an app.", "ease of use",
         0.8, True, 6, "2023-03-27"),
    ]),
    "B06GFT0001": ("Gift Card in a Birthday Balloon Box", "Gift Cards", [
        (0.58, 5, "Cute box", "The balloon box made the gift card feel special.", "fit and appearance", 0.6, True, 0,
         "2022-12-01"),
    ]),
    "B08BLN4470": ("Compact Countertop Blender, 600 W", "Appliances", [
        (0.72, 3, "Loud but powerful", "Crushes ice easily. Very loud, and the lid leaks when it is full.",
         "product quality", 0.7, True, 8, "2023-06-05"),
        (0.47, 5, "Customer service was great", "The jug cracked and they sent a new one within a week.",
         "customer service", 0.87, True, 4, "2023-11-19"),
    ]),
    T_SHIRT: ("Classic Cotton Crew-Neck T-Shirt", "Clothing, Shoes & Jewelry", [
        (0.91, 4, "Soft, true to size", "Heavy cotton that does not go see-through. Fits as the size chart says.",
         "fit and appearance", 0.86, True, 33, "2022-05-14"),
        (0.84, 3, "Shrinks a little", "Lost about a centimetre in length after the first hot wash.", "durability",
         0.72, True, 18, "2022-07-02"),
        (0.80, 5, "Five for the price of two", "The multipack is a bargain for this quality.", "value for money",
         0.81, True, 11, "2022-08-19"),
        (0.77, 4, "Colour stays", "Washed twenty times, the navy is still navy.", "durability", 0.77, True, 9,
         "2022-10-30"),
        (0.71, 2, "Collar stretched", "The collar went wavy after a month.", "durability", 0.69, False, 6,
         "2023-01-08"),
        (0.66, 5, "My everyday shirt", "Comfortable all day, nothing scratchy.", "product quality", 0.64, True, 4,
         "2023-02-25"),
        (0.61, 4, "Slim cut", "A slim cut; size up for a relaxed fit.", "fit and appearance", 0.83, True, 3,
         "2023-04-11"),
        (0.57, 3, "Late delivery", "Arrived a week after the promised date.", "delivery and packaging", 0.88, True,
         2, "2023-05-17"),
        (0.52, 5, "Great basics", "Exactly what I wanted, plain and well made.", "product quality", 0.58, None, 1,
         "2023-06-21"),
        (0.46, 4, "Good value", "Cheaper than the shop down the road.", "value for money", 0.75, True, 0,
         "2023-08-03"),
        (0.39, 5, "Love it", "Love it.", "fit and appearance", 0.52, True, 0, "2023-09-09"),
        (0.31, 1, "Wrong size sent", "Ordered M, got XL, the return was easy though.", "customer service", 0.61, True,
         0, "2023-10-15"),
    ]),
    "B01KTL2290": ("Electric Kettle, 1.7 L, Glass", "Home & Kitchen", [
        (0.68, 4, "Fast boil", "Boils a full jug in under four minutes; the blue light is a nice touch.",
         "product quality", 0.66, True, 7, "2023-01-29"),
    ]),
    "B07LMP1180": ("Adjustable LED Desk Lamp", "Home & Kitchen", [
        (0.63, 5, "Easy on the eyes", "Five brightness levels and a warm setting for the evening.", "ease of use",
         0.71, True, 5, "2022-11-03"),
    ]),
    "B09CHG5540": ("65 W USB-C Charger, Two Ports", "Cell Phones & Accessories", [
        (0.74, 5, "Charges laptop and phone", "Runs my laptop and phone at once and stays cool.", "product quality",
         0.78, True, 14, "2023-07-07"),
    ]),
    "B00MAG3321": ("Nature Explorer Magazine, 12 Issues", "Magazine Subscriptions", [
        (0.7, 5, "Beautiful photography", "The stories are well written and the photos are stunning.",
         "content and artistry", 0.89, True, 6, "2022-03-12"),
    ]),
}
# What the headphones' reviews say, sentence by sentence, by review title: (topic, sentiment) per sentence.
# The other products' reviews were analysed before sentence topics: they have only their single topic.
SAID: dict[str, list[tuple[str | None, int]]] = {
    "Great for the commute": [("product quality", 1), ("ease of use", 1)],
    "Excellent sound, average microphone": [("product quality", 1), ("product quality", -1)],
    "Hinge cracked after eight months": [("durability", -1), ("durability", -1)],
    "Worth every penny": [("value for money", 1), ("product quality", 1)],
    "Box arrived crushed": [("delivery and packaging", -1)],
    "Easy pairing": [("ease of use", 1)],
    "Stopped charging": [("durability", -1), ("customer service", -1)],
}
# fmt: on


def catalogue_batches() -> list[list[dict]]:
    """The catalogue as scored batches (two, as a run would produce), ready to publish."""
    rows = []
    review_id = 50_000
    for product_id, (product_title, product_category, reviews) in PRODUCTS.items():
        for relevance, rating, title, text, topic, confidence, verified, votes, day in reviews:
            review_id += 1
            reviewed_at = datetime.fromisoformat(day).replace(tzinfo=UTC)
            said = mentions(text, *SAID[title]) if product_id == HEADPHONES else {"text": text}
            rows.append(
                scored_row(
                    review_id,
                    product_id,
                    relevance,
                    product_title=product_title,
                    product_category=product_category,
                    rating=rating,
                    title=title,
                    **said,
                    category=topic,
                    category_confidence=confidence,
                    verified_purchase=verified,
                    helpful_votes=votes,
                    reviewed_at=reviewed_at,
                )
            )
    return [rows[: len(rows) // 2], rows[len(rows) // 2 :]]
