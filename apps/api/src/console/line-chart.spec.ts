import { lineChartSvg, niceMax } from './line-chart.js';

describe('lineChartSvg', () => {
  it('rounds the axis up to 1, 2, 2.5 or 5 times a power of ten', () => {
    expect([0, 1, 3, 7, 12, 24, 240, 999].map(niceMax)).toEqual([1, 1, 5, 10, 20, 25, 250, 1000]);
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
