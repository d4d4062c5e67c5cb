// Profile pages (/@username) and the fediverse follow panel.
//
// The follow panel is also shown on the home page for signed-in users, so it is built as
// a component that returns its element and a stop() for the router's cleanup.
// Like room.js, this module gets the page helpers (h, showError, announce...) from app.js
// through a context object rather than importing app.js, which imports us.

import { ApiError, del, get, patch, post } from './api.js';
import { publishKeyPanel } from './publish_keys.js';

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

function initials(name) {
  const parts = String(name || '?').trim().split(/\s+/).filter(Boolean);
  const letters = parts.length > 1 ? parts[0][0] + parts[1][0] : (parts[0] || '?').slice(0, 2);
  return letters.toUpperCase();
}

export function avatar(h, name, size) {
  return h(`span.avatar.${size}`, { 'aria-hidden': 'true' }, initials(name));
}

const STATE_TEXT = { pending: 'Pending', accepted: 'Accepted' };

function stateBadge(h, state) {
  return h(`span.follow-state.follow-${state}`, {}, STATE_TEXT[state] || state);
}

/** A link to someone's actor; the actor URL sends browsers to their HTML profile. */
function personLink(h, entry) {
  // On a phone, break a long handle before its server rather than inside it.
  const at = entry.handle.indexOf('@');
  const parts = at > 0
    ? [`@${entry.handle.slice(0, at)}`, h('wbr', {}), entry.handle.slice(at)]
    : [`@${entry.handle}`];
  return h('a.person-handle', { href: entry.actor, rel: 'noopener' }, ...parts);
}

// --- follow panel ------------------------------------------------------------------------

/**
 * "Follow someone on another server": the form and my following list with Unfollow.
 * Returns {element, stop}.
 */
export function followPanel(ctx, { headingLevel = 'h2', onChange } = {}) {
  const { h, showError, clearError, announce } = ctx;
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
    'aria-describedby': `follow-hint-${uid}`,
    oninput: () => input.removeAttribute('aria-invalid'),
  });
  const button = h('button.button.primary', { type: 'submit' }, 'Follow');
  const result = h('p.follow-result', { id: `follow-result-${uid}`, hidden: true });
  const listHeadingId = `following-${uid}`;
  const list = h('ul.people-list', { 'aria-labelledby': listHeadingId });
  const empty = h('p.muted.empty-note', {}, 'You do not follow anyone on other servers yet.');
  const count = h('span.count', {});

  let stopped = false;
  let pollTimer = null;
  let polls = 0;
  let following = [];
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
        return h(
          'li.person',
          { dataset: { handle: entry.handle } },
          avatar(h, entry.handle, 'sm'),
          h('span.person-main', {}, personLink(h, entry), stateBadge(h, entry.state)),
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
    clearError();
    if (!isHandle(handle)) {
      input.setAttribute('aria-invalid', 'true');
      showError('Enter a handle like alice@other.example (their name, @, their server).');
      input.focus();
      return;
    }
    button.disabled = true;
    form.setAttribute('aria-busy', 'true');
    setResult(`Looking up ${handle}…`, '');
    try {
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
    } catch (err) {
      setResult('', '');
      input.setAttribute('aria-invalid', 'true');
      showError(err);
      input.focus();
    } finally {
      button.disabled = false;
      form.removeAttribute('aria-busy');
    }
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
    { onsubmit: doFollow, 'aria-labelledby': `follow-title-${uid}` },
    h('label', { for: input.id }, 'Handle'),
    h('div.follow-row', {}, input, button),
    h(
      'small.hint',
      { id: `follow-hint-${uid}` },
      'Their name and server, like alice@other.example. Their live rooms will show up on your home page.',
    ),
  );

  const element = h(
    'section.card.follow-panel',
    { 'aria-labelledby': `follow-title-${uid}` },
    h(`${headingLevel}.panel-title`, { id: `follow-title-${uid}` }, 'Follow someone on another server'),
    form,
    result,
    h('h3.list-title', { id: listHeadingId }, 'Following', count),
    empty,
    list,
  );
  refresh();
  return {
    element,
    refresh,
    stop() {
      stopped = true;
      clearTimeout(pollTimer);
    },
  };
}

// --- profile page ------------------------------------------------------------------------

function roomItem(h, room) {
  const ended = room.state === 'ended';
  const stateText = ended ? 'Ended' : room.state === 'live' ? 'Live' : 'Scheduled';
  return h(
    'li.room-card',
    {},
    h(
      'a.room-card-link',
      { href: `/rooms/${encodeURIComponent(room.id)}`, 'data-link': true },
      h(`span.state-badge.state-${room.state}`, {}, stateText),
      h('span.room-card-title', {}, room.title),
      room.description ? h('span.room-card-desc', {}, room.description) : null,
    ),
  );
}

