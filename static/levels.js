// Who is speaking, read from the WebRTC audio itself.
//
// The node's mixer lists the speakers heard in each program packet as RTP contributing
// sources (CSRCs) and every member of the room JSON carries their `csrc`. A WebRTC
// listener's RTCRtpReceiver reports those sources (getContributingSources), so it knows who
// speaks with no message at all. Chromium gives each source the level of the whole
// packet (it does not implement the per-source levels of RFC 6465; the node sends them to
// browsers that do), so a source counts as speaking while it is listed: the node lists a
// speaker only above the speaking threshold (node/media/mixer.py SPEAKING_LEVEL).
//
// A listener hearing the room another way (Ogg, or speaking on stage, or a room this node
// relays from another: its packets carry no CSRCs) keeps the room WebSocket's `levels`.

/** Poll this often: the WebSocket sends levels four times a second. */
const POLL_MS = 100;
/** A source heard within this much of the newest audio frame is still speaking. */
const FRESH_MS = 300;

/**
 * Watches one RTCRtpReceiver and calls `onSpeaking([username, ...])` with the speakers it
 * hears, every poll; `onFirstSource()` once, when the audio first names a speaker (from
 * then on the audio is the source of truth). `nameOf(csrc)` maps a CSRC to a username.
 */
export class ContributingSources {
  constructor({ receiver, nameOf, onSpeaking, onFirstSource }) {
    this.receiver = receiver;
    this.nameOf = nameOf;
    this.onSpeaking = onSpeaking;
    this.onFirstSource = onFirstSource;
    this.seen = false;
    this.timer = setInterval(() => this.poll(), POLL_MS);
  }

  poll() {
    let sources;
    let newest = -Infinity;
    try {
      sources = this.receiver.getContributingSources();
      // Timestamps are compared with the newest frame's, never with a clock: browsers
      // have differed on the time base of RTCRtpContributingSource.timestamp.
      for (const s of this.receiver.getSynchronizationSources()) newest = Math.max(newest, s.timestamp);
    } catch {
      return; // the receiver's connection is closed
    }
    const speaking = [];
    for (const source of sources) newest = Math.max(newest, source.timestamp);
    for (const source of sources) {
      const username = this.nameOf(source.source);
      if (!username) continue;
      if (!this.seen) {
        this.seen = true;
        this.onFirstSource();
      }
      if (newest - source.timestamp <= FRESH_MS) speaking.push(username);
    }
    if (this.seen) this.onSpeaking(speaking);
  }

  stop() {
    clearInterval(this.timer);
    this.timer = null;
  }
}
