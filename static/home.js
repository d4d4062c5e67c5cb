// The home page: a short welcome saying what this node is (for visitors), rooms live
// now, upcoming rooms, and (signed in) the people you follow.

import { get } from './api.js';
import { roomCard } from './cards.js';
import { followPanel } from './profile.js';
import { h, setTitle, showError } from './ui.js';

const REFRESH_MS = 15000;

// `node` is GET /api/v1/config's `node` (node.web.about.node_about): admin-editable name and
// description will arrive through the same field.
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

function roomSection(id, title, emptyText, level) {
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
      list.replaceChildren(...rooms.map(roomCard));
    },
  };
}

/** Render the home page into `main`; returns a cleanup function for the router. */
export async function renderHome(main, ctx) {
  setTitle('');
  const me = ctx.me;
  const liveNow = roomSection('live-h', 'Live now', 'No rooms are live right now.', me ? 'h1' : 'h2');
  const upcoming = roomSection('upcoming-h', 'Upcoming', 'No rooms are scheduled.', 'h2');
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
      const [live, scheduled] = await Promise.all([
        get('/api/v1/rooms'),
        get('/api/v1/rooms?state=scheduled'),
      ]);
      if (stopped) return;
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
