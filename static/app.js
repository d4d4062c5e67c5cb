// Parley web client: router, navigation, session, and the account forms (log in, sign
// up, start a room). Pages live in their modules: home.js, search.js, settings.js,
// profile.js, room.js. Shared helpers: ui.js (elements, alerts), forms.js (fields).

import { ApiError, del, get, post } from './api.js';
import { field, submitting } from './forms.js';
import { renderHome } from './home.js';
import { renderProfile } from './profile.js';
import { mountRoom } from './room.js';
import { renderSearch } from './search.js';
import { renderSettings } from './settings.js';
import { announce, clearError, h, setTitle, showError } from './ui.js';

export { h, showError, clearError, announce };

const main = document.getElementById('main');
const nav = document.getElementById('nav');

const app = {
  me: null,
  config: { registration: 'open', max_speakers: 10, ice_servers: [], node: null },
  cleanup: null,
};

document.getElementById('alert-close').addEventListener('click', clearError);

// --- routing ------------------------------------------------------------------------------

const routes = [
  [/^\/$/, () => withCleanup(renderHome(main, pageContext()))],
  [/^\/login\/?$/, renderLogin],
  [/^\/signup\/?$/, renderSignup],
  [/^\/new\/?$/, renderNewRoom],
  [/^\/search\/?$/, () => withCleanup(renderSearch(main, pageContext()))],
  [/^\/settings\/?$/, () => withCleanup(renderSettings(main, pageContext()))],
  [/^\/rooms\/([^/]+)\/?$/, renderRoom],
  [/^\/@([^/]+)\/?$/, renderProfilePage],
];

async function withCleanup(promise) {
  app.cleanup = (await promise) || null;
}

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
  const items = [
    h(
      'a.button.small.ghost.nav-search',
      {
        href: '/search',
        'data-link': true,
        'aria-current': location.pathname === '/search' ? 'page' : null,
      },
      'Search',
    ),
  ];
  if (app.me) {
    // HOOK(notifications): the bell with its unread count goes before the profile link.
    const profilePath = `/@${encodeURIComponent(app.me.username)}`;
    const onProfile = location.pathname === profilePath;
    items.push(
      h('a.button.primary.small', { href: '/new', 'data-link': true }, 'Start a room'),
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
      h(
        'a.button.small.ghost.nav-settings',
        {
          href: '/settings',
          'data-link': true,
          'aria-current': location.pathname === '/settings' ? 'page' : null,
        },
        'Settings',
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

function formPage(title, form, footer) {
  setTitle(title);
  main.append(h('section.card.narrow', {}, h('h1', {}, title), form, footer || null));
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
    spellcheck: false,
    oninput: (event) => {
      // Usernames are lowercase on the node; fold as the user types.
      const el = event.target;
      const lower = el.value.toLowerCase();
      if (lower !== el.value) el.value = lower;
    },
  });
  const displayName = h('input', { name: 'display_name', autocomplete: 'name' });
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
    field('Username', username, 'Lowercase letters, digits and _ only.', { limit: 30 }),
    field('Display name (optional)', displayName, null, { limit: 64 }),
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
  // No maxlength: it cuts a pasted title without a word. The counter tells, the node refuses.
  const title = h('input', { name: 'title', required: true, autocomplete: 'off' });
  const description = h('textarea', { name: 'description', rows: 3 });
  const pub = h('input', {
    type: 'radio', name: 'visibility', value: 'public', checked: true, id: 'vis-public',
  });
  const unlisted = h('input', {
    type: 'radio', name: 'visibility', value: 'unlisted', id: 'vis-unlisted',
  });
  const form = h(
    'form.form',
    {
      onsubmit: (event) => {
        event.preventDefault();
        submitting(form, async () => {
          const room = await post('/api/v1/rooms', {
            title: title.value.trim(),
            description: description.value.trim(),
            visibility: unlisted.checked ? 'unlisted' : 'public',
          });
          navigate(`/rooms/${encodeURIComponent(room.id)}`);
        });
      },
    },
    field('Title', title, null, { limit: 120 }),
    field('Description (optional)', description, null, { limit: 1000 }),
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
    h('button.button.primary', { type: 'submit' }, 'Create room'),
  );
  formPage('Start a room', form, h('p.muted', {}, 'You can go live when you are ready.'));
}

/** What the page modules need from the app, the same way room.js gets it. */
function pageContext() {
  return {
    me: app.me,
    config: app.config,
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
    signedOut() {
      app.me = null;
      renderNav();
    },
  };
}

async function renderProfilePage(username) {
  app.cleanup = await renderProfile(main, username, pageContext());
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
