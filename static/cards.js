// Room and person cards shared by the home page, search and profiles.

import { avatar, h, hostOf } from './ui.js';

const STATE_TEXT = { live: 'Live', scheduled: 'Scheduled', ended: 'Ended' };

/** Where this client shows a person: our profile page, or our view of a remote one. */
export function profilePath(handle) {
  const text = String(handle || '').replace(/^@/, '');
  const at = text.indexOf('@');
  if (at < 0) return `/@${encodeURIComponent(text)}`;
  const user = text.slice(0, at);
  const host = text.slice(at + 1);
  return host.toLowerCase() === location.host.toLowerCase()
    ? `/@${encodeURIComponent(user)}`
    : `/@${encodeURIComponent(user)}@${encodeURIComponent(host)}`;
}

/** "@alice@host" with a break opportunity before the server, for phones. */
export function handleText(handle) {
  const text = String(handle || '').replace(/^@/, '');
  const at = text.indexOf('@');
  return at > 0 ? [`@${text.slice(0, at)}`, h('wbr', {}), text.slice(at)] : [`@${text}`];
}

export function roomCard(room) {
  if (room.remote) return remoteRoomCard(room);
  const speakers = room.speakers || [];
  const names = speakers
    .slice(0, 4)
    .map((m) => m.display_name || m.username)
    .join(', ');
  const count = room.listener_count || 0;
  const live = room.state === 'live';
  return h(
    `li.room-card.state-${room.state}`,
    {},
    h(
      'a.room-card-link',
      { href: `/rooms/${encodeURIComponent(room.id)}`, 'data-link': true },
      live
        ? h('span.live-badge', { 'aria-hidden': 'true' }, 'LIVE')
        : h(`span.state-badge.state-${room.state}`, {}, STATE_TEXT[room.state] || room.state),
      h('span.room-card-title', {}, room.title),
      room.description ? h('span.room-card-desc', {}, room.description) : null,
      h(
        'span.room-card-meta',
        {},
        `Host: ${room.host ? room.host.display_name || room.host.username : '?'}`,
        live && names ? ` · On stage: ${names}` : '',
        live ? ` · ${count} listening` : '',
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

/** A person in a list: avatar, name, handle (linking to their profile here). */
export function personSummary(person, extra = []) {
  const name = person.display_name || person.username || person.handle;
  return h(
    'div.person-summary',
    {},
    avatar(name, 'sm'),
    h(
      'span.person-main',
      {},
      h('a.person-name', { href: profilePath(person.handle), 'data-link': true }, name),
      h('span.person-handle', {}, ...handleText(person.handle)),
      ...extra,
    ),
  );
}
