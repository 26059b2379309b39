// @ts-check
// The table as a picture: the mapped device on top, one bar per device it maps onto below, and
// each segment drawn in its own colour both on top and on the ranges of the devices it uses.

const COLORS = ['#2f6fdb', '#d9822b', '#1a7f37', '#a040a0', '#c0392b', '#138d90', '#7a5c00', '#5b6ee1'];
const NS = 'http://www.w3.org/2000/svg';

/**
 * Where each segment of a table lands: {dev, start, len} ranges on the devices it names.
 * @param {string[]} w one table line as words
 * @param {(name: string) => number|undefined} sizeOf sectors of a backing or mapped device
 */
export function segmentRanges(w, sizeOf) {
  const len = Number(w[1]), type = w[2], a = w.slice(3);
  const at = (dev, off) => ({ dev, start: Number(off), len });
  switch (type) {
    case 'linear': case 'flakey': case 'ebs': return a.length >= 2 ? [at(a[0], a[1])] : [];
    case 'delay': {
      const out = [];
      for (let i = 0; i + 2 < a.length; i += 3) out.push(at(a[i], a[i + 1]));
      return out;
    }
    case 'striped': {
      const n = Number(a[0]);
      const out = [];
      for (let i = 0; i < n && 2 + 2 * i + 1 < a.length; i++) out.push({ dev: a[2 + 2 * i], start: Number(a[3 + 2 * i]), len: len / n });
      return out;
    }
    case 'snapshot-origin': return a.length ? [{ dev: a[0], start: 0, len }] : [];
    case 'snapshot': case 'snapshot-merge':
      return a.length >= 2 ? [{ dev: a[0], start: 0, len }, { dev: a[1], start: 0, len: sizeOf(a[1]) ?? 0, role: 'COW' }] : [];
    default:
      return a.filter((x) => sizeOf(x) !== undefined).map((x) => ({ dev: x, start: 0, len: sizeOf(x) ?? 0 }));
  }
}

function el(tag, attrs, text) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

/**
 * @param {string} name the mapped device
 * @param {string} table its table text
 * @param {(name: string) => number|undefined} sizeOf
 * @param {number} width in CSS pixels
 * @returns {SVGSVGElement}
 */
export function drawTableBar(name, table, sizeOf, width) {
  width = Math.max(240, width);
  const lines = table.split('\n').map((l) => l.trim().split(/\s+/)).filter((w) => w.length >= 3 && !w[0].startsWith('#'));
  const total = lines.reduce((s, w) => s + Number(w[1]), 0) || 1;
  const pad = 8, barH = 22, gap = 46;
  const inner = Math.max(100, width - 2 * pad);
  const segs = lines.map((w, i) => ({ w, i, ranges: segmentRanges(w, sizeOf) }));
  const devs = [];
  for (const s of segs) for (const r of s.ranges) if (!devs.includes(r.dev)) devs.push(r.dev);
  const height = pad + 16 + barH + devs.length * (gap + 16 + barH) + pad;
  const svg = /** @type {SVGSVGElement} */ (el('svg', { viewBox: `0 0 ${width} ${height}`, class: 'tablebar', role: 'img' }));
  const summary = segs.map((s) => `${s.w[0]}+${s.w[1]} ${s.w[2]}${s.ranges.length ? ' onto ' + s.ranges.map((r) => `${r.dev} at ${r.start}`).join(', ') : ''}`).join('; ');
  svg.append(el('title', {}, `${name}: ${summary}`));
  const topY = pad + 16;
  svg.append(el('text', { x: pad, y: pad + 11 }, `${name} (${total} sectors)`));
  let x = pad;
  const segX = [];
  for (const s of segs) {
    const w = Math.max(2, (Number(s.w[1]) / total) * inner);
    segX.push({ x, w });
    svg.append(el('rect', { x, y: topY, width: w, height: barH, fill: COLORS[s.i % COLORS.length], stroke: '#fff' }));
    if (w > 50) svg.append(el('text', { x: x + 4, y: topY + 15, fill: '#fff', style: 'fill:#fff' }, `${s.w[2]} ${s.w[1]}`));
    x += w;
  }
  devs.forEach((dev, d) => {
    const y = topY + barH + gap + d * (gap + 16 + barH) + 16;
    const size = sizeOf(dev);
    svg.append(el('text', { x: pad, y: y - 5 }, `${dev}${size === undefined ? ' (missing)' : ` (${size} sectors)`}`));
    svg.append(el('rect', { x: pad, y, width: inner, height: barH, fill: '#eef1f4', stroke: '#8c959f' }));
    if (!size) return;
    for (const s of segs) {
      s.ranges.filter((r) => r.dev === dev).forEach((r, k) => {
        const rx = pad + (r.start / size) * inner;
        const rw = Math.max(2, (r.len / size) * inner);
        const color = COLORS[s.i % COLORS.length];
        svg.append(el('rect', { x: rx, y, width: rw, height: barH, fill: color, 'fill-opacity': r.role === 'COW' ? 0.35 : 0.85 }));
        if (rw > 40) svg.append(el('text', { x: rx + 3, y: y + 15 }, r.role === 'COW' ? 'COW' : `${r.start}`));
        // A band from the segment to where it lands (for striped: each stripe's share of it).
        const top = segX[s.i];
        const n = s.ranges.filter((q) => q.role !== 'COW').length || 1;
        const share = r.role === 'COW' ? { x: top.x, w: top.w } : { x: top.x + (top.w / n) * k, w: top.w / n };
        svg.append(el('path', {
          d: `M${share.x},${topY + barH} L${share.x + share.w},${topY + barH} L${rx + rw},${y} L${rx},${y} Z`,
          fill: color, 'fill-opacity': 0.15, stroke: color, 'stroke-opacity': 0.4,
        }));
      });
    }
  });
  return svg;
}
