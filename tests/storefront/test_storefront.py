"""What a shopper sees: the storefront page in headless Chromium, on a real API serving a real curated version.

Each test saves a screenshot under test-output/storefront/ (the ``page`` fixture).
"""

from __future__ import annotations

import re

import httpx
from playwright.sync_api import Page, Route, expect

from ops.stack.process import free_port
from ops.stack.s3_server import grant_lake
from shared.settings import Settings
from tests.api.conftest import ServerThread
from tests.storefront.catalogue import FRENCH_PRESS, HEADPHONES, PRODUCTS, T_SHIRT
from tests.storefront.conftest import PREFIX, AppServer, Console, Screenshot


def api_top(api: ServerThread, product_id: str, **params) -> list[dict]:
    response = httpx.get(f"{api.url}/reviews/{product_id}/top", params={"limit": 50, **params}, timeout=10)
    response.raise_for_status()
    return response.json()["reviews"]


def shown_review_ids(page: Page) -> list[int]:
    return [int(i) for i in page.locator("li.review").evaluate_all("nodes => nodes.map(n => n.dataset.reviewId)")]


def test_the_root_leads_to_the_shop_with_every_product(page: Page, console: Console, shop_api: ServerThread):
    # when a shopper opens the API's address
    page.goto(f"{shop_api.url}/")
    # then the shop's product list is there, with each product's rating and review count
    expect(page).to_have_url(f"{shop_api.url}/shop/")
    expect(page.get_by_role("heading", name="All products")).to_be_visible()
    cards = page.locator("li.product-card")
    expect(cards).to_have_count(12)  # a page of products, in product-id order like the API's
    card = cards.filter(has_text="Aurora Wireless Noise-Cancelling Headphones")
    expect(card).to_have_attribute("data-product-id", HEADPHONES)
    expect(card).to_contain_text("7 reviews")
    expect(card.get_by_role("img", name="Rated 3.4 out of 5")).to_be_visible()
    # and the next page follows on demand, through the API's cursor
    page.get_by_role("button", name="Load more products").click()
    expect(cards).to_have_count(len(PRODUCTS))
    expect(page.get_by_role("button", name="Load more products")).to_have_count(0)
    ids = cards.evaluate_all("nodes => nodes.map(n => n.dataset.productId)")
    assert ids == sorted(PRODUCTS)
    assert console.errors == []


def test_search_then_open_a_product_shows_its_top_reviews_in_relevance_order(
    page: Page, console: Console, shop_api: ServerThread
):
    page.goto(f"{shop_api.url}/shop/")
    # when the shopper searches by part of a name and opens the one result
    page.get_by_label("Search products").fill("french")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("heading", name="Results for “french”")).to_be_visible()
    expect(page.locator("li.product-card")).to_have_count(1)
    page.get_by_role("link", name="Stainless Steel French Press, 1 Litre").click()
    # then the product page lists the API's top reviews, in the API's order, most relevant first
    expect(page.get_by_role("heading", level=1)).to_have_text("Stainless Steel French Press, 1 Litre")
    expect(page.locator("li.review")).to_have_count(3)
    served = api_top(shop_api, FRENCH_PRESS)
    assert shown_review_ids(page) == [r["review_id"] for r in served]
    first = page.locator("li.review").first
    expect(first.get_by_role("heading")).to_have_text("Keeps coffee hot for an hour")
    expect(first.get_by_role("img", name="5 out of 5 stars")).to_be_visible()
    expect(first.locator(".chip")).to_have_text("Product quality81%")
    expect(first.get_by_role("meter", name="Relevance")).to_have_attribute("aria-valuenow", "0.88")
    expect(first.get_by_text("✓ Verified purchase")).to_be_visible()
    expect(first).to_contain_text("19 people found this helpful")
    # a review whose purchase is not verified carries no badge
    expect(page.locator("li.review").nth(2).get_by_text("Verified purchase")).to_have_count(0)
    assert console.errors == []


