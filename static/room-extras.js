// What makes a room one people come back to, on the room page: reactions floating over
// avatars, the "Recording" badge, the schedule (in the viewer's time zone) with "Remind
// me" and the .ics link, "the host is away" with its countdown and "Take over as host",
// the fediverse's comments (newest first, likes and boosts, the pin; hide and pin for
// moderators), the end-of-room summary, and "Leave room" as host.
//
// room.js mounts it and hands it the room's state and WebSocket messages:
//   const extras = mountExtras({ main, roomId, me, act, nameOf, myRole, flash });
//   extras.sections -> elements to place; extras.badges -> head-row elements;
//   extras.update(room); extras.handle(msg) -> true if it took the message;
//   extras.leaveAsHost() -> true if it handled "Leave room" for the host.

import { announce, formatWhen, h, showError } from './ui.js';

export { formatWhen };
import { ApiError, api, post, roomPath, del } from './api.js';

export const REACTIONS = ['👏', '❤️', '😂', '🔥', '💯', '🙌'];
const FLOAT_MS = 2400;
const MAX_FLOATING = 30;

function formatDuration(seconds) {
  const s = Math.round(seconds);
  const hh = Math.floor(s / 3600), mm = Math.floor((s % 3600) / 60), ss = s % 60;
  return hh ? `${hh} h ${mm} min` : mm ? `${mm} min ${ss} s` : `${ss} s`;
}

