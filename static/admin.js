// The admin page (/admin, /admin/{section}) for the node's staff: the dashboard, rooms,
// server settings here; accounts, reports and domain blocks in admin-people.js. Every
// action is a plain form or button (keyboard and phone first); the node checks who may do
// what (docs/API.md "Administration") and this page only hides what the role cannot do.

import { ApiError, get, patch, post } from './api.js';
import { accountsSection, domainsSection, reportsSection } from './admin-people.js';
import { actionForm, facts, isStaff, statusLine, when } from './admin-parts.js';
import { field, submitting } from './forms.js';
import { h, hostOf, setTitle } from './ui.js';

const REFRESH_MS = 5000;

export const SECTIONS = [
  { id: '', label: 'Dashboard', render: dashboardSection },
  { id: 'accounts', label: 'Accounts', render: accountsSection },
  { id: 'reports', label: 'Reports', render: reportsSection },
  { id: 'rooms', label: 'Rooms', render: roomsSection },
  { id: 'domains', label: 'Domain blocks', render: domainsSection, admin: true },
  { id: 'settings', label: 'Server settings', render: settingsSection },
];

export async function renderAdmin(main, section, ctx) {
  setTitle('Administration');
  if (!ctx.me) {
    ctx.navigate(`/login?next=${encodeURIComponent(location.pathname)}`, { replace: true });
    return null;
  }
  if (!isStaff(ctx.me)) {
    main.append(
      h('h1', {}, 'Administration'),
      h('p', {}, 'Only this server’s admins and moderators can open this page.'),
    );
    return null;
  }
  const admin = ctx.me.role === 'admin';
  const shown = SECTIONS.filter((s) => admin || !s.admin);
  const current = shown.find((s) => s.id === (section || '')) || null;
  const tabs = h(
    'nav.admin-tabs',
    { 'aria-label': 'Administration' },
    h(
      'ul',
      {},
      shown.map((s) =>
        h(
          'li',
          {},
          h(
            'a',
            {
              href: s.id ? `/admin/${s.id}` : '/admin',
              'data-link': true,
              'aria-current': s === current ? 'page' : null,
            },
            s.label,
          ),
        ),
      ),
    ),
  );
  const body = h('div.admin-body', {});
  main.append(h('div.admin', {}, h('h1', {}, current ? `Administration: ${current.label}` : 'Administration'), tabs, body));
  if (!current) {
    body.append(h('p', {}, 'There is no such section.'));
    return null;
  }
  setTitle(`${current.label} · Administration`);
  const cleanup = await current.render(body, { ...ctx, admin });
  return typeof cleanup === 'function' ? cleanup : null;
}

// --- dashboard ------------------------------------------------------------------------------

function roomItem(room, extra) {
  const acting = room.acting_here ? 'this server' : hostOf(room.acting_origin);
  return h(
    'li.admin-item',
    { dataset: { room: room.id } },
    h(
      'div.admin-item-head',
      {},
      h(`span.state-badge.state-${room.state}`, {}, room.state === 'live' ? 'Live' : room.state),
      h('a.admin-item-title', { href: `/rooms/${encodeURIComponent(room.id)}`, 'data-link': true }, room.title),
    ),
    facts([
      ['Host', room.host],
      ['Acting origin', acting],
      ['Listeners', String(room.listeners ?? 0)],
      [
        'Here by transport',
        room.listeners_here
          ? `WebRTC ${room.listeners_here.webrtc}, Ogg ${room.listeners_here.ogg}, relays ${room.listeners_here.relayed}`
          : '',
      ],
      ['Speakers', String(room.speakers ?? 0)],
      ['Relays', String(room.relays ?? 0)],
      ['Started', when(room.started_at)],
    ]),
    extra || null,
  );
}

