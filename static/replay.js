// The replay page of a recorded room: the recording in an <audio> element (the browser
// seeks with HTTP Range), a download link, the end-of-room summary, the comments, and
// "Delete recording" for the host. Playback follows the page's own rules: the play
// button is the browser's, so nothing claims to be playing while it is not.

import { announce, h, showError } from './ui.js';
import { del, get, roomPath } from './api.js';

export async function renderReplay(main, roomId, { setTitle, me, navigate }) {
  const room = await get(roomPath(roomId));
  setTitle(`Replay: ${room.title}`);
  let info = null;
  try {
    info = await get(roomPath(roomId, '/recording'));
  } catch {
    info = null;
  }
  const head = h('div.page-head', {}, h('h1', {}, `Replay: ${room.title}`));
  main.append(head);
  if (!info) {
    main.append(h('p', {}, 'This room has no recording (it was not recorded, or its host deleted it).'));
    return;
  }
  const audio = h('audio.replay-audio', { controls: true, preload: 'metadata', src: info.recording_url });
  const minutes = Math.floor(info.duration / 60), seconds = Math.round(info.duration % 60);
  main.append(
    h('p.muted', {}, `Hosted by ${room.host ? room.host.display_name || room.host.username : '?'} · ${minutes}:${String(seconds).padStart(2, '0')} · ${(info.bytes / 1e6).toFixed(1)} MB`),
    audio,
    h('div.row', {},
      h('a.button', { href: info.download_url }, 'Download (Ogg/Opus)'),
      h('a.button.ghost', { href: `/rooms/${encodeURIComponent(roomId)}`, 'data-link': true }, 'Room page and summary'),
    ),
  );
  if (me && room.host && me.username === room.host.username) {
    main.append(
      h('button.button.danger', { type: 'button', onclick: async () => {
        if (!window.confirm('Delete this recording for everyone? Its post is deleted too.')) return;
        try {
          await del(roomPath(roomId, '/recording'));
          announce('Recording deleted.');
          navigate(`/rooms/${encodeURIComponent(roomId)}`);
        } catch (err) {
          showError(err);
        }
      } }, 'Delete recording'),
    );
  }
  window.parley = { ...(window.parley || {}), replay: audio };
}
