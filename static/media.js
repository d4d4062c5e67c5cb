// Room audio: WHEP to listen, WHIP to speak, one analysed output.
//
// Listening (WHEP): a recvonly transceiver; the node answers with its program mix.
// Speaking (WHIP): our mic on a sendrecv transceiver; the node sends back a mix without
// our own voice on that same transceiver, which a speaker plays *instead of* WHEP.
// Both are non-trickle: we wait for ICE gathering to finish and POST one complete offer.

import { ApiError } from './api.js';
import { HlsSession } from './hls-player.js';
import { Playback } from './playback.js';

const ICE_GATHERING_TIMEOUT_MS = 5000;
const FFT_SIZE = 8192;
// Below this (dBFS) the loudest FFT bin counts as silence for dominantFrequency().
const SILENCE_DB = -90;

export const VOICE_PROCESSING_KEY = 'parley.voiceProcessing';

export function voiceProcessingEnabled() {
  try {
    return localStorage.getItem(VOICE_PROCESSING_KEY) !== 'off';
  } catch {
    return true;
  }
}

export function setVoiceProcessing(on) {
  try {
    localStorage.setItem(VOICE_PROCESSING_KEY, on ? 'on' : 'off');
  } catch {
    // Private mode without storage: the toggle still applies to this page.
  }
}

// The microphone people picked in the room's microphone check (mic-check.js).
export const MIC_DEVICE_KEY = 'parley.micDevice';

export function chosenMicDevice() {
  try {
    return localStorage.getItem(MIC_DEVICE_KEY) || '';
  } catch {
    return '';
  }
}

export function chooseMicDevice(deviceId) {
  try {
    if (deviceId) localStorage.setItem(MIC_DEVICE_KEY, deviceId);
    else localStorage.removeItem(MIC_DEVICE_KEY);
  } catch {
    // Private mode without storage: the choice holds for this page.
  }
}

/** The microphone, with the chosen device and voice-processing setting. */
export async function openMicrophone() {
  const processing = voiceProcessingEnabled();
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    throw new Error('This browser cannot use a microphone here (it needs HTTPS).');
  }
  const device = chosenMicDevice();
  try {
    return await navigator.mediaDevices.getUserMedia({
      audio: {
        // `ideal`: a device that was unplugged falls back to the default one.
        ...(device ? { deviceId: { ideal: device } } : {}),
        echoCancellation: processing,
        noiseSuppression: processing,
        autoGainControl: processing,
      },
      video: false,
    });
  } catch (err) {
    if (err && err.name === 'NotAllowedError') {
      throw new DOMException(
        'Microphone access was refused. Allow it in the browser to speak.',
        'NotAllowedError',
      );
    }
    if (err && err.name === 'NotFoundError') {
      throw new Error('No microphone was found.');
    }
    throw err;
  }
}

function waitForIceGathering(pc) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    // A STUN server that never answers must not block joining forever: after the
    // timeout we send whatever candidates we have (host candidates come first).
    const timer = setTimeout(done, ICE_GATHERING_TIMEOUT_MS);
    function done() {
      clearTimeout(timer);
      pc.removeEventListener('icegatheringstatechange', check);
      resolve();
    }
    function check() {
      if (pc.iceGatheringState === 'complete') done();
    }
    pc.addEventListener('icegatheringstatechange', check);
  });
}

async function errorFromResponse(response) {
  let code;
  let detail;
  try {
    const data = await response.json();
    code = data.error;
    detail = data.detail;
  } catch {
    // Not JSON: fall back to the status text below.
  }
  return new ApiError(response.status, code, detail);
}

/**
 * One WHIP or WHEP session: an RTCPeerConnection negotiated by a single HTTP POST.
 * `kind` is "whep" (listen) or "whip" (speak; pass `track`).
 */
