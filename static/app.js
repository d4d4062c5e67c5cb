// Parley web client: router, account pages, home and room creation.
// The room page itself lives in room.js; profiles and follows in profile.js.

import { ApiError, del, get, post } from './api.js';
import { followPanel, renderProfile } from './profile.js';
import { mountRoom } from './room.js';
import { bell, renderNotifications } from './notify.js';
import { renderReplay } from './replay.js';
import { upcomingSection } from './upcoming.js';

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const alertBox = document.getElementById('alert');
const alertText = document.getElementById('alert-text');
const announcer = document.getElementById('announcer');

const app = {
  me: null,
  config: { registration: 'open', max_speakers: 10, ice_servers: [] },
  cleanup: null,
};

// --- small DOM helper -------------------------------------------------------------------

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

// --- alerts and announcements -------------------------------------------------------------

export function showError(err) {
  const message = typeof err === 'string' ? err : err && err.message ? err.message : String(err);
  alertText.textContent = message;
  alertBox.hidden = false;
}

export function clearError() {
  alertBox.hidden = true;
  alertText.textContent = '';
}

document.getElementById('alert-close').addEventListener('click', clearError);

let announceTimer = null;
export function announce(text) {
  // Clearing first makes screen readers repeat an identical message.
  announcer.textContent = '';
  clearTimeout(announceTimer);
  announceTimer = setTimeout(() => {
    announcer.textContent = text;
  }, 50);
}

// --- routing ------------------------------------------------------------------------------

const routes = [
  [/^\/$/, renderHome],
  [/^\/login\/?$/, renderLogin],
  [/^\/signup\/?$/, renderSignup],
  [/^\/new\/?$/, renderNewRoom],
  [/^\/rooms\/([^/]+)\/replay\/?$/, (id) => renderReplay(main, id, { setTitle, me: app.me })],
  [/^\/notifications\/?$/, renderNotificationsPage],
  [/^\/rooms\/([^/]+)\/?$/, renderRoom],
  [/^\/@([^/]+)\/?$/, renderProfilePage],
];

export function navigate(path, { replace = false } = {}) {
  if (replace) history.replaceState(null, '', path);
  else history.pushState(null, '', path);
  route();
}

function safeNext() {
  const next = new URLSearchParams(location.search).get('next');
  // Only same-site paths: an open redirect after login is a phishing tool.
  return next && next.startsWith('/') && !next.startsWith('//') ? next : '/';
}

async function route() {
  if (app.cleanup) {
    const cleanup = app.cleanup;
    app.cleanup = null;
    cleanup();
  }
  clearError();
  renderNav();
  main.replaceChildren();
  const path = location.pathname;
  for (const [pattern, render] of routes) {
    const match = pattern.exec(path);
    if (match) {
      try {
        await render(...match.slice(1).map(decodeURIComponent));
      } catch (err) {
        showError(err);
      }
      focusHeading();
      return;
    }
  }
  setTitle('Not found');
  main.append(
    h('h1', {}, 'Page not found'),
    h('p', {}, h('a', { href: '/', 'data-link': true }, 'Go to the live rooms')),
  );
  focusHeading();
}

function focusHeading() {
  const heading = main.querySelector('h1');
  if (heading) {
    heading.tabIndex = -1;
    heading.focus({ preventScroll: true });
  }
}

function setTitle(text) {
  document.title = text ? `${text} · Parley` : 'Parley';
}

document.addEventListener('click', (event) => {
  const link = event.target.closest('a[data-link]');
  if (!link || event.defaultPrevented || event.button !== 0) return;
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const url = new URL(link.href, location.href);
  if (url.origin !== location.origin) return;
  event.preventDefault();
  navigate(url.pathname + url.search);
});

window.addEventListener('popstate', route);

// --- session ------------------------------------------------------------------------------

async function loadMe() {
  try {
    app.me = await get('/api/v1/me');
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) app.me = null;
    else throw err;
  }
}

