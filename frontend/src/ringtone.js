// The incoming-call ringtone, made with WebAudio (no audio file): two 0.4 s bursts of 440 + 480 Hz
// every 3 s. Browsers start an AudioContext "suspended" until the user has interacted with the
// page, so `unlock()` runs on the first click or key press; a ringtone that cannot play reports
// "blocked" (the incoming-call screen shows either way).

const CYCLE_S = 3.0;
const BURSTS = [[0, 0.4], [0.6, 1.0]];
const LEVEL = 0.18;

export class Ringtone {
  constructor() {
    this.context = null;
    this.nodes = null;
    this.timer = null;
    this.state = "off"; // off | playing | blocked | unsupported
  }

  _audioContext() {
    if (!this.context) {
      const Context = window.AudioContext || window.webkitAudioContext;
      if (!Context) {
        return null;
      }
      this.context = new Context();
    }
    return this.context;
  }

  /** Called on a user gesture: lets later ringtones play without one. */
  unlock() {
    const context = this._audioContext();
    if (context && context.state === "suspended") {
      context.resume().catch(() => {});
    }
  }

  /** Starts ringing (idempotent); returns the state: playing | blocked | unsupported. */
  start() {
    if (this.nodes) {
      return this.state;
    }
    const context = this._audioContext();
    if (!context) {
      this.state = "unsupported";
      return this.state;
    }
    const gain = context.createGain();
    gain.gain.value = 0;
    gain.connect(context.destination);
    const oscillators = [440, 480].map((frequency) => {
      const oscillator = context.createOscillator();
      oscillator.frequency.value = frequency;
      oscillator.connect(gain);
      oscillator.start();
      return oscillator;
    });
    this.nodes = { gain, oscillators };
    let next = context.currentTime + 0.05;
    const schedule = () => {
      // Keep one cycle scheduled ahead of the clock.
      while (next < context.currentTime + CYCLE_S) {
        for (const [on, off] of BURSTS) {
          gain.gain.setValueAtTime(LEVEL, next + on);
          gain.gain.setValueAtTime(0, next + off);
        }
        next += CYCLE_S;
      }
    };
    schedule();
    this.timer = window.setInterval(schedule, 1000);
    if (context.state === "suspended") {
      this.state = "blocked";
      context.resume().then(() => {
        if (this.nodes) {
          this.state = "playing";
        }
      }, () => {});
    } else {
      this.state = "playing";
    }
    return this.state;
  }

  stop() {
    if (this.timer !== null) {
      window.clearInterval(this.timer);
      this.timer = null;
    }
    if (this.nodes) {
      for (const oscillator of this.nodes.oscillators) {
        oscillator.stop();
        oscillator.disconnect();
      }
      this.nodes.gain.disconnect();
      this.nodes = null;
    }
    this.state = "off";
  }
}
