// Stream keys for OBS and other WHIP encoders: the "publish-key" section of the settings
// page (settings.js).
//
// A stream key can only publish audio (WHIP), as one account and optionally in one room;
// the server shows it once and keeps only its hash.

import { del, get, post } from './api.js';
import { field, submitting } from './forms.js';
import { announce, h, showError } from './ui.js';

const MAX_LABEL = 64;

function when(seconds) {
  return seconds ? new Date(seconds * 1000).toLocaleString() : 'never';
}

/** The "Stream keys (OBS)" card: create (for any room or one of yours), copy, revoke. */
export function publishKeySection(ctx) {
  let rooms = [];
  const label = h('input', { name: 'label', placeholder: 'OBS on my laptop' });
  const anyRoom = h('option', { value: '' }, 'Any room I speak in');
  const room = h('select', { name: 'room' }, anyRoom);
  const shown = h('div.stream-key-shown', { hidden: true, role: 'status' });
  const list = h('ul.people-list.stream-keys', { 'aria-labelledby': 'keys-h' });
  const empty = h('p.muted.empty-note', {}, 'No stream keys yet.');

  function showKey(key) {
    const input = h('input.stream-key', {
      readonly: true,
      value: key,
      'aria-label': 'Your new stream key',
      onfocus: () => input.select(),
    });
    const copy = h(
      'button.button.small',
      {
        type: 'button',
        onclick: async () => {
          input.select();
          try {
            await navigator.clipboard.writeText(key);
            announce('Stream key copied.');
          } catch {
            announce('Select the key and copy it.');
          }
        },
      },
      'Copy',
    );
    shown.replaceChildren(
      h('p', {}, 'Your stream key (shown only now): paste it as the Bearer token in OBS.'),
      h('div.follow-row', {}, input, copy),
    );
    shown.hidden = false;
    input.focus();
  }

  function render(keys) {
    empty.hidden = keys.length > 0;
    list.hidden = keys.length === 0;
    list.replaceChildren(
      ...keys.map((key) => {
        const name = key.label || 'Stream key';
        const scope = key.room
          ? `room ${(rooms.find((r) => r.id === key.room) || { title: key.room }).title}`
          : 'any room';
        const revoke = h(
          'button.button.small.danger-ghost',
          {
            type: 'button',
            'aria-label': `Revoke ${name}`,
            onclick: async () => {
              revoke.disabled = true;
              try {
                await del(`/api/v1/publish-keys/${encodeURIComponent(key.id)}`);
                announce(`${name} revoked.`);
                shown.hidden = true;
                await refresh();
              } catch (err) {
                revoke.disabled = false;
                showError(err);
              }
            },
          },
          'Revoke',
        );
        return h(
          'li.person',
          { dataset: { keyId: key.id } },
          h(
            'span.person-main',
            {},
            h('strong', {}, name),
            h('small.muted', {}, ` ${scope}; last used ${when(key.last_used_at)}`),
          ),
          revoke,
        );
      }),
    );
  }

  async function refresh() {
    try {
      const data = await get('/api/v1/publish-keys');
      render((data && data.keys) || []);
    } catch (err) {
      showError(err);
    }
  }

  async function load() {
    // Your rooms that have not ended, to scope a key to one of them.
    try {
      const data = await get(`/api/v1/accounts/${encodeURIComponent(ctx.me.username)}/rooms`);
      rooms = (data && data.rooms) || [];
    } catch (err) {
      showError(err);
    }
    room.replaceChildren(
      anyRoom,
      ...rooms
        .filter((r) => r.state !== 'ended')
        .map((r) => h('option', { value: r.id }, r.title)),
    );
    await refresh();
  }

  const form = h(
    'form.form.stream-key-form',
    {
      'aria-labelledby': 'keys-h',
      onsubmit: (event) => {
        event.preventDefault();
        submitting(form, async () => {
          const body = { label: label.value.trim() };
          if (room.value) body.room = room.value;
          const created = await post('/api/v1/publish-keys', body);
          label.value = '';
          label.dispatchEvent(new Event('input'));
          showKey(created.key);
          announce('Stream key created.');
          await refresh();
        });
      },
    },
    field('Name', label, null, { limit: MAX_LABEL }),
    field('Room', room),
    h('button.button.primary', { type: 'submit' }, 'Create stream key'),
  );

  load();
  return h(
    'section.card.settings-section.stream-keys-panel',
    { 'aria-labelledby': 'keys-h' },
    h('h2', { id: 'keys-h' }, 'Stream keys (OBS)'),
    h(
      'p.hint',
      {},
      'A stream key can only publish your voice (WHIP) and nothing else. In OBS: Settings → ',
      'Stream → Service "WHIP", Server = the room’s WHIP URL, Bearer Token = the key. ',
      'Revoke a key here when you no longer use it.',
    ),
    form,
    shown,
    empty,
    list,
  );
}