class HttpSession {
  constructor({ kind, url, iceServers, track = null, onStream, onFailed, onConnection }) {
    this.kind = kind;
    this.url = url;
    this.iceServers = iceServers || [];
    this.track = track;
    this.onStream = onStream;
    this.onFailed = onFailed;
    this.onConnection = onConnection;
    this.pc = null;
    this.sender = null;
    this.location = null;
    this.stream = null;
    this.closed = false;
  }

  async start() {
    const pc = new RTCPeerConnection({ iceServers: this.iceServers });
    this.pc = pc;
    pc.addEventListener('track', (event) => {
      const stream = event.streams && event.streams[0]
        ? event.streams[0]
        : new MediaStream([event.track]);
      this.stream = stream;
      if (!this.closed && this.onStream) this.onStream(stream);
    });
    pc.addEventListener('connectionstatechange', () => {
      if (this.closed) return;
      if (pc.connectionState === 'failed' && this.onFailed) this.onFailed(this);
      else if (this.onConnection) this.onConnection(pc.connectionState);
    });
    if (this.kind === 'whip') {
      const transceiver = pc.addTransceiver(this.track, { direction: 'sendrecv' });
      this.sender = transceiver.sender;
    } else {
      pc.addTransceiver('audio', { direction: 'recvonly' });
    }
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    await waitForIceGathering(pc);
    if (this.closed) throw new Error('cancelled');

    let response;
    try {
      response = await fetch(this.url, {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'Content-Type': 'application/sdp', Accept: 'application/sdp' },
        body: pc.localDescription.sdp,
      });
    } catch {
      throw new ApiError(0, 'network', 'Could not reach the server to connect audio.');
    }
    if (response.status !== 201 && response.status !== 200) {
      throw await errorFromResponse(response);
    }
    const location = response.headers.get('Location');
    this.location = location ? new URL(location, new URL(this.url, window.location.href)).href : null;
    const answer = await response.text();
    if (this.closed) {
      this.deleteResource();
      throw new Error('cancelled');
    }
    await pc.setRemoteDescription({ type: 'answer', sdp: answer });
  }

  deleteResource() {
    if (!this.location) return;
    const location = this.location;
    this.location = null;
    // keepalive lets the DELETE finish when the page is being closed.
    fetch(location, { method: 'DELETE', credentials: 'same-origin', keepalive: true }).catch(
      () => {},
    );
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    this.deleteResource();
    if (this.pc) {
      try {
        this.pc.close();
      } catch {
        // Already closed.
      }
    }
  }
}

/**
 * What the user hears: one <audio> element plus an AnalyserNode fed from the same
 * MediaStream. Chromium only delivers WebRTC audio into WebAudio when the stream is
 * also attached to a media element, so the element is always attached. Whether sound
 * really plays (autoplay may be refused) is `playback.state` (playback.js).
 */
export class AudioOutput {
  constructor(audioElement, { onPlayback } = {}) {
    this.audio = audioElement;
    this.playback = new Playback({ onChange: onPlayback });
    this.playback.addElement(audioElement);
    this.context = null;
    this.analyser = null;
    this.source = null;
    this.stream = null;
    this.element = null;
    this.freqData = new Float32Array(FFT_SIZE / 2);
    this.timeData = new Float32Array(FFT_SIZE);
  }

  ensureContext() {
    if (this.context) return;
    const Ctx = window.AudioContext || window.webkitAudioContext;
    this.context = new Ctx();
    this.analyser = this.context.createAnalyser();
    this.analyser.fftSize = FFT_SIZE;
    this.analyser.smoothingTimeConstant = 0.5;
    this.playback.addContext(this.context);
  }

