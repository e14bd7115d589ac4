// Building DOM without innerHTML: every text the server sends is set as
// text, never parsed as markup.

/**
 * An element: `h("a", { href: "#/x", class: "y" }, "text", child)`.
 * Attributes named `on…` take listeners; `null`, `undefined` and `false`
 * attributes are left out, and so are such children.
 */
export function h(tag, attributes = {}, ...children) {
  return fill(document.createElement(tag), attributes, children);
}

const SVG = "http://www.w3.org/2000/svg";

/** An SVG element, as `h`. */
export function s(tag, attributes = {}, ...children) {
  return fill(document.createElementNS(SVG, tag), attributes, children);
}

function fill(element, attributes, children) {
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) {
      element.addEventListener(name.slice(2), value);
    } else {
      element.setAttribute(name, value === true ? "" : String(value));
    }
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

/** A number exactly as the API gave it, for data- attributes (tests compare them). */
export function raw(x) {
  return x === null || x === undefined ? "none" : String(x);
}
