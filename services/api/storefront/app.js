// The storefront mockup: a product list with search, and a product page with what customers say, topic by
// topic, above its top reviews. It reads only the public API (GET /products, GET /products/{id}/summary,
// GET /reviews/{id}/top), through URLs relative to the page, so it works wherever the API is mounted.
// Routes live in the hash: #/?q=…, #/product/ID?topic=… (any sentence on it), #/product/ID?category=….
// Data goes into the DOM through textContent only, never as HTML: review text is user content.
"use strict";

const API_ROOT = new URL("../", document.baseURI); // the page is served at <api>/shop/
const REQUEST_TIMEOUT_MS = 10000; // a hung API shows the error state instead of spinning forever
const PRODUCTS_PER_PAGE = 12;
const REVIEWS_FETCHED = 50; // the API's largest page: the unfiltered one also lists the topics to filter on
const REVIEWS_SHOWN = 10; // then "Show more" by as many

const main = document.getElementById("main");
const searchForm = document.getElementById("search-form");
const searchInput = document.getElementById("search-input");

class ApiError extends Error {
  // kind: "not_found" (404), "not_ready" (503: nothing published yet) or "unavailable" (anything else)
  constructor(kind, detail) {
    super(detail);
    this.kind = kind;
    this.detail = detail;
  }
}

async function api(path, params = {}) {
  const url = new URL(path, API_ROOT);
  for (const [name, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== "") url.searchParams.set(name, value);
  }
  let response;
  try {
    response = await fetch(url, {headers: {Accept: "application/json"}, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS)});
  } catch (err) {
    throw new ApiError("unavailable", err.name === "TimeoutError" ? "the request timed out" : "no answer from the API");
  }
  // A proxy in front of the API may answer with an HTML error page: no JSON body then.
  const body = await response.json().catch(() => null);
  if (response.ok && body !== null) return body;
  const detail = (body && body.detail) || `HTTP ${response.status}`;
  if (response.status === 404) throw new ApiError("not_found", detail);
  if (response.status === 503 && body && body.error === "not_ready") throw new ApiError("not_ready", detail);
  throw new ApiError("unavailable", detail);
}

// ---------------------------------------------------------------------------- DOM helpers (el: ../common/dom.js)

function stars(rating, label) {
  const node = el("span", {class: "stars", role: "img", "aria-label": label});
  node.style.setProperty("--rating", String(rating));
  return node;
}

function thumb(product, large = false) {
  const title = product.title || product.product_id;
  const initials = title.split(/\s+/).filter((w) => /^[\p{L}\p{N}]/u.test(w)).slice(0, 2).map((w) => w[0].toUpperCase()).join("");
  const node = el("div", {class: large ? "thumb thumb-large" : "thumb", "aria-hidden": "true", text: initials || "?"});
  let hue = 0;
  for (const ch of product.product_id) hue = (hue * 31 + ch.charCodeAt(0)) % 360;
  node.style.setProperty("--hue", String(hue));
  return node;
}