  /** Play `stream` (or nothing when null). Returns false if autoplay was refused. */
  async attach(stream) {
    if (stream === this.stream) return true;
    this.stream = stream;
    if (this.element) {
      // An HLS session's element: it plays no more, so it holds nothing back either.
      this.playback.remove(this.element);
      this.element = null;
    }
    if (this.source) {
      try {
        this.source.disconnect();
      } catch {
        // Already disconnected.
      }
      this.source = null;
    }
    this.audio.srcObject = stream;
    this.playback.update();
    if (!stream) return true;
    this.ensureContext();
    // The analyser is not connected to the destination: the <audio> element plays the
    // sound, WebAudio only measures it (no double playback).
    this.source = this.context.createMediaStreamSource(stream);
    this.source.connect(this.analyser);
    return (await this.playback.start()) !== 'blocked';
  }

  /**
   * Play a media element (an HLS session's) instead of a stream: through WebAudio, to
   * the speakers and the analyser. Registered with `playback` like the <audio> element,
   * so the same honesty rules apply. Returns false if autoplay was refused.
   */
  async attachElement(element) {
    await this.attach(null);
    this.ensureContext();
    this.element = element;
    this.stream = element;
    this.source = this.context.createMediaElementSource(element);
    this.source.connect(this.analyser);
    this.source.connect(this.context.destination);
    this.playback.addElement(element);
    return (await this.playback.start()) !== 'blocked';
  }

  /** Start playback from a click handler (a user gesture) when the browser blocked it. */
  async resume() {
    return (await this.playback.unlock()) !== 'blocked';
  }

  /** Hz of the loudest FFT bin, or null when silent or nothing is playing. */
  dominantFrequency() {
    if (!this.analyser || !this.stream) return null;
    this.analyser.getFloatFrequencyData(this.freqData);
    let best = -Infinity;
    let bestIndex = -1;
    // Skip bin 0 (DC).
    for (let i = 1; i < this.freqData.length; i += 1) {
      if (this.freqData[i] > best) {
        best = this.freqData[i];
        bestIndex = i;
      }
    }
    if (bestIndex < 0 || !Number.isFinite(best) || best < SILENCE_DB) return null;
    return (bestIndex * this.context.sampleRate) / FFT_SIZE;
  }

  /** Loudest level (dBFS) within ±`widthHz` of `hz`; -Infinity when nothing plays. */
  energyAt(hz, widthHz = 15) {
    if (!this.analyser || !this.stream) return -Infinity;
    this.analyser.getFloatFrequencyData(this.freqData);
    const binHz = this.context.sampleRate / FFT_SIZE;
    const lo = Math.max(1, Math.floor((hz - widthHz) / binHz));
    const hi = Math.min(this.freqData.length - 1, Math.ceil((hz + widthHz) / binHz));
    let best = -Infinity;
    for (let i = lo; i <= hi; i += 1) best = Math.max(best, this.freqData[i]);
    return best;
  }

  /** RMS of the current output, 0..1. */
  level() {
    if (!this.analyser || !this.stream) return 0;
    this.analyser.getFloatTimeDomainData(this.timeData);
    let sum = 0;
    for (let i = 0; i < this.timeData.length; i += 1) sum += this.timeData[i] * this.timeData[i];
    return Math.min(1, Math.sqrt(sum / this.timeData.length));
  }

  close() {
    this.attach(null);
    this.playback.dispose();
    if (this.context) {
      this.context.close().catch(() => {});
      this.context = null;
      this.analyser = null;
    }
  }
}

/**
 * The room's audio, driven by `update({mode, ...})` where mode is "off", "listen" or
 * "speak". It keeps at most one session running and plays its stream on `output`.
 */
export class RoomAudio {
  constructor({ output, iceServers, onError, onStatus, onMicStream }) {
    this.output = output;
    this.iceServers = iceServers;
    this.onError = onError || (() => {});
    this.onStatus = onStatus || (() => {});
    // The microphone stream while speaking (null otherwise), for the level meter.
    this.onMicStream = onMicStream || (() => {});
    this.mode = 'off';
    this.urls = { whep: null, whip: null, hls: null };
    // How a listener hears the room: WebRTC unless the node sent us to HLS.
    this.transport = null;
    this.viaHls = false;
    this.rtcLatency = null;
    this.latencyTimer = null;
    this.session = null;
    this.micStream = null;
    this.muted = true;
    this.generation = 0;
    this.retryTimer = null;
    this.retryDelay = 1000;
    this.status = 'off';
  }

