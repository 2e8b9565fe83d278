// DOM helpers. Every piece of text goes in through textContent or a text
// node, never through innerHTML, so text from the network cannot become
// markup (docs/web.md).

/** Builds an element: h('a', {href, class, onclick}, child, 'text', ...). */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = String(v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

/** Appends children (nodes, strings, arrays of them; null is skipped). */
export function append(el, children) {
  for (const c of [children].flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

/** "3 min ago" style text for a time in ms, and the absolute time. */
export function timeEl(ms) {
  if (typeof ms !== 'number' || !Number.isFinite(ms)) return h('span', { class: 'time' }, '');
  const d = new Date(ms);
  const el = h('time', { datetime: d.toISOString(), title: d.toLocaleString(), class: 'time' });
  el.dataset.ms = String(ms);
  el.textContent = relative(ms);
  return el;
}

export function relative(ms, now = Date.now()) {
  const s = Math.round((now - ms) / 1000);
  if (s < 10) return 'just now';
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return new Date(ms).toLocaleDateString();
}

/** Refreshes every relative time on the page (called once a minute). */
export function refreshTimes(root = document) {
  for (const t of root.querySelectorAll('time[data-ms]')) t.textContent = relative(Number(t.dataset.ms));
}

/** An id shortened for display: "kabcdef…wxyz". The full id goes in title. */
export function shortId(id) {
  return typeof id === 'string' && id.length > 16 ? `${id.slice(0, 8)}…${id.slice(-4)}` : String(id ?? '');
}

export function formatBytes(n) {
  if (typeof n !== 'number') return '';
  if (n < 1024) return `${n}\u00a0B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)}\u00a0KiB`;
  return `${(n / 1024 / 1024).toFixed(1)}\u00a0MiB`;
}

let toastTimer = 0;
/** A short message in the polite live region at the bottom. */
export function toast(text, kind = 'info') {
  const el = document.getElementById('toast');
  if (!el) return;
  el.textContent = text;
  el.dataset.kind = kind;
  el.classList.add('shown');
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => el.classList.remove('shown'), kind === 'error' ? 8000 : 3000);
}

/** Copies text to the clipboard; falls back to selecting it in a field. */
export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const ta = h('textarea', { readonly: true, class: 'offscreen', 'aria-hidden': 'true' });
    ta.value = text;
    document.body.append(ta);
    ta.select();
    let ok = false;
    try { ok = document.execCommand('copy'); } catch { ok = false; }
    ta.remove();
    return ok;
  }
}