function capitalise(text) {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function percent(value) {
  return `${Math.round(value * 100)}%`;
}

function formatDate(iso) {
  // Dates are calendar days: format them in UTC so no time zone moves them by one.
  return new Date(iso).toLocaleDateString("en-US", {year: "numeric", month: "short", day: "numeric", timeZone: "UTC"});
}

function state(kind, title, message, action) {
  const role = kind === "error" ? "alert" : "status";
  return el("div", {class: `state state-${kind}`, role, "data-state": kind},
    kind === "loading" ? el("span", {class: "spinner", "aria-hidden": "true"}) : null,
    el("p", {class: "state-title", text: title}),
    message ? el("p", {class: "state-message", text: message}) : null,
    action || null);
}

function loading(what) {
  return state("loading", `Loading ${what}…`);
}

function retryButton(retry) {
  return el("button", {type: "button", class: "button", onclick: retry, text: "Try again"});
}

function errorState(err, retry) {
  if (!(err instanceof ApiError)) throw err; // a bug, not an API state: let it surface
  if (err.kind === "not_ready") {
    return state("not-ready", "No reviews have been published yet",
      "The catalogue appears once the pipeline has published its first curated version.", retryButton(retry));
  }
  return state("error", "The review service is unavailable right now",
    `We could not load this page (${err.detail}). Please try again in a moment.`, retryButton(retry));
}

// ---------------------------------------------------------------------------- routing

// filter: {topic} (reviews discussing it in any sentence) or {category} (their single topic), or none.
function productHash(productId, filter = {}) {
  const [name, value] = Object.entries(filter).find(([, v]) => v) || [];
  const query = name ? `?${name}=${encodeURIComponent(value)}` : "";
  return `#/product/${encodeURIComponent(productId)}${query}`;
}

function parseRoute() {
  const [path, query = ""] = location.hash.replace(/^#/, "").split("?", 2);
  const params = new URLSearchParams(query);
  const match = path.match(/^\/product\/(.+)$/);
  if (match) {
    return {view: "product", productId: decodeURIComponent(match[1]),
      topic: params.get("topic") || "", category: params.get("category") || ""};
  }
  return {view: "list", query: params.get("q") || ""};
}

// Each render gets a number; an answer arriving after the visitor moved on is dropped.
let currentRender = 0;

async function render(moveFocus) {
  const renderId = ++currentRender;
  const route = parseRoute();
  const isCurrent = () => renderId === currentRender;
  searchInput.value = route.view === "list" ? route.query : "";
  main.setAttribute("aria-busy", "true");
  main.replaceChildren(loading(route.view === "list" ? "products" : "the product"));
  let view;
  try {
    view = route.view === "list" ? await productList(route.query, isCurrent) : await productPage(route, isCurrent);
  } catch (err) {
    view = errorState(err, () => render(true));
  }
  if (!isCurrent()) return;
  main.replaceChildren(view);
  main.removeAttribute("aria-busy");
  if (moveFocus) (main.querySelector("h1") || main).focus();
}

searchForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const query = searchInput.value.trim();
  const target = query ? `#/?q=${encodeURIComponent(query)}` : "#/";
  if (location.hash === target) render(true);
  else location.hash = target;
});

window.addEventListener("hashchange", () => render(true));

// Routes live in the hash, so an in-page anchor would navigate: the skip link moves the focus instead.
document.querySelector(".skip-link").addEventListener("click", (event) => {
  event.preventDefault();
  main.focus();
});

// ---------------------------------------------------------------------------- product list

function productCard(product) {
  const rating = product.average_rating;
  const count = product.review_count;
  return el("li", {class: "product-card", "data-product-id": product.product_id},
    el("a", {class: "card-link", href: productHash(product.product_id)},
      thumb(product),
      el("h2", {class: "card-title", text: product.title || product.product_id})),
    product.category ? el("p", {class: "card-category", text: product.category}) : null,
    el("p", {class: "card-rating"},
      stars(rating, `Rated ${rating.toFixed(1)} out of 5`),
      el("span", {class: "rating-number", text: rating.toFixed(1)}),
      el("span", {class: "muted review-count", text: `· ${count} review${count === 1 ? "" : "s"}`})),
    el("p", {class: "card-id muted", text: `Item ${product.product_id}`}));
}

