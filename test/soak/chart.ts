/** The soak's chart: server RSS (left axis) and open files and sessions (right axis) over time, as a plain SVG. */

export interface Sample {
  seconds: number;
  rss: number;
  fds: number;
  sessions: number;
  /** Server CPU seconds so far. */
  cpu: number;
}

const WIDTH = 900;
const HEIGHT = 420;
const PAD = { left: 70, right: 70, top: 40, bottom: 50 };

/** A round step giving about `count` ticks up to `max`. */
function tickStep(max: number, count: number): number {
  const raw = max / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((m) => m * power).find((step) => step >= raw) ?? raw;
}

function escape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;');
}

export function soakChart(samples: readonly Sample[], title: string): string {
  const MiB = 1024 * 1024;
  const plotW = WIDTH - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const maxT = Math.max(1, ...samples.map((s) => s.seconds));
  const rssStep = tickStep(Math.max(1, ...samples.map((s) => s.rss / MiB)), 5);
  const maxRss = rssStep * Math.ceil(Math.max(1, ...samples.map((s) => s.rss / MiB)) / rssStep);
  const countStep = tickStep(Math.max(1, ...samples.map((s) => Math.max(s.fds, s.sessions))), 5);
  const maxCount = countStep * Math.ceil(Math.max(1, ...samples.map((s) => Math.max(s.fds, s.sessions))) / countStep);
  const x = (t: number): number => PAD.left + (t / maxT) * plotW;
  const yLeft = (v: number): number => PAD.top + plotH - (v / maxRss) * plotH;
  const yRight = (v: number): number => PAD.top + plotH - (v / maxCount) * plotH;
  const line = (points: string, color: string): string => `<polyline fill="none" stroke="${color}" stroke-width="2" points="${points}"/>`;
  const points = (y: (s: Sample) => number): string => samples.map((s) => `${x(s.seconds).toFixed(1)},${y(s).toFixed(1)}`).join(' ');
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" font-family="sans-serif" font-size="12">`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="white"/>`,
    `<text x="${WIDTH / 2}" y="22" text-anchor="middle" font-size="15">${escape(title)}</text>`,
  ];
  for (let v = 0; v <= maxRss + 1e-9; v += rssStep) {
    out.push(`<line x1="${PAD.left}" x2="${WIDTH - PAD.right}" y1="${yLeft(v)}" y2="${yLeft(v)}" stroke="#e4e4e4"/>`);
    out.push(`<text x="${PAD.left - 6}" y="${yLeft(v) + 4}" text-anchor="end" fill="#c0392b">${+v.toFixed(1)}</text>`);
  }
  for (let v = 0; v <= maxCount + 1e-9; v += countStep) {
    out.push(`<text x="${WIDTH - PAD.right + 6}" y="${yRight(v) + 4}" fill="#2c3e50">${+v.toFixed(1)}</text>`);
  }
  const timeStep = maxT >= 120 ? tickStep(maxT / 60, 10) * 60 : tickStep(maxT, 10);
  for (let t = 0; t <= maxT + 1e-9; t += timeStep) {
    const label = maxT >= 120 ? `${+(t / 60).toFixed(1)} min` : `${+t.toFixed(0)} s`;
    out.push(`<text x="${x(t)}" y="${HEIGHT - PAD.bottom + 18}" text-anchor="middle">${label}</text>`);
  }
  out.push(
    `<rect x="${PAD.left}" y="${PAD.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#999"/>`,
    `<text transform="translate(18 ${PAD.top + plotH / 2}) rotate(-90)" text-anchor="middle" fill="#c0392b">RSS (MiB)</text>`,
    `<text transform="translate(${WIDTH - 16} ${PAD.top + plotH / 2}) rotate(90)" text-anchor="middle" fill="#2c3e50">open files, sessions</text>`,
    line(points((s) => yLeft(s.rss / MiB)), '#c0392b'),
    line(points((s) => yRight(s.fds)), '#2c3e50'),
    line(points((s) => yRight(s.sessions)), '#27ae60'),
    `<g transform="translate(${PAD.left + 10} ${HEIGHT - 14})">`,
    `<rect width="14" height="3" y="-5" fill="#c0392b"/><text x="20">server RSS</text>`,
    `<rect x="120" width="14" height="3" y="-5" fill="#2c3e50"/><text x="140">server open files</text>`,
    `<rect x="270" width="14" height="3" y="-5" fill="#27ae60"/><text x="290">sessions</text>`,
    `</g>`,
    '</svg>',
  );
  return out.join('\n') + '\n';
}
