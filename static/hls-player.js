// Listening over HLS, for rooms whose node sends new web listeners there (the WHEP
// request answered 503 "use_hls": past [hls] after_listeners, or no media worker free).
//
// hls.js (npm, pinned in client/package-lock.json, copied as it ships into
// static/vendor/hls.mjs by `make`) plays the room's LL-HLS through Media Source
// Extensions; where the browser has no MSE but plays HLS itself (Safari on older iPhones)
// the <audio> element gets the playlist directly. The element plays through the page's
// AudioOutput, so the analyser sees what is heard, as with WebRTC.

const HLS_MODULE = '/static/vendor/hls.mjs';
const OPUS_IN_MP4 = 'audio/mp4; codecs="opus"';

let hlsModule = null;

async function loadHls() {
  if (!hlsModule) {
    hlsModule = import(HLS_MODULE).then(
      (module) => module.default,
      () => null,
    );
  }
  return hlsModule;
}

/** One HLS listening session: the same shape as media.js's WHEP session. */
export class HlsSession {
  constructor({ url, output, onFailed }) {
    this.url = url;
    this.output = output;
    this.onFailed = onFailed;
    this.hls = null;
    this.audio = null;
    this.pc = null; // no peer connection: stats() has nothing of RTP to report
    this.closed = false;
    this.kind = 'hls';
  }

  async start() {
    const audio = new Audio();
    // The playlist may live on a CDN: CORS lets the analyser read what plays.
    audio.crossOrigin = 'anonymous';
    audio.preload = 'auto';
    this.audio = audio;
    const Hls = await loadHls();
    if (this.closed) throw new Error('cancelled');
    const mse = Hls && Hls.isSupported() && this.mseCanPlayOpus();
    if (mse) {
      const hls = new Hls({ lowLatencyMode: true, backBufferLength: 4 });
      this.hls = hls;
      hls.on(Hls.Events.ERROR, (_event, data) => {
        if (data && data.fatal && !this.closed && this.onFailed) this.onFailed(this);
      });
      hls.loadSource(this.url);
      hls.attachMedia(audio);
    } else if (audio.canPlayType('application/vnd.apple.mpegurl')) {
      audio.src = this.url;
      audio.addEventListener('error', () => {
        if (!this.closed && this.onFailed) this.onFailed(this);
      });
    } else {
      throw new Error('This browser cannot play the room over HLS.');
    }
    return this.output.attachElement(audio);
  }

  mseCanPlayOpus() {
    const MS = window.ManagedMediaSource || window.MediaSource;
    return Boolean(MS && MS.isTypeSupported && MS.isTypeSupported(OPUS_IN_MP4));
  }

  /** Seconds behind the room's live edge, or null before playback started. */
  latency() {
    if (this.hls) {
      const value = this.hls.latency;
      return Number.isFinite(value) && value > 0 ? value : null;
    }
    // Native HLS: the playlist's EXT-X-PROGRAM-DATE-TIME dates the playing position.
    const audio = this.audio;
    if (audio && typeof audio.getStartDate === 'function') {
      const start = audio.getStartDate().getTime();
      if (Number.isFinite(start)) return (Date.now() - start) / 1000 - audio.currentTime;
    }
    return null;
  }

  deleteResource() {}

  close() {
    if (this.closed) return;
    this.closed = true;
    if (this.hls) this.hls.destroy();
    if (this.audio) {
      this.audio.pause();
      this.audio.removeAttribute('src');
      this.audio.load();
    }
  }
}