async function productList(query, isCurrent) {
  const page = await api("products", {query, limit: PRODUCTS_PER_PAGE});
  document.title = query ? `“${query}” — Mockup Market` : "Mockup Market";
  const heading = el("h1", {tabindex: "-1", text: query ? `Results for “${query}”` : "All products"});
  if (page.products.length === 0) {
    return el("section", {class: "listing"}, heading,
      state("empty", `No products match “${query}”`, "Try another name or a product id.",
        el("a", {class: "button", href: "#/", text: "Show all products"})));
  }
  const grid = el("ul", {class: "product-grid", "aria-label": "Products"}, ...page.products.map(productCard));
  const more = el("div", {class: "more"});
  let cursor = page.next_cursor;

  async function loadMore() {
    more.replaceChildren(loading("more products"));
    try {
      const next = await api("products", {query, limit: PRODUCTS_PER_PAGE, cursor});
      if (!isCurrent()) return;
      grid.append(...next.products.map(productCard));
      cursor = next.next_cursor;
      showMore();
    } catch (err) {
      if (isCurrent()) more.replaceChildren(errorState(err, loadMore));
    }
  }

  function showMore() {
    more.replaceChildren(cursor ? el("button", {type: "button", class: "button", onclick: loadMore, text: "Load more products"}) : "");
  }

  showMore();
  return el("section", {class: "listing"},
    query ? null : el("div", {class: "hero"},
      el("p", {class: "hero-title", text: "Shop with the reviews that matter"}),
      el("p", {class: "hero-text", text: "Every product shows its most useful reviews first, sorted by topic."})),
    heading, grid, more);
}

// ---------------------------------------------------------------------------- product page

async function productSummary(productId) {
  // The search matches ids by substring: pick the exact one. Its figures are a bonus, never required.
  try {
    const page = await api("products", {query: productId, limit: 100});
    return page.products.find((p) => p.product_id === productId) || null;
  } catch {
    return null;
  }
}

const SENTIMENT = {"-1": "negative", "0": "neutral", "1": "positive"};

// The review's text with the sentences that matched a topic marked. The API's offsets count code points:
// slice an array of them, not the UTF-16 string (an emoji is two of its units).
function highlighted(text, matches) {
  if (!matches || matches.length === 0) return [text];
  const points = Array.from(text);
  const parts = [];
  let at = 0;
  for (const match of [...matches].sort((a, b) => a.start - b.start)) {
    if (match.start < at) continue;
    parts.push(points.slice(at, match.start).join(""),
      el("mark", {class: `match match-${SENTIMENT[match.sentiment]}`, text: points.slice(match.start, match.end).join("")}));
    at = match.end;
  }
  parts.push(points.slice(at).join(""));
  return parts;
}

function reviewCard(review, rank) {
  const relevance = review.relevance_score ?? 0;
  const bar = el("div", {class: "relevance-bar", role: "meter", "aria-valuemin": "0", "aria-valuemax": "1",
    "aria-valuenow": String(relevance), "aria-label": "Relevance"});
  bar.append(el("span", {class: "relevance-fill"}));
  bar.style.setProperty("--value", String(relevance));
  const category = review.category
    ? el("span", {class: "chip", "data-category": review.category,
        title: "Topic found by the review classifier, with its confidence"},
      el("span", {text: capitalise(review.category)}),
      review.category_confidence !== null ? el("span", {class: "chip-confidence", text: percent(review.category_confidence)}) : null)
    : null;
  const votes = review.helpful_votes || 0;
  return el("li", {class: "review", "data-review-id": String(review.review_id)},
    el("div", {class: "review-head"},
      stars(review.rating, `${review.rating} out of 5 stars`),
      el("h3", {class: "review-title", text: review.title || "Untitled review"})),
    el("p", {class: "review-meta muted"},
      el("span", {class: "rank", text: `#${rank}`}),
      review.date ? el("span", {text: `Reviewed on ${formatDate(review.date)}`}) : null,
      review.verified_purchase === true ? el("span", {class: "badge-verified", text: "✓ Verified purchase"}) : null),
    el("p", {class: "review-text"}, ...highlighted(review.text || "", review.matches)),
    el("div", {class: "review-foot"},
      category,
      votes > 0 ? el("span", {class: "muted", text: `${votes} ${votes === 1 ? "person" : "people"} found this helpful`}) : null,
      el("span", {class: "relevance"}, el("span", {class: "muted", text: "Relevance"}), bar,
        el("span", {class: "relevance-value", text: relevance.toFixed(2)}))));
}

