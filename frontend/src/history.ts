// What the page holds of one lane's run: its samples, bounded in memory.

import type { DataMsg, DecisionMap, HistLayer, LaneUpdate, Point, Status, Verdict } from "./protocol";

/** Samples kept per lane: past this, the older half is thinned to every other sample, so
 * the recent steps stay at full resolution and the whole run stays on the curve. */
export const MAX_POINTS = 2000;
/** Histogram snapshots kept per lane (the heat strips are a few hundred pixels wide). */
export const MAX_HISTS = 400;

export function thin<T>(items: T[], max: number): T[] {
  if (items.length <= max) return items;
  const half = Math.floor(items.length / 2);
  const older = items.slice(0, half).filter((_, i) => i % 2 === 0);
  return older.concat(items.slice(half));
}

/** Appends a sample; a second sample of the same step (the server samples again when it
 * pauses) replaces the first: the curves need increasing steps. */
function push<T extends { step: number }>(items: T[], item: T): void {
  const last = items[items.length - 1];
  if (last !== undefined && last.step === item.step) items[items.length - 1] = item;
  else items.push(item);
}

export interface RatioSample {
  step: number;
  values: (number | null)[];
}

export interface HistSample {
  step: number;
  layers: HistLayer[];
}

export class LaneRun {
  step = 0;
  epoch = 0;
  /** "waiting" until the server has built this lane (a lane the server refused stays so). */
  status: Status | "waiting" = "waiting";
  message: string | null = null;
  stepsPerSecond: number | null = null;
  points: Point[] = [];
  ratioLayers: string[] = [];
  ratios: RatioSample[] = [];
  hists: HistSample[] = [];
  map: DecisionMap | null = null;
  data: DataMsg | null = null;
  /** null until the probe's first answer (then [] means it found nothing wrong). */
  verdicts: Verdict[] | null = null;
  /** The charts need redrawing (set by a message, cleared by the drawing). */
  dirty = true;

  /** A new run of this lane (after configure or reset): everything from step 0. */
  restart(data: DataMsg | null): void {
    this.step = 0;
    this.epoch = 0;
    this.status = "ready";
    this.message = null;
    this.stepsPerSecond = null;
    this.points = [];
    this.ratioLayers = [];
    this.ratios = [];
    this.hists = [];
    this.map = null;
    this.verdicts = null;
    this.data = data;
    this.dirty = true;
  }

  apply(u: LaneUpdate): void {
    const first = u.points?.[0];
    const last = this.points[this.points.length - 1];
    // A step going back means a new run whose `data` message we have not seen (defensive).
    if (first !== undefined && last !== undefined && first.step < last.step) this.restart(this.data);
    // An update holds only what changed: a lane whose training failed sends its status and
    // message alone, and one may carry an update ratio and nothing else.
    if (typeof u.step === "number") this.step = u.step;
    if (typeof u.epoch === "number") this.epoch = u.epoch;
    if (typeof u.status === "string") {
      this.status = u.status;
      this.message = u.message ?? null;
    }
    if (typeof u.steps_per_second === "number") this.stepsPerSecond = u.steps_per_second;
    if (u.points && u.points.length > 0) {
      for (const p of u.points) push(this.points, p);
      this.points = thin(this.points, MAX_POINTS);
    }
    if (u.ratios) {
      this.ratioLayers = u.ratios.layers;
      // One value per layer at that step (the last one if the server sends a per-layer series).
      const values = u.ratios.values.map((v) => (Array.isArray(v) ? (v[v.length - 1] ?? null) : v));
      push(this.ratios, { step: u.ratios.step, values });
      this.ratios = thin(this.ratios, MAX_POINTS);
    }
    if (u.hist) {
      push(this.hists, { step: u.hist.step, layers: u.hist.layers });
      this.hists = thin(this.hists, MAX_HISTS);
    }
    if (u.map) this.map = u.map;
    if (u.verdicts) this.verdicts = u.verdicts;
    this.dirty = true;
  }

  lastLoss(): number | null | undefined {
    const p = this.points[this.points.length - 1];
    return p === undefined ? undefined : p.loss;
  }

  lastTestAccuracy(): number | null {
    for (let i = this.points.length - 1; i >= 0; i--) {
      const v = this.points[i]?.test_acc;
      if (v !== null && v !== undefined) return v;
    }
    return null;
  }
}
