/**
 * Horizontal bar charts as standalone SVG documents (no dependencies): one
 * or more panels, one bar per item, its label on the left and its value
 * text on the right.
 */

/** One bar. */
export interface Bar {
  readonly label: string;
  /** Bar length in the chart's unit; non-finite or negative values draw no bar. */
  readonly value: number;
  /** Text printed after the bar (e.g. "3.21 Gbit/s (0.41x)"). */
  readonly note: string;
  /** Fill colour (CSS), default steel blue. */
  readonly color?: string;
}

function escapeXml(s: string): string {
  return s.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]!);
}

/** One panel of a multi-panel chart: its own title, unit and bars. */
export interface Panel {
  readonly title: string;
  readonly unit: string;
  readonly bars: readonly Bar[];
}

const labelW = 220;
const plotW = 460;
const noteW = 220;
const barH = 22;
const gap = 8;
const width = labelW + plotW + noteW;

/** Height a panel takes: its title, bars and axis. */
function panelHeight(p: Panel): number {
  return 30 + p.bars.length * (barH + gap) + 34;
}

/** SVG elements of one panel whose top edge is at `top`. */
function panelSvg(p: Panel, top: number): string[] {
  const out: string[] = [];
  const max = Math.max(1e-9, ...p.bars.map((b) => (Number.isFinite(b.value) && b.value > 0 ? b.value : 0)));
  out.push(`<text x="${labelW}" y="${top + 18}" font-size="14" font-weight="bold">${escapeXml(p.title)}</text>`);
  const barsTop = top + 30;
  p.bars.forEach((b, i) => {
    const y = barsTop + i * (barH + gap);
    const len = Number.isFinite(b.value) && b.value > 0 ? (b.value / max) * plotW : 0;
    out.push(`<text x="${labelW - 8}" y="${y + barH / 2 + 4}" text-anchor="end">${escapeXml(b.label)}</text>`);
    out.push(`<rect x="${labelW}" y="${y}" width="${len.toFixed(1)}" height="${barH}" fill="${escapeXml(b.color ?? '#4682b4')}"/>`);
    out.push(`<text x="${labelW + len + 6}" y="${y + barH / 2 + 4}">${escapeXml(b.note)}</text>`);
  });
  const axisY = barsTop + p.bars.length * (barH + gap);
  out.push(`<line x1="${labelW}" y1="${axisY}" x2="${labelW + plotW}" y2="${axisY}" stroke="#555"/>`);
  out.push(`<text x="${labelW}" y="${axisY + 16}">0</text>`);
  out.push(`<text x="${labelW + plotW}" y="${axisY + 16}" text-anchor="end">${escapeXml(`${max.toFixed(2)} ${p.unit}`)}</text>`);
  return out;
}

/** Render `panels` one under the other beneath `title`. Returns the SVG text. */
export function panelsSvg(title: string, panels: readonly Panel[]): string {
  const top = 40;
  const height = top + panels.reduce((h, p) => h + panelHeight(p), 0) + 10;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="13">`);
  out.push(`<rect width="100%" height="100%" fill="white"/>`);
  out.push(`<text x="${width / 2}" y="24" text-anchor="middle" font-size="16" font-weight="bold">${escapeXml(title)}</text>`);
  let y = top;
  for (const p of panels) {
    out.push(...panelSvg(p, y));
    y += panelHeight(p);
  }
  out.push('</svg>');
  return out.join('\n') + '\n';
}

/** Render `bars` under `title`, the x axis labelled `unit`: a chart of one panel. */
export function barChartSvg(title: string, unit: string, bars: readonly Bar[]): string {
  return panelsSvg(title, [{ title: '', unit, bars }]);
}