function reviewList(reviews) {
  const list = el("ol", {class: "reviews", "aria-label": "Reviews, most relevant first"});
  const more = el("div", {class: "more"});
  let shown = 0;
  function showNext() {
    const next = reviews.slice(shown, shown + REVIEWS_SHOWN);
    list.append(...next.map((review, i) => reviewCard(review, shown + i + 1)));
    shown += next.length;
    more.replaceChildren(shown < reviews.length
      ? el("button", {type: "button", class: "button", onclick: showNext, text: `Show more reviews (${reviews.length - shown})`})
      : "");
  }
  showNext();
  return [list, more];
}

function topicFilter(categories, selected, onChange) {
  const options = [["", "All topics"], ...categories.map((c) => [c, capitalise(c)])];
  return el("fieldset", {class: "filters"},
    el("legend", {text: "Filter by topic"}),
    ...options.map(([value, label]) => {
      const input = el("input", {type: "radio", name: "topic", value, checked: value === selected,
        onchange: () => onChange(value)});
      return el("label", {class: "filter-chip"}, input, el("span", {text: label}));
    }));
}

function quote(said, side) {
  if (!said) return null;
  return el("p", {class: `quote quote-${side}`, "data-review-id": String(said.review_id)},
    el("span", {class: "quote-side", text: side === "positive" ? "+" : "−", "aria-hidden": "true"}),
    el("span", {class: "visually-hidden", text: `${capitalise(side)}: `}),
    el("q", {text: said.text}));
}

// What customers say: a chip per topic with its reviews, a positive/negative bar and a quote each side.
// A chip filters the reviews below on its topic; pressed again, it shows them all.
function customersSay(said, selected, onPick) {
  const chips = [];
  const items = said.topics.map((t) => {
    const positive = Math.round(t.positive * 100);
    const negative = Math.round(t.negative * 100);
    const bar = el("div", {class: "sentiment-bar", role: "img", "aria-label": `${positive}% positive, ${negative}% negative`},
      el("span", {class: "bar-positive"}), el("span", {class: "bar-negative"}));
    bar.style.setProperty("--positive", String(t.positive));
    bar.style.setProperty("--negative", String(t.negative));
    const chip = el("button", {type: "button", class: "topic-chip", "data-topic": t.topic,
      "aria-pressed": String(t.topic === selected),
      onclick: () => {
        const picked = chip.getAttribute("aria-pressed") === "true" ? "" : t.topic;
        for (const c of chips) c.setAttribute("aria-pressed", String(c === chip && picked !== ""));
        onPick(picked);
      }},
    el("span", {class: "topic-name", text: capitalise(t.topic)}),
    el("span", {class: "topic-count", text: `${t.reviews} review${t.reviews === 1 ? "" : "s"}`}));
    chips.push(chip);
    return el("li", {class: "topic", "data-topic": t.topic},
      chip, bar,
      el("p", {class: "sentiment-figures muted", text: `${positive}% positive · ${negative}% negative`}),
      quote(t.positive_quote, "positive"), quote(t.negative_quote, "negative"));
  });
  return el("section", {class: "customers-say", "aria-labelledby": "say-heading"},
    el("div", {class: "section-head"},
      el("h2", {id: "say-heading", text: "What customers say"}),
      el("p", {class: "muted", text: `From ${said.reviews_analysed} of ${said.review_count} reviews; pick a topic to read them`})),
    el("ul", {class: "topics", "aria-label": "Topics customers discuss"}, ...items));
}

