// Notifications: the bell in the navigation (its unread count, live while a page is open)
// and the notifications page. They arrive over the room's WebSocket on a room page (room.js
// hands them here: roomSocketCarries / roomSocketGone), else over a small WebSocket of
// their own (/api/v1/notifications/ws).

import { announce, h, showError } from './ui.js';
import { api, get, post } from './api.js';

let socket = null;
let unread = 0;
let carriedByRoom = false;
const bells = new Set();

function paint() {
  for (const bell of bells) {
    const count = bell.querySelector('.bell-count');
    count.textContent = unread > 99 ? '99+' : String(unread);
    count.hidden = unread === 0;
    bell.setAttribute('aria-label', unread ? `Notifications, ${unread} unread` : 'Notifications');
  }
}

function receive(msg) {
  if (msg.type === 'hello' || msg.type === 'notifications') unread = msg.unread;
  if (msg.type === 'notification') {
    unread = msg.unread;
    announce(msg.notification.text);
    window.dispatchEvent(new CustomEvent('parley-notification', { detail: msg.notification }));
  }
  paint();
}

function connect() {
  if (socket || carriedByRoom || !bells.size) return;
  const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/api/v1/notifications/ws`;
  const own = new WebSocket(url);
  socket = own;
  own.addEventListener('message', (event) => receive(JSON.parse(event.data)));
  own.addEventListener('close', () => {
    if (socket === own) socket = null;
    if (bells.size && !carriedByRoom) setTimeout(connect, 3000);
  });
}

/** The room page's socket carries notifications now: ours is not needed. */
export function roomSocketCarries(msg) {
  carriedByRoom = true;
  if (socket) {
    const own = socket;
    socket = null;
    own.close();
  }
  receive(msg);
}

/** The room page's socket is gone (closed, reconnecting, or the page left). */
export function roomSocketGone() {
  if (!carriedByRoom) return;
  carriedByRoom = false;
  connect();
}

/** The bell for the navigation (signed in only). */
export function bell() {
  const el = h(
    'a.bell',
    { href: '/notifications', 'data-link': true, 'aria-label': 'Notifications' },
    h('span', { 'aria-hidden': 'true' }, '🔔'),
    h('span.bell-count', { hidden: true }),
  );
  bells.clear();
  bells.add(el);
  paint();
  connect();
  return el;
}

export function stopNotifications() {
  bells.clear();
  if (socket) socket.close();
  socket = null;
}

export async function renderNotifications(main, { setTitle }) {
  setTitle('Notifications');
  const list = h('ol.notification-list', { 'aria-label': 'Notifications, newest first' });
  const markAll = h('button.button.small', { type: 'button' }, 'Mark all as read');
  main.append(h('div.page-head', {}, h('h1', {}, 'Notifications'), markAll), list);

  function item(n) {
    const moment = new Date(n.created_at * 1000);
    let text = h('span', {}, n.text);
    if (n.url) {
      const target = new URL(n.url, location.href);
      // Our own pages open in the client; anything else (a remote actor) leaves.
      text = target.origin === location.origin
        ? h('a', { href: target.pathname + target.search, 'data-link': true }, n.text)
        : h('a', { href: target.href, rel: 'noopener' }, n.text);
    }
    const when = h('time.notification-time', { datetime: moment.toISOString() }, moment.toLocaleString());
    return h(`li.notification${n.read ? '' : '.unread'}`, { dataset: { kind: n.kind } }, text, when);
  }

  async function load() {
    try {
      const data = await get('/api/v1/notifications');
      const items = data.notifications || [];
      list.replaceChildren(...(items.length ? items.map(item) : [h('li.muted', {}, 'Nothing yet.')]));
      unread = data.unread;
      paint();
    } catch (err) {
      showError(err);
    }
  }
  markAll.addEventListener('click', async () => {
    try {
      const result = await post('/api/v1/notifications/read', {});
      unread = result.unread;
      paint();
      await load();
    } catch (err) {
      showError(err);
    }
  });
  const onNew = () => load();
  window.addEventListener('parley-notification', onNew);
  await load();
  return () => window.removeEventListener('parley-notification', onNew);
}

export { api };
