/**
 * A horizontal bar chart as a standalone SVG document (no dependencies):
 * one bar per item, its label on the left and its value text on the right.
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

/** Render `bars` under `title`, the x axis labelled `unit`. Returns the SVG text. */
export function barChartSvg(title: string, unit: string, bars: readonly Bar[]): string {
  const labelW = 220;
  const plotW = 460;
  const noteW = 200;
  const barH = 26;
  const gap = 10;
  const top = 50;
  const width = labelW + plotW + noteW;
  const height = top + bars.length * (barH + gap) + 40;
  const max = Math.max(1e-9, ...bars.map((b) => (Number.isFinite(b.value) && b.value > 0 ? b.value : 0)));
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="13">`);
  out.push(`<rect width="100%" height="100%" fill="white"/>`);
  out.push(`<text x="${width / 2}" y="24" text-anchor="middle" font-size="16" font-weight="bold">${escapeXml(title)}</text>`);
  bars.forEach((b, i) => {
    const y = top + i * (barH + gap);
    const len = Number.isFinite(b.value) && b.value > 0 ? (b.value / max) * plotW : 0;
    out.push(`<text x="${labelW - 8}" y="${y + barH / 2 + 4}" text-anchor="end">${escapeXml(b.label)}</text>`);
    out.push(`<rect x="${labelW}" y="${y}" width="${len.toFixed(1)}" height="${barH}" fill="${escapeXml(b.color ?? '#4682b4')}"/>`);
    out.push(`<text x="${labelW + len + 6}" y="${y + barH / 2 + 4}">${escapeXml(b.note)}</text>`);
  });
  const axisY = top + bars.length * (barH + gap);
  out.push(`<line x1="${labelW}" y1="${axisY}" x2="${labelW + plotW}" y2="${axisY}" stroke="#555"/>`);
  out.push(`<text x="${labelW}" y="${axisY + 18}">0</text>`);
  out.push(`<text x="${labelW + plotW}" y="${axisY + 18}" text-anchor="end">${escapeXml(`${max.toFixed(2)} ${unit}`)}</text>`);
  out.push('</svg>');
  return out.join('\n') + '\n';
}
