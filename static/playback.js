// Honest playback: whether the user really hears the room, as the browser reports it.
//
// Browsers refuse to start sound without a user gesture (Chromium's default autoplay
// policy: a room link opened in a new tab plays nothing until the page is clicked), and
// may pause an element later on. A page must never claim to be listening while silent, so
// every player (the WebRTC output in media.js, an Ogg or HLS player) hands its media
// element and, if it has one, its AudioContext to a `Playback`, and the page shows what
// `state` says:
//
//   idle      nothing to play right now (no source on any element)
//   starting  a play() is in flight, or an AudioContext was just asked to resume
//   playing   every element with a source is playing (its play() resolved, not paused)
//             and every AudioContext is "running"
//   blocked   the browser refused or paused playback (or keeps an AudioContext suspended,
//             even between two sources): show ONE obvious button whose click handler
//             calls `unlock()` (a user gesture is what the browser wants)
//
// Interface (small on purpose, for other players to plug into):
//   const playback = new Playback({ onChange(state) {} });
//   playback.addElement(audioElement); playback.addContext(audioContext);
//   await playback.start();    // after setting a source: try to play, no gesture needed
//   playback.unlock();         // from a click handler: play everything, resume contexts
//   playback.state;            // one of PLAYBACK
//   playback.remove(elementOrContext); playback.dispose();

export const PLAYBACK = Object.freeze({
  IDLE: 'idle',
  STARTING: 'starting',
  PLAYING: 'playing',
  BLOCKED: 'blocked',
});

// A suspended AudioContext whose resume() was asked for this recently counts as starting.
// Chromium leaves resume() pending (neither resolved nor rejected) until a user gesture,
// so a pending promise alone says nothing; the state must be re-read after this grace.
const RESUME_GRACE_MS = 600;

const ELEMENT_EVENTS = ['play', 'playing', 'pause', 'emptied', 'ended', 'loadstart', 'error'];

function hasSource(element) {
  // hls.js with a ManagedMediaSource (Safari) gives the element a <source> child, whose
  // URL becomes currentSrc only once the element has loaded it.
  return Boolean(
    element.srcObject ||
      element.currentSrc ||
      element.getAttribute('src') ||
      element.querySelector('source[src]'),
  );
}

function isRefusal(err) {
  // NotAllowedError: no user gesture (autoplay policy). AbortError means a newer load or
  // pause interrupted this play(): not a refusal, the newer call decides.
  return err && err.name === 'NotAllowedError';
}

export class Playback {
  constructor({ onChange } = {}) {
    this.onChange = onChange || (() => {});
    this.elements = new Map(); // element -> {pending, refused, off}
    this.contexts = new Map(); // context -> {resumeAskedAt, off}
    this.current = PLAYBACK.IDLE;
    this.graceTimer = null;
  }

  get state() {
    return this.current;
  }

  addElement(element) {
    if (this.elements.has(element)) return;
    const entry = { pending: 0, refused: false };
    const onEvent = (event) => {
      // The element started by itself (autoplay allowed) or was started from outside.
      if (event.type === 'play' || event.type === 'playing') entry.refused = false;
      if (event.type === 'emptied' || event.type === 'loadstart') entry.refused = false;
      this.update();
    };
    for (const name of ELEMENT_EVENTS) element.addEventListener(name, onEvent);
    entry.off = () => {
      for (const name of ELEMENT_EVENTS) element.removeEventListener(name, onEvent);
    };
    this.elements.set(element, entry);
    this.update();
  }

  addContext(context) {
    if (this.contexts.has(context)) return;
    const entry = { resumeAskedAt: -Infinity };
    const onState = () => this.update();
    context.addEventListener('statechange', onState);
    entry.off = () => context.removeEventListener('statechange', onState);
    this.contexts.set(context, entry);
    this.update();
  }

  remove(target) {
    const entry = this.elements.get(target) || this.contexts.get(target);
    if (!entry) return;
    entry.off();
    this.elements.delete(target);
    this.contexts.delete(target);
    this.update();
  }

  /** Try to play every element that has a source; no user gesture needed (may be refused). */
  async start() {
    const plays = [];
    for (const [context, entry] of this.contexts) {
      if (context.state === 'suspended') {
        entry.resumeAskedAt = performance.now();
        // Never awaited: without a gesture Chromium leaves this pending indefinitely.
        context.resume().catch(() => {});
      }
    }
    for (const [element, entry] of this.elements) {
      if (!hasSource(element)) continue;
      plays.push(this.playElement(element, entry));
    }
    this.update();
    await Promise.all(plays);
    return this.current;
  }

  /** Call from a user gesture (a click): the browser then allows sound. */
  unlock() {
    // Everything here starts synchronously inside the gesture's task.
    return this.start();
  }

  async playElement(element, entry) {
    entry.pending += 1;
    entry.refused = false;
    this.update();
    try {
      await element.play();
    } catch (err) {
      if (isRefusal(err)) entry.refused = true;
    } finally {
      entry.pending -= 1;
      this.update();
    }
  }

  compute() {
    const active = [...this.elements].filter(([element]) => hasSource(element));
    let starting = false;
    for (const [element, entry] of active) {
      if (entry.refused) return PLAYBACK.BLOCKED;
      if (entry.pending) starting = true;
      else if (element.paused) return PLAYBACK.BLOCKED;
    }
    const now = performance.now();
    for (const [context, entry] of this.contexts) {
      if (context.state === 'running' || context.state === 'closed') continue;
      if (now - entry.resumeAskedAt < RESUME_GRACE_MS) {
        starting = true;
        this.recheckIn(RESUME_GRACE_MS - (now - entry.resumeAskedAt) + 10);
      } else {
        // Also between two sources (a reconnect): the browser still holds the sound back.
        return PLAYBACK.BLOCKED;
      }
    }
    if (!active.length) return PLAYBACK.IDLE;
    return starting ? PLAYBACK.STARTING : PLAYBACK.PLAYING;
  }

  recheckIn(ms) {
    if (this.graceTimer) return;
    this.graceTimer = setTimeout(() => {
      this.graceTimer = null;
      this.update();
    }, ms);
  }

  update() {
    const next = this.compute();
    if (next === this.current) return;
    this.current = next;
    this.onChange(next);
  }

  dispose() {
    clearTimeout(this.graceTimer);
    for (const entry of [...this.elements.values(), ...this.contexts.values()]) entry.off();
    this.elements.clear();
    this.contexts.clear();
    this.current = PLAYBACK.IDLE;
  }
}
