// Profile pages (/@username here, /@user@host for people on other servers), the Follow
// button every profile carries, and the "people you follow" panel of the home page.
//
// Like room.js, this module gets the router's helpers (navigate, setMe...) through a
// context object rather than importing app.js, which imports us.

import { ApiError, del, get, patch, post } from './api.js';
import { handleText, personSummary, profilePath, roomCard } from './cards.js';
import { field, setFieldError, submitting } from './forms.js';
import { announce, avatar, clearError, h, setTitle, showError } from './ui.js';

// A follow request is usually answered within a second or two; check often while one is
// pending, then stop polling (the list is static otherwise).
const PENDING_POLL_MS = 2000;
const PENDING_POLL_LIMIT = 90; // ~3 minutes, then the user can reload

// `alice@host`, `@alice@host` (host may carry a port) or an actor URL, as the node accepts.
const HANDLE_RE = /^@?[^\s@/]+@[^\s@/]+$/;

export function isHandle(text) {
  return HANDLE_RE.test(text) || /^https?:\/\/\S+$/.test(text);
}

/** Same handle whatever the leading @ or letter case. */
function sameHandle(a, b) {
  const norm = (s) => String(s || '').trim().replace(/^@/, '').toLowerCase();
  return norm(a) === norm(b);
}

const STATE_TEXT = { pending: 'Pending', accepted: 'Accepted' };

function stateBadge(state) {
  return h(`span.follow-state.follow-${state}`, {}, STATE_TEXT[state] || state);
}

// --- Follow button -------------------------------------------------------------------------

/**
 * Follow / Unfollow for one person: `{handle, state}` where state is null, "pending" or
 * "accepted". Logged-out visitors get a link to log in instead. Returns an element.
 */
export function followButton(ctx, person, { onChange } = {}) {
  const handle = String(person.handle || '').replace(/^@/, '');
  if (!ctx.me) {
    const next = encodeURIComponent(location.pathname + location.search);
    return h('a.button.small', { href: `/login?next=${next}`, 'data-link': true }, 'Log in to follow');
  }
  let state = person.following || null;
  const note = h('span.follow-note', { role: 'status' });
  const button = h('button.button.small', { type: 'button', onclick: toggle });
  function render() {
    button.textContent = state ? 'Unfollow' : 'Follow';
    button.className = `button small ${state ? 'ghost' : 'primary'}`;
    button.setAttribute('aria-label', `${state ? 'Unfollow' : 'Follow'} ${handle}`);
    note.textContent =
      state === 'accepted'
        ? 'You follow them.'
        : state === 'pending'
          ? 'Request sent; waiting for their server.'
          : '';
  }
  async function toggle() {
    clearError();
    button.disabled = true;
    try {
      if (state) {
        await del(`/api/v1/follows?handle=${encodeURIComponent(handle)}`);
        state = null;
        announce(`You unfollowed ${handle}.`);
      } else {
        const followed = await post('/api/v1/follows', { handle });
        state = followed.state;
        announce(state === 'accepted' ? `You follow ${handle}.` : `Follow request sent to ${handle}.`);
      }
      if (onChange) onChange(state);
    } catch (err) {
      if (err instanceof ApiError && err.status === 404 && state) state = null;
      else showError(err);
    } finally {
      button.disabled = false;
      render();
    }
  }
  render();
  return h('span.follow-control', {}, button, note);
}

// --- people you follow (home page) ---------------------------------------------------------

/**
 * "People you follow": the form to follow by handle (here or on another server) and the
 * list, with Unfollow and a live badge for whoever is live now. Returns
 * {element, refresh, setLive(actorIds), stop}.
 */