def test_a_search_without_match_says_so(page: Page, console: Console, shop_api: ServerThread):
    page.goto(f"{shop_api.url}/shop/#/?q=zeppelin")
    expect(page.get_by_role("status")).to_contain_text("No products match “zeppelin”")
    expect(page.get_by_role("link", name="Show all products")).to_be_visible()
    assert console.errors == []


def test_the_category_filter_shows_only_that_topic_in_relevance_order(
    page: Page, console: Console, shop_api: ServerThread
):
    # given a product whose reviews were analysed before sentence topics: one topic each, no summary to show
    page.goto(f"{shop_api.url}/shop/#/product/{T_SHIRT}")
    expect(page.locator("li.review")).to_have_count(10)
    expect(page.get_by_role("heading", name="What customers say")).to_have_count(0)
    shown_scores = page.locator(".relevance-value").all_inner_texts()
    assert shown_scores == sorted(shown_scores, reverse=True)
    # when the shopper picks the "Durability" topic
    page.get_by_role("group", name="Filter by topic").get_by_role("radio", name="Durability").check()
    # then only durability reviews show, as the API's filter orders them, and the address says so
    expect(page.locator("li.review")).to_have_count(3)
    durability = api_top(shop_api, T_SHIRT, category="durability")
    assert shown_review_ids(page) == [r["review_id"] for r in durability]
    expect(page.locator("li.review .chip")).to_have_text(["Durability72%", "Durability77%", "Durability69%"])
    assert page.url.endswith(f"#/product/{T_SHIRT}?category=durability")
    expect(page.get_by_role("radio", name="Durability")).to_be_checked()
    # and "All topics" brings every review back
    page.get_by_role("group", name="Filter by topic").get_by_role("radio", name="All topics").check()
    expect(page.locator("li.review")).to_have_count(10)
    assert console.errors == []


def test_what_customers_say_shows_each_topic_with_its_reviews_bar_and_quotes_above_the_reviews(
    page: Page, console: Console, shop_api: ServerThread
):
    page.goto(f"{shop_api.url}/shop/#/product/{HEADPHONES}")
    expect(page.locator("li.review")).to_have_count(7)
    say = page.get_by_role("region", name="What customers say")
    # then a chip per topic of the reviews' sentences, most discussed first, with its reviews
    topics = say.get_by_role("list", name="Topics customers discuss").locator("li.topic")
    expect(topics).to_have_count(6)
    expect(say.locator(".topic-chip")).to_have_text(
        [
            "Product quality3 reviews",
            "Durability2 reviews",
            "Ease of use2 reviews",
            "Customer service1 review",
            "Delivery and packaging1 review",
            "Value for money1 review",
        ]
    )
    # and each its positive and negative shares, as a bar and in words, and a quote for each side it has
    quality = topics.first
    expect(quality.get_by_role("img", name="75% positive, 25% negative")).to_be_visible()
    expect(quality.locator(".sentiment-figures")).to_have_text("75% positive · 25% negative")
    expect(quality.locator(".quote-positive q")).to_have_text(
        "After three months of daily use: the noise cancelling is outstanding on flights and the bass is deep "
        "without drowning the vocals."
    )
    expect(quality.locator(".quote-negative q")).to_have_text("Calls are the weak spot, people say I sound distant.")
    durability = topics.nth(1)
    expect(durability.get_by_role("img", name="0% positive, 100% negative")).to_be_visible()
    expect(durability.locator(".quote-positive")).to_have_count(0)
    expect(durability.locator(".quote-negative q")).to_have_text("Sound was great until the left hinge cracked.")
    # and the summary sits above the reviews, as the API computed it
    served = httpx.get(f"{shop_api.url}/products/{HEADPHONES}/summary", timeout=10).json()
    assert [t["topic"] for t in served["topics"]][0] == "product quality"
    assert say.bounding_box()["y"] < page.locator("li.review").first.bounding_box()["y"]
    assert console.errors == []


