// ui.js — building the page safely: every text goes in through textContent
// (never innerHTML), so text from the database is shown as text, whatever
// it contains. Plus small formatting helpers the views share.

// el('button', {class: 'x', type: 'button', onclick: fn}, 'label', child, ...)
export function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k === 'text') node.textContent = String(v);
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else if (k in node && typeof node[k] === 'boolean') node[k] = Boolean(v);
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

export function clear(node) {
  while (node.firstChild) node.firstChild.remove();
  return node;
}

// A date-time for people (the browser's zone), or '' for none.
export function when(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleString();
}

// A <time> element: machine value in datetime, the local rendering as text.
export function timeEl(iso, opts) {
  return el('time', { datetime: iso || '' }, opts ? new Date(iso).toLocaleString(undefined, opts) : when(iso));
}

// Shortened text (for tool arguments and results shown compactly).
export function short(s, n = 160) {
  s = typeof s === 'string' ? s : JSON.stringify(s);
  if (s === undefined) return '';
  return s.length > n ? s.slice(0, n - 1) + '…' : s;
}

// The page's one live status line (errors, confirmations).
export function say(text, isError) {
  const s = document.getElementById('status');
  s.textContent = text || '';
  s.classList.toggle('error', Boolean(isError));
}

export function heading(text) {
  return el('h1', { text });
}

// A sleep that ends early (rejecting) when signal aborts.
export function pause(ms, signal) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => { clearTimeout(t); reject(new DOMException('aborted', 'AbortError')); },
      { once: true });
  });
}
