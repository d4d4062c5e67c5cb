// "Your microphone": what someone who can speak sees before and while on stage.
//
// - A clear muted / live state: muted speakers are told nobody hears them (and when they
//   seem to talk anyway); unmuted ones that everyone does.
// - A microphone check: an input level meter fed by a clone of the microphone track (so it
//   moves while muted: the track sent to the room is disabled, the clone is not), and a
//   device picker whose choice is remembered (localStorage) and used by media.js.
// - The voice-processing switch (echo cancellation, noise suppression, auto gain).
// Listeners who are not invited see none of it.

import {
  chooseMicDevice,
  chosenMicDevice,
  setVoiceProcessing,
  voiceProcessingEnabled,
} from './media.js';
import { h } from './ui.js';

const METER_MS = 100;
// Above this level (0..1, from dBFS: 0 = -60 dB, 1 = 0 dB) a muted speaker is told they
// seem to be talking.
const TALKING_LEVEL = 0.45;
const TALKING_HOLD_MS = 1500;

/** The level (0..1) of an analyser's current input, on a -60..0 dBFS scale. */
function levelOf(analyser, buffer) {
  analyser.getFloatTimeDomainData(buffer);
  let sum = 0;
  for (let i = 0; i < buffer.length; i += 1) sum += buffer[i] * buffer[i];
  const rms = Math.sqrt(sum / buffer.length);
  if (rms <= 0) return 0;
  return Math.max(0, Math.min(1, (20 * Math.log10(rms) + 60) / 60));
}

/**
 * The panel. `onDeviceChange(deviceId)` and `onVoiceProcessing(on)` reopen the microphone;
 * `onCheck()` opens a preview stream for an invited listener (returns a MediaStream).
 * Returns {element, update(state), setStream(stream), dispose()}.
 */
export function micPanel({ onDeviceChange, onVoiceProcessing, onCheck, announce }) {
  let stream = null;
  let context = null;
  let analyser = null;
  let source = null;
  let clone = null;
  let timer = null;
  let state = { canSpeak: false, onStage: false, muted: true };
  let talkingSince = 0;
  const buffer = new Float32Array(2048);

  const stateEl = h('p.mic-state', { role: 'status' });
  const talkingEl = h('p.mic-talking', { hidden: true }, 'You seem to be talking, but you are muted.');
  const meter = h('meter.mic-meter', { id: 'mic-level', min: 0, max: 1, low: 0.25, high: 0.85, optimum: 0.5, value: 0 });
  const meterRow = h(
    'div.mic-meter-row',
    {},
    h('label', { for: 'mic-level' }, 'Input level'),
    meter,
  );
  const picker = h('select', { id: 'mic-device', name: 'mic-device' });
  picker.addEventListener('change', () => {
    chooseMicDevice(picker.value);
    if (announce) announce(`Microphone: ${picker.selectedOptions[0].textContent}.`);
    if (onDeviceChange) onDeviceChange(picker.value);
  });
  const checkButton = h(
    'button.button.small',
    {
      type: 'button',
      onclick: async () => {
        checkButton.disabled = true;
        try {
          setStream(await onCheck());
          await listDevices();
        } finally {
          checkButton.disabled = false;
        }
      },
    },
    'Check my microphone',
  );
  const vpToggle = h('input', {
    type: 'checkbox',
    id: 'voice-processing',
    role: 'switch',
    checked: voiceProcessingEnabled(),
    onchange: () => {
      setVoiceProcessing(vpToggle.checked);
      if (announce) announce(`Voice processing ${vpToggle.checked ? 'on' : 'off'}.`);
      if (onVoiceProcessing) onVoiceProcessing(vpToggle.checked);
    },
  });

  const element = h(
    'section.panel.mic-panel',
    { 'aria-labelledby': 'mic-h', hidden: true },
    h('h2', { id: 'mic-h' }, 'Your microphone'),
    stateEl,
    talkingEl,
    h(
      'div.mic-check',
      {},
      meterRow,
      h('div.field.mic-device', {}, h('label', { for: 'mic-device' }, 'Microphone'), picker),
      checkButton,
    ),
    h(
      'div.switch',
      {},
      vpToggle,
      h(
        'label',
        { for: 'voice-processing' },
        'Voice processing',
        h('small.hint.block', {}, 'Echo cancellation, noise suppression, auto gain'),
      ),
    ),
  );

  async function listDevices() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) return;
    const devices = (await navigator.mediaDevices.enumerateDevices()).filter(
      (d) => d.kind === 'audioinput',
    );
    const chosen = chosenMicDevice();
    const current = stream && stream.getAudioTracks()[0];
    const inUse = current && current.getSettings ? current.getSettings().deviceId : '';
    picker.replaceChildren(
      ...devices.map((d, i) =>
        h('option', { value: d.deviceId }, d.label || `Microphone ${i + 1}`),
      ),
    );
    picker.value = devices.some((d) => d.deviceId === chosen) ? chosen : inUse || '';
    picker.disabled = devices.length < 2 && Boolean(devices.length);
  }

  function stopMeter() {
    clearInterval(timer);
    timer = null;
    if (source) source.disconnect();
    source = null;
    if (clone) clone.stop();
    clone = null;
    meter.value = 0;
  }

  /** Meter this stream's microphone (null: none). */
  function setStream(next) {
    if (next === stream) return;
    stopMeter();
    stream = next;
    const track = stream && stream.getAudioTracks()[0];
    if (!track) return;
    if (!context) {
      const Ctx = window.AudioContext || window.webkitAudioContext;
      context = new Ctx();
      analyser = context.createAnalyser();
      analyser.fftSize = 2048;
    }
    if (context.state === 'suspended') context.resume().catch(() => {});
    clone = track.clone();
    clone.enabled = true;
    source = context.createMediaStreamSource(new MediaStream([clone]));
    source.connect(analyser);
    timer = setInterval(tick, METER_MS);
    listDevices();
  }

  function tick() {
    const level = levelOf(analyser, buffer);
    meter.value = level;
    const now = performance.now();
    if (state.onStage && state.muted && level > TALKING_LEVEL) {
      if (!talkingSince) talkingSince = now;
    } else {
      talkingSince = 0;
    }
    talkingEl.hidden = !(talkingSince && now - talkingSince > TALKING_HOLD_MS);
  }

  function update(next) {
    state = { ...state, ...next };
    element.hidden = !state.canSpeak;
    checkButton.hidden = state.onStage || !onCheck;
    let text = '';
    if (state.onStage) {
      text = state.muted
        ? 'You are muted. Nobody hears you; press Unmute to speak.'
        : 'Your microphone is on. Everyone in the room hears you.';
    } else if (state.canSpeak) {
      text = 'You are invited to speak. Check your microphone, then accept: you join muted.';
    }
    if (stateEl.textContent !== text) stateEl.textContent = text;
    element.classList.toggle('is-muted', state.onStage && state.muted);
    element.classList.toggle('is-live', state.onStage && !state.muted);
    if (!state.canSpeak) {
      setStream(null);
      talkingEl.hidden = true;
    }
  }

  return {
    element,
    update,
    setStream,
    dispose() {
      stopMeter();
      stream = null;
      if (context) context.close().catch(() => {});
      context = null;
    },
  };
}
