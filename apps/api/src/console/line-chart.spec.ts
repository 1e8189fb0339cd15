import { axis, lineChartSvg } from './line-chart.js';

describe('lineChartSvg', () => {
  it('puts whole-number ticks 1, 2 or 5 times a power of ten apart, about four up to the maximum', () => {
    expect([0, 1, 3, 7, 13, 24, 240, 999].map(axis)).toEqual([
      { top: 1, step: 1 },
      { top: 1, step: 1 },
      { top: 3, step: 1 },
      { top: 8, step: 2 },
      { top: 15, step: 5 },
      { top: 30, step: 10 },
      { top: 300, step: 100 },
      { top: 1000, step: 500 },
    ]);
  });

  it('draws one dot per point, a line through them, and escapes every text', () => {
    const svg = lineChartSvg('spine<health>', 'Active <b>"subs"</b>', [
      { label: 'Oct 1', value: 0 },
      { label: '<script>', value: 5 },
      { label: 'Oct 15', value: 10 },
    ]);
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toContain('role="img"');
    expect(svg.match(/<circle /g)).toHaveLength(3);
    expect(svg).toContain('<polyline');
    expect(svg).not.toContain('<script>');
    expect(svg).not.toContain('<b>');
    expect(svg).toContain('&lt;script&gt;: 5');
    expect(svg).toContain('id="chart-spine-health-"');
    expect(svg).toContain('From 0 to 10 active subscribers');
  });

  it('copes with no points and a single point', () => {
    expect(lineChartSvg('a', 'A', [])).toContain('No data.');
    const one = lineChartSvg('b', 'B', [{ label: 'now', value: 3 }]);
    expect(one.match(/<circle /g)).toHaveLength(1);
    expect(one).not.toContain('<polyline');
  });
});