function dashboardSection(body) {
  const live = h('div', {});
  const status = h('p.muted', { role: 'status' }, 'Loading…');
  body.append(status, live);
  let timer = null;
  let stopped = false;
  async function refresh() {
    let board;
    try {
      board = await get('/api/v1/admin/dashboard');
    } catch (err) {
      status.textContent = err instanceof ApiError ? err.message : String(err);
      return;
    } finally {
      if (!stopped) timer = setTimeout(refresh, REFRESH_MS);
    }
    status.textContent = '';
    const fed = board.federation || {};
    const deliveries = fed.deliveries || {};
    const listeners = board.listeners || {};
    const media = board.media || {};
    const accounts = board.accounts || {};
    // media.workers: {workers, listeners: [per worker], http_listeners, restarts} or null.
    const pool = media.workers || null;
    live.replaceChildren(
      h(
        'div.admin-cards',
        {},
        h(
          'section.card',
          { 'aria-labelledby': 'dash-listen-h' },
          h('h2', { id: 'dash-listen-h' }, 'Listeners here'),
          facts([
            ['WebRTC', String(listeners.webrtc ?? 0)],
            ['Ogg streams', String(listeners.ogg ?? 0)],
            ['Relays (other servers)', String(listeners.relayed ?? 0)],
            ['HLS streams', String(media.hls_streams ?? 0)],
            ['Peer connections', String(media.peer_connections ?? 0)],
          ]),
        ),
        h(
          'section.card',
          { 'aria-labelledby': 'dash-media-h' },
          h('h2', { id: 'dash-media-h' }, 'Media workers'),
          pool
            ? h(
              'ul.plain',
              {},
              (pool.listeners || []).map((n, i) =>
                h('li', {}, `Worker ${i + 1}: ${n} listeners (${(pool.http_listeners || [])[i] || 0} over Ogg)`)),
              h('li.muted', {}, `Restarts: ${pool.restarts || 0}`),
            )
            : h('p.muted', {}, 'Media runs in the main process (no workers configured).'),
        ),
        h(
          'section.card',
          { 'aria-labelledby': 'dash-fed-h' },
          h('h2', { id: 'dash-fed-h' }, 'Federation'),
          facts([
            ['Deliveries queued', String(deliveries.queued ?? 0)],
            ['Delivered', String(deliveries.delivered ?? 0)],
            ['Given up', String(deliveries.dead ?? 0)],
            ['Circuit breakers open', String(fed.open_circuits ?? 0)],
          ]),
          (fed.failing_hosts || []).length
            ? h(
              'ul.plain',
              { 'aria-label': 'Failing servers' },
              fed.failing_hosts.map((f) => h('li', {}, `${f.host}: ${f.waiting} waiting, ${f.tries} tries${f.last_error ? ` (${f.last_error})` : ''}`)),
            )
            : h('p.muted', {}, 'No server is failing.'),
          (fed.circuit_breakers || []).length
            ? h(
              'ul.plain',
              { 'aria-label': 'Circuit breakers' },
              fed.circuit_breakers.map((c) => h('li', {}, `${c.host}: ${c.failures} failures${c.open_until ? `, paused until ${when(c.open_until)}` : ''}`)),
            )
            : null,
        ),
        h(
          'section.card',
          { 'aria-labelledby': 'dash-acc-h' },
          h('h2', { id: 'dash-acc-h' }, 'Accounts and reports'),
          facts([
            ['Active', String(accounts.active ?? 0)],
            ['Waiting for approval', String(accounts.pending ?? 0)],
            ['Suspended', String(accounts.suspended ?? 0)],
            ['Silenced', String(accounts.silenced ?? 0)],
            ['Open reports', String(board.reports_open ?? 0)],
          ]),
        ),
      ),
      h(
        'section.admin-section',
        { 'aria-labelledby': 'dash-rooms-h' },
        h('h2', { id: 'dash-rooms-h' }, `Rooms (${(board.rooms || []).length})`),
        (board.rooms || []).length
          ? h('ul.admin-list', { 'aria-labelledby': 'dash-rooms-h' }, board.rooms.map((r) => roomItem(r)))
          : h('p.muted', {}, 'No live room here now.'),
      ),
      h(
        'section.admin-section',
        { 'aria-labelledby': 'dash-problems-h' },
        h('h2', { id: 'dash-problems-h' }, 'Recent errors and warnings'),
        (board.recent_problems || []).length
          ? h(
            'ul.admin-list.problems',
            { 'aria-labelledby': 'dash-problems-h' },
            board.recent_problems
              .slice(-20)
              .reverse()
              .map((p) => h('li', {}, h('span.muted', {}, `${when(p.at)} ${p.level} ${p.logger}: `), p.message)),
          )
          : h('p.muted', {}, 'Nothing went wrong lately.'),
      ),
    );
  }
  refresh();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

// --- rooms ----------------------------------------------------------------------------------

async function roomsSection(body) {
  const list = h('ul.admin-list', { 'aria-labelledby': 'admin-rooms-h' });
  const status = statusLine();
  body.append(
    h(
      'p.muted',
      {},
      'Ending a room here stops this server carrying it. Everyone in it here sees your reason; ',
      'servers that relay it carry it on unless its host ends it.',
    ),
    status.el,
    h('h2', { id: 'admin-rooms-h' }, 'Rooms on this server'),
    list,
  );
  async function refresh() {
    const data = await get('/api/v1/admin/rooms');
    const rooms = data.rooms || [];
    list.replaceChildren(
      ...rooms.map((room) => {
        const reason = h('textarea', { name: 'reason', rows: 2 });
        return roomItem(
          room,
          actionForm(
            'End here…',
            field('Reason, shown to everyone in the room', reason, null, { limit: 500 }),
            `End “${room.title}” here`,
            async () => {
              await post(`/api/v1/admin/rooms/${encodeURIComponent(room.id)}/end`, {
                reason: reason.value.trim(),
              });
              status.say(`Ended “${room.title}” on this server.`);
              await refresh();
            },
            { danger: true },
          ),
        );
      }),
    );
    if (!rooms.length) list.append(h('li.muted', {}, 'No room here now.'));
  }
  await refresh();
  return null;
}

// --- settings -------------------------------------------------------------------------------

async function settingsSection(body, ctx) {
  const current = await get('/api/v1/admin/settings');
  const name = h('input', { name: 'name', value: current.name, placeholder: location.host });
  const description = h('textarea', { name: 'description', rows: 4 });
  description.value = current.description;
  const rules = h('textarea', { name: 'rules', rows: 5 });
  rules.value = (current.rules || []).join('\n');
  const contact = h('input', { name: 'contact', value: current.contact, autocapitalize: 'none', spellcheck: false });
  const registration = h(
    'select',
    { name: 'registration' },
    [
      ['open', 'Open: anyone signs up'],
      ['approval', 'Approval: sign-ups give a reason and wait for you'],
      ['closed', 'Closed: no sign-ups'],
    ].map(([value, label]) => h('option', { value, selected: value === current.registration }, label)),
  );
  const fields = [
    field('Name', name, 'Empty: the server’s address stands for its name.', { limit: 80 }),
    field('Description', description, 'Shown on the home page, on /about and in link previews.', { limit: 2000 }),
    field('Rules', rules, 'One rule per line. Reports can name the rule broken.'),
    field('Contact account', contact, 'A username here, shown on /about.'),
    field('Sign-ups', registration),
  ];
  const status = statusLine();
  if (!ctx.admin) {
    for (const input of [name, description, rules, contact, registration]) input.disabled = true;
    body.append(h('p.muted', {}, 'Only admins change these.'), h('div.form', {}, fields));
    return null;
  }
  const form = h(
    'form.form.card',
    {
      'aria-label': 'Server settings',
      onsubmit: (event) => {
        event.preventDefault();
        submitting(form, async () => {
          await patch('/api/v1/admin/settings', {
            name: name.value.trim(),
            description: description.value.trim(),
            rules: rules.value.split('\n').map((r) => r.trim()).filter(Boolean),
            contact: contact.value.trim().replace(/^@/, ''),
            registration: registration.value,
          });
          status.say('Settings saved. They apply now.');
        });
      },
    },
    fields,
    h('button.button.primary', { type: 'submit' }, 'Save settings'),
    status.el,
  );
  body.append(form, h('p', {}, h('a', { href: '/about', 'data-link': true }, 'See the about page')));
  return null;
}
