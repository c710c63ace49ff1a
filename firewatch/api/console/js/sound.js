// The fire alarm sound: beeps generated with WebAudio (no audio file to download). Browsers
// start audio only after a user gesture, so the header's sound button (or any click after a
// reload, when sound was on before) unlocks it; until then the button says sound is off.

const KEY = "firewatch.sound";
let ctx = null;
let wanted = false;
try {
  wanted = localStorage.getItem(KEY) === "on";
} catch {
  wanted = false;
}
const listeners = new Set();

function notify() {
  for (const fn of listeners) fn(state());
}

/** "on" (will sound), "blocked" (wanted, waiting for a click), or "off". */
export function state() {
  if (!wanted) return "off";
  return ctx && ctx.state === "running" ? "on" : "blocked";
}

export function onSoundChange(fn) {
  listeners.add(fn);
}

async function unlock() {
  if (!wanted) return;
  const Ctor = window.AudioContext || window.webkitAudioContext;
  if (!Ctor) return;
  if (!ctx) ctx = new Ctor();
  if (ctx.state !== "running") {
    try {
      await ctx.resume();
    } catch {
      // still blocked: the next gesture tries again
    }
  }
  notify();
}

// Any gesture may unlock a sound that was switched on before the page was reloaded.
for (const type of ["pointerdown", "keydown"]) {
  window.addEventListener(type, () => void unlock(), { capture: true, passive: true });
}

export async function toggle() {
  wanted = !wanted;
  try {
    localStorage.setItem(KEY, wanted ? "on" : "off");
  } catch {
    // not remembered across reloads
  }
  if (wanted) {
    await unlock();
    beep(1);
  } else {
    notify();
  }
}

/** `times` short 880/660 Hz beeps; silent unless sound is on. */
export function beep(times = 3) {
  if (state() !== "on") return;
  const start = ctx.currentTime + 0.02;
  for (let i = 0; i < times; i += 1) {
    const at = start + i * 0.45;
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    osc.type = "square";
    osc.frequency.setValueAtTime(880, at);
    osc.frequency.setValueAtTime(660, at + 0.18);
    // A short attack and release: a hard on/off clicks in the speakers.
    gain.gain.setValueAtTime(0.0001, at);
    gain.gain.exponentialRampToValueAtTime(0.25, at + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, at + 0.36);
    osc.connect(gain).connect(ctx.destination);
    osc.start(at);
    osc.stop(at + 0.4);
  }
}
