// "Your picture" on the settings page: upload an avatar (PUT /api/v1/me/avatar, the file
// itself as the body), or remove it. The node remakes it (a 256 px square PNG, no
// metadata: the position a phone writes into a photo does not leave this browser's
// upload) and federates it as the actor's icon. docs/API.md "Avatars".

import { ApiError, del } from './api.js';
import { field, setFieldError, submitting } from './forms.js';
import { announce, avatar, h } from './ui.js';

const TYPES = ['image/png', 'image/jpeg', 'image/gif', 'image/webp'];
const MAX_BYTES = 8 * 1024 * 1024;

async function upload(file) {
  let response;
  try {
    response = await fetch('/api/v1/me/avatar', {
      method: 'PUT',
      credentials: 'same-origin',
      headers: { 'Content-Type': file.type, Accept: 'application/json' },
      body: file,
    });
  } catch {
    throw new ApiError(0, 'network', 'Could not reach the server. Check your connection.');
  }
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const body = data && typeof data === 'object' ? data : {};
    // The node's answers about the file are about this field.
    throw new ApiError(response.status, body.error, body.detail, body.field || 'avatar');
  }
  return data;
}

export function avatarSection(ctx) {
  let me = ctx.me;
  const preview = h('div.avatar-preview', {});
  const input = h('input', { type: 'file', name: 'avatar', accept: TYPES.join(','), required: true });
  const done = h('p.form-done', { role: 'status', hidden: true });
  const removeButton = h(
    'button.button.danger-ghost',
    {
      type: 'button',
      onclick: async () => {
        done.hidden = true;
        await submitting(form, async () => {
          changed(await del('/api/v1/me/avatar'), 'Picture removed.');
        });
      },
    },
    'Remove picture',
  );

  function show() {
    const name = me.display_name || me.username;
    preview.replaceChildren(avatar(name, 'lg', me.avatar_url));
    removeButton.hidden = !me.avatar_url;
  }

  function changed(account, message) {
    me = { ...me, ...account };
    ctx.setMe(me);
    show();
    form.reset();
    done.textContent = message;
    done.hidden = false;
    announce(message);
  }

  const form = h(
    'form.form.avatar-form',
    {
      onsubmit: async (event) => {
        event.preventDefault();
        done.hidden = true;
        const file = input.files && input.files[0];
        if (!file) {
          setFieldError(input, 'Choose an image first.');
          input.focus();
          return;
        }
        if (!TYPES.includes(file.type)) {
          setFieldError(input, 'Choose a PNG, JPEG, GIF or WebP image.');
          input.focus();
          return;
        }
        if (file.size > MAX_BYTES) {
          setFieldError(input, 'That image is over 8 MB; choose a smaller one.');
          input.focus();
          return;
        }
        await submitting(form, async () => {
          changed(await upload(file), 'Picture saved.');
        });
      },
    },
    field(
      'Picture',
      input,
      'PNG, JPEG, GIF or WebP, up to 8 MB. It is cropped to a square; the position and ' +
        'camera details a photo may carry are removed.',
    ),
    h('div.row', {}, h('button.button.primary', { type: 'submit' }, 'Save picture'), removeButton),
    done,
  );
  show();
  return h(
    'section.card.settings-section',
    { 'aria-labelledby': 'avatar-h' },
    h('h2', { id: 'avatar-h' }, 'Your picture'),
    h('div.avatar-settings', {}, preview, form),
  );
}