export function followPanel(ctx, { headingLevel = 'h2', onChange } = {}) {
  const uid = Math.random().toString(36).slice(2, 8);
  const input = h('input', {
    id: `follow-handle-${uid}`,
    name: 'handle',
    required: true,
    autocomplete: 'off',
    autocapitalize: 'none',
    spellcheck: false,
    inputmode: 'email',
    placeholder: 'alice@other.example',
  });
  const button = h('button.button.primary', { type: 'submit' }, 'Follow');
  const result = h('p.follow-result', { id: `follow-result-${uid}`, role: 'status', hidden: true });
  const list = h('ul.people-list', { 'aria-labelledby': `follow-title-${uid}` });
  const empty = h('p.muted.empty-note', {}, 'You do not follow anyone yet.');
  const count = h('span.count', {});

  let stopped = false;
  let pollTimer = null;
  let polls = 0;
  let following = [];
  let live = new Set();
  // The handle the result line talks about, to update it when the request is accepted.
  let lastFollowed = null;

  function setResult(text, kind) {
    result.textContent = text;
    result.className = `follow-result${kind ? ` ${kind}` : ''}`;
    result.hidden = !text;
  }

  function renderList() {
    count.textContent = following.length ? ` (${following.length})` : '';
    empty.hidden = following.length > 0;
    list.hidden = following.length === 0;
    list.replaceChildren(
      ...following.map((entry) => {
        const unfollow = h(
          'button.button.small.danger-ghost',
          {
            type: 'button',
            'aria-label': `Unfollow ${entry.handle}`,
            onclick: () => doUnfollow(entry, unfollow),
          },
          'Unfollow',
        );
        const extra = [stateBadge(entry.state)];
        if (live.has(entry.actor)) extra.unshift(h('span.live-badge', {}, 'LIVE'));
        return h(
          'li.person',
          { dataset: { handle: entry.handle } },
          personSummary({ handle: entry.handle, display_name: entry.handle }, extra),
          unfollow,
        );
      }),
    );
  }

  async function refresh({ quiet = false } = {}) {
    let data;
    try {
      data = await get('/api/v1/follows');
    } catch (err) {
      if (!stopped && !quiet) showError(err);
      return;
    }
    if (stopped) return;
    const before = new Map(following.map((f) => [f.handle, f.state]));
    following = (data && data.following) || [];
    for (const entry of following) {
      if (before.get(entry.handle) === 'pending' && entry.state === 'accepted') {
        announce(`${entry.handle} accepted your follow request.`);
        if (lastFollowed && sameHandle(lastFollowed, entry.handle)) {
          setResult(`You now follow ${entry.handle}.`, 'ok');
        }
      }
    }
    renderList();
    schedulePoll();
  }

  function schedulePoll() {
    clearTimeout(pollTimer);
    pollTimer = null;
    if (stopped || !following.some((f) => f.state === 'pending')) {
      polls = 0;
      return;
    }
    if (polls >= PENDING_POLL_LIMIT) return;
    polls += 1;
    pollTimer = setTimeout(() => refresh({ quiet: true }), PENDING_POLL_MS);
  }

  async function doFollow(event) {
    event.preventDefault();
    const handle = input.value.trim();
    if (!isHandle(handle)) {
      clearError();
      setFieldError(input, 'Enter a handle like alice@other.example (their name, @, their server).');
      input.focus();
      return;
    }
    setResult(`Looking up ${handle}…`, '');
    const ok = await submitting(form, async () => {
      const followed = await post('/api/v1/follows', { handle });
      lastFollowed = followed.handle;
      input.value = '';
      if (followed.state === 'accepted') {
        setResult(`You follow ${followed.handle}.`, 'ok');
        announce(`You follow ${followed.handle}.`);
      } else {
        setResult(
          `Follow request sent to ${followed.handle}. Waiting for their server to accept…`,
          'pending',
        );
        announce(`Follow request sent to ${followed.handle}.`);
      }
      polls = 0;
      await refresh();
      if (onChange) onChange();
    });
    if (!ok) setResult('', '');
  }

  async function doUnfollow(entry, unfollowButton) {
    clearError();
    unfollowButton.disabled = true;
    try {
      await del(`/api/v1/follows?handle=${encodeURIComponent(entry.handle)}`);
    } catch (err) {
      unfollowButton.disabled = false;
      // Already gone on the server: drop it from the list all the same.
      if (!(err instanceof ApiError && err.status === 404)) {
        showError(err);
        return;
      }
    }
    const index = following.findIndex((f) => f.handle === entry.handle);
    following = following.filter((f) => f.handle !== entry.handle);
    if (lastFollowed && sameHandle(lastFollowed, entry.handle)) setResult('', '');
    renderList();
    announce(`You unfollowed ${entry.handle}.`);
    // Keep keyboard focus in the list rather than losing it to <body>.
    const buttons = list.querySelectorAll('button');
    const next = buttons[Math.min(index, buttons.length - 1)];
    (next || input).focus();
    if (onChange) onChange();
  }

  const form = h(
    'form.follow-form',
    { onsubmit: doFollow, 'aria-label': 'Follow someone by handle' },
    field(
      'Follow by handle',
      input,
      'Their name and server, like alice@other.example. Their live rooms show up here.',
    ),
    button,
  );

  const element = h(
    'section.card.follow-panel',
    { 'aria-labelledby': `follow-title-${uid}` },
    h(`${headingLevel}.panel-title`, { id: `follow-title-${uid}` }, 'People you follow', count),
    empty,
    list,
    form,
    result,
  );
  refresh();
  return {
    element,
    refresh,
    setLive(actors) {
      live = new Set(actors);
      renderList();
    },
    stop() {
      stopped = true;
      clearTimeout(pollTimer);
    },
  };
}

