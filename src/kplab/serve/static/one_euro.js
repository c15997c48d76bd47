// The One-Euro filter (Casiez, Roussel and Vogel, CHI 2012), the same equations as
// kplab/faces/smoothing.py, so the page smooths webcam keypoints as `kplab predict --smooth` does:
//   alpha(fc, dt) = 1 / (1 + tau / dt),  tau = 1 / (2 pi fc)
//   dx^_t = dx^_{t-1} + alpha(d_cutoff, dt) (dx_t - dx^_{t-1})     (smoothed speed)
//   fc    = min_cutoff + beta |dx^_t|
//   x^_t  = x^_{t-1} + alpha(fc, dt) (x_t - x^_{t-1})
// Elementwise over a flat array of numbers (all of one face's coordinates at once).
"use strict";

function oneEuroAlpha(cutoff, dt) {
  const tau = 1.0 / (2.0 * Math.PI * cutoff);
  return 1.0 / (1.0 + tau / dt);
}

class OneEuroFilter {
  constructor(minCutoff = 1.0, beta = 10.0, dCutoff = 3.0) {  // kplab.faces.smoothing defaults
    if (!(minCutoff > 0) || !(dCutoff > 0) || !(beta >= 0)) {
      throw new Error("One-Euro filter: minCutoff and dCutoff must be > 0 and beta >= 0");
    }
    this.minCutoff = minCutoff;
    this.beta = beta;
    this.dCutoff = dCutoff;
    this.reset();
  }

  reset() {
    this.x = null;   // last filtered value
    this.dx = null;  // last filtered speed
    this.t = null;
  }

  // Filter the sample x (an array of numbers, fixed length across calls) taken at time t seconds.
  filter(x, t) {
    if (this.x === null) {
      this.x = Float64Array.from(x);
      this.dx = new Float64Array(x.length);
      this.t = t;
      return Array.from(this.x);
    }
    if (x.length !== this.x.length) throw new Error("One-Euro filter: sample length changed");
    const dt = t - this.t;
    if (!(dt > 0)) throw new Error(`One-Euro filter: time must increase (got ${t} after ${this.t})`);
    const aSpeed = oneEuroAlpha(this.dCutoff, dt);
    for (let i = 0; i < x.length; i++) {
      const speed = (x[i] - this.x[i]) / dt;
      this.dx[i] = this.dx[i] + aSpeed * (speed - this.dx[i]);
      const cutoff = this.minCutoff + this.beta * Math.abs(this.dx[i]);
      this.x[i] = this.x[i] + oneEuroAlpha(cutoff, dt) * (x[i] - this.x[i]);
    }
    this.t = t;
    return Array.from(this.x);
  }
}

// A whole sequence (T samples) at `fps` frames per second, as smoothing.smooth_sequence.
function oneEuroSequence(samples, fps, minCutoff = 1.0, beta = 10.0, dCutoff = 3.0) {
  const f = new OneEuroFilter(minCutoff, beta, dCutoff);
  return samples.map((x, i) => f.filter(x, i / fps));
}
