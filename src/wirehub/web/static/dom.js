/**
 * Small DOM helpers for the wirehub page.
 *
 * Safety rule of the whole page: text that came from a user or from the
 * network is only ever set with textContent / text nodes (see `el`), never
 * with innerHTML, so `<script>` or `<img onerror=...>` in a chat message is
 * shown as the characters it is.
 */

/** `document.querySelector`, throwing when the element is missing (a page bug). */
export function $(selector, root = document) {
  const found = root.querySelector(selector);
  if (!found) throw new Error(`missing element ${selector}`);
  return found;
}

/**
 * Create an element: `el("li", {class: "msg", "data-testid": "message"}, "text", child)`.
 * Attribute names are the page's own; string children become text nodes.
 */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value !== undefined && value !== null && value !== false) node.setAttribute(name, String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const SVG_NS = "http://www.w3.org/2000/svg";

/** An SVG element with attributes (numbers and fixed strings only). */
export function svg(tag, attrs = {}) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  return node;
}

/** JSON values in localStorage, with a default when missing or unreadable. */
export const store = {
  get(key, fallback) {
    try {
      const raw = localStorage.getItem(`wirehub.${key}`);
      return raw === null ? fallback : JSON.parse(raw);
    } catch {
      return fallback;
    }
  },
  set(key, value) {
    try { localStorage.setItem(`wirehub.${key}`, JSON.stringify(value)); } catch { /* private mode */ }
  },
};

/** Show `text` in a message element for a while (errors, notices). */
export function flash(node, text, ms = 6000) {
  node.textContent = text;
  node.hidden = !text;
  clearTimeout(node._flashTimer);
  if (text) node._flashTimer = setTimeout(() => { node.textContent = ""; node.hidden = true; }, ms);
}