async function productPage(route, isCurrent) {
  const {productId} = route;
  const [top, summary, said] = await Promise.all([
    api(`reviews/${encodeURIComponent(productId)}/top`, {limit: REVIEWS_FETCHED}).catch((err) => err),
    productSummary(productId),
    // What customers say is a bonus too: the reviews show without it.
    api(`products/${encodeURIComponent(productId)}/summary`).catch(() => null),
  ]);
  if (top instanceof ApiError && top.kind === "not_found") {
    document.title = "Product not found — Mockup Market";
    return el("section", {},
      el("h1", {tabindex: "-1", class: "visually-hidden", text: "Product not found"}),
      state("not-found", "We could not find this product",
        `There is no product “${productId}” in the catalogue.`,
        el("a", {class: "button", href: "#/", text: "Back to all products"})));
  }
  if (top instanceof Error) throw top;

  const title = top.product_title || productId;
  document.title = `${title} — Mockup Market`;
  // Topics to filter on: those of the product's most relevant reviews, most frequent first.
  const counts = new Map();
  for (const r of top.reviews) if (r.category) counts.set(r.category, (counts.get(r.category) || 0) + 1);
  const categories = [...counts.keys()].sort((a, b) => counts.get(b) - counts.get(a) || a.localeCompare(b));
  if (route.category && !counts.has(route.category)) categories.push(route.category); // keep a linked topic visible

  const hasTopics = Boolean(said && said.topics.length);
  const results = el("div", {class: "review-results", "aria-live": "polite"});
  let currentLoad = 0;
  // filter: {topic} or {category}, as in the hash
  async function showReviews(filter) {
    const loadId = ++currentLoad;
    const fresh = () => loadId === currentLoad && isCurrent();
    const about = filter.topic || filter.category;
    let view;
    if (!about) {
      view = reviewsOrEmpty(top.reviews, about);
    } else {
      results.replaceChildren(loading("reviews"));
      try {
        const filtered = await api(`reviews/${encodeURIComponent(productId)}/top`, {limit: REVIEWS_FETCHED, ...filter});
        view = reviewsOrEmpty(filtered.reviews, about);
      } catch (err) {
        view = [errorState(err, () => showReviews(filter))];
      }
    }
    if (fresh()) results.replaceChildren(...view);
  }

  function reviewsOrEmpty(reviews, about) {
    if (reviews.length > 0) return reviewList(reviews);
    return [state("empty", about ? `No reviews about ${about} yet` : "No reviews yet",
      about ? "Try another topic." : "Be the first to review this product.",
      about ? el("a", {class: "button", href: productHash(productId), text: "Show all topics"}) : null)];
  }

  // A filter change replaces the hash without a new render: the page and the focus stay where they are.
  function onFilter(filter) {
    history.replaceState(null, "", productHash(productId, filter));
    showReviews(filter);
  }

  const stats = summary
    ? el("p", {class: "product-stats"},
      stars(summary.average_rating, `Rated ${summary.average_rating.toFixed(1)} out of 5`),
      el("span", {class: "rating-number", text: summary.average_rating.toFixed(1)}),
      el("span", {class: "muted review-count", text: `· ${summary.review_count} review${summary.review_count === 1 ? "" : "s"}`}))
    : null;
  const page = el("article", {class: "product-page", "data-product-id": productId},
    el("nav", {class: "breadcrumb", "aria-label": "Breadcrumb"}, el("a", {href: "#/", text: "← All products"})),
    el("header", {class: "product-head"},
      thumb({product_id: productId, title}, true),
      el("div", {class: "product-info"},
        summary && summary.category ? el("p", {class: "eyebrow", text: summary.category}) : null,
        el("h1", {tabindex: "-1", text: title}),
        stats,
        el("p", {class: "muted", text: `Item ${productId}`}))),
    hasTopics ? customersSay(said, route.topic, (topic) => onFilter({topic})) : null,
    el("section", {class: "top-reviews", "aria-labelledby": "reviews-heading"},
      el("div", {class: "section-head"},
        el("h2", {id: "reviews-heading", text: "Top reviews"}),
        el("p", {class: "muted", text: "Most relevant first"})),
      // The single-topic filter, for a version analysed before sentence topics (or a link to one).
      categories.length && (!hasTopics || route.category)
        ? topicFilter(categories, route.category, (category) => onFilter({category})) : null,
      results));
  await showReviews(route.topic ? {topic: route.topic} : {category: route.category});
  return page;
}

render(false);
