// What a user does about someone or a room they do not want: report it to the moderators
// (and, for someone on another server, to that server too), block an account (its rooms
// hidden, kept out of your rooms), mute its room announcements. docs/API.md "Reports,
// blocks and mutes".

import { ApiError, del, get, post } from './api.js';
import { field, submitting } from './forms.js';
import { announce, h } from './ui.js';

let rulesPromise = null;

/** The node's rules (GET /api/v1/about), fetched once per page load. */
function nodeRules() {
  if (!rulesPromise) {
    rulesPromise = get('/api/v1/about')
      .then((about) => (about && about.rules) || [])
      .catch(() => []);
  }
  return rulesPromise;
}

let reportCounter = 0;

/**
 * A "Report…" disclosure with its form. `target` is {kind: 'account'|'room'|'speaker',
 * account?, room?}; for a room, `speakers()` lists [{username, name}] to pick a speaker
 * from (the room itself is the first choice). Someone on another server (a name with '@')
 * may also be reported to their server (`forward`).
 */
export function reportForm(target, { speakers = null, label = 'Report…' } = {}) {
  reportCounter += 1;
  const id = `report-${reportCounter}`;
  const what = speakers
    ? h('select', { name: 'what', id: `${id}-what` }, h('option', { value: '' }, 'The room'))
    : null;
  const rule = h('select', { name: 'rule', id: `${id}-rule` }, h('option', { value: '' }, 'None in particular'));
  const ruleField = field('Rule broken', rule);
  ruleField.hidden = true;
  const comment = h('textarea', { name: 'comment', rows: 3, id: `${id}-comment` });
  const forward = h('input', { type: 'checkbox', name: 'forward', id: `${id}-forward`, checked: true });
  const forwardLabel = h('label', { for: forward.id }, 'Also send it to their server');
  const forwardRow = h('div.radio', {}, forward, forwardLabel);
  const done = h('p.form-done', { role: 'status', hidden: true });

  function chosenAccount() {
    if (what) return what.value || null;
    return target.account || null;
  }

  function refreshForward() {
    const account = chosenAccount();
    const remote = Boolean(account && account.includes('@'));
    forwardRow.hidden = !remote;
    if (remote) forwardLabel.textContent = `Also send it to ${account.split('@').slice(1).join('@')}`;
  }

  function refreshSpeakers() {
    if (!what || !speakers) return;
    const current = what.value;
    const options = [h('option', { value: '' }, 'The room')];
    for (const speaker of speakers()) {
      options.push(h('option', { value: speaker.username }, `Speaker: ${speaker.name}`));
    }
    what.replaceChildren(...options);
    what.value = [...what.options].some((o) => o.value === current) ? current : '';
    refreshForward();
  }

  const form = h(
    'form.form.report-form',
    {
      onsubmit: (event) => {
        event.preventDefault();
        done.hidden = true;
        submitting(form, async () => {
          const account = chosenAccount();
          const body = { comment: comment.value.trim() };
          if (rule.value) body.rule = rule.value;
          if (target.room) body.room = target.room;
          if (speakers) body.target = account ? 'speaker' : 'room';
          else body.target = target.kind;
          if (account && body.target !== 'room') body.account = account;
          if (account && account.includes('@') && body.target !== 'room') body.forward = forward.checked;
          await post('/api/v1/reports', body);
          form.reset();
          refreshForward();
          done.textContent = body.forward
            ? 'Thanks. The moderators here and on their server will look at it.'
            : 'Thanks. The moderators will look at it.';
          done.hidden = false;
          announce(done.textContent);
        });
      },
    },
    what ? field('What are you reporting?', what) : null,
    ruleField,
    field('What happened (optional)', comment, 'Only the moderators read it.', { limit: 1000 }),
    forwardRow,
    h('button.button.danger', { type: 'submit' }, 'Send report'),
    done,
  );
  if (what) what.addEventListener('change', refreshForward);
  refreshForward();
  nodeRules().then((rules) => {
    if (!rules.length) return;
    rule.append(...rules.map((text) => h('option', { value: text }, text)));
    ruleField.hidden = false;
  });
  const details = h('details.report', {}, h('summary.button.small.ghost', {}, label), form);
  details.addEventListener('toggle', () => {
    if (details.open) refreshSpeakers();
  });
  return { element: details, refreshSpeakers };
}

/** Block, Mute and Report for an account shown on its profile (signed in, not yourself). */
export async function safetyPanel(handle) {
  // The node names its own users bare ('alice'), others 'bob@host'.
  const name = handle.replace(/^@/, '').replace(`@${location.host}`, '');
  const [blocks, mutes] = await Promise.all([
    get('/api/v1/blocks').catch(() => ({ blocks: [] })),
    get('/api/v1/mutes').catch(() => ({ mutes: [] })),
  ]);
  const has = (entries) => (entries || []).some((entry) => entry.handle === name);
  const state = { block: has(blocks.blocks), mute: has(mutes.mutes) };
  const status = h('p.form-done', { role: 'status', hidden: true });
  const toggle = (kind, on, off, saidOn, saidOff) => {
    const button = h('button.button.small.ghost', { type: 'button' });
    const render = () => {
      button.textContent = state[kind] ? off : on;
      button.setAttribute('aria-pressed', state[kind] ? 'true' : 'false');
    };
    button.addEventListener('click', async () => {
      button.disabled = true;
      try {
        if (state[kind]) await del(`/api/v1/${kind}s/${encodeURIComponent(name)}`);
        else await post(`/api/v1/${kind}s`, { handle: name });
        state[kind] = !state[kind];
        status.textContent = state[kind] ? saidOn : saidOff;
        status.hidden = false;
        announce(status.textContent);
        render();
      } catch (err) {
        status.hidden = false;
        status.textContent = err instanceof ApiError ? err.message : String(err);
      } finally {
        button.disabled = false;
      }
    });
    render();
    return button;
  };
  const who = `@${name}`;
  const report = reportForm({ kind: 'account', account: name }, { label: `Report ${who}…` });
  return h(
    'div.safety',
    {},
    h(
      'div.row',
      {},
      toggle('block', 'Block', 'Unblock', `You blocked ${who}: their rooms are hidden and they cannot join yours.`, `You unblocked ${who}.`),
      toggle('mute', 'Mute rooms', 'Unmute rooms', `You muted ${who}'s rooms.`, `You unmuted ${who}'s rooms.`),
    ),
    status,
    report.element,
  );
}