// --- profile page --------------------------------------------------------------------------

function peopleSection(title, entries, emptyText) {
  const id = `people-${title.toLowerCase()}-${Math.random().toString(36).slice(2, 6)}`;
  return h(
    'section.card.people',
    { 'aria-labelledby': id },
    h('h2.panel-title', { id }, title, h('span.count', {}, ` (${entries.length})`)),
    entries.length
      ? h(
          'ul.people-list',
          { 'aria-labelledby': id },
          entries.map((entry) =>
            h(
              'li.person',
              {},
              personSummary(
                { handle: entry.handle, display_name: entry.handle },
                entry.state === 'pending' ? [stateBadge(entry.state)] : [],
              ),
            ),
          ),
        )
      : h('p.muted.empty-note', {}, emptyText),
  );
}

function editForm(account, onDone) {
  const displayName = h('input', {
    name: 'display_name', autocomplete: 'name', value: account.display_name || '',
  });
  const bio = h('textarea', { name: 'bio', rows: 4 });
  bio.value = account.bio || '';
  const form = h(
    'form.form.profile-edit',
    {
      'aria-label': 'Edit profile',
      onsubmit: (event) => {
        event.preventDefault();
        submitting(form, async () => {
          const updated = await patch('/api/v1/me', {
            display_name: displayName.value.trim(),
            bio: bio.value.trim(),
          });
          announce('Profile saved.');
          onDone(updated);
        });
      },
    },
    field('Display name', displayName, null, { limit: 64 }),
    field('Bio', bio, null, { limit: 500 }),
    h(
      'div.row',
      {},
      h('button.button.primary', { type: 'submit' }, 'Save profile'),
      h('button.button.ghost', { type: 'button', onclick: () => onDone(null) }, 'Cancel'),
    ),
  );
  return { form, focus: () => displayName.focus() };
}

function notFound(main, title, text) {
  setTitle(title);
  main.replaceChildren(
    h('h1', {}, title),
    h('p', {}, text),
    h('p', {}, h('a', { href: '/', 'data-link': true }, 'Go to the live rooms')),
  );
  return null;
}

/** The viewer's follow state for an actor, from their following list. */
async function followStateOf(ctx, actor) {
  if (!ctx.me) return null;
  const data = await get('/api/v1/follows');
  const entry = ((data && data.following) || []).find((f) => f.actor === actor);
  return entry ? entry.state : null;
}

