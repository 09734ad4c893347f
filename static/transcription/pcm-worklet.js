// AudioWorklet: microphone float32 at the context rate -> PCM16LE mono 16 kHz, ~100 ms frames.
// Resampling uses a windowed-sinc low-pass (cut-off below 8 kHz), not naive decimation.
const OUT_RATE = 16000;
const FRAME_SAMPLES = 1600; // 100 ms
const HALF_TAPS = 16;

class Resampler {
  constructor(inRate) {
    this.step = inRate / OUT_RATE;
    this.cutoff = Math.min(1, OUT_RATE / inRate) * 0.9; // fraction of the input Nyquist
    this.history = new Float32Array(0);
    this.pos = HALF_TAPS; // next output position, in input samples, within history
  }
  kernel(x) {
    if (x === 0) return this.cutoff;
    const a = Math.PI * x;
    const w = 0.5 + 0.5 * Math.cos(a / HALF_TAPS); // Hann window over +-HALF_TAPS
    return (Math.sin(a * this.cutoff) / a) * w;
  }
  push(input) {
    const buf = new Float32Array(this.history.length + input.length);
    buf.set(this.history); buf.set(input, this.history.length);
    const out = [];
    while (this.pos + HALF_TAPS < buf.length) {
      const centre = Math.floor(this.pos), frac = this.pos - centre;
      let acc = 0;
      for (let k = -HALF_TAPS + 1; k <= HALF_TAPS; k++) acc += buf[centre + k] * this.kernel(k - frac);
      out.push(acc);
      this.pos += this.step;
    }
    const keep = Math.floor(this.pos) - HALF_TAPS;
    this.history = buf.slice(keep);
    this.pos -= keep;
    return out;
  }
}

class PcmWorklet extends AudioWorkletProcessor {
  constructor() {
    super();
    this.resampler = sampleRate === OUT_RATE ? null : new Resampler(sampleRate);
    this.frame = new Int16Array(FRAME_SAMPLES);
    this.filled = 0;
    this.peak = 0;
  }
  process(inputs) {
    const channels = inputs[0];
    if (!channels || channels.length === 0) return true;
    const mono = new Float32Array(channels[0].length);
    for (const ch of channels) for (let i = 0; i < ch.length; i++) mono[i] += ch[i] / channels.length;
    const samples = this.resampler ? this.resampler.push(mono) : mono;
    for (const s of samples) {
      const v = Math.max(-1, Math.min(1, s));
      this.peak = Math.max(this.peak, Math.abs(v));
      this.frame[this.filled++] = v < 0 ? v * 0x8000 : v * 0x7fff;
      if (this.filled === FRAME_SAMPLES) {
        this.port.postMessage({ pcm: this.frame.buffer, level: this.peak }, [this.frame.buffer]);
        this.frame = new Int16Array(FRAME_SAMPLES);
        this.filled = 0;
        this.peak = 0;
      }
    }
    return true;
  }
}

registerProcessor("pcm-worklet", PcmWorklet);
