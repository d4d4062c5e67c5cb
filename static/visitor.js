// Joining a room as your fediverse self (docs/API.md "Visitors"): someone of Mastodon or
// any ActivityPub server types their handle, the node sends them a one-time code as a
// private mention, and the code makes them a visitor of this node: in rooms as
// @user@host, with their name and avatar, no account. The link in the message
// (`#visitor=<request>.<code>`) does the same in the browser that opens it; other tabs of
// this browser hear about it (BroadcastChannel) and take the visitor on.

import { ApiError, del, get, post } from './api.js';
import { field, setFieldError, submitting } from './forms.js';
import { announce, clearError, h, showError } from './ui.js';

const CHANNEL = 'parley-visitor';
const PENDING_KEY = 'parley.visitorRequest';

/** The visitor this browser is (their cookie), or null. */
export async function currentVisitor() {
  try {
    return await get('/api/v1/visitor');
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return null;
    throw err;
  }
}

function tell(visitor) {
  if (typeof BroadcastChannel === 'undefined') return;
  const channel = new BroadcastChannel(CHANNEL);
  channel.postMessage({ visitor });
  channel.close();
}

/** Call `callback(visitor | null)` when another tab signs this browser in or out. */
export function onVisitorChange(callback) {
  if (typeof BroadcastChannel === 'undefined') return () => {};
  const channel = new BroadcastChannel(CHANNEL);
  channel.onmessage = (event) => callback((event.data && event.data.visitor) || null);
  return () => channel.close();
}

async function redeem(request, code) {
  const visitor = await post('/api/v1/visitor/sessions', { request, code });
  delete visitor.token; // the cookie carries the session; the page keeps no secret
  try {
    sessionStorage.removeItem(PENDING_KEY);
  } catch {
    // Private mode: nothing was stored.
  }
  tell(visitor);
  return visitor;
}

export async function signOut() {
  await del('/api/v1/visitor');
  tell(null);
  announce('Signed out.');
}

/**
 * The link in the message: `#visitor=<request>.<code>` signs this browser in;
 * `#visitor-report=<request>` is "it was not me". Returns `{visitor, notice}` (either may
 * be null). The fragment leaves the address bar either way: it holds the code.
 */
export async function takeLinkFragment() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const joining = fragment.get('visitor');
  const reporting = fragment.get('visitor-report');
  if (!joining && !reporting) return { visitor: null, notice: null };
  history.replaceState(null, '', location.pathname + location.search);
  try {
    if (reporting) {
      await post(`/api/v1/visitor/requests/${encodeURIComponent(reporting)}/report`);
      return {
        visitor: null,
        notice:
          'Thank you. That code no longer works, this node sends your handle no code for a ' +
          'day, and its operator sees your report.',
      };
    }
    const dot = joining.lastIndexOf('.');
    const visitor = await redeem(joining.slice(0, dot), joining.slice(dot + 1));
    return { visitor, notice: `You are in as ${visitor.display_name}.` };
  } catch (err) {
    showError(err);
    return { visitor: null, notice: null };
  }
}

function serverOf(handle) {
  return String(handle || '').split('@').pop() || 'your server';
}

/**
 * "Join with your fediverse account": handle, then the code. `onJoined(visitor)` runs
 * once this browser is the visitor.
 */
export function visitorJoinForm({ roomId, onJoined }) {
  const box = h('div.visitor-join');
  let pending = null;
  try {
    pending = JSON.parse(sessionStorage.getItem(PENDING_KEY) || 'null');
  } catch {
    pending = null;
  }
  if (pending && pending.room === roomId && pending.expires_at * 1000 > Date.now()) {
    box.append(codeStep(pending));
  } else {
    box.append(handleStep());
  }
  return box;

  function handleStep() {
    const input = h('input', {
      name: 'handle',
      required: true,
      autocomplete: 'username',
      autocapitalize: 'none',
      spellcheck: false,
      inputmode: 'email',
      placeholder: '@you@mastodon.social',
    });
    const form = h(
      'form.visitor-handle',
      {
        'aria-labelledby': 'visitor-h',
        onsubmit: async (event) => {
          event.preventDefault();
          const handle = input.value.trim();
          if (!handle) {
            setFieldError(input, 'Type your handle, like @you@mastodon.social.');
            input.focus();
            return;
          }
          await submitting(form, async () => {
            const sent = await post('/api/v1/visitor/codes', { handle, room: roomId });
            const state = { ...sent, room: roomId };
            try {
              sessionStorage.setItem(PENDING_KEY, JSON.stringify(state));
            } catch {
              // Private mode: the code step works all the same while the page is open.
            }
            box.replaceChildren(codeStep(state));
            announce(`A code is on its way to @${sent.handle}.`);
            box.querySelector('input').focus();
          });
        },
      },
      h('h3', { id: 'visitor-h' }, 'Join with your fediverse account'),
      h(
        'p.muted',
        {},
        'Mastodon, Misskey, GoToSocial or any ActivityPub server: raise your hand and ' +
          'speak as yourself. We send you a code by private mention; no account is made.',
      ),
      field('Your fediverse handle', input),
      h('button.button.primary', { type: 'submit' }, 'Send me a code'),
    );
    return form;
  }

  function codeStep(sent) {
    const input = h('input', {
      name: 'code',
      required: true,
      autocomplete: 'one-time-code',
      autocapitalize: 'characters',
      spellcheck: false,
      maxlength: 12,
      size: 8,
    });
    const server = serverOf(sent.handle);
    const form = h(
      'form.visitor-code',
      {
        'aria-labelledby': 'visitor-code-h',
        onsubmit: async (event) => {
          event.preventDefault();
          await submitting(form, async () => {
            const visitor = await redeem(sent.request, input.value);
            announce(`You are in as ${visitor.display_name}.`);
            onJoined(visitor);
          });
        },
      },
      h('h3', { id: 'visitor-code-h' }, `Check your messages on ${server}`),
      h(
        'p.muted',
        {},
        `We sent @${sent.handle} a private mention with a code. It works once, for ` +
          '10 minutes. On Mastodon 4.3 and later a message from an account you do not ' +
          'follow may wait under “Filtered notifications”.',
      ),
      field('Code', input, 'Or open the link in the message, in this browser.'),
      h(
        'div.row',
        {},
        h('button.button.primary', { type: 'submit' }, 'Join'),
        h(
          'button.button',
          {
            type: 'button',
            onclick: () => {
              clearError();
              try {
                sessionStorage.removeItem(PENDING_KEY);
              } catch {
                // nothing stored
              }
              box.replaceChildren(handleStep());
            },
          },
          'Use another handle',
        ),
      ),
    );
    return form;
  }
}

/** "You are in as …": the visitor's name, handle and server, and Sign out. */
export function visitorBadge(visitor, { onSignOut }) {
  const picture = visitor.avatar_url
    ? h('img.avatar.md', { src: visitor.avatar_url, alt: '', width: 40, height: 40 })
    : h('span.avatar.md', { 'aria-hidden': 'true' }, (visitor.display_name || '?').slice(0, 1));
  return h(
    'div.visitor-badge',
    { role: 'status' },
    picture,
    h(
      'p',
      {},
      'You are in as ',
      h('strong', {}, visitor.display_name),
      ` (@${visitor.handle}, verified with ${serverOf(visitor.handle)}).`,
    ),
    h(
      'button.button.small',
      {
        type: 'button',
        onclick: async () => {
          try {
            await signOut();
            onSignOut();
          } catch (err) {
            showError(err);
          }
        },
      },
      'Sign out',
    ),
  );
}