export function mountExtras({ main, roomId, me, nameOf, myRole, flash }) {
  let room = null;
  let awayTimer = null;
  let reminded = false;
  let floating = 0;

  const recordingBadge = h('span.badge.recording', { hidden: true, title: 'This room is being recorded' }, '● Recording');
  const scheduleEl = h('section.panel.schedule', { 'aria-labelledby': 'schedule-h', hidden: true });
  const awayEl = h('div.notice.host-away', { role: 'status', hidden: true });
  const reactionBar = h('div.reaction-bar', { role: 'toolbar', 'aria-label': 'Reactions', hidden: true });
  const floatLayer = h('div.float-layer', { 'aria-hidden': 'true' });
  const pinnedEl = h('div.pinned', { hidden: true });
  const countsEl = h('p.muted.engagement', {});
  const commentList = h('ol.comment-list', { 'aria-label': 'Comments, newest first' });
  const commentForm = h('form.comment-form', { hidden: true });
  const commentsEl = h(
    'section.panel.comments',
    { 'aria-labelledby': 'comments-h' },
    h('h2', { id: 'comments-h' }, 'From the fediverse'),
    countsEl, pinnedEl, commentForm, commentList,
  );
  const summaryEl = h('section.panel.summary', { 'aria-labelledby': 'summary-h', hidden: true });
  const leaveDialog = h('dialog.leave-host', { 'aria-labelledby': 'leave-h' });

  // --- reactions ---------------------------------------------------------------------
  for (const emoji of REACTIONS) {
    reactionBar.append(
      h('button.button.small.reaction', { type: 'button', 'aria-label': `React ${emoji}`, onclick: () => react(emoji) }, emoji),
    );
  }

  async function react(emoji) {
    try {
      await post(roomPath(roomId, '/reactions'), { emoji });
    } catch (err) {
      if (err instanceof ApiError && err.status === 429) flash('Easy there: too many reactions at once.');
      else showError(err);
    }
  }

  function floatReaction(username, emoji) {
    if (floating >= MAX_FLOATING) return;
    const avatar = main.querySelector(`.avatar[data-speaker="${CSS.escape(username)}"]`);
    const anchor = avatar || main.querySelector('.audience-grid') || main;
    const box = anchor.getBoundingClientRect();
    const el = h('span.floating-reaction', { dataset: { by: username } }, emoji);
    el.style.left = `${box.left + window.scrollX + box.width / 2 + (avatar ? 0 : (Math.random() - 0.5) * box.width * 0.6)}px`;
    el.style.top = `${box.top + window.scrollY + (avatar ? 0 : box.height / 2)}px`;
    floatLayer.append(el);
    floating += 1;
    setTimeout(() => { el.remove(); floating -= 1; }, FLOAT_MS);
  }

  // --- schedule and reminders --------------------------------------------------------
  async function loadReminded() {
    if (!me) return;
    try {
      const data = await api('GET', '/api/v1/reminders');
      reminded = (data.reminders || []).some((r) => r.room === room.url || r.room.endsWith(`/rooms/${roomId}`));
      renderSchedule();
    } catch { /* not essential */ }
  }

  async function toggleReminder() {
    try {
      if (reminded) await del(`/api/v1/reminders?room=${encodeURIComponent(room.url)}`);
      else await post('/api/v1/reminders', { room: room.url });
      reminded = !reminded;
      announce(reminded ? 'You will be notified when it starts.' : 'Reminder removed.');
      renderSchedule();
    } catch (err) {
      showError(err);
    }
  }

  function renderSchedule() {
    const show = room && room.state === 'scheduled' && room.starts_at;
    scheduleEl.hidden = !show;
    if (!show) return;
    const items = [
      h('h2', { id: 'schedule-h' }, room.cancelled ? 'Cancelled' : 'Upcoming'),
      h('p.when', {}, h('time', { datetime: new Date(room.starts_at * 1000).toISOString() }, formatWhen(room.starts_at))),
    ];
    const row = h('div.row', {});
    if (me) {
      row.append(h(`button.button${reminded ? '' : '.primary'}`, { type: 'button', onclick: toggleReminder, 'aria-pressed': String(reminded) }, reminded ? 'Reminder set ✓' : 'Remind me'));
    }
    if (room.calendar_url) row.append(h('a.button.ghost', { href: room.calendar_url, download: '' }, 'Add to calendar (.ics)'));
    items.push(row);
    if (myRole() === 'host') items.push(scheduleEditor());
    scheduleEl.replaceChildren(...items);
  }

  // The host moves the start (in their own time zone) or cancels; "Go live" starts early.
  function scheduleEditor() {
    const local = new Date(room.starts_at * 1000 - new Date().getTimezoneOffset() * 60000);
    const input = h('input', { type: 'datetime-local', value: local.toISOString().slice(0, 16), 'aria-label': 'New start time' });
    const save = async (event) => {
      event.preventDefault();
      try {
        await api('PATCH', roomPath(roomId), { starts_at: new Date(input.value).toISOString() });
        announce('The start time is changed; followers get the update.');
      } catch (err) {
        showError(err);
      }
    };
    const cancel = async () => {
      if (!window.confirm('Cancel this room? Followers and everyone who asked to be reminded are told.')) return;
      try {
        await post(roomPath(roomId, '/end'));
        announce('Room cancelled.');
      } catch (err) {
        showError(err);
      }
    };
    return h('form.row.schedule-edit', { onsubmit: save }, input,
      h('button.button.small', { type: 'submit' }, 'Change time'),
      h('button.button.small.danger-ghost', { type: 'button', onclick: cancel }, 'Cancel room'));
  }

  // --- the host away -----------------------------------------------------------------
  function renderAway() {
    clearInterval(awayTimer);
    const until = room && room.state === 'live' ? room.host_away_until : null;
    awayEl.hidden = !until;
    if (!until) return;
    const takeOver = myRole() === 'cohost'
      ? h('button.button.small.primary', { type: 'button', onclick: takeHost }, 'Take over as host')
      : null;
    const text = h('span', {});
    const tick = () => {
      const left = Math.max(0, Math.round(until - Date.now() / 1000));
      text.textContent = `The host is away. The room ends in ${left} s unless they come back${takeOver ? ' or you take over' : ''}.`;
    };
    tick();
    awayTimer = setInterval(tick, 1000);
    awayEl.replaceChildren(text, ...(takeOver ? [' ', takeOver] : []));
  }

  async function takeHost() {
    try {
      await post(roomPath(roomId, '/take-host'));
      announce('You are the host now.');
    } catch (err) {
      showError(err);
    }
  }

  // --- comments ----------------------------------------------------------------------
  const commentInput = h('textarea', { name: 'text', maxlength: 500, rows: 2, required: true, 'aria-label': 'Your comment' });
  commentForm.append(commentInput, h('button.button.small.primary', { type: 'submit' }, 'Comment'));
  commentForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    const text = commentInput.value.trim();
    if (!text) return;
    try {
      await post(roomPath(roomId, '/comments'), { text });
      commentInput.value = '';
      announce('Comment posted: a reply to the room’s post.');
    } catch (err) {
      showError(err);
    }
  });
  commentForm.hidden = !me;

  function commentItem(comment, { pinned = false } = {}) {
    const body = h('div.comment-body', {});
    // Cleaned by the node to Mastodon's allowed HTML (federation/sanitize.py).
    body.innerHTML = comment.content;
    const who = comment.author || {};
    const item = h(
      `li.comment${pinned ? '.is-pinned' : ''}`,
      { dataset: { id: comment.id } },
      h('p.comment-head', {}, h('strong', {}, who.name || who.handle || '?'), ' ', h('span.muted', {}, `@${who.handle || ''}`)),
      body,
    );
    const role = myRole();
    if (!pinned && (role === 'host' || role === 'cohost') && room && room.state !== 'ended') {
      item.append(
        h('div.row.comment-actions', {},
          h('button.button.small.ghost', { type: 'button', onclick: () => moderate('/pin', { comment: comment.id }, 'PUT') }, 'Pin'),
          h('button.button.small.ghost', { type: 'button', onclick: () => moderate('/comments/hide', { comment: comment.id }) }, 'Hide'),
        ),
      );
    }
    return item;
  }

  async function moderate(path, body, method = 'POST') {
    try {
      await api(method, roomPath(roomId, path), body);
    } catch (err) {
      showError(err);
    }
  }

  function renderComments() {
    const c = (room && room.comments) || { items: [], likes: 0, boosts: 0, pinned: null };
    const parts = [];
    if (c.likes) parts.push(`${c.likes} ${c.likes === 1 ? 'like' : 'likes'}`);
    if (c.boosts) parts.push(`${c.boosts} ${c.boosts === 1 ? 'boost' : 'boosts'}`);
    countsEl.textContent = parts.length ? parts.join(' · ') : '';
    countsEl.hidden = !parts.length;
    pinnedEl.hidden = !c.pinned;
    if (c.pinned) {
      const inner = c.pinned.comment
        ? h('ol.comment-list', {}, commentItem(c.pinned.comment, { pinned: true }))
        : h('a', { href: c.pinned.link, rel: 'noopener nofollow', target: '_blank' }, c.pinned.label || c.pinned.link);
      const unpin = ['host', 'cohost'].includes(myRole())
        ? h('button.button.small.ghost', { type: 'button', onclick: () => moderate('/pin', undefined, 'DELETE') }, 'Unpin')
        : null;
      pinnedEl.replaceChildren(h('p.pin-label', {}, '📌 Pinned'), inner, ...(unpin ? [unpin] : []));
    }
    const items = c.items || [];
    commentList.replaceChildren(
      ...(items.length ? items.map((x) => commentItem(x)) : [h('li.muted', {}, 'Replies to this room’s post on Mastodon and elsewhere show here.')]),
    );
  }

  // --- summary -----------------------------------------------------------------------
  function renderSummary() {
    const s = room && room.state === 'ended' ? room.summary : null;
    summaryEl.hidden = !s;
    if (!s) return;
    const reactions = Object.entries(s.reactions || {}).map(([e, n]) => `${e} ${n}`).join('  ');
    const rows = [
      ['Duration', formatDuration(s.duration_s)],
      ['Peak listeners', String(s.peak_listeners)],
      ['Listeners in all', String(s.total_listeners)],
      ['Speakers', (s.speakers || []).map((x) => x.display_name || x.username).join(', ') || '—'],
      ['Reactions', reactions || '—'],
    ];
    const replay = s.replay_url || room.replay_url;
    summaryEl.replaceChildren(
      h('h2', { id: 'summary-h' }, 'How it went'),
      h('dl.summary-list', {}, ...rows.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])),
      ...(replay ? [h('p', {}, h('a.button.primary', { href: new URL(replay).pathname, 'data-link': true }, 'Play the replay'))] : []),
    );
  }

  // --- leaving as host ---------------------------------------------------------------
  function leaveAsHost(cohosts, endRoom, leave) {
    const choices = cohosts.map((m) =>
      h('button.button', { type: 'button', onclick: async () => {
        leaveDialog.close();
        try {
          await post(roomPath(roomId, '/hand-over'), { to: m.username });
          announce(`${nameOf(m.username)} is the host now.`);
          leave();
        } catch (err) {
          showError(err);
        }
      } }, `Hand it to ${nameOf(m.username)}`),
    );
    leaveDialog.replaceChildren(
      h('h2', { id: 'leave-h' }, 'Leave the room you host?'),
      h('p', {}, cohosts.length ? 'End it for everyone, or hand it to a cohost and leave.' : 'End it for everyone, or stay. Make someone a cohost to hand it over.'),
      h('div.row', {},
        h('button.button.danger', { type: 'button', onclick: async () => { leaveDialog.close(); await endRoom(); leave(); } }, 'End the room'),
        ...choices,
        h('button.button.ghost', { type: 'button', onclick: () => leaveDialog.close() }, 'Stay'),
      ),
    );
    leaveDialog.showModal();
  }

  function update(next) {
    const first = room === null;
    room = next;
    recordingBadge.hidden = !(room.recording && room.state === 'live');
    reactionBar.hidden = !(me && room.state === 'live');
    renderSchedule();
    renderAway();
    renderComments();
    renderSummary();
    if (first) loadReminded();
  }

  function handle(msg) {
    if (!room) return false;
    switch (msg.type) {
      case 'reaction':
        floatReaction(msg.username, msg.emoji);
        return true;
      case 'comment': {
        const c = room.comments;
        c.items = [msg.comment, ...c.items.filter((x) => x.id !== msg.comment.id)].slice(0, 50);
        c.count = (c.count || 0) + 1;
        renderComments();
        announce(`New comment from ${(msg.comment.author || {}).handle || 'someone'}.`);
        return true;
      }
      case 'comment_hidden':
        room.comments.items = room.comments.items.filter((x) => x.id !== msg.id);
        renderComments();
        return true;
      case 'pinned':
        room.comments.pinned = msg.pinned;
        renderComments();
        return true;
      case 'engagement':
        room.comments.likes = msg.likes;
        room.comments.boosts = msg.boosts;
        renderComments();
        return true;
      case 'host_away':
        room.host_away_until = msg.until;
        renderAway();
        return true;
      default:
        return false;
    }
  }

  document.body.append(floatLayer);
  return {
    badges: [recordingBadge],
    banners: [scheduleEl, awayEl],
    sections: [reactionBar, commentsEl, summaryEl, leaveDialog],
    summary: summaryEl,
    update,
    handle,
    leaveAsHost,
    refreshRole: () => { renderAway(); renderComments(); },
    dispose() {
      clearInterval(awayTimer);
      floatLayer.remove();
    },
  };
}
