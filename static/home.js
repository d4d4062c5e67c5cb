// The home page: a short welcome saying what this node is (for visitors), rooms live
// now, upcoming rooms, and (signed in) the people you follow.

import { del, get, post } from './api.js';
import { roomCard } from './cards.js';
import { followPanel } from './profile.js';
import { announce, h, setTitle, showError } from './ui.js';

const REFRESH_MS = 15000;

// `node` is GET /api/v1/config's `node` (node.web.about.node_about): the name and description
// an admin set on the admin page (Server settings), or the node's host and node.toml's.
function welcome(node) {
  const name = (node && node.name) || location.host;
  const description = node && node.description;
  return h(
    'section.card.welcome',
    { 'aria-labelledby': 'welcome-h' },
    h('h1', { id: 'welcome-h' }, `Welcome to ${name}`),
    description ? h('p.welcome-about', {}, description) : null,
    h(
      'p',
      {},
      'Live audio rooms: listen to any room in your browser, no account needed. ',
      'Sign up to start rooms, raise your hand to speak, and follow people here or on ',
      'other servers of the fediverse.',
    ),
    h(
      'div.row',
      {},
      h('a.button.primary', { href: '/signup', 'data-link': true }, 'Sign up'),
      h('a.button', { href: '/login', 'data-link': true }, 'Log in'),
    ),
  );
}

function roomSection(id, title, emptyText, level, card = roomCard) {
  const list = h('ul.room-list', { 'aria-labelledby': id });
  const status = h('p.muted', { role: 'status' }, 'Loading…');
  const section = h(
    `section.home-section`,
    { 'aria-labelledby': id },
    h(level, { id }, title),
    status,
    list,
  );
  return {
    section,
    show(rooms) {
      status.textContent = rooms.length ? '' : emptyText;
      status.hidden = rooms.length > 0;
      list.replaceChildren(...rooms.map((room) => card(room)));
    },
  };
}

/**
 * "Remind me" for a scheduled room of another server (its page is there, not here): this
 * node sends the room's node an RSVP (Accept{Event}) in your name, and notifies you when
 * it goes live. `reminded` is the set of room URLs you asked about.
 */
function remindButton(room, reminded) {
  const on = () => reminded.has(room.url);
  const button = h('button.button.small.remind', { type: 'button' });
  const paint = () => {
    button.setAttribute('aria-pressed', String(on()));
    button.replaceChildren(
      on() ? 'Reminder set ✓' : 'Remind me',
      h('span.visually-hidden', {}, `: ${room.title}`),
    );
  };
  button.addEventListener('click', async () => {
    button.disabled = true;
    try {
      if (on()) {
        await del(`/api/v1/reminders?room=${encodeURIComponent(room.url)}`);
        reminded.delete(room.url);
        announce('Reminder removed.');
      } else {
        await post('/api/v1/reminders', { room: room.url });
        reminded.add(room.url);
        announce('You will be notified when it starts.');
      }
    } catch (err) {
      showError(err);
    } finally {
      button.disabled = false;
      paint();
    }
  });
  paint();
  return button;
}

/** Render the home page into `main`; returns a cleanup function for the router. */
export async function renderHome(main, ctx) {
  setTitle('');
  const me = ctx.me;
  const liveNow = roomSection('live-h', 'Live now', 'No rooms are live right now.', me ? 'h1' : 'h2');
  const reminded = new Set();
  const upcomingCard = (room) => {
    const card = roomCard(room);
    if (me && room.remote && room.state === 'scheduled') card.append(remindButton(room, reminded));
    return card;
  };
  const upcoming = roomSection(
    'upcoming-h',
    'Upcoming',
    'No rooms are scheduled.',
    'h2',
    upcomingCard,
  );
  const head = me
    ? h(
        'div.page-head',
        {},
        liveNow.section.firstChild,
        h('a.button.primary', { href: '/new', 'data-link': true }, 'Start a room'),
      )
    : null;
  if (head) liveNow.section.prepend(head);
  if (!me) main.append(welcome(ctx.config && ctx.config.node));
  main.append(liveNow.section, upcoming.section);
  const panel = me ? followPanel(ctx, { onChange: () => refresh() }) : null;
  if (panel) main.append(panel.element);

  let stopped = false;
  async function refresh() {
    try {
      const [live, scheduled, reminders] = await Promise.all([
        get('/api/v1/rooms'),
        get('/api/v1/rooms?state=scheduled'),
        me ? get('/api/v1/reminders') : null,
      ]);
      if (stopped) return;
      if (reminders) {
        reminded.clear();
        for (const r of reminders.reminders || []) reminded.add(r.room);
      }
      const rooms = (live && live.rooms) || [];
      liveNow.show(rooms);
      upcoming.show((scheduled && scheduled.rooms) || []);
      if (panel) {
        // Who of the people you follow is live now: their actor ids.
        const base = location.origin;
        panel.setLive(
          rooms.map((room) =>
            room.remote
              ? room.host && room.host.actor
              : room.host && `${base}/users/${room.host.username}`,
          ),
        );
      }
    } catch (err) {
      if (!stopped) showError(err);
    }
  }
  await refresh();
  const timer = setInterval(refresh, REFRESH_MS);
  return () => {
    stopped = true;
    clearInterval(timer);
    if (panel) panel.stop();
  };
}