  setStatus(status) {
    this.status = status;
    this.onStatus(status);
  }

  /** Desired state; safe to call often, acts only on changes. */
  update({ mode, whepUrl, whipUrl, hlsUrl, muted }) {
    this.urls = { whep: whepUrl, whip: whipUrl, hls: hlsUrl || null };
    if (muted !== undefined) this.setMuted(muted);
    if (mode === this.mode) return;
    this.mode = mode;
    this.viaHls = false; // the node decides again at each start
    this.retryDelay = 1000;
    this.restart();
  }

  setMuted(muted) {
    this.muted = muted;
    if (this.micStream) {
      for (const track of this.micStream.getAudioTracks()) track.enabled = !muted;
    }
  }

  stopSession() {
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    if (this.session) {
      this.session.close();
      this.session = null;
    }
  }

  stopMic() {
    if (this.micStream) {
      for (const track of this.micStream.getTracks()) track.stop();
      this.micStream = null;
      this.onMicStream(null);
    }
  }

  async restart() {
    const generation = (this.generation += 1);
    this.stopSession();
    if (this.mode !== 'speak') this.stopMic();
    // Whatever played belonged to the closed session; measure nothing until the new
    // session's stream arrives (no stale frequencies for window.parley).
    this.output.attach(null);
    if (this.mode === 'off') {
      this.setStatus('off');
      return;
    }
    this.setStatus('connecting');
    try {
      let session;
      if (this.mode === 'speak') {
        if (!this.micStream) {
          this.micStream = await this.openMic();
          this.onMicStream(this.micStream);
        }
        if (generation !== this.generation) return;
        this.setMuted(this.muted);
        session = new HttpSession({
          kind: 'whip',
          url: this.urls.whip,
          iceServers: this.iceServers,
          track: this.micStream.getAudioTracks()[0],
          onStream: (stream) => this.play(stream, generation),
          onFailed: () => this.scheduleRetry(generation),
          onConnection: (state) => this.connectionChanged(state, generation),
        });
      } else if (this.viaHls) {
        session = new HlsSession({
          url: this.urls.hls,
          output: this.output,
          onFailed: () => this.scheduleRetry(generation),
        });
      } else {
        session = new HttpSession({
          kind: 'whep',
          url: this.urls.whep,
          iceServers: this.iceServers,
          onStream: (stream) => this.play(stream, generation),
          onFailed: () => this.scheduleRetry(generation),
          onConnection: (state) => this.connectionChanged(state, generation),
        });
      }
      this.session = session;
      await session.start();
      if (generation !== this.generation) return;
      this.transport = this.mode === 'speak' ? 'webrtc' : this.viaHls ? 'hls' : 'webrtc';
      this.retryDelay = 1000;
      // "listening"/"speaking" only once media flows (ICE and DTLS done), not at the answer;
      // over HLS once hls.js has the element. Whether the browser lets it sound is the
      // output's playback state (playback.js), not ours.
      if (session.pc) this.connectionChanged(session.pc.connectionState, generation);
      else this.setStatus('listening');
    } catch (err) {
      if (generation !== this.generation) return;
      if (err && err.message === 'cancelled') return;
      if (err instanceof ApiError && err.code === 'use_hls' && this.urls.hls && !this.viaHls) {
        this.viaHls = true; // the node has no WebRTC room for us: its HLS it is
        this.restart();
        return;
      }
      this.stopSession();
      this.setStatus('error');
      this.onError(err);
      // Permission problems do not fix themselves; network and server hiccups might.
      if (!(err instanceof DOMException && err.name === 'NotAllowedError')) {
        this.scheduleRetry(generation);
      }
    }
  }

