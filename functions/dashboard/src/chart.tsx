import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

/** Tasks finished per minute over the last hour, succeeded and failed, drawn by uPlot. */
export function ThroughputChart(props: {
  points: Array<{ minute: string; succeeded: number; failed: number }>;
}) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const now = Math.floor(Date.now() / 60_000) * 60;
  const byMinute = new Map(props.points.map((p) => [Date.parse(p.minute) / 1000, p]));
  const xs: number[] = [];
  const ok: number[] = [];
  const bad: number[] = [];
  for (let t = now - 59 * 60; t <= now; t += 60) {
    xs.push(t);
    ok.push(byMinute.get(t)?.succeeded ?? 0);
    bad.push(byMinute.get(t)?.failed ?? 0);
  }
  useEffect(() => {
    if (!box.current) return;
    if (!plot.current) {
      plot.current = new uPlot(
        {
          width: Math.min(box.current.clientWidth || 600, 900),
          height: 200,
          series: [
            {},
            { label: "succeeded", stroke: "#1a7f37", width: 2 },
            { label: "failed", stroke: "#cf222e", width: 2 },
          ],
          axes: [{}, { label: "per minute" }],
        },
        [xs, ok, bad],
        box.current,
      );
    } else plot.current.setData([xs, ok, bad]);
  });
  useEffect(() => {
    // Follow the box's width (a phone turned, a window resized) rather than scroll inside it.
    const observer = new ResizeObserver(([entry]) => {
      const width = Math.floor(Math.min(entry?.contentRect.width ?? 0, 900));
      if (plot.current && width > 0 && width !== plot.current.width)
        plot.current.setSize({ width, height: 200 });
    });
    if (box.current) observer.observe(box.current);
    return () => {
      observer.disconnect();
      plot.current?.destroy();
    };
  }, []);
  return <div ref={box} class="chart" role="img" aria-label="Tasks finished per minute, last hour" />;
}