function renderNav() {
  const items = [];
  if (app.me) {
    const profilePath = `/@${encodeURIComponent(app.me.username)}`;
    const onProfile = location.pathname === profilePath;
    items.push(
      h('a.button.primary.small', { href: '/new', 'data-link': true }, 'Start a room'),
      bell(),
      h(
        'a.nav-user',
        {
          href: profilePath,
          'data-link': true,
          title: app.me.handle || app.me.username,
          'aria-label': `Your profile (@${app.me.username})`,
          'aria-current': onProfile ? 'page' : null,
        },
        h(
          'span.avatar.xs',
          { 'aria-hidden': 'true' },
          (app.me.display_name || app.me.username).slice(0, 1).toUpperCase(),
        ),
        h('span.nav-user-name', {}, `@${app.me.username}`),
      ),
      h('button.button.small.ghost', { type: 'button', onclick: logout }, 'Log out'),
    );
  } else {
    const next = /^\/(rooms\/|@)/.test(location.pathname)
      ? `?next=${encodeURIComponent(location.pathname + location.search)}`
      : '';
    items.push(
      h('a.button.small.ghost', { href: `/login${next}`, 'data-link': true }, 'Log in'),
      h('a.button.small.primary', { href: `/signup${next}`, 'data-link': true }, 'Sign up'),
    );
  }
  nav.replaceChildren(...items);
}

async function logout() {
  try {
    await del('/api/v1/sessions/current');
  } catch (err) {
    // A 401 means we were already logged out; that is fine.
    if (!(err instanceof ApiError && err.status === 401)) {
      showError(err);
      return;
    }
  }
  app.me = null;
  announce('You are logged out.');
  navigate('/');
}

// --- pages --------------------------------------------------------------------------------

async function renderHome() {
  setTitle('');
  const list = h('ul.room-list', { 'aria-label': 'Live rooms' });
  const status = h('p.muted', { role: 'status' }, 'Loading live rooms…');
  main.append(
    h(
      'div.page-head',
      {},
      h('h1', {}, 'Live now'),
      app.me
        ? h('a.button.primary', { href: '/new', 'data-link': true }, 'Start a room')
        : h(
            'p.muted',
            {},
            h('a', { href: '/login', 'data-link': true }, 'Log in'),
            ' or ',
            h('a', { href: '/signup', 'data-link': true }, 'sign up'),
            ' to start a room. Anyone can listen.',
          ),
    ),
    status,
    list,
  );
  const upcoming = upcomingSection();
  main.append(upcoming.element);
  const panel = app.me ? followPanel(pageContext(), { onChange: () => refresh() }) : null;
  if (panel) main.append(panel.element);

  let stopped = false;
  async function refresh() {
    try {
      const data = await get('/api/v1/rooms');
      if (stopped) return;
      const rooms = (data && data.rooms) || [];
      status.textContent = rooms.length ? '' : 'No rooms are live right now.';
      status.hidden = rooms.length > 0;
      list.replaceChildren(...rooms.map(roomCard));
      await upcoming.refresh();
    } catch (err) {
      if (!stopped) showError(err);
    }
  }
  await refresh();
  const timer = setInterval(refresh, 15000);
  app.cleanup = () => {
    stopped = true;
    clearInterval(timer);
    if (panel) panel.stop();
  };
}

function roomCard(room) {
  if (room.remote) return remoteRoomCard(room);
  const speakers = room.speakers || [];
  const names = speakers
    .slice(0, 4)
    .map((m) => m.display_name || m.username)
    .join(', ');
  const count = room.listener_count || 0;
  return h(
    'li.room-card',
    {},
    h(
      'a.room-card-link',
      { href: `/rooms/${encodeURIComponent(room.id)}`, 'data-link': true },
      h('span.live-badge', { 'aria-hidden': 'true' }, 'LIVE'),
      h('span.room-card-title', {}, room.title),
      room.description ? h('span.room-card-desc', {}, room.description) : null,
      h(
        'span.room-card-meta',
        {},
        `Host: ${room.host ? room.host.display_name || room.host.username : '?'}`,
        names ? ` · On stage: ${names}` : '',
        ` · ${count} listening`,
      ),
    ),
  );
}

/** A live room on another server, known because someone here follows its host. */
function remoteRoomCard(room) {
  const origin = room.origin || hostOf(room.url);
  const host = room.host || {};
  const hostName = host.display_name || host.username || '?';
  // `local_url` is this server's view of the room (it relays the audio here, and you can
  // raise your hand with your account); without it the card leaves for the room's server.
  const local = Boolean(room.local_url);
  return h(
    'li.room-card.remote',
    {},
    h(
      'a.room-card-link',
      local ? { href: room.local_url, 'data-link': true } : { href: room.url, rel: 'noopener' },
      h(
        'span.badges',
        {},
        h('span.live-badge', { 'aria-hidden': 'true' }, 'LIVE'),
        h('span.origin-badge', {}, `on ${origin}`),
      ),
      h('span.room-card-title', {}, room.title),
      room.description ? h('span.room-card-desc', {}, room.description) : null,
      h(
        'span.room-card-meta',
        {},
        `Host: ${hostName}`,
        host.handle ? ` (@${host.handle})` : '',
        local ? ' · relayed here' : ' · opens on their server',
      ),
    ),
  );
}