function peopleSection(h, title, entries, emptyText) {
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
              avatar(h, entry.handle, 'sm'),
              h(
                'span.person-main',
                {},
                personLink(h, entry),
                entry.state === 'pending' ? stateBadge(h, entry.state) : null,
              ),
            ),
          ),
        )
      : h('p.muted.empty-note', {}, emptyText),
  );
}

function editForm(ctx, account, onDone) {
  const { h, field, submitting, announce } = ctx;
  const displayName = h('input', {
    name: 'display_name', autocomplete: 'name', maxlength: '64', value: account.display_name || '',
  });
  const bio = h('textarea', { name: 'bio', rows: 4, maxlength: '500' });
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
    field('Display name', displayName),
    field('Bio', bio, 'Up to 500 characters.'),
    h(
      'div.row',
      {},
      h('button.button.primary', { type: 'submit' }, 'Save profile'),
      h('button.button.ghost', { type: 'button', onclick: () => onDone(null) }, 'Cancel'),
    ),
  );
  return { form, focus: () => displayName.focus() };
}

/** Render /@username into `main`; returns a cleanup function for the router. */
export async function renderProfile(main, username, ctx) {
  const { h, setTitle } = ctx;
  const name = username.replace(/^@/, '');
  let account;
  try {
    account = await get(`/api/v1/accounts/${encodeURIComponent(name)}`);
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) {
      setTitle('No such account');
      main.append(
        h('h1', {}, 'No such account'),
        h('p', {}, `There is no account @${name} on this server.`),
        h('p', {}, h('a', { href: '/', 'data-link': true }, 'Go to the live rooms')),
      );
      return null;
    }
    throw err;
  }
  const [roomsData, followersData, followingData] = await Promise.all([
    get(`/api/v1/accounts/${encodeURIComponent(name)}/rooms`),
    get(`/api/v1/accounts/${encodeURIComponent(name)}/followers`),
    get(`/api/v1/accounts/${encodeURIComponent(name)}/following`),
  ]);
  const own = Boolean(ctx.me && ctx.me.username === account.username);
  const shown = () => account.display_name || account.username;
  setTitle(shown());

  const heading = h('h1.profile-name', {}, shown());
  const handleEl = h('p.profile-handle', {}, account.handle);
  const bioEl = h('p.profile-bio', {});
  const avatarEl = h('div.profile-avatar', {});
  const actions = h('div.profile-actions', {});
  const editSlot = h('div', {});

  function renderHead() {
    heading.textContent = shown();
    avatarEl.replaceChildren(avatar(h, shown(), 'lg'));
    bioEl.textContent = account.bio || (own ? 'No bio yet.' : '');
    bioEl.classList.toggle('muted', !account.bio);
    bioEl.hidden = !bioEl.textContent;
  }

  function openEdit() {
    const { form, focus } = editForm(ctx, account, (updated) => {
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
  if (own) actions.append(editButton);
  renderHead();

  const rooms = (roomsData && roomsData.rooms) || [];
  const roomsSection = h(
    'section.profile-rooms',
    { 'aria-labelledby': 'profile-rooms-title' },
    h('h2', { id: 'profile-rooms-title' }, 'Rooms'),
    rooms.length
      ? h('ul.room-list', { 'aria-labelledby': 'profile-rooms-title' }, rooms.map((r) => roomItem(h, r)))
      : h('p.muted', {}, own ? 'You have not hosted a room yet.' : 'No public rooms yet.'),
  );

  const followers = (followersData && followersData.followers) || [];
  const followingList = (followingData && followingData.following) || [];
  let panel = null;
  const columns = h(
    'div.profile-columns',
    {},
    peopleSection(h, 'Followers', followers, own ? 'Nobody follows you yet.' : 'No followers yet.'),
  );
  if (own) {
    panel = followPanel(ctx);
    columns.append(panel.element, publishKeyPanel(ctx, rooms).element);
  } else {
    columns.append(peopleSection(h, 'Following', followingList, 'Not following anyone yet.'));
  }

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
          avatarEl,
          h('div.profile-names', {}, heading, handleEl),
          actions,
        ),
        bioEl,
        editSlot,
      ),
      roomsSection,
      columns,
    ),
  );
  heading.id = 'profile-name';
  return () => {
    if (panel) panel.stop();
  };
}
