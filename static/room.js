// The room page: stage, audience, hands, controls, the room WebSocket and audio.
//
// State comes from the node over the room WebSocket: a snapshot first, then member,
// room, levels, listeners and kicked messages. The page re-renders its lists from that
// state; speaking levels only toggle classes so focus and screen readers are not
// disturbed four times a second. Listening over WebRTC, the page reads who speaks from
// the audio's contributing sources instead (levels.js) and tells the node so
// (`levels_source`), which then ignores the WebSocket's levels.

import { ApiError, get, memberPath, post, roomPath, del } from './api.js';
import { ContributingSources } from './levels.js';
import { AudioOutput, RoomAudio, openMicrophone } from './media.js';
import { micPanel } from './mic-check.js';
import { reportForm } from './report.js';
import {
  currentVisitor,
  onVisitorChange,
  takeLinkFragment,
  visitorBadge,
  visitorJoinForm,
} from './visitor.js';
import { roomSocketCarries, roomSocketGone } from './notify.js';
import { mountExtras } from './room-extras.js';

const SPEAKING_THRESHOLD = 0.03;
const SPEAKING_HOLD_MS = 600;
const ANNOUNCE_GAP_MS = 4000; // at most one "X is speaking" per this interval
const ANNOUNCE_SAME_SPEAKER_MS = 15000;
const WS_BACKOFF_MIN_MS = 500;
const WS_BACKOFF_MAX_MS = 5000;
const WS_PING_MS = 20000;

const ROLE_LABEL = { host: 'Host', cohost: 'Cohost', speaker: 'Speaker', listener: 'Listener' };
const ON_STAGE = new Set(['host', 'cohost', 'speaker']);
const MODERATORS = new Set(['host', 'cohost']);

const SVG_NS = 'http://www.w3.org/2000/svg';
const HAND_ICON =
  'M23 5.5V20c0 2.2-1.8 4-4 4h-7.3c-1.08 0-2.1-.43-2.85-1.19L1 14.83s1.26-1.23 1.3-1.25c.22-.19.49-.29.79-.29.22 0 .42.06.6.16.04.01 4.31 2.46 4.31 2.46V4c0-.83.67-1.5 1.5-1.5S11 3.17 11 4v7h1V1.5c0-.83.67-1.5 1.5-1.5S15 .67 15 1.5V11h1V2.5c0-.83.67-1.5 1.5-1.5s1.5.67 1.5 1.5V11h1V5.5c0-.83.67-1.5 1.5-1.5s1.5.67 1.5 1.5z';