function hostOf(url) {
  try {
    return new URL(url).host;
  } catch {
    return 'another server';
  }
}

function field(label, input, hint) {
  const id = input.id || `f-${Math.random().toString(36).slice(2, 8)}`;
  input.id = id;
  const hintEl = hint ? h('small.hint', { id: `${id}-hint` }, hint) : null;
  if (hintEl) input.setAttribute('aria-describedby', hintEl.id);
  return h('div.field', {}, h('label', { for: id }, label), input, hintEl);
}

function formPage(title, form, footer) {
  setTitle(title);
  main.append(h('section.card.narrow', {}, h('h1', {}, title), form, footer || null));
}

async function submitting(form, action) {
  const button = form.querySelector('button[type=submit]');
  clearError();
  if (button) button.disabled = true;
  form.setAttribute('aria-busy', 'true');
  try {
    await action();
  } catch (err) {
    showError(err);
  } finally {
    if (button) button.disabled = false;
    form.removeAttribute('aria-busy');
  }
}

async function renderLogin() {
  if (app.me) {
    navigate(safeNext(), { replace: true });
    return;
  }
  const username = h('input', {
    name: 'username', autocomplete: 'username', required: true, autocapitalize: 'none',
    spellcheck: false,
  });
  const password = h('input', {
    name: 'password', type: 'password', autocomplete: 'current-password', required: true,
  });
  const form = h(
    'form.form',
    {
      onsubmit: (event) => {
        event.preventDefault();
        submitting(form, async () => {
          await post('/api/v1/sessions', {
            username: username.value.trim(),
            password: password.value,
          });
          await loadMe();
          announce(`Logged in as ${app.me ? app.me.username : username.value}.`);
          navigate(safeNext(), { replace: true });
        });
      },
    },
    field('Username', username),
    field('Password', password),
    h('button.button.primary', { type: 'submit' }, 'Log in'),
  );
  const next = location.search;
  formPage(
    'Log in',
    form,
    h('p.muted', {}, 'New here? ', h('a', { href: `/signup${next}`, 'data-link': true }, 'Sign up')),
  );
}

async function renderSignup() {
  if (app.me) {
    navigate(safeNext(), { replace: true });
    return;
  }
  const registration = app.config.registration || 'open';
  if (registration === 'closed') {
    formPage(
      'Sign up',
      h('p', {}, 'This node is not accepting new accounts.'),
      h('p', {}, h('a', { href: '/login', 'data-link': true }, 'Log in'), ' if you have one.'),
    );
    return;
  }
  const username = h('input', {
    name: 'username', autocomplete: 'username', required: true, autocapitalize: 'none',
    spellcheck: false, pattern: '[a-z0-9_]{1,30}', maxlength: '30',
    oninput: (event) => {
      // Usernames are lowercase on the node; fold as the user types.
      const el = event.target;
      const lower = el.value.toLowerCase();
      if (lower !== el.value) el.value = lower;
    },
  });
  const displayName = h('input', { name: 'display_name', autocomplete: 'name', maxlength: '60' });
  const password = h('input', {
    name: 'password', type: 'password', autocomplete: 'new-password', required: true,
    minlength: '8',
  });
  const form = h(
    'form.form',
    {
      onsubmit: (event) => {
        event.preventDefault();
        submitting(form, async () => {
          const body = { username: username.value.trim(), password: password.value };
          if (displayName.value.trim()) body.display_name = displayName.value.trim();
          const result = await post('/api/v1/accounts', body);
          if (result && result.status === 'pending') {
            main.replaceChildren(
              h(
                'section.card.narrow',
                {},
                h('h1', {}, 'Almost there'),
                h(
                  'p',
                  { role: 'status' },
                  `Thanks, ${result.username}. An admin of this node must approve your `
                    + 'account before you can log in.',
                ),
              ),
            );
            focusHeading();
            return;
          }
          await loadMe();
          announce(`Welcome, ${app.me ? app.me.username : body.username}.`);
          navigate(safeNext(), { replace: true });
        });
      },
    },
    field('Username', username, 'Lowercase letters, digits and _ only.'),
    field('Display name (optional)', displayName),
    field('Password', password, 'At least 8 characters.'),
    registration === 'approval'
      ? h('p.hint', {}, 'New accounts on this node need an admin’s approval.')
      : null,
    h('button.button.primary', { type: 'submit' }, 'Create account'),
  );
  formPage(
    'Sign up',
    form,
    h(
      'p.muted',
      {},
      'Have an account? ',
      h('a', { href: `/login${location.search}`, 'data-link': true }, 'Log in'),
    ),
  );
}