/** Render /@username (or /@user@host) into `main`; returns a cleanup function. */
export async function renderProfile(main, username, ctx) {
  const name = username.replace(/^@/, '');
  if (name.includes('@')) return renderRemoteProfile(main, name, ctx);
  let account;
  try {
    account = await get(`/api/v1/accounts/${encodeURIComponent(name)}`);
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) {
      return notFound(main, 'No such account', `There is no account @${name} on this server.`);
    }
    throw err;
  }
  const [roomsData, followersData, followingData] = await Promise.all([
    get(`/api/v1/accounts/${encodeURIComponent(name)}/rooms`),
    get(`/api/v1/accounts/${encodeURIComponent(name)}/followers`),
    get(`/api/v1/accounts/${encodeURIComponent(name)}/following`),
  ]);
  const own = Boolean(ctx.me && ctx.me.username === account.username);
  const actor = `${location.origin}/users/${account.username}`;
  const shown = () => account.display_name || account.username;
  setTitle(shown());

  const heading = h('h1.profile-name', { id: 'profile-name' }, shown());
  const handleEl = h('p.profile-handle', {}, ...handleText(account.handle));
  const bioEl = h('p.profile-bio', {});
  const avatarEl = h('div.profile-avatar', {});
  const actions = h('div.profile-actions', {});
  const editSlot = h('div', {});

  function renderHead() {
    heading.textContent = shown();
    avatarEl.replaceChildren(avatar(shown(), 'lg'));
    bioEl.textContent = account.bio || (own ? 'No bio yet.' : '');
    bioEl.classList.toggle('muted', !account.bio);
    bioEl.hidden = !bioEl.textContent;
  }

  function openEdit() {
    const { form, focus } = editForm(account, (updated) => {
      editSlot.replaceChildren();
      actions.hidden = false;
      if (updated) {
        account = updated;
        setTitle(shown());
        if (ctx.setMe) ctx.setMe(updated);
        renderHead();
      }
      editButton.focus();
    });
    actions.hidden = true;
    editSlot.replaceChildren(form);
    focus();
  }

  const editButton = h('button.button.small', { type: 'button', onclick: openEdit }, 'Edit profile');
  if (own) {
    actions.append(
      editButton,
      h('a.button.small.ghost', { href: '/settings', 'data-link': true }, 'Settings'),
    );
  } else {
    const state = await followStateOf(ctx, actor);
    actions.append(followButton(ctx, { handle: account.handle, following: state }));
  }
  renderHead();

  const rooms = (roomsData && roomsData.rooms) || [];
  const roomsSection = h(
    'section.profile-rooms',
    { 'aria-labelledby': 'profile-rooms-title' },
    h('h2', { id: 'profile-rooms-title' }, 'Rooms'),
    rooms.length
      ? h('ul.room-list', { 'aria-labelledby': 'profile-rooms-title' }, rooms.map(roomCard))
      : h('p.muted', {}, own ? 'You have not hosted a room yet.' : 'No public rooms yet.'),
  );

  const followers = (followersData && followersData.followers) || [];
  const followingList = (followingData && followingData.following) || [];
  const columns = h(
    'div.profile-columns',
    {},
    peopleSection('Followers', followers, own ? 'Nobody follows you yet.' : 'No followers yet.'),
    peopleSection(
      'Following',
      followingList,
      own ? 'You do not follow anyone yet.' : 'Not following anyone yet.',
    ),
  );

  main.append(
    h(
      'div.profile',
      {},
      h(
        'section.card.profile-head',
        { 'aria-labelledby': 'profile-name' },
        h('div.profile-id', {}, avatarEl, h('div.profile-names', {}, heading, handleEl), actions),
        bioEl,
        editSlot,
      ),
      roomsSection,
      columns,
    ),
  );
  return null;
}

/** Someone on another server, looked up through this node (WebFinger and their actor). */
async function renderRemoteProfile(main, handle, ctx) {
  let found;
  try {
    found = await get(`/api/v1/search?q=${encodeURIComponent(handle)}`);
  } catch (err) {
    showError(err);
    return notFound(main, 'Cannot look this person up', `@${handle} could not be looked up.`);
  }
  const person = (found.accounts || []).find((p) => sameHandle(p.handle, handle));
  if (!person) {
    const why = found.lookup && found.lookup.detail ? ` (${found.lookup.detail})` : '';
    return notFound(main, 'No such account', `@${handle} was not found${why}.`);
  }
  if (person.local) {
    history.replaceState(null, '', profilePath(person.handle));
    return renderProfile(main, person.username, ctx);
  }
  const shown = person.display_name || person.username;
  setTitle(shown);
  main.append(
    h(
      'div.profile',
      {},
      h(
        'section.card.profile-head',
        { 'aria-labelledby': 'profile-name' },
        h(
          'div.profile-id',
          {},
          h('div.profile-avatar', {}, avatar(shown, 'lg')),
          h(
            'div.profile-names',
            {},
            h('h1.profile-name', { id: 'profile-name' }, shown),
            h('p.profile-handle', {}, ...handleText(person.handle)),
          ),
          h('div.profile-actions', {}, followButton(ctx, person)),
        ),
        h(
          'p.muted',
          {},
          'On another server. ',
          h('a', { href: person.url, rel: 'noopener' }, 'See their profile there'),
          '.',
        ),
      ),
    ),
  );
  return null;
}