/** A decorative single-path 24x24 icon in the current text colour. */
function icon(d, size = 14) {
  const svg = document.createElementNS(SVG_NS, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('width', String(size));
  svg.setAttribute('height', String(size));
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  const path = document.createElementNS(SVG_NS, 'path');
  path.setAttribute('d', d);
  path.setAttribute('fill', 'currentColor');
  svg.append(path);
  return svg;
}

function hostOf(url) {
  try {
    return new URL(url).host;
  } catch {
    return 'another server';
  }
}

/**
 * What to call a member. In a room relayed from another server, the origin knows our own
 * users only by handle and names them by it; here they are ours, so show them bare.
 */
function displayName(member) {
  const name = member.display_name || member.username;
  if (member.username && !member.username.includes('@') && name === `${member.username}@${location.host}`) {
    return member.username;
  }
  return name;
}

export async function mountRoom(main, roomId, ctx) {
  const { h, showError, clearError, announce, navigate, setTitle } = ctx;
  if (roomId === 'remote') {
    // /rooms/remote?origin=<room URL on another node>: this node's copy of that room
    // (POST /api/v1/remote-rooms relays it here), then the usual room page for it.
    const origin = new URLSearchParams(location.search).get('origin');
    const originLink = /^https?:\/\//.test(origin || '') ? origin : '/';
    if (!ctx.me) {
      // Relaying a room here is done for a signed-in account; come back after logging in.
      const next = encodeURIComponent(location.pathname + location.search);
      main.replaceChildren(
        h('h1', {}, 'Log in to join this room here'),
        h('p', {}, `A room on ${hostOf(origin)}: log in to listen and take part from this server.`),
        h(
          'div.row',
          {},
          h('a.button.primary', { href: `/login?next=${next}`, 'data-link': true }, 'Log in'),
          h('a.button', { href: originLink, rel: 'noopener' }, 'Open it on its own server'),
        ),
      );
      return () => {};
    }
    try {
      const mirror = await post('/api/v1/remote-rooms', { url: origin });
      history.replaceState(null, '', `/rooms/${encodeURIComponent(mirror.id)}`);
      roomId = mirror.id;
    } catch (err) {
      main.replaceChildren(
        h('h1', {}, 'Cannot open this room here'),
        h('p', {}, `This server could not relay the room from ${hostOf(origin)}. `),
        h('a.button', { href: originLink, rel: 'noopener' }, 'Open it on its own server'),
      );
      showError(err);
      return () => {};
    }
  }
  const me = ctx.me;
  // A verified visitor (visitor.js): someone of another fediverse server, in this room as
  // their handle, without an account here. The link in their message lands here with the
  // code in the fragment, which leaves the address bar at once.
  let visitor = null;
  let visitorNotice = null;
  {
    const fromLink = await takeLinkFragment();
    visitorNotice = fromLink.notice;
    if (!me) {
      try {
        visitor = fromLink.visitor || (await currentVisitor());
      } catch (err) {
        showError(err);
      }
    }
  }

  // --- state ----------------------------------------------------------------------------
  let room = null;
  const members = new Map();
  let hands = [];
  let you = null;
  let ended = false;
  let kickedMessage = null;
  let disposed = false;
  let connection = 'connecting';
  const speakingUntil = new Map();
  const lastAnnounced = new Map();
  let lastAnnounceAt = 0;
  let audioStatus = 'off';
  // Where speaking rings come from: 'websocket' (the room's levels messages) or 'audio'
  // (the CSRCs of the WebRTC program, once it has named a speaker).
  let levelsSource = 'websocket';
  let csrcWatch = null;
  let ws = null;
  let wsBackoff = WS_BACKOFF_MIN_MS;
  let wsTimer = null;
  let pingTimer = null;
  const openMenus = new Set();

  // --- audio ----------------------------------------------------------------------------
  const audioEl = h('audio', { autoplay: true, 'aria-hidden': 'true' });
  audioEl.playsInline = true;
  const output = new AudioOutput(audioEl, { onPlayback: () => renderStatus() });
  const roomAudio = new RoomAudio({
    output,
    iceServers: (ctx.config && ctx.config.ice_servers) || [],
    onError: (err) => showError(audioErrorMessage(err)),
    onStatus: (status) => {
      audioStatus = status;
      renderStatus();
      followAudioLevels();
    },
    onMicStream: (stream) => {
      if (stream) stopPreview();
      mic.setStream(stream);
    },
  });

  // "Your microphone" (mic-check.js) for whoever can speak: muted state, level, device.
  // An invited listener may check the microphone before accepting (a preview stream).
  let preview = null;
  function stopPreview() {
    if (!preview) return;
    for (const track of preview.getTracks()) track.stop();
    preview = null;
  }
  async function reopenMicrophone() {
    try {
      if (roomAudio.mode === 'speak') {
        await roomAudio.reopenMic();
      } else if (preview) {
        stopPreview();
        preview = await openMicrophone();
        mic.setStream(preview);
      }
    } catch (err) {
      showError(audioErrorMessage(err));
    }
  }
  const mic = micPanel({
    announce,
    onDeviceChange: reopenMicrophone,
    onVoiceProcessing: reopenMicrophone,
    onCheck: async () => {
      stopPreview();
      try {
        preview = await openMicrophone();
      } catch (err) {
        showError(audioErrorMessage(err));
      }
      return preview;
    },
  });
  window.parley = {
    get analyser() {
      return output.analyser;
    },
    dominantFrequency: () => output.dominantFrequency(),
    level: () => output.level(),
    energyAt: (hz, widthHz) => output.energyAt(hz, widthHz),
    get audioStatus() {
      return audioStatus;
    },
    get playback() {
      return output.playback.state;
    },
    get connection() {
      return connection;
    },
    get levelsSource() {
      return levelsSource;
    },
    contributingSources: () => {
      const receiver = roomAudio.listeningReceiver();
      return receiver ? receiver.getContributingSources() : [];
    },
    stats: () => roomAudio.stats(),
  };

  function audioErrorMessage(err) {
    const base = err && err.message ? err.message : String(err);
    return `Audio: ${base}`;
  }

  // --- skeleton -------------------------------------------------------------------------
  const titleEl = h('h1.room-title', {}, 'Room');
  const stateEl = h('span.state-badge', {});
  // A room relayed from another server says where it lives.
  const originEl = h('span.origin-badge', { hidden: true });
  const joinEl = h('section.panel.join-choice', { 'aria-labelledby': 'join-h', hidden: true });
  // "You are in as …" for a verified visitor.
  const visitorEl = h('div.visitor-slot', { hidden: true });
  const descEl = h('p.room-desc', {});
  const hostEl = h('p.muted.room-host', {});
  // The live region says what changes the listener's situation (screen readers announce
  // it); how far behind the room we hear changes every second, so it sits beside it.
  const statusEl = h('span.room-status', { role: 'status' });
  const latencyEl = h('span.room-latency', { hidden: true });
  const listenersEl = h('span.listeners', {});
  const endedEl = h('div.notice', { hidden: true });
  // A copy of a room that another server's moderators stopped carrying: it goes on here.
  const stoppedEl = h('p.muted.room-stopped', { hidden: true });
  const inviteEl = h('div.invite-banner', { hidden: true });
  const stageList = h('ul.stage-grid', {
    'aria-label': 'Speakers',
    dataset: { levelsSource: 'websocket' },
  });
  const handsSection = h('section.panel.hands', { 'aria-labelledby': 'hands-h', hidden: true });
  const handsList = h('ol.hand-list', { 'aria-label': 'Raised hands, in the order they were raised' });
  const audienceList = h('ul.audience-grid', { 'aria-label': 'Audience' });
  const audienceHeading = h('h2', { id: 'audience-h' }, 'Audience');
  const controls = h('div.controls', { role: 'toolbar', 'aria-label': 'Room controls' });
  const hostControls = h('div.host-controls', { hidden: true });
  const playerLink = h('a.small-link', { target: '_blank', rel: 'noopener' }, 'Open in a player');
  // The one button that starts the sound when the browser refused to (playback.js).
  const resumeButton = h(
    'button.button.primary.start-listening',
    {
      type: 'button',
      hidden: true,
      onclick: () => {
        output.resume().then(() => {
          renderStatus();
          if (output.playback.state === 'playing') announce('Sound on.');
        });
      },
    },
    'Start listening',
  );
  handsSection.append(
    h('h2', { id: 'hands-h' }, 'Raised hands'),
    handsList,
  );
  // Signed-in people report the room or one of its speakers to this server's moderators
  // (and a speaker from another server to theirs too).
  const reportPanel = ctx.me
    ? reportForm(
      { kind: 'room', room: roomId },
      {
        label: 'Report this room or a speaker…',
        speakers: () =>
          [...members.values()]
            .filter((m) => ON_STAGE.has(m.role) && m.username !== myUsername())
            .map((m) => ({ username: m.username, name: `${nameOf(m.username)} (${m.username})` })),
      },
    )
    : null;

  // Reactions, schedule, recording, comments, summary, the host leaving (room-extras.js).
  const extras = mountExtras({ main, roomId, me, nameOf, myRole, flash });

  main.append(
    h(
      'article.room',
      { 'aria-labelledby': 'room-title' },
      h(
        'header.room-head',
        {},
        h('div.room-head-row', {}, stateEl, ...extras.badges, originEl, listenersEl, hostControls),
        titleEl,
        hostEl,
        descEl,
        h('p.room-status-line', {}, statusEl, latencyEl),
        resumeButton,
      ),
      endedEl,
      stoppedEl,
      visitorEl,
      ...extras.banners,
      joinEl,
      inviteEl,
      mic.element,
      h(
        'section.panel.stage',
        { 'aria-labelledby': 'stage-h' },
        h('h2', { id: 'stage-h' }, 'Stage'),
        stageList,
      ),
      handsSection,
      h('section.panel.audience', { 'aria-labelledby': 'audience-h' }, audienceHeading, audienceList),
      ...extras.sections,
      h('section.panel.settings', { 'aria-label': 'Other ways to listen' }, playerLink),
      reportPanel ? h('section.panel.room-report', { 'aria-label': 'Report' }, reportPanel.element) : null,
      controls,
      audioEl,
    ),
  );
  titleEl.id = 'room-title';

  // --- "Listen here" or "Join from your server" (visitors without an account here) -----
  // Guests already hear the room on this page; people with an account on another server
  // go to their own server's view of the room to raise a hand and speak from there. The
  // handle is resolved by this node (GET /api/v1/remote-join): browsers cannot WebFinger
  // other servers themselves (CORS).
  let joinDismissed = false;
  const joinInput = h('input', {
    id: 'join-handle',
    name: 'handle',
    required: true,
    autocomplete: 'off',
    autocapitalize: 'none',
    spellcheck: false,
    inputmode: 'email',
    placeholder: 'you@your.server',
    'aria-describedby': 'join-hint',
    oninput: () => joinInput.removeAttribute('aria-invalid'),
  });
  const joinButton = h('button.button.primary', { type: 'submit' }, 'Go to my server');
  const joinForm = h(
    'form.join-form',
    {
      'aria-labelledby': 'join-remote-h',
      onsubmit: async (event) => {
        event.preventDefault();
        clearError();
        const handle = joinInput.value.trim();
        if (!handle) {
          joinInput.setAttribute('aria-invalid', 'true');
          joinInput.focus();
          return;
        }
        joinButton.disabled = true;
        joinForm.setAttribute('aria-busy', 'true');
        try {
          const query = new URLSearchParams({ handle, room: roomId });
          const answer = await get(`/api/v1/remote-join?${query}`);
          const target = answer && answer.redirect;
          if (typeof target !== 'string' || !/^https?:\/\//.test(target)) {
            throw new Error('The server did not say where to go.');
          }
          announce(`Opening the room on ${hostOf(target)}.`);
          location.assign(target);
        } catch (err) {
          joinInput.setAttribute('aria-invalid', 'true');
          showError(err);
          joinButton.disabled = false;
          joinForm.removeAttribute('aria-busy');
          joinInput.focus();
        }
      },
    },
    h('h3', { id: 'join-remote-h' }, 'Join from your server'),
    h(
      'p.muted',
      { id: 'join-hint' },
      'Have an account on another server? Listen there, raise your hand and speak with it.',
    ),
    h(
      'div.join-row',
      {},
      h('label.visually-hidden', { for: 'join-handle' }, 'Your handle'),
      joinInput,
      joinButton,
    ),
  );
  joinEl.append(
    h('h2', { id: 'join-h' }, 'Join this room'),
    h(
      'div.join-options',
      {},
      h(
        'div.join-here',
        {},
        h('h3', {}, 'Listen here'),
        h('p.muted', {}, 'No account needed: you are a guest on this page.'),
        controlButton('Listen here', async () => {
          joinDismissed = true;
          await output.resume();
          renderStatus();
          render();
          announce('Listening here as a guest.');
        }),
      ),
      visitorJoinForm({ roomId, onJoined: (who) => becomeVisitor(who) }),
      joinForm,
    ),
  );

  /** This browser is now `who` (a verified visitor) or a guest again (null): the room's
   * WebSocket reconnects so that the node knows who watches. */
  function becomeVisitor(who) {
    if (me || disposed) return;
    // This page's own sign-in or sign-out comes back on the channel too.
    if ((visitor && visitor.handle) === (who && who.handle)) return;
    visitor = who;
    visitorNotice = null;
    you = null;
    renderVisitor();
    if (ws) {
      const socket = ws;
      ws = null;
      clearInterval(pingTimer);
      socket.close(1000, 'changed identity');
    }
    connection = 'connecting';
    connect();
    render();
  }

  function renderVisitor() {
    visitorEl.hidden = !visitor && !visitorNotice;
    if (visitor) {
      visitorEl.replaceChildren(visitorBadge(visitor, { onSignOut: () => becomeVisitor(null) }));
    } else {
      visitorEl.replaceChildren(...(visitorNotice ? [h('p.notice-text', { role: 'status' }, visitorNotice)] : []));
    }
  }
  renderVisitor();
  const stopVisitorChannel = onVisitorChange((who) => becomeVisitor(who));

  // --- actions ----------------------------------------------------------------------------
  async function act(action, { success } = {}) {
    clearError();
    try {
      const result = await action();
      if (success) announce(success);
      return result;
    } catch (err) {
      showError(err);
      return undefined;
    }
  }

  function applyRoomResult(result) {
    if (result && result.id) setRoom(result);
  }

  const actions = {
    raiseHand: () => act(() => post(roomPath(roomId, '/hand')), { success: 'Hand raised.' }),
    lowerHand: () => act(() => del(roomPath(roomId, '/hand')), { success: 'Hand lowered.' }),
    answer: (accept) =>
      act(() => post(roomPath(roomId, '/invitation'), { accept }), {
        success: accept ? 'You are on stage, muted. Unmute to speak.' : 'Invitation declined.',
      }),
    setMuted: async (muted) => {
      // Muting is applied locally at once (privacy first); unmuting waits for the node.
      if (muted) roomAudio.setMuted(true);
      const ok = await act(() => post(roomPath(roomId, '/mute'), { muted }), {
        success: muted ? 'Microphone off.' : 'Microphone on.',
      });
      if (ok !== undefined || muted) {
        const mine = myMember();
        if (mine) {
          mine.muted = muted;
          reconcile();
          render();
        }
      }
    },
    leaveStage: () =>
      act(() => post(memberPath(roomId, myUsername(), '/role'), { role: 'listener' }), {
        success: 'You left the stage.',
      }),
    leaveRoom: () => {
      if (myRole() === 'host' && room && room.state === 'live') {
        // The host leaving: end the room, or hand it to a cohost (room-extras.js).
        const cohosts = [...members.values()].filter((m) => m.role === 'cohost');
        const end = async () => applyRoomResult(await act(() => post(roomPath(roomId, '/end'))));
        extras.leaveAsHost(cohosts, end, () => navigate('/'));
        return;
      }
      navigate('/');
    },
    share: async () => {
      const url = (room && room.url) || location.href;
      try {
        await navigator.clipboard.writeText(url);
        announce('Link copied.');
        flash('Link copied to the clipboard.');
      } catch {
        // Clipboard needs a secure context or permission; show the link to copy by hand.
        window.prompt('Copy this link:', url);
      }
    },
    goLive: async () => {
      // Spaces starts the host with the mic off; the node keeps the mute state.
      await act(() => post(roomPath(roomId, '/mute'), { muted: true })).catch(() => {});
      const result = await act(() => post(roomPath(roomId, '/start')), {
        success: 'The room is live.',
      });
      applyRoomResult(result);
    },
    endRoom: async () => {
      if (!window.confirm('End this room for everyone?')) return;
      const result = await act(() => post(roomPath(roomId, '/end')), { success: 'Room ended.' });
      applyRoomResult(result);
    },
    invite: (username) =>
      act(() => post(memberPath(roomId, username, '/invite')), {
        success: `Invited ${nameOf(username)} to speak.`,
      }),
    lowerOthersHand: (username) =>
      act(() => del(memberPath(roomId, username, '/hand')), {
        success: `Lowered ${nameOf(username)}’s hand.`,
      }),
    muteMember: (username) =>
      act(() => post(memberPath(roomId, username, '/mute'), { muted: true }), {
        success: `Muted ${nameOf(username)}.`,
      }),
    setRole: (username, role) =>
      act(() => post(memberPath(roomId, username, '/role'), { role }), {
        success:
          role === 'cohost'
            ? `${nameOf(username)} is now a cohost.`
            : role === 'listener'
              ? `Moved ${nameOf(username)} to the audience.`
              : `${nameOf(username)} is now a speaker.`,
      }),
    remove: (username, block) => {
      const verb = block ? 'Block' : 'Remove';
      if (!window.confirm(`${verb} ${nameOf(username)}?`)) return undefined;
      return act(() => post(memberPath(roomId, username, block ? '/block' : '/remove')), {
        success: `${block ? 'Blocked' : 'Removed'} ${nameOf(username)}.`,
      });
    },
  };

  let flashTimer = null;
  function flash(text) {
    statusEl.dataset.flash = text;
    renderStatus();
    clearTimeout(flashTimer);
    flashTimer = setTimeout(() => {
      delete statusEl.dataset.flash;
      renderStatus();
    }, 2500);
  }

  // --- state updates ----------------------------------------------------------------------
  function nameOf(username) {
    const m = members.get(username);
    return (m && displayName(m)) || username;
  }

  function myUsername() {
    // Before the WebSocket snapshot arrives, the logged-in account (or the verified
    // visitor) stands in for `you`.
    if (you) return you.username;
    if (me) return me.username;
    return visitor ? visitor.username : null;
  }

  function myRole() {
    const username = myUsername();
    if (!username) return null;
    const m = members.get(username);
    return m ? m.role : you ? you.role : null;
  }

  function myMember() {
    const username = myUsername();
    return username ? members.get(username) : undefined;
  }

  function setRoom(next) {
    room = { ...(room || {}), ...next };
    if (Array.isArray(next.speakers) || Array.isArray(next.audience)) {
      members.clear();
      for (const m of [...(next.speakers || []), ...(next.audience || [])]) {
        members.set(m.username, m);
      }
    }
    if (Array.isArray(next.hands)) hands = [...next.hands];
    if (room.state === 'ended') ended = true;
    reconcile();
    render();
    extras.update(room);
  }

  function applyMember(member) {
    const before = members.get(member.username);
    members.set(member.username, member);
    if (member.hand_raised && !hands.includes(member.username)) {
      hands.push(member.username);
      if (isModerator()) announce(`${nameOf(member.username)} raised a hand.`);
    } else if (!member.hand_raised) {
      hands = hands.filter((u) => u !== member.username);
    }
    const isMe = member.username === myUsername();
    if (!before) {
      if (!isMe) announce(`${nameOf(member.username)} joined.`);
    } else if (member.invited && !before.invited) {
      announce(isMe ? 'You are invited to speak.' : `${nameOf(member.username)} was invited to speak.`);
    } else if (ON_STAGE.has(member.role) && !ON_STAGE.has(before.role)) {
      announce(`${nameOf(member.username)} is now on stage.`);
    } else if (!ON_STAGE.has(member.role) && ON_STAGE.has(before.role)) {
      announce(`${nameOf(member.username)} moved to the audience.`);
    } else if (isMe && member.muted && !before.muted) {
      announce('You are muted.');
    }
    if (isMe) you = { ...you, role: member.role };
    reconcile();
    render();
    if (isMe && before && before.role !== member.role) extras.refreshRole();
  }

  function applyLevels(levels) {
    const loud = Object.entries(levels || {}).filter(([, level]) => level > SPEAKING_THRESHOLD);
    markSpeaking(loud.map(([username]) => username));
  }

  function markSpeaking(usernames) {
    const now = performance.now();
    for (const username of usernames) {
      const wasSpeaking = (speakingUntil.get(username) || 0) > now;
      speakingUntil.set(username, now + SPEAKING_HOLD_MS);
      if (!wasSpeaking) maybeAnnounceSpeaker(username, now);
    }
    renderSpeaking();
  }

  /** Read speaking levels from the WebRTC audio while we listen over WebRTC. */
  function followAudioLevels() {
    const receiver = audioStatus === 'listening' && !disposed ? roomAudio.listeningReceiver() : null;
    if (csrcWatch && csrcWatch.receiver === receiver) return;
    if (csrcWatch) csrcWatch.stop();
    csrcWatch = null;
    setLevelsSource('websocket');
    if (!receiver) return;
    csrcWatch = new ContributingSources({
      receiver,
      nameOf: (csrc) => {
        for (const member of members.values()) if (member.csrc === csrc) return member.username;
        return null;
      },
      onSpeaking: markSpeaking,
      onFirstSource: () => setLevelsSource('audio'),
    });
  }

  function setLevelsSource(source) {
    if (levelsSource === source) return;
    levelsSource = source;
    stageList.dataset.levelsSource = source;
    sendLevelsSource();
  }

  // The node then sends this socket the room's state only, no `levels` (docs/API.md).
  function sendLevelsSource() {
    if (ws && ws.readyState === WebSocket.OPEN) {
      ws.send(JSON.stringify({ type: 'levels_source', source: levelsSource }));
    }
  }

  function maybeAnnounceSpeaker(username, now) {
    if (now - lastAnnounceAt < ANNOUNCE_GAP_MS) return;
    if (now - (lastAnnounced.get(username) || -Infinity) < ANNOUNCE_SAME_SPEAKER_MS) return;
    lastAnnounceAt = now;
    lastAnnounced.set(username, now);
    announce(`${nameOf(username)} is speaking`);
  }

  function isModerator() {
    return MODERATORS.has(myRole());
  }

  /** Start, switch or stop audio to match the room and our role. */
  function reconcile() {
    if (!room) return;
    const live = room.state === 'live' && !ended && !kickedMessage && !disposed;
    const role = myRole();
    const mine = myMember();
    const mode = !live ? 'off' : ON_STAGE.has(role) ? 'speak' : 'listen';
    roomAudio.update({
      mode,
      whepUrl: room.whep_url,
      whipUrl: room.whip_url,
      hlsUrl: room.hls_url,
      muted: mine ? Boolean(mine.muted) : true,
    });
  }

  // --- WebSocket --------------------------------------------------------------------------
  function wsUrl() {
    const path = (room && room.ws_url) || roomPath(roomId, '/ws');
    const url = new URL(path, location.href);
    if (url.protocol === 'https:') url.protocol = 'wss:';
    else if (url.protocol === 'http:') url.protocol = 'ws:';
    return url.href;
  }

  function connect() {
    if (disposed || kickedMessage) return;
    clearTimeout(wsTimer);
    connection = connection === 'open' ? 'reconnecting' : connection;
    renderStatus();
    let socket;
    try {
      socket = new WebSocket(wsUrl());
    } catch (err) {
      showError(err);
      scheduleReconnect();
      return;
    }
    ws = socket;
    let gotSnapshot = false;
    let refusal = null;
    socket.addEventListener('message', (event) => {
      if (ws !== socket) return;
      let msg;
      try {
        msg = JSON.parse(event.data);
      } catch {
        return;
      }
      if (msg.type === 'error') {
        // The node explains a refusal before closing with 4000 + HTTP status.
        refusal = msg.detail || msg.error || null;
        return;
      }
      if (msg.type === 'snapshot') {
        gotSnapshot = true;
        const wasReconnect = connection === 'reconnecting';
        connection = 'open';
        wsBackoff = WS_BACKOFF_MIN_MS;
        you = msg.you || null;
        setRoom(msg.room);
        if (wasReconnect) announce('Reconnected.');
        return;
      }
      if (msg.type === 'notifications' || msg.type === 'notification') {
        roomSocketCarries(msg); // your notifications ride this socket (notify.js)
        return;
      }
      handleMessage(msg);
    });
    socket.addEventListener('open', () => {
      if (levelsSource !== 'websocket') sendLevelsSource();
      clearInterval(pingTimer);
      pingTimer = setInterval(() => {
        if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: 'ping' }));
      }, WS_PING_MS);
    });
    socket.addEventListener('close', (event) => {
      if (ws !== socket) return;
      clearInterval(pingTimer);
      ws = null;
      roomSocketGone();
      if (disposed || kickedMessage) return;
      // Application close codes (4000-4999) carry a reason that will not go away by
      // retrying, e.g. blocked or not found.
      // 4001 means "reconnect and take a fresh snapshot" (e.g. we fell behind).
      if (event.code >= 4002 && event.code < 5000) {
        connection = 'closed';
        renderStatus();
        refused(refusal || event.reason || 'You cannot join this room.');
        return;
      }
      connection = 'reconnecting';
      renderStatus();
      scheduleReconnect();
    });
  }

  async function refused(message) {
    // Typically the room ended while we were away: show that rather than an error.
    try {
      setRoom(await get(roomPath(roomId)));
    } catch {
      // Keep the message below.
    }
    if (!ended) showError(message);
    else render();
  }

  function scheduleReconnect() {
    if (disposed) return;
    const delay = wsBackoff;
    wsBackoff = Math.min(wsBackoff * 2, WS_BACKOFF_MAX_MS);
    clearTimeout(wsTimer);
    wsTimer = setTimeout(connect, delay);
  }

  function handleMessage(msg) {
    switch (msg.type) {
      case 'member':
        if (msg.member) applyMember(msg.member);
        break;
      case 'member_left':
        members.delete(msg.username);
        hands = hands.filter((u) => u !== msg.username);
        render();
        break;
      case 'room':
        if (msg.room) {
          const wasLive = room && room.state === 'live';
          setRoom(msg.room);
          if (!wasLive && room.state === 'live') announce('The room is live.');
          if (room.state === 'ended') announce('This room has ended.');
        }
        break;
      case 'carriage':
        // Who carries the room changed (a server stopped carrying it: FEDERATION.md
        // "Operators and survival").
        if (room && msg.carriage) {
          Object.assign(room, msg.carriage);
          render();
        }
        break;
      case 'levels':
        if (levelsSource === 'websocket') applyLevels(msg.levels);
        break;
      case 'listeners':
        if (room) {
          room.listener_count = msg.count;
          renderListeners();
        }
        break;
      case 'kicked':
        if (msg.username === myUsername()) {
          kickedMessage = msg.blocked
            ? 'You were removed from this room and blocked from rejoining.'
            : 'You were removed from this room.';
          roomAudio.close();
          if (ws) ws.close();
          showError(kickedMessage);
          render();
        } else {
          members.delete(msg.username);
          hands = hands.filter((u) => u !== msg.username);
          render();
        }
        break;
      default:
        extras.handle(msg); // reactions, comments, the host away (room-extras.js)
        break;
    }
  }

  // --- rendering --------------------------------------------------------------------------
  function initials(member) {
    const name = (displayName(member) || '?').trim();
    const parts = name.split(/\s+/).filter(Boolean);
    const letters = parts.length > 1 ? parts[0][0] + parts[1][0] : name.slice(0, 2);
    return letters.toUpperCase();
  }

  function avatar(member, size) {
    // A visitor's or a remote person's picture comes through this node (never from their
    // server directly: listeners' addresses stay here).
    if (member.avatar_url) {
      return h(`img.avatar.${size}`, {
        src: member.avatar_url,
        alt: '',
        loading: 'lazy',
        dataset: { speaker: member.username },
      });
    }
    return h(
      `span.avatar.${size}`,
      { 'aria-hidden': 'true', dataset: { speaker: member.username } },
      initials(member),
    );
  }

  function handleLabel(member) {
    if (!member.username || !member.username.includes('@')) return [];
    return [`@${member.username}`, ...(member.visitor ? ['visitor'] : [])];
  }

  /** `@user@server` under the name of someone not of this node, so hosts see who and
   * where; a visitor's says they proved it to this node (or to the node that vouches). */
  function handleLine(member) {
    if (!member.username || !member.username.includes('@')) return null;
    const via = member.visitor
      ? `verified by ${member.verified_by || location.host}`
      : null;
    return h(
      'span.member-handle',
      {},
      `@${member.username}`,
      via ? h('span.visually-hidden', {}, `, ${via}`) : null,
    );
  }

  function memberMenu(member) {
    const role = myRole();
    if (!MODERATORS.has(role) || member.username === myUsername()) return null;
    if (member.role === 'host') return null;
    if (member.role === 'cohost' && role !== 'host') return null;
    const name = nameOf(member.username);
    const live = room.state === 'live';
    const buttons = [];
    const btn = (label, aria, action, cls = '') =>
      h(
        `button.button.small${cls}`,
        {
          type: 'button',
          'aria-label': aria,
          onclick: (event) => {
            // Close the menu and return focus to its toggle before acting.
            const menu = event.currentTarget.closest('details');
            openMenus.delete(member.username);
            if (menu) {
              menu.open = false;
              const summary = menu.querySelector('summary');
              if (summary) summary.focus();
            }
            action();
          },
        },
        label,
      );
    if (!ON_STAGE.has(member.role) && live && !member.invited) {
      buttons.push(btn('Invite to speak', `Invite ${name} to speak`, () => actions.invite(member.username)));
    }
    if (ON_STAGE.has(member.role) && !member.muted) {
      buttons.push(btn('Mute', `Mute ${name}`, () => actions.muteMember(member.username)));
    }
    if (role === 'host' && member.role !== 'cohost') {
      buttons.push(
        btn('Make cohost', `Make ${name} a cohost`, () => actions.setRole(member.username, 'cohost')),
      );
    }
    if (role === 'host' && member.role === 'cohost') {
      buttons.push(
        btn('Make speaker', `Make ${name} a speaker`, () => actions.setRole(member.username, 'speaker')),
      );
    }
    if (ON_STAGE.has(member.role)) {
      buttons.push(
        btn('Move to audience', `Move ${name} to the audience`, () =>
          actions.setRole(member.username, 'listener'),
        ),
      );
    }
    buttons.push(btn('Remove', `Remove ${name} from the room`, () => actions.remove(member.username, false), '.danger-ghost'));
    buttons.push(btn('Block', `Block ${name}`, () => actions.remove(member.username, true), '.danger'));
    const details = h(
      'details.member-menu',
      { open: openMenus.has(member.username) },
      h('summary', { 'aria-label': `Manage ${name}` }, 'Manage'),
      h('div.member-menu-body', {}, buttons),
    );
    details.addEventListener('toggle', () => {
      if (details.open) openMenus.add(member.username);
      else openMenus.delete(member.username);
    });
    details.dataset.focusKey = `menu:${member.username}`;
    return details;
  }

  function stageCard(member) {
    const isMe = member.username === myUsername();
    const name = displayName(member);
    const labels = [name, ...handleLabel(member), ROLE_LABEL[member.role]];
    if (member.muted) labels.push('muted');
    if (!member.connected) labels.push('away');
    return h(
      'li.stage-card',
      { dataset: { username: member.username }, 'aria-label': labels.join(', ') },
      h(
        'div.avatar-wrap',
        {},
        avatar(member, 'lg'),
        member.muted ? h('span.mic-off', { title: 'Muted', 'aria-hidden': 'true' }, micOffIcon()) : null,
      ),
      h('span.member-name', {}, name, isMe ? h('span.you', {}, 'you') : null),
      handleLine(member),
      h(`span.role-badge.role-${member.role}`, {}, ROLE_LABEL[member.role]),
      memberMenu(member),
    );
  }

  function audienceCard(member) {
    const isMe = member.username === myUsername();
    const name = displayName(member);
    const labels = [name, ...handleLabel(member)];
    if (member.hand_raised) labels.push('hand raised');
    if (member.invited) labels.push('invited to speak');
    return h(
      'li.audience-card',
      { dataset: { username: member.username }, 'aria-label': labels.join(', ') },
      h(
        'div.avatar-wrap',
        {},
        avatar(member, 'md'),
        member.hand_raised ? h('span.hand', { 'aria-hidden': 'true', title: 'Hand raised' }, icon(HAND_ICON, 14)) : null,
      ),
      h('span.member-name', {}, name, isMe ? h('span.you', {}, 'you') : null),
      handleLine(member),
      member.invited ? h('span.role-badge.role-invited', {}, 'Invited') : null,
      memberMenu(member),
    );
  }

  function micOffIcon() {
    return icon(
      'M19 11a7 7 0 0 1-1.2 3.9l-1.5-1.5c.4-.7.7-1.5.7-2.4h2zM15 11V5a3 3 0 0 0-5.9-.8L15 10.1V11zM4.3 3 3 4.3l6 6V11a3 3 0 0 0 4.4 2.7l1.6 1.6A5 5 0 0 1 7 11H5a7 7 0 0 0 6 6.9V21h2v-3.1c1-.1 1.9-.5 2.8-1L19.7 21l1.3-1.3L4.3 3z',
    );
  }

  function handRow(username) {
    const name = nameOf(username);
    const m = members.get(username);
    const live = room.state === 'live';
    return h(
      'li.hand-row',
      { dataset: { username } },
      h('span.member-name', {}, icon(HAND_ICON, 14), ' ', name),
      h(
        'span.hand-actions',
        {},
        m && m.invited
          ? h('span.role-badge.role-invited', {}, 'Invited')
          : h(
              'button.button.small.primary',
              {
                type: 'button',
                'aria-label': `Invite ${name} to speak`,
                disabled: !live,
                onclick: () => actions.invite(username),
              },
              'Invite to speak',
            ),
        h(
          'button.button.small.ghost',
          {
            type: 'button',
            'aria-label': `Lower ${name}’s hand`,
            onclick: () => actions.lowerOthersHand(username),
          },
          'Lower hand',
        ),
      ),
    );
  }

  function controlButton(label, onclick, cls = '', attrs = {}) {
    return h(`button.button${cls}`, { type: 'button', onclick, ...attrs }, label);
  }

  function renderControls() {
    const role = myRole();
    const mine = myMember();
    const live = room.state === 'live' && !ended && !kickedMessage;
    const items = [];
    if (live && mine && ON_STAGE.has(role)) {
      items.push(
        mine.muted
          ? controlButton('Unmute', () => actions.setMuted(false), '.primary.mic', {
              'aria-label': 'Unmute microphone',
              dataset: { focusKey: 'mic' },
            })
          : controlButton('Mute', () => actions.setMuted(true), '.mic.on', {
              'aria-label': 'Mute microphone',
              dataset: { focusKey: 'mic' },
            }),
      );
      if (role !== 'host') {
        items.push(controlButton('Leave stage', actions.leaveStage, '', { dataset: { focusKey: 'leave-stage' } }));
      }
    } else if (live && mine && !mine.invited) {
      items.push(
        mine.hand_raised
          ? controlButton('Lower hand', actions.lowerHand, '', { dataset: { focusKey: 'hand' } })
          : controlButton('Raise hand', actions.raiseHand, '.primary', { dataset: { focusKey: 'hand' } }),
      );
    } else if (live && !me && !visitor) {
      items.push(
        h(
          'a.button',
          { href: `/login?next=${encodeURIComponent(location.pathname)}`, 'data-link': true },
          'Log in to speak',
        ),
      );
      if (joinEl.hidden && !kickedMessage) {
        items.push(
          controlButton(
            'Join with your fediverse account',
            () => {
              joinDismissed = false;
              render();
              const input = joinEl.querySelector('.visitor-join input');
              if (input) input.focus();
            },
            '',
            { dataset: { focusKey: 'visitor-join' } },
          ),
        );
      }
    }
    items.push(controlButton('Share link', actions.share, '', { dataset: { focusKey: 'share' } }));
    items.push(controlButton('Leave room', actions.leaveRoom, '.danger-ghost', { dataset: { focusKey: 'leave' } }));
    controls.replaceChildren(...items);

    // Invitation banner.
    if (live && mine && mine.invited && !ON_STAGE.has(role)) {
      inviteEl.hidden = false;
      inviteEl.replaceChildren(
        h('p', {}, 'You are invited to speak. You will join the stage muted.'),
        h(
          'div.row',
          {},
          controlButton('Accept', () => actions.answer(true), '.primary', {
            'aria-label': 'Accept invitation to speak',
            dataset: { focusKey: 'accept' },
          }),
          controlButton('Decline', () => actions.answer(false), '', {
            'aria-label': 'Decline invitation to speak',
            dataset: { focusKey: 'decline' },
          }),
        ),
      );
    } else {
      inviteEl.hidden = true;
      inviteEl.replaceChildren();
    }

    // Room controls for the host.
    const host = role === 'host' && !kickedMessage;
    const hostItems = [];
    if (host && room.state === 'scheduled') {
      hostItems.push(controlButton('Go live', actions.goLive, '.primary', { dataset: { focusKey: 'go-live' } }));
    }
    if (host && room.state === 'live') {
      hostItems.push(controlButton('End room', actions.endRoom, '.danger', { dataset: { focusKey: 'end' } }));
    }
    hostControls.hidden = hostItems.length === 0;
    hostControls.replaceChildren(...hostItems);
  }

  function renderListeners() {
    const n = (room && room.listener_count) || 0;
    listenersEl.replaceChildren(
      icon('M12 3a9 9 0 0 0-9 9v7a2 2 0 0 0 2 2h2v-8H5v-1a7 7 0 0 1 14 0v1h-2v8h2a2 2 0 0 0 2-2v-7a9 9 0 0 0-9-9z', 16),
      ` ${n} listening`,
    );
    listenersEl.setAttribute('aria-label', `${n} ${n === 1 ? 'listener' : 'listeners'}`);
  }

  function renderStatus() {
    // "Listening…" only when the browser really plays (playback.js); when it refuses, say so
    // and show the one button that starts the sound, on every path (guest, signed in,
    // relayed room, after a reconnect).
    const playback = output.playback.state;
    const live = room && room.state === 'live' && !ended && !kickedMessage;
    const blocked = Boolean(live) && playback === 'blocked';
    if (!room) {
      statusEl.textContent = connection === 'reconnecting' ? 'Reconnecting…' : 'Connecting…';
      latencyEl.hidden = true;
      return;
    }
    let text = '';
    if (statusEl.dataset.flash) text = statusEl.dataset.flash;
    else if (kickedMessage) text = kickedMessage;
    else if (ended) text = endedText();
    else if (connection === 'reconnecting') text = 'Connection lost. Reconnecting…';
    else if (connection === 'closed') text = 'Disconnected.';
    else if (room.state === 'scheduled') {
      text = myRole() === 'host' ? 'Not live yet. Go live when you are ready.' : 'This room has not started yet.';
    } else if (blocked) {
      text = 'Your browser is holding back the sound. Press “Start listening” to hear the room.';
    } else if (audioStatus === 'connecting') text = 'Connecting audio…';
    else if (audioStatus === 'reconnecting') text = 'Audio interrupted. Reconnecting…';
    else if (audioStatus === 'error') text = 'No audio. Retrying…';
    else if (playback !== 'playing') text = 'Starting audio…';
    else if (audioStatus === 'speaking') {
      const mine = myMember();
      text = mine && mine.muted ? 'You are on stage, muted.' : 'You are on stage. Your mic is on.';
    } else if (audioStatus === 'listening') text = listeningText();
    if (statusEl.textContent !== text) statusEl.textContent = text;
    renderLatency(text === listeningText());
    resumeButton.hidden = !blocked;
    statusEl.classList.toggle(
      'warn',
      blocked || connection === 'reconnecting' || audioStatus === 'reconnecting',
    );
  }

  /** Why the room is over here: its host ended it, or a server's moderators stopped it. */
  function endedText() {
    const by = room && room.ended_by;
    if (by && by.by === 'operator') {
      // `node` is host[:port] of the server whose moderators stopped it.
      const where = by.node && by.node !== location.host ? by.node : 'this server';
      return `The moderators of ${where} stopped this room here${by.reason ? `: ${by.reason}` : '.'}`;
    }
    return 'This room has ended.';
  }

  /** Which way the room reaches us. */
  function listeningText() {
    return roomAudio.transport === 'hls'
      ? 'Listening over HLS (a cache or CDN serves it).'
      : 'Listening over WebRTC.';
  }

  /** How far behind the room we hear it, while we listen (outside the live region). */
  function renderLatency(listening) {
    const latency = listening ? roomAudio.latency() : null;
    const text = latency === null ? '' : `${latency.toFixed(1)} s behind`;
    if (latencyEl.textContent !== text) latencyEl.textContent = text;
    latencyEl.hidden = !text;
  }

  function renderSpeaking() {
    const now = performance.now();
    for (const el of main.querySelectorAll('.avatar[data-speaker]')) {
      const speaking = (speakingUntil.get(el.dataset.speaker) || 0) > now;
      el.classList.toggle('speaking', speaking);
    }
  }

  function render() {
    if (!room || disposed) return;
    // Keep keyboard focus across re-renders: remember what the focused control was.
    const focusKey = focusKeyOf(document.activeElement);
    setTitle(room.title);
    titleEl.textContent = room.title;
    descEl.textContent = room.description || '';
    descEl.hidden = !room.description;
    const hostName = room.host ? room.host.display_name || room.host.username : '';
    hostEl.textContent = hostName ? `Hosted by ${hostName}` : '';
    const stateText = ended ? 'Ended' : room.state === 'live' ? 'Live' : 'Scheduled';
    stateEl.textContent = stateText;
    stateEl.className = `state-badge state-${ended ? 'ended' : room.state}`;
    renderListeners();
    if (room.listen_url) {
      playerLink.href = room.listen_url;
      playerLink.hidden = room.state !== 'live' || ended;
    } else {
      playerLink.hidden = true;
    }
    playerLink.parentElement.hidden = playerLink.hidden;

    const relayedFrom = room.remote && room.origin ? hostOf(room.origin) : null;
    originEl.hidden = !relayedFrom;
    originEl.textContent = relayedFrom ? `on ${relayedFrom}` : '';
    joinEl.hidden =
      Boolean(me) || Boolean(visitor) || joinDismissed || ended || Boolean(kickedMessage) || room.state !== 'live';

    const stops = (!ended && !kickedMessage && Array.isArray(room.stopped) && room.stopped) || [];
    stoppedEl.hidden = !stops.length;
    stoppedEl.textContent = stops
      .map((stop) => `The moderators of ${hostOf(stop.node)} stopped carrying this room there${stop.reason ? ` (${stop.reason})` : ''}; it goes on here.`)
      .join(' ');
    endedEl.hidden = !ended && !kickedMessage;
    if (ended || kickedMessage) {
      const carriedOn = ((!kickedMessage && room.ended_by && room.ended_by.carried_on) || [])
        .filter((url) => /^https?:\/\//.test(url));
      endedEl.replaceChildren(
        ...[
        h('p', {}, kickedMessage || endedText()),
        carriedOn.length
          ? h(
            'p',
            {},
            'It may go on elsewhere: ',
            carriedOn.flatMap((url, i) => [i ? ', ' : '', h('a', { href: url, rel: 'noopener' }, hostOf(url))]),
            '.',
          )
          : null,
        h('a.button', { href: '/', 'data-link': true }, 'Find other rooms'),
        ].filter(Boolean),
      );
    }

    const all = [...members.values()];
    const stage = all
      .filter((m) => ON_STAGE.has(m.role))
      .sort((a, b) => roleOrder(a.role) - roleOrder(b.role) || a.username.localeCompare(b.username));
    const audience = all
      .filter((m) => !ON_STAGE.has(m.role))
      .sort((a, b) => Number(b.hand_raised) - Number(a.hand_raised) || a.username.localeCompare(b.username));
    stageList.replaceChildren(...stage.map(stageCard));
    if (!stage.length) stageList.append(h('li.empty', {}, 'Nobody is on stage.'));
    audienceList.replaceChildren(...audience.map(audienceCard));
    const guests = Math.max(0, ((room && room.listener_count) || 0) - audience.length);
    audienceHeading.textContent = `Audience (${audience.length})`;
    if (!audience.length) {
      audienceList.append(
        h('li.empty', {}, guests ? 'Only guests are listening.' : 'Nobody in the audience yet.'),
      );
    }

    const moderator = isModerator() && !kickedMessage;
    const queue = hands.filter((u) => members.has(u));
    handsSection.hidden = !moderator;
    handsList.replaceChildren(...queue.map(handRow));
    if (!queue.length) handsList.append(h('li.empty', {}, 'No raised hands.'));

    const mine = myMember();
    const live = room.state === 'live' && !ended && !kickedMessage;
    const onStage = live && ON_STAGE.has(myRole());
    mic.update({
      canSpeak: Boolean(live && mine && (onStage || mine.invited)),
      onStage,
      muted: mine ? Boolean(mine.muted) : true,
    });
    if (!live || !mine || !(onStage || mine.invited)) stopPreview();

    renderControls();
    renderStatus();
    renderSpeaking();

    if (focusKey) restoreFocus(focusKey);
  }

  function focusKeyOf(el) {
    if (!el || !main.contains(el) || el === main) return null;
    if (el.tagName === 'SUMMARY') {
      const menu = el.closest('[data-focus-key]');
      return menu ? `summary:${menu.dataset.focusKey}` : null;
    }
    if (el.dataset.focusKey) return `key:${el.dataset.focusKey}`;
    if (el.getAttribute('aria-label')) return `label:${el.getAttribute('aria-label')}`;
    if (el.matches('button, a')) return `text:${el.textContent}`;
    return null;
  }

  function restoreFocus(focusKey) {
    const [kind, ...rest] = focusKey.split(':');
    const value = rest.join(':');
    let target = null;
    if (kind === 'summary') {
      const menu = main.querySelector(`[data-focus-key="${CSS.escape(value)}"]`);
      target = menu && menu.querySelector('summary');
    } else if (kind === 'key') {
      target = main.querySelector(`[data-focus-key="${CSS.escape(value)}"]`);
    } else if (kind === 'label') {
      target = [...main.querySelectorAll('button[aria-label], a[aria-label], summary[aria-label]')]
        .find((el) => el.getAttribute('aria-label') === value);
    } else if (kind === 'text') {
      target = [...main.querySelectorAll('button, a')].find((el) => el.textContent === value);
    }
    // The control disappeared (e.g. Accept became Unmute): keep focus in the toolbar
    // rather than dropping it to <body>.
    if (!target && (document.activeElement === document.body || !document.activeElement)) {
      target = inviteEl.hidden ? controls.querySelector('button, a') : inviteEl.querySelector('button');
    }
    if (target && target !== document.activeElement) target.focus({ preventScroll: true });
  }

  function roleOrder(role) {
    return { host: 0, cohost: 1, speaker: 2 }[role] ?? 3;
  }

  // --- start ------------------------------------------------------------------------------
  try {
    const initial = await get(roomPath(roomId));
    setRoom(initial);
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) {
      main.replaceChildren(
        h('h1', {}, 'Room not found'),
        h('p', {}, 'It may have been removed, or the link is wrong. '),
        h('a.button', { href: '/', 'data-link': true }, 'See live rooms'),
      );
      showError(err);
      return () => {};
    }
    showError(err);
  }
  renderStatus();
  connect();

  const speakingTimer = setInterval(renderSpeaking, 250);
  // The latency shown with the listening mode: WebRTC's comes from the RTP stats.
  const latencyTimer = setInterval(() => {
    if (audioStatus === 'listening') roomAudio.stats().then(renderStatus, () => {});
  }, 1000);
  const onPageHide = () => roomAudio.close();
  window.addEventListener('pagehide', onPageHide);
  // Resuming audio needs a user gesture when autoplay is blocked; any click will do.
  const onFirstGesture = () => {
    if (output.playback.state === 'blocked') output.resume().then(renderStatus);
  };
  document.addEventListener('click', onFirstGesture, true);

  return function dispose() {
    disposed = true;
    stopVisitorChannel();
    roomSocketGone();
    extras.dispose();
    clearTimeout(wsTimer);
    clearInterval(pingTimer);
    clearInterval(speakingTimer);
    if (csrcWatch) csrcWatch.stop();
    clearInterval(latencyTimer);
    clearTimeout(flashTimer);
    window.removeEventListener('pagehide', onPageHide);
    document.removeEventListener('click', onFirstGesture, true);
    if (ws) {
      const socket = ws;
      ws = null;
      socket.close(1000, 'left');
    }
    roomAudio.close();
    output.close();
    stopPreview();
    mic.dispose();
    if (window.parley && window.parley.level) delete window.parley;
  };
}