def test_a_topic_chip_shows_the_reviews_discussing_it_with_their_sentences_marked(
    page: Page, console: Console, screenshot: Screenshot, shop_api: ServerThread
):
    page.goto(f"{shop_api.url}/shop/#/product/{HEADPHONES}")
    expect(page.locator("li.review")).to_have_count(7)
    # when the shopper picks "Ease of use"
    page.get_by_role("button", name="Ease of use").click()
    # then the reviews that discuss it in any sentence show, the API's order, though one's single topic is another
    expect(page.locator("li.review")).to_have_count(2)
    assert shown_review_ids(page) == [r["review_id"] for r in api_top(shop_api, HEADPHONES, topic="ease of use")]
    expect(page.locator("li.review .chip")).to_have_text(["Product quality71%", "Ease of use68%"])
    # and in each, the sentences on it are marked, and nothing else
    expect(page.locator("li.review mark.match")).to_have_text(
        [
            "Pairs with my phone in seconds.",
            "The app is optional, pairing and switching between laptop and phone just works.",
        ]
    )
    expect(page.locator("li.review").first.locator(".review-text")).to_have_text(
        "Blocks out the train noise almost completely. Pairs with my phone in seconds."
    )
    expect(page.get_by_role("button", name="Ease of use")).to_have_attribute("aria-pressed", "true")
    assert page.url.endswith(f"#/product/{HEADPHONES}?topic=ease%20of%20use")
    screenshot("ease-of-use")
    # when it picks "Durability" instead: its reviews, negative sentences marked so
    page.get_by_role("button", name="Durability").click()
    expect(page.locator("li.review mark.match-negative")).to_have_text(
        [
            "Sound was great until the left hinge cracked.",
            "Careful with the folding mechanism, it is plastic.",
            "Stopped charging after a year.",
        ]
    )
    expect(page.get_by_role("button", name="Ease of use")).to_have_attribute("aria-pressed", "false")
    # and the same chip again shows every review, unmarked
    page.get_by_role("button", name="Durability").click()
    expect(page.locator("li.review")).to_have_count(7)
    expect(page.locator("mark.match")).to_have_count(0)
    expect(page.locator(".topic-chip[aria-pressed=true]")).to_have_count(0)
    # and a link to a topic opens the page filtered on it
    page.goto(f"{shop_api.url}/shop/#/product/{HEADPHONES}?topic=durability")
    page.reload()
    expect(page.locator("li.review")).to_have_count(2)
    expect(page.get_by_role("button", name="Durability")).to_have_attribute("aria-pressed", "true")
    assert console.errors == []


def test_a_long_review_list_shows_ten_then_the_rest_on_demand(page: Page, console: Console, shop_api: ServerThread):
    page.goto(f"{shop_api.url}/shop/#/product/{T_SHIRT}")
    expect(page.locator("li.review")).to_have_count(10)
    page.get_by_role("button", name="Show more reviews (2)").click()
    expect(page.locator("li.review")).to_have_count(12)
    assert shown_review_ids(page) == [r["review_id"] for r in api_top(shop_api, T_SHIRT)]
    expect(page.locator("li.review .rank")).to_have_text([f"#{n}" for n in range(1, 13)])
    assert console.errors == []


def test_a_topic_without_reviews_shows_the_no_reviews_state(
    page: Page, console: Console, screenshot: Screenshot, shop_api: ServerThread
):
    # given a link to a product filtered on a topic none of its reviews is about
    page.goto(f"{shop_api.url}/shop/#/product/{HEADPHONES}?category=content%20and%20artistry")
    # then the page says there is nothing to show, and offers every topic instead
    expect(page.get_by_role("status")).to_contain_text("No reviews about content and artistry yet")
    expect(page.locator("li.review")).to_have_count(0)
    expect(page.get_by_role("radio", name="Content and artistry")).to_be_checked()
    screenshot("no-reviews")
    page.get_by_role("link", name="Show all topics").click()
    expect(page.locator("li.review")).to_have_count(7)
    assert console.errors == []


