// Time as the host tells it (milliseconds), so time-driven targets stay deterministic in tests.
let nowMs: f64 = 0;

export function setClock(ms: f64): void {
  nowMs = ms;
}

export function clockMs(): f64 {
  return nowMs;
}
