// Small uPlot line charts: a lane's cost, accuracy, update:weight ratios, clipping.

import uPlot from "uplot";

export interface SeriesSpec {
  label: string;
  colour: string;
  width?: number;
  dash?: number[];
  /** "y" (left) unless given: "y2" is the right-hand axis. */
  scale?: "y" | "y2";
}

export interface AxisSpec {
  log: boolean;
  /** Fixed range of a linear axis (e.g. [0, 1] for accuracy). */
  range?: [number, number];
  /** Values the log range always includes (e.g. the 1e-3 guide). */
  include?: number[];
  format?: (v: number) => string;
}

export interface ChartSpec {
  series: SeriesSpec[];
  y: AxisSpec;
  y2?: AxisSpec;
  /** A dashed horizontal guide line at this y value, labelled. */
  guide?: { value: number; label: string };
}

/** Tick spacings of the steps axis: whole steps only (1, 2, 5, 10, 20, 50, …). */
const STEP_INCRS = Array.from({ length: 24 }, (_, i) => [1, 2, 5][i % 3]! * 10 ** Math.floor(i / 3));

const FONT = '10px system-ui, -apple-system, "Segoe UI", Roboto, sans-serif';

/** Short tick labels for a small chart: 3 significant digits, exponents when far from 1. */
export function shortNumber(v: number): string {
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e4 || a < 1e-2) {
    const e = Math.floor(Math.log10(a) + 1e-9);
    const m = v / 10 ** e;
    const ms = Math.abs(Math.abs(m) - 1) < 1e-6 ? (m < 0 ? "-" : "") : `${+m.toPrecision(2)}×`;
    return `${ms}1e${e}`;
  }
  return String(+v.toPrecision(3));
}

function logRange(min: number | null, max: number | null, include: number[]): uPlot.Range.MinMax {
  let lo = min !== null && min > 0 && Number.isFinite(min) ? min : null;
  let hi = max !== null && max > 0 && Number.isFinite(max) ? max : null;
  for (const v of include) {
    lo = lo === null ? v : Math.min(lo, v);
    hi = hi === null ? v : Math.max(hi, v);
  }
  if (lo === null || hi === null) return [0.01, 1];
  if (hi <= lo) hi = lo * 10;
  return [10 ** Math.floor(Math.log10(lo)), 10 ** Math.ceil(Math.log10(hi))];
}

/** A linear range around the data, never narrower than 5 % of its size: a cost that stays
 * at 0.6931 ± 1e-5 draws flat, as it is, not as a cliff across the whole chart. */
function linRange(min: number | null, max: number | null): uPlot.Range.MinMax {
  if (min === null || max === null || !Number.isFinite(min) || !Number.isFinite(max)) return [0, 1];
  const least = Math.max(1e-6, 0.05 * Math.max(Math.abs(min), Math.abs(max)));
  if (max - min < least) {
    const mid = (max + min) / 2;
    min = mid - least / 2;
    max = mid + least / 2;
  }
  const pad = (max - min) * 0.05;
  return [min >= 0 && min - pad < 0 ? 0 : min - pad, max + pad];
}

/** A tick label with as many decimals as the tick spacing needs (0.6925, 0.6950, …). */
export function tickLabel(v: number, incr: number): string {
  const a = Math.abs(v);
  if (v === 0) return "0";
  if (a >= 1e4 || a < 1e-3 || !(incr > 0)) return shortNumber(v);
  const decimals = Math.min(6, Math.max(0, Math.ceil(-Math.log10(incr) - 1e-9)));
  return v.toFixed(decimals);
}

function scaleOpts(axis: AxisSpec): uPlot.Scale {
  if (axis.log) {
    const include = axis.include ?? [];
    return { distr: 3, log: 10, range: (_u, min, max) => logRange(min, max, include) };
  }
  const fixed = axis.range;
  if (fixed) return { distr: 1, range: () => [fixed[0], fixed[1]] };
  return { distr: 1, range: (_u, min, max) => linRange(min, max) };
}

function axisOpts(axis: AxisSpec, side: 1 | 3, scale: string, colour: string): uPlot.Axis {
  const format = axis.format;
  const fmt = (v: number, incr: number): string =>
    format ? format(v) : axis.log ? shortNumber(v) : tickLabel(v, incr);
  return {
    scale,
    side,
    size: 40,
    font: FONT,
    gap: 2,
    stroke: colour,
    ticks: { size: 3, stroke: "#999", ...(axis.log ? { filter: logFilter } : {}) },
    grid: { show: side === 3, stroke: "#e4e4e4", width: 1, ...(axis.log ? { filter: logFilter } : {}) },
    values: (_u, splits, _axis, _space, incr) =>
      splits.map((v) => (v === null || v === undefined ? "" : fmt(v, incr))),
    ...(axis.log ? { filter: logLabelFilter } : {}),
  };
}

