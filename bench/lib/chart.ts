export interface Bar {
  label: string;
  /** gateway / reference ratio. */
  value: number;
  /** The target line, when there is one (ratio). */
  target?: number;
  /** true when a higher ratio is better. */
  higherIsBetter: boolean;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** A horizontal bar chart of ratios as a standalone SVG (no external assets). */
export function ratioChart(title: string, bars: Bar[]): string {
  const rowH = 34;
  const left = 330;
  const width = 860;
  const plotW = width - left - 90;
  const max = Math.max(1.5, ...bars.map((b) => Math.max(b.value, b.target ?? 0))) * 1.1;
  const x = (v: number) => left + (v / max) * plotW;
  const height = 70 + bars.length * rowH + 40;
  const rows = bars
    .map((b, i) => {
      const y = 60 + i * rowH;
      const met = b.target === undefined ? true : b.higherIsBetter ? b.value >= b.target : b.value <= b.target;
      const color = met ? '#2f7d4f' : '#b4462f';
      const target =
        b.target === undefined ? '' : `<line x1="${x(b.target)}" x2="${x(b.target)}" y1="${y - 4}" y2="${y + 22}" stroke="#222" stroke-dasharray="3 2"/>`;
      return `<text x="${left - 10}" y="${y + 14}" text-anchor="end" font-size="13">${esc(b.label)}</text>
<rect x="${left}" y="${y}" width="${Math.max(1, x(b.value) - left)}" height="18" fill="${color}"/>
<text x="${x(b.value) + 6}" y="${y + 14}" font-size="12">${b.value.toFixed(2)}x</text>${target}`;
    })
    .join('\n');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, sans-serif">
<rect width="100%" height="100%" fill="#fff"/>
<text x="20" y="30" font-size="16" font-weight="bold">${esc(title)}</text>
<line x1="${x(1)}" x2="${x(1)}" y1="50" y2="${height - 40}" stroke="#999"/>
<text x="${x(1)}" y="${height - 22}" font-size="11" text-anchor="middle">1.0x</text>
${rows}
<text x="20" y="${height - 8}" font-size="11" fill="#555">Green: target met. Dashed line: target. Ratios from one run on one machine.</text>
</svg>
`;
}
