// @ts-check
// A tiny DOM helper: h('tag.class', {attrs, on: {event}}, ...children), and re-rendering a
// container without losing the keyboard focus (elements carry a data-key to find them again).

/**
 * @param {string} spec tag name with optional .classes
 * @param {Record<string, any> | null} [attrs]
 * @param {...any} children strings, nodes, arrays, null/false (skipped)
 * @returns {HTMLElement}
 */
export function h(spec, attrs, ...children) {
  const [tag, ...classes] = spec.split('.');
  const el = document.createElement(tag);
  if (classes.length) el.className = classes.join(' ');
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'on') for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'text') el.textContent = v;
    else if (k in el && typeof v !== 'string') /** @type {any} */ (el)[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

/** Replaces a container's children, putting the focus back on the element with the same data-key. */
export function rerender(container, ...children) {
  const active = document.activeElement;
  const key = active instanceof HTMLElement && container.contains(active) ? active.dataset.key : undefined;
  container.replaceChildren();
  append(container, children);
  if (key) {
    const again = /** @type {HTMLElement|null} */ (container.querySelector(`[data-key="${CSS.escape(key)}"]`));
    if (again) again.focus();
  }
}

/** Shows a result line in an output element: ok (polite) or an error (assertive, red). */
export function say(out, text, kind = 'ok') {
  out.textContent = text;
  out.classList.toggle('error', kind === 'error');
  out.classList.toggle('ok', kind === 'ok');
  out.setAttribute('role', kind === 'error' ? 'alert' : 'status');
}