def test_an_unknown_product_shows_the_not_found_state(
    page: Page, console: Console, screenshot: Screenshot, shop_api: ServerThread
):
    page.goto(f"{shop_api.url}/shop/#/product/NO-SUCH-PRODUCT")
    expect(page.get_by_role("status")).to_contain_text("We could not find this product")
    expect(page.get_by_role("status")).to_contain_text("NO-SUCH-PRODUCT")
    screenshot("not-found")
    page.get_by_role("link", name="Back to all products").click()
    expect(page.get_by_role("heading", name="All products")).to_be_visible()
    assert console.errors and console.failed_loads_only()  # the API's 404, and nothing else


def test_loading_is_shown_while_the_api_answers(
    page: Page, console: Console, screenshot: Screenshot, shop_api: ServerThread
):
    held: list[Route] = []
    page.route(re.compile(r"/reviews/.+/top"), lambda route: held.append(route))  # held back until released
    page.goto(f"{shop_api.url}/shop/#/product/{FRENCH_PRESS}")
    expect(page.get_by_role("status")).to_contain_text("Loading the product…")
    expect(page.locator("main")).to_have_attribute("aria-busy", "true")
    screenshot("loading")
    for route in held:
        route.continue_()
    expect(page.locator("li.review")).to_have_count(3)
    expect(page.locator("main")).not_to_have_attribute("aria-busy", "true")
    assert console.errors == []


def test_an_api_not_ready_then_down_shows_its_state_and_recovers(
    page: Page, console: Console, screenshot: Screenshot, shop_settings: Settings
):
    # given an API whose lake holds no curated version yet
    empty = shop_settings.model_copy(update={"s3_bucket": "storefront-empty-lake", "api_port": free_port()})
    grant_lake(empty)
    with ServerThread(empty) as server:
        page.goto(f"{server.url}/shop/")
        expect(page.get_by_role("status")).to_contain_text("No reviews have been published yet")
        screenshot("not-ready")
    # when that API stops, and the shopper tries again
    page.get_by_role("button", name="Try again").click()
    # then the page says the service is unavailable, and offers to try again
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("The review service is unavailable right now")
    expect(alert).to_contain_text("no answer from the API")
    screenshot("api-down")
    # and once an API answers on that address again, trying again shows the shop
    with ServerThread(shop_settings.model_copy(update={"api_port": empty.api_port})):
        alert.get_by_role("button", name="Try again").click()
        expect(page.get_by_role("heading", name="All products")).to_be_visible()
        expect(page.locator("li.product-card")).to_have_count(12)
    assert console.errors and console.failed_loads_only()  # the 503, the refused connection, nothing else


def test_under_a_prefix_every_request_stays_under_it(page: Page, console: Console, prefixed_api: AppServer):
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    # when the shopper opens the prefixed root, searches and opens a product
    page.goto(f"{prefixed_api.url}{PREFIX}/")
    expect(page).to_have_url(f"{prefixed_api.url}{PREFIX}/shop/")
    page.get_by_label("Search products").fill("headphones")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name="Aurora Wireless Noise-Cancelling Headphones").click()
    # then the page works as at the root
    expect(page.locator("li.review")).to_have_count(7)
    page.get_by_role("button", name="Value for money").click()
    expect(page.locator("li.review")).to_have_count(1)
    expect(page.locator("mark.match")).to_have_count(1)
    # and never asked for anything outside the prefix (the server has nothing there)
    outside = [url for url in requested if not url.startswith(f"{prefixed_api.url}{PREFIX}/")]
    assert outside == [] and len(requested) >= 6
    assert console.errors == []
