// Small page helpers every view shares: building elements, the alert area, the live
// announcer for screen readers, and the document title. No state beyond the DOM.

/** h('button.primary', {type: 'button', onclick}, 'Text', child...) */
export function h(tag, attrs, ...children) {
  const [name, ...classes] = tag.split('.');
  const el = document.createElement(name || 'div');
  if (classes.length) el.className = classes.join(' ');
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (key === 'dataset') {
      Object.assign(el.dataset, value);
    } else if (key === 'class') {
      el.className = [el.className, value].filter(Boolean).join(' ');
    } else if (key in el && typeof value !== 'string') {
      el[key] = value;
    } else {
      el.setAttribute(key, value === true ? '' : value);
    }
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const alertBox = () => document.getElementById('alert');
const alertText = () => document.getElementById('alert-text');

export function showError(err) {
  const message = typeof err === 'string' ? err : err && err.message ? err.message : String(err);
  alertText().textContent = message;
  alertBox().hidden = false;
}

export function clearError() {
  alertBox().hidden = true;
  alertText().textContent = '';
}

let announceTimer = null;
export function announce(text) {
  const announcer = document.getElementById('announcer');
  // Clearing first makes screen readers repeat an identical message.
  announcer.textContent = '';
  clearTimeout(announceTimer);
  announceTimer = setTimeout(() => {
    announcer.textContent = text;
  }, 50);
}

export function setTitle(text) {
  document.title = text ? `${text} · Parley` : 'Parley';
}

/** Initials for an avatar placeholder. */
export function initials(name) {
  const parts = String(name || '?').trim().split(/\s+/).filter(Boolean);
  const letters = parts.length > 1 ? parts[0][0] + parts[1][0] : (parts[0] || '?').slice(0, 2);
  return letters.toUpperCase();
}

// HOOK(avatar upload): once accounts carry an icon (the actor's `icon`, fetched through the
// node for remote people), take an image URL here and render an <img alt=""> instead.
export function avatar(name, size) {
  return h(`span.avatar.${size}`, { 'aria-hidden': 'true' }, initials(name));
}

export function hostOf(url) {
  try {
    return new URL(url).host;
  } catch {
    return 'another server';
  }
}