async function renderNewRoom() {
  if (!app.me) {
    navigate(`/login?next=${encodeURIComponent('/new')}`, { replace: true });
    return;
  }
  const title = h('input', { name: 'title', required: true, maxlength: '120' });
  const description = h('textarea', { name: 'description', rows: 3, maxlength: '1000' });
  const pub = h('input', {
    type: 'radio', name: 'visibility', value: 'public', checked: true, id: 'vis-public',
  });
  const unlisted = h('input', {
    type: 'radio', name: 'visibility', value: 'unlisted', id: 'vis-unlisted',
  });
  // The start, in the creator's own time zone (the node stores the instant).
  const startsAt = h('input', { type: 'datetime-local', name: 'starts_at' });
  const recording = h('input', { type: 'checkbox', name: 'recording', id: 'recording' });
  const form = h(
    'form.form',
    {
      onsubmit: (event) => {
        event.preventDefault();
        submitting(form, async () => {
          const body = {
            title: title.value.trim(),
            description: description.value.trim(),
            visibility: unlisted.checked ? 'unlisted' : 'public',
            recording: recording.checked,
          };
          if (startsAt.value) body.starts_at = new Date(startsAt.value).toISOString();
          const room = await post('/api/v1/rooms', body);
          navigate(`/rooms/${encodeURIComponent(room.id)}`);
        });
      },
    },
    field('Title', title),
    field('Description (optional)', description),
    h(
      'fieldset.field',
      {},
      h('legend', {}, 'Who can find it'),
      h(
        'div.radio',
        {},
        pub,
        h('label', { for: 'vis-public' }, 'Public', h('small.hint', {}, ' listed on this node')),
      ),
      h(
        'div.radio',
        {},
        unlisted,
        h('label', { for: 'vis-unlisted' }, 'Unlisted', h('small.hint', {}, ' only with the link')),
      ),
    ),
    field('Starts at (optional, your time zone)', startsAt, 'Followers get an event and can ask to be reminded'),
    h(
      'div.switch',
      {},
      recording,
      h('label', { for: 'recording' }, 'Record this room', h('small.hint.block', {}, 'Everyone sees “Recording” while it is live; the replay is posted to your followers')),
    ),
    h('button.button.primary', { type: 'submit' }, 'Create room'),
  );
  formPage('Start a room', form, h('p.muted', {}, 'You can go live when you are ready.'));
}

/** What profile.js needs from the page, the same way room.js gets it. */
function pageContext() {
  return {
    me: app.me,
    h,
    field,
    submitting,
    showError,
    clearError,
    announce,
    navigate,
    setTitle,
    setMe(account) {
      app.me = account;
      renderNav();
    },
  };
}

async function renderProfilePage(username) {
  app.cleanup = await renderProfile(main, username, pageContext());
}

async function renderNotificationsPage() {
  if (!app.me) {
    navigate(`/login?next=${encodeURIComponent('/notifications')}`, { replace: true });
    return;
  }
  app.cleanup = await renderNotifications(main, { setTitle });
}

async function renderRoom(roomId) {
  app.cleanup = await mountRoom(main, roomId, {
    me: app.me,
    config: app.config,
    h,
    showError,
    clearError,
    announce,
    navigate,
    setTitle,
  });
}

// --- start --------------------------------------------------------------------------------

async function start() {
  try {
    const [config] = await Promise.all([get('/api/v1/config'), loadMe()]);
    if (config) app.config = { ...app.config, ...config };
  } catch (err) {
    showError(err);
  }
  await route();
}

start();