function isPower(v: number): boolean {
  const e = Math.log10(v);
  return Math.abs(e - Math.round(e)) < 1e-6;
}

// On a log axis keep the powers of ten only (the 2…9 ticks crowd a small chart).
function logFilter(_u: uPlot, splits: number[]): (number | null)[] {
  return splits.map((v) => (isPower(v) ? v : null));
}

// Labels: at most about 5 powers of ten (every other one, or every third, over a wide range).
function logLabelFilter(_u: uPlot, splits: number[]): (number | null)[] {
  const powers = splits.filter(isPower).length;
  const every = Math.max(1, Math.ceil(powers / 5));
  return splits.map((v) => (isPower(v) && Math.round(Math.log10(v)) % every === 0 ? v : null));
}

/** A uPlot chart that is rebuilt when its shape (series, scales) changes and otherwise only
 * given new data. Values a log scale cannot show (≤ 0) become gaps. */
export class Chart {
  private plot: uPlot | null = null;
  private shape = "";
  private width = 200;
  private readonly height: number;

  constructor(
    readonly el: HTMLElement,
    height: number,
  ) {
    this.height = height;
  }

  resize(width: number): void {
    const w = Math.max(120, Math.floor(width));
    if (w === this.width) return;
    this.width = w;
    this.plot?.setSize({ width: w, height: this.height });
  }

  draw(spec: ChartSpec, x: number[], ys: (number | null)[][]): void {
    const shape = JSON.stringify([
      spec.series.map((s) => [s.label, s.colour, s.scale ?? "y"]),
      spec.y.log,
      spec.y2?.log ?? null,
      spec.guide?.value ?? null,
    ]);
    if (shape !== this.shape || this.plot === null) {
      this.plot?.destroy();
      this.plot = new uPlot(this.options(spec), [[]], this.el);
      this.shape = shape;
    }
    const data: (number | null)[][] = [x];
    spec.series.forEach((s, i) => {
      const axis = s.scale === "y2" ? spec.y2 : spec.y;
      const col = ys[i] ?? [];
      data.push(axis?.log ? col.map((v) => (v !== null && v > 0 && Number.isFinite(v) ? v : null)) : col);
    });
    this.plot.setData(data as uPlot.AlignedData);
  }

  destroy(): void {
    this.plot?.destroy();
    this.plot = null;
    this.shape = "";
  }

  private options(spec: ChartSpec): uPlot.Options {
    const scales: uPlot.Scales = { x: { time: false }, y: scaleOpts(spec.y) };
    const axes: uPlot.Axis[] = [
      {
        scale: "x",
        incrs: STEP_INCRS,
        size: 22,
        font: FONT,
        gap: 2,
        ticks: { size: 3, stroke: "#999" },
        grid: { stroke: "#e4e4e4", width: 1 },
        values: (_u, splits, _axis, _space, incr) =>
          splits.map((v) => (v === null || v === undefined ? "" : tickLabel(v, incr))),
      },
      axisOpts(spec.y, 3, "y", "#333"),
    ];
    if (spec.y2) {
      scales["y2"] = scaleOpts(spec.y2);
      axes.push(axisOpts(spec.y2, 1, "y2", "#333"));
    }
    const guide = spec.guide;
    return {
      width: this.width,
      height: this.height,
      legend: { show: false },
      cursor: { show: false },
      scales,
      axes,
      series: [
        {},
        ...spec.series.map((s) => ({
          label: s.label,
          stroke: s.colour,
          width: s.width ?? 1.5,
          scale: s.scale ?? "y",
          spanGaps: true,
          points: { show: false },
          ...(s.dash ? { dash: s.dash } : {}),
        })),
      ],
      hooks: guide
        ? {
            draw: [
              (u: uPlot) => {
                const y = u.valToPos(guide.value, "y", true);
                const { left, top, width, height } = u.bbox;
                if (!(y >= top && y <= top + height)) return;
                const ctx = u.ctx;
                const px = window.devicePixelRatio || 1;
                ctx.save();
                ctx.strokeStyle = "#444";
                ctx.lineWidth = px;
                ctx.setLineDash([5 * px, 4 * px]);
                ctx.beginPath();
                ctx.moveTo(left, y);
                ctx.lineTo(left + width, y);
                ctx.stroke();
                ctx.setLineDash([]);
                ctx.fillStyle = "#444";
                ctx.font = `${10 * px}px system-ui, sans-serif`;
                ctx.textAlign = "right";
                ctx.fillText(guide.label, left + width - 3 * px, y - 3 * px);
                ctx.restore();
              },
            ],
          }
        : {},
    };
  }
}
