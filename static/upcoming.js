// "Upcoming" on the home page: scheduled rooms here and of people followed elsewhere,
// soonest first, each with its start in the viewer's own time zone.

import { h, showError } from './app.js';
import { get } from './api.js';
import { formatWhen } from './room-extras.js';

export function upcomingSection() {
  const list = h('ul.room-list.upcoming', { 'aria-label': 'Upcoming rooms' });
  const section = h('section.upcoming-section', { 'aria-labelledby': 'upcoming-h' }, h('h2', { id: 'upcoming-h' }, 'Upcoming'), list);

  function card(room) {
    const host = room.host ? room.host.display_name || room.host.username : '?';
    const href = room.remote ? `/rooms/remote?origin=${encodeURIComponent(room.url)}` : `/rooms/${encodeURIComponent(room.id)}`;
    return h(
      'li.room-card',
      {},
      h(
        'a.room-card-link',
        { href: room.remote ? room.url : href, 'data-link': !room.remote, rel: room.remote ? 'noopener' : null },
        h('span.when-badge', {}, room.starts_at ? formatWhen(room.starts_at) : 'Not scheduled yet'),
        h('span.room-card-title', {}, room.title),
        h('span.room-card-meta', {}, `Host: ${host}${room.remote ? ` · on ${room.origin}` : ''}`),
      ),
    );
  }

  async function refresh() {
    try {
      const data = await get('/api/v1/rooms?state=scheduled');
      const rooms = (data && data.rooms) || [];
      section.hidden = rooms.length === 0;
      list.replaceChildren(...rooms.map(card));
    } catch (err) {
      showError(err);
    }
  }
  return { element: section, refresh };
}