  /** The peer connection's state: connected means audio can flow; disconnected is a gap. */
  connectionChanged(state, generation) {
    if (generation !== this.generation || this.mode === 'off') return;
    if (state === 'connected') this.setStatus(this.mode === 'speak' ? 'speaking' : 'listening');
    else if (state === 'disconnected' && this.status !== 'connecting') this.setStatus('reconnecting');
  }

  scheduleRetry(generation) {
    if (generation !== this.generation || this.mode === 'off') return;
    clearTimeout(this.retryTimer);
    const delay = this.retryDelay;
    this.retryDelay = Math.min(this.retryDelay * 2, 15000);
    this.setStatus('reconnecting');
    this.retryTimer = setTimeout(() => {
      if (generation === this.generation) this.restart();
    }, delay);
  }

  async play(stream, generation) {
    if (generation !== this.generation) return;
    // Whether the browser lets it sound is the output's playback state, not ours.
    await this.output.attach(stream);
  }

  async openMic() {
    return openMicrophone();
  }

  /** Voice processing or the device changed: swap in a new mic track, no renegotiation. */
  async reopenMic() {
    if (this.mode !== 'speak' || !this.micStream) return;
    const fresh = await this.openMic();
    const old = this.micStream;
    this.micStream = fresh;
    this.setMuted(this.muted);
    if (this.session && this.session.sender) {
      await this.session.sender.replaceTrack(fresh.getAudioTracks()[0]);
    }
    for (const track of old.getTracks()) track.stop();
    this.onMicStream(fresh);
  }

  /** Seconds behind the room: HLS from hls.js, WebRTC from the last stats() reading. */
  latency() {
    if (this.session instanceof HlsSession) return this.session.latency();
    return this.session ? this.rtcLatency : null;
  }

  /** The RTCRtpReceiver of the WebRTC listening session, or null (speaking, off). */
  listeningReceiver() {
    if (this.mode !== 'listen' || !this.session || !this.session.pc) return null;
    const [receiver] = this.session.pc.getReceivers();
    return receiver || null;
  }

  /** RTP counters of the running session, for diagnostics and tests. */
  async stats() {
    const result = {
      mode: this.mode,
      status: this.status,
      muted: this.muted,
      transport: this.session ? this.transport : null,
      latency: this.latency(),
    };
    const pc = this.session && this.session.pc;
    if (!pc) return result;
    result.connectionState = pc.connectionState;
    const report = await pc.getStats();
    report.forEach((entry) => {
      if (entry.type === 'candidate-pair' && entry.nominated && entry.currentRoundTripTime) {
        result.roundTrip = entry.currentRoundTripTime;
      }
      if (entry.type === 'inbound-rtp' && entry.kind === 'audio') {
        // Network half a round trip, plus what the jitter buffer holds.
        const buffered = entry.jitterBufferEmittedCount
          ? entry.jitterBufferDelay / entry.jitterBufferEmittedCount
          : 0;
        result.jitterBuffer = buffered;
        result.inbound = {
          packetsReceived: entry.packetsReceived,
          bytesReceived: entry.bytesReceived,
          audioLevel: entry.audioLevel,
        };
      } else if (entry.type === 'outbound-rtp' && entry.kind === 'audio') {
        result.outbound = { packetsSent: entry.packetsSent, bytesSent: entry.bytesSent };
      } else if (entry.type === 'media-source' && entry.kind === 'audio') {
        result.source = { audioLevel: entry.audioLevel };
      }
    });
    if (result.jitterBuffer !== undefined) {
      this.rtcLatency = result.jitterBuffer + (result.roundTrip || 0) / 2;
      result.latency = this.rtcLatency;
    }
    return result;
  }

  close() {
    this.mode = 'off';
    this.generation += 1;
    this.stopSession();
    this.stopMic();
    this.output.attach(null);
  }
}
