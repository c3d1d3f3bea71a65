// What both pages (the storefront and the operator's pages) build their DOM with, loaded before each page's app.js.
// Data goes in through textContent and attributes only, never as HTML.
"use strict";

// el("a", {class: "x", href: "#", text: "label", onclick: fn}, child, ...): an element with its attributes
// (null, undefined and false left out; true an empty attribute), its event listeners and its children (strings
// as text).
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined && c !== false).map((c) => (typeof c === "object" ? c : String(c))));
  return node;
}
