// Forms: labelled fields, errors shown next to the field that caused them, character
// counters where a limit exists (the node refuses what is too long: nothing is cut
// silently), and a submit wrapper that routes the node's `field` errors to their field.

import { ApiError } from './api.js';
import { clearError, h, showError } from './ui.js';

let fieldCounter = 0;

/**
 * A labelled field. `limit` adds a counter ("12 / 120") and refuses too long a value at
 * submit. The input's `name` should be the API's field name, so that a 422 from the node
 * lands next to it.
 */
export function field(label, input, hint, { limit } = {}) {
  fieldCounter += 1;
  const id = input.id || `f-${fieldCounter}`;
  input.id = id;
  const described = [];
  const hintEl = hint ? h('small.hint', { id: `${id}-hint` }, hint) : null;
  if (hintEl) described.push(hintEl.id);
  let counter = null;
  if (limit) {
    counter = h('small.counter', { id: `${id}-count` });
    described.push(counter.id);
    input.dataset.limit = String(limit);
    input.dataset.label = label.replace(/\s*\(optional\)$/, '');
    const update = () => updateCounter(input, counter, limit);
    input.addEventListener('input', update);
    update();
  }
  const error = h('p.field-error', { id: `${id}-error`, hidden: true });
  described.push(error.id);
  input.setAttribute('aria-describedby', described.join(' '));
  input.addEventListener('input', () => {
    if (!error.hidden && !isOver(input)) setFieldError(input, '');
  });
  return h(
    'div.field',
    {},
    h('label', { for: id }, label),
    input,
    h('div.field-foot', {}, hintEl, counter),
    error,
  );
}

function isOver(input) {
  const limit = Number(input.dataset.limit || 0);
  return limit > 0 && input.value.trim().length > limit;
}

function updateCounter(input, counter, limit) {
  const length = input.value.trim().length;
  const over = length - limit;
  counter.textContent =
    over > 0 ? `${length} / ${limit}: ${over} too many` : `${length} / ${limit}`;
  counter.classList.toggle('over', over > 0);
  if (over > 0) {
    const name = input.dataset.label;
    setFieldError(input, `${name} is ${over} characters too long (at most ${limit}).`);
  }
}

/** Show `message` under `input` (empty clears it), and mark the input invalid. */
export function setFieldError(input, message) {
  const error = document.getElementById(`${input.id}-error`);
  if (!error) return false;
  error.textContent = message;
  error.hidden = !message;
  if (message) input.setAttribute('aria-invalid', 'true');
  else input.removeAttribute('aria-invalid');
  return true;
}

export function clearFieldErrors(form) {
  for (const input of form.querySelectorAll('[aria-invalid]')) setFieldError(input, '');
}

function fieldMessage(err) {
  // The node's detail reads "title: at most 120 characters"; the field shows the reason.
  const detail = String(err.detail || err.message || '');
  const prefix = `${err.field}: `;
  const reason = detail.startsWith(prefix) ? detail.slice(prefix.length) : detail;
  const text = reason.charAt(0).toUpperCase() + reason.slice(1);
  return /[.!?]$/.test(text) ? text : `${text}.`;
}

/**
 * Run `action` for `form`: checks the limits first, disables the submit button meanwhile,
 * and puts an error about one field next to that field (focused); others go to the alert.
 */
export async function submitting(form, action) {
  const button = form.querySelector('button[type=submit]');
  clearError();
  clearFieldErrors(form);
  const tooLong = [...form.querySelectorAll('[data-limit]')].filter(isOver);
  if (tooLong.length) {
    for (const input of tooLong) {
      const counter = document.getElementById(`${input.id}-count`);
      updateCounter(input, counter, Number(input.dataset.limit));
    }
    tooLong[0].focus();
    return false;
  }
  if (button) button.disabled = true;
  form.setAttribute('aria-busy', 'true');
  try {
    await action();
    return true;
  } catch (err) {
    const input = err instanceof ApiError && err.field ? form.elements.namedItem(err.field) : null;
    if (input && input.id && setFieldError(input, fieldMessage(err))) input.focus();
    else showError(err);
    return false;
  } finally {
    if (button) button.disabled = false;
    form.removeAttribute('aria-busy');
  }
}
