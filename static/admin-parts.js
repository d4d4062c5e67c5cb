// Small parts the admin page's sections share (admin.js, admin-people.js): dates, lists of
// facts, a status line, and an action behind a disclosure.

import { submitting } from './forms.js';
import { announce, h } from './ui.js';

export function isStaff(me) {
  return Boolean(me && (me.role === 'admin' || me.role === 'moderator'));
}

/** Seconds since the epoch, as a person reads a date. */
export function when(seconds) {
  if (!seconds) return '';
  return new Date(seconds * 1000).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

/** A small list of facts: [[label, value], ...] as a <dl>. */
export function facts(pairs) {
  return h(
    'dl.facts',
    {},
    pairs
      .filter(([, value]) => value !== null && value !== undefined && value !== '')
      .map(([label, value]) => h('div', {}, h('dt', {}, label), h('dd', {}, value))),
  );
}

/** A status line after an action (read by screen readers). */
export function statusLine() {
  const el = h('p.form-done', { role: 'status', hidden: true });
  return {
    el,
    say(text) {
      el.textContent = text;
      el.hidden = !text;
      if (text) announce(text);
    },
  };
}

/** A disclosure holding a form: `<details><summary>label</summary><form>…</form></details>`. */
export function actionForm(label, fields, submitLabel, action, { danger = false } = {}) {
  const form = h(
    'form.form.action-form',
    {
      onsubmit: (event) => {
        event.preventDefault();
        submitting(form, () => action(form));
      },
    },
    fields,
    h(`button.button.small${danger ? '.danger' : '.primary'}`, { type: 'submit' }, submitLabel),
  );
  return h('details.admin-action', {}, h('summary.button.small', {}, label), form);
}
