// Settings (/settings): password, sessions and stream keys. The page is a list of sections so that
// features arriving later add theirs without reshaping it (see SECTIONS below).

import { ApiError, del, get, post } from './api.js';
import { field, setFieldError, submitting } from './forms.js';
import { publishKeySection } from './publish_keys.js';
import { announce, h, setTitle, showError } from './ui.js';

function passwordSection(ctx) {
  const current = h('input', {
    name: 'current_password', type: 'password', autocomplete: 'current-password', required: true,
  });
  const fresh = h('input', {
    name: 'new_password', type: 'password', autocomplete: 'new-password', required: true,
  });
  const again = h('input', {
    name: 'new_password_again', type: 'password', autocomplete: 'new-password', required: true,
  });
  const done = h('p.form-done', { role: 'status', hidden: true });
  const form = h(
    'form.form',
    {
      'aria-labelledby': 'password-h',
      onsubmit: (event) => {
        event.preventDefault();
        done.hidden = true;
        if (fresh.value !== again.value) {
          setFieldError(again, 'The two new passwords are not the same.');
          again.focus();
          return;
        }
        submitting(form, async () => {
          const answer = await post('/api/v1/me/password', {
            current_password: current.value,
            new_password: fresh.value,
          });
          form.reset();
          const others = answer.revoked_sessions;
          done.textContent = `Password changed.${
            others ? ` Signed out ${others} other session${others === 1 ? '' : 's'}.` : ''
          }`;
          done.hidden = false;
          announce(done.textContent);
          ctx.refreshSessions();
        });
      },
    },
    field('Current password', current),
    field('New password', fresh, 'At least 8 characters. Your other sessions are signed out.'),
    field('New password again', again),
    h('button.button.primary', { type: 'submit' }, 'Change password'),
    done,
  );
  return h(
    'section.card.settings-section',
    { 'aria-labelledby': 'password-h' },
    h('h2', { id: 'password-h' }, 'Password'),
    form,
  );
}

function when(seconds) {
  return new Date(seconds * 1000).toLocaleString(undefined, {
    dateStyle: 'medium',
    timeStyle: 'short',
  });
}

function sessionsSection(ctx) {
  const list = h('ul.session-list', { 'aria-labelledby': 'sessions-h' });
  async function refresh() {
    let data;
    try {
      data = await get('/api/v1/sessions');
    } catch (err) {
      showError(err);
      return;
    }
    const sessions = (data && data.sessions) || [];
    list.replaceChildren(
      ...sessions.map((s) => {
        const label = s.user_agent || 'An app or script';
        const revoke = s.current
          ? h('span.badge-current', {}, 'This browser')
          : h(
              'button.button.small.danger-ghost',
              {
                type: 'button',
                'aria-label': `Sign out session from ${when(s.created_at)}`,
                onclick: async () => {
                  try {
                    await del(`/api/v1/sessions/${encodeURIComponent(s.id)}`);
                    announce('Session signed out.');
                  } catch (err) {
                    if (!(err instanceof ApiError && err.status === 404)) showError(err);
                  }
                  refresh();
                },
              },
              'Sign out',
            );
        return h(
          'li.session',
          { dataset: { session: s.id } },
          h(
            'span.session-main',
            {},
            h('span.session-agent', {}, label),
            h(
              'span.hint',
              {},
              `Signed in ${when(s.created_at)} · last used ${when(s.last_used_at)}`,
            ),
          ),
          revoke,
        );
      }),
    );
  }
  ctx.refreshSessions = refresh;
  refresh();
  return h(
    'section.card.settings-section',
    { 'aria-labelledby': 'sessions-h' },
    h('h2', { id: 'sessions-h' }, 'Where you are signed in'),
    h('p.hint', {}, 'Sign out a browser or app you no longer use, or do not recognise.'),
    list,
  );
}

function profileSection(ctx) {
  return h(
    'section.card.settings-section',
    { 'aria-labelledby': 'profile-h' },
    h('h2', { id: 'profile-h' }, 'Profile'),
    h(
      'p',
      {},
      'Your name and bio are edited on ',
      h('a', { href: `/@${encodeURIComponent(ctx.me.username)}`, 'data-link': true }, 'your profile'),
      '.',
    ),
  );
}

// The settings page, in order. Each entry is (ctx) => element, or null for a slot that a
// later feature fills:
//   'avatar':      HOOK(avatar upload) — needs the avatar schema change; renders an upload
//                  form (Pillow resizes and strips it on the node) in this slot.
// Notifications preferences will be a section here too.
export const SECTIONS = [
  ['profile', profileSection],
  ['avatar', null],
  ['password', passwordSection],
  ['sessions', sessionsSection],
  ['publish-key', publishKeySection],
];

export async function renderSettings(main, ctx) {
  if (!ctx.me) {
    ctx.navigate(`/login?next=${encodeURIComponent('/settings')}`, { replace: true });
    return null;
  }
  setTitle('Settings');
  const page = { ...ctx, refreshSessions: () => {} };
  const sections = SECTIONS.filter(([, render]) => render).map(([name, render]) => {
    const element = render(page);
    element.dataset.section = name;
    return element;
  });
  main.append(h('h1', {}, 'Settings'), h('div.settings-page', {}, ...sections));
  return null;
}
