// Canvas drawings: the decision map with its points, and the histograms' heat strips.

import type { DataMsg, DecisionMap } from "./protocol";
import type { HistSample } from "./history";
import { classColour, heat, hexToRgb, mix, type RGB } from "./palette";
import { shortNumber } from "./charts";

/** Sizes a canvas's backing store to its CSS size × the device pixel ratio; returns the
 * context scaled to CSS pixels. */
export function fit(canvas: HTMLCanvasElement, width: number, height: number): CanvasRenderingContext2D | null {
  const px = window.devicePixelRatio || 1;
  const w = Math.round(width * px);
  const hh = Math.round(height * px);
  if (canvas.width !== w) canvas.width = w;
  if (canvas.height !== hh) canvas.height = hh;
  canvas.style.width = `${width}px`;
  canvas.style.height = `${height}px`;
  const ctx = canvas.getContext("2d");
  if (ctx) ctx.setTransform(px, 0, 0, px, 0, 0);
  return ctx;
}

const WHITE: RGB = [255, 255, 255];

/** The background colour of P(class 1): class 0's colour at 0, white at ½, class 1's at 1
 * (light tints, so that the points stay visible on them). */
function probColour(p: number): RGB {
  const side = p < 0.5 ? hexToRgb(classColour(0)) : hexToRgb(classColour(1));
  return mix(WHITE, side, Math.min(1, Math.abs(p - 0.5) * 2) * 0.6);
}

const scratch = document.createElement("canvas");

export function drawMap(
  canvas: HTMLCanvasElement,
  size: number,
  data: DataMsg,
  map: DecisionMap | null,
): void {
  const ctx = fit(canvas, size, size);
  if (!ctx || !data.extent) return;
  const [x0, x1, y0, y1] = data.extent;
  ctx.clearRect(0, 0, size, size);
  ctx.fillStyle = "#f4f4f4";
  ctx.fillRect(0, 0, size, size);
  if (map && map.size > 0) {
    const r = map.size;
    scratch.width = r;
    scratch.height = r;
    const sctx = scratch.getContext("2d");
    if (sctx) {
      const img = sctx.createImageData(r, r);
      for (let row = 0; row < r; row++) {
        // prob runs row by row from the bottom; an image runs from the top.
        const out = (r - 1 - row) * r;
        for (let col = 0; col < r; col++) {
          const p = map.prob[row * r + col];
          const c: RGB = p === null || p === undefined || !Number.isFinite(p) ? [160, 160, 160] : probColour(p);
          const o = (out + col) * 4;
          img.data[o] = c[0];
          img.data[o + 1] = c[1];
          img.data[o + 2] = c[2];
          img.data[o + 3] = 255;
        }
      }
      sctx.putImageData(img, 0, 0);
      ctx.imageSmoothingEnabled = true;
      // The grid's values sit on its corners (the extent's edges included): each pixel of the
      // image is centred on its grid point, so the image reaches half a cell beyond the extent.
      const cell = r > 1 ? size / (r - 1) : size;
      ctx.drawImage(scratch, -cell / 2, -cell / 2, size + cell, size + cell);
    }
  }
  const sx = (x: number): number => ((x - x0) / (x1 - x0 || 1)) * size;
  const sy = (y: number): number => size - ((y - y0) / (y1 - y0 || 1)) * size;
  // Train points filled with a dark rim, test points as rings (white centre).
  ctx.lineWidth = 0.75;
  for (const [x, y, label] of data.train) {
    ctx.beginPath();
    ctx.arc(sx(x), sy(y), 2.4, 0, 2 * Math.PI);
    ctx.fillStyle = classColour(label);
    ctx.fill();
    ctx.strokeStyle = "#222";
    ctx.stroke();
  }
  ctx.lineWidth = 1.4;
  for (const [x, y, label] of data.test) {
    ctx.beginPath();
    ctx.arc(sx(x), sy(y), 2.4, 0, 2 * Math.PI);
    ctx.fillStyle = "#fff";
    ctx.fill();
    ctx.strokeStyle = classColour(label);
    ctx.stroke();
  }
  ctx.strokeStyle = "#888";
  ctx.lineWidth = 1;
  ctx.strokeRect(0.5, 0.5, size - 1, size - 1);
  if (map && map.prob.length > 0 && map.prob.every((p) => p === null || !Number.isFinite(p))) {
    // Never a silent grey: say why there is no map.
    ctx.fillStyle = "rgba(255,255,255,0.85)";
    ctx.fillRect(4, size / 2 - 18, size - 8, 36);
    ctx.fillStyle = "#8a2c00";
    ctx.font = "bold 10px system-ui, sans-serif";
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    ctx.fillText("no map: the network", size / 2, size / 2 - 7);
    ctx.fillText("outputs NaN (diverged)", size / 2, size / 2 + 7);
    ctx.textAlign = "start";
  }
}

export type HistKey = "act" | "grad";

const LABEL_W = 86;
const ZERO_H = 4; // the ~0 bin's own row under each layer's band
const GAP = 4;

/** One heat strip per layer: time (steps) → x, log10|value| → y. The bins above 1e-8 form
 * the band, each column scaled to its fullest bin (so a narrow spread stays dark wherever it
 * sits); the ~0 bin (exact zeros: dead units, zero gradients) is the thin row under the
 * band, coloured by its own share. A dashed line marks |value| = 1; the latest RMS is at the
 * right. `edges` are the shared bin edges of log10|value|. */
export function drawHist(
  canvas: HTMLCanvasElement,
  width: number,
  hists: HistSample[],
  key: HistKey,
  edges: number[],
): void {
  const last = hists[hists.length - 1];
  const layers = last ? last.layers.length : 0;
  const bandH = layers === 0 ? 40 : Math.max(12, Math.min(49, Math.floor(200 / layers)));
  const blockH = bandH + 1 + ZERO_H + GAP;
  const height = Math.max(40, layers * blockH);
  const ctx = fit(canvas, width, height);
  if (!ctx) return;
  ctx.clearRect(0, 0, width, height);
  ctx.font = "10px system-ui, sans-serif";
  if (!last || layers === 0) {
    ctx.fillStyle = "#555";
    ctx.fillText(hists.length === 0 ? "no histogram yet" : "no hidden layer: nothing to show", 4, 20);
    return;
  }
  const stripW = Math.max(20, Math.floor(width - LABEL_W));
  const img = ctx.createImageData(stripW, layers * blockH);
  img.data.fill(0);
  // Which snapshot each pixel column shows: the latest one at or before its step.
  const s0 = hists[0]?.step ?? 0;
  const span = last.step - s0;
  const columns: HistSample[] = [];
  let j = 0;
  for (let col = 0; col < stripW; col++) {
    const t = span > 0 ? s0 + ((col + 0.5) / stripW) * span : last.step;
    while (j + 1 < hists.length && (hists[j + 1]?.step ?? Infinity) <= t) j++;
    const snap = hists[j];
    if (snap) columns.push(snap);
  }
  const put = (x: number, y: number, c: RGB): void => {
    const o = (y * stripW + x) * 4;
    img.data[o] = c[0];
    img.data[o + 1] = c[1];
    img.data[o + 2] = c[2];
    img.data[o + 3] = 255;
  };
  for (let l = 0; l < layers; l++) {
    const top0 = l * blockH;
    columns.forEach((snap, col) => {
      const counts = snap.layers[l]?.[key] ?? [];
      const nv = counts.length - 1; // value bins after the ~0 bin
      if (nv < 1) return;
      let most = 0;
      for (let b = 1; b <= nv; b++) most = Math.max(most, counts[b] ?? 0);
      for (let r = 0; r < bandH; r++) {
        // Pixel row r (from the top) covers the value bins [lo, hi): the largest at the top.
        const lo = 1 + Math.floor(((bandH - 1 - r) * nv) / bandH);
        const hi = Math.max(lo + 1, 1 + Math.floor(((bandH - r) * nv) / bandH));
        let v = 0;
        for (let b = lo; b < hi; b++) v = Math.max(v, counts[b] ?? 0);
        put(col, top0 + r, heat(most > 0 ? v / most : 0));
      }
      const zero = heat(counts[0] ?? 0);
      for (let r = 0; r < ZERO_H; r++) put(col, top0 + bandH + 1 + r, zero);
    });
  }
  // putImageData ignores the transform: draw through a canvas of CSS pixels.
  scratch.width = stripW;
  scratch.height = layers * blockH;
  const sctx = scratch.getContext("2d");
  if (!sctx) return;
  sctx.putImageData(img, 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(scratch, 0, 0);
  // |value| = 1: the edge nearest log10 = 0, as a share of the value bins.
  const nvEdges = Math.max(1, edges.length - 1);
  let oneAt = -1;
  edges.forEach((e, i) => {
    if (Math.abs(e) < 1e-9) oneAt = i;
  });
  ctx.textBaseline = "middle";
  for (let l = 0; l < layers; l++) {
    const y = l * blockH;
    ctx.strokeStyle = "#999";
    ctx.lineWidth = 1;
    ctx.setLineDash([]);
    ctx.strokeRect(0.5, y + 0.5, stripW - 1, bandH - 1);
    ctx.strokeRect(0.5, y + bandH + 1.5, stripW - 1, ZERO_H - 1);
    if (oneAt >= 0) {
      const yy = y + bandH - (oneAt / nvEdges) * bandH;
      ctx.strokeStyle = "rgba(0,0,0,0.45)";
      ctx.setLineDash([3, 3]);
      ctx.beginPath();
      ctx.moveTo(0, Math.round(yy) + 0.5);
      ctx.lineTo(stripW, Math.round(yy) + 0.5);
      ctx.stroke();
      ctx.setLineDash([]);
    }
    const layer = last.layers[l];
    const name = layer?.name ?? `layer ${l + 1}`;
    const rms = key === "act" ? layer?.act_rms : layer?.grad_rms;
    const rmsText = rms === null || rms === undefined ? "—" : shortNumber(rms);
    const zeros = layer?.[key]?.[0];
    ctx.fillStyle = "#222";
    const mid = y + bandH / 2;
    if (bandH >= 30) {
      ctx.fillText(name, stripW + 4, mid - 12);
      ctx.fillText(`rms ${rmsText}`, stripW + 4, mid);
      if (zeros !== undefined) ctx.fillText(`~0: ${Math.round(zeros * 100)} %`, stripW + 4, mid + 12);
    } else if (bandH >= 20) {
      ctx.fillText(name, stripW + 4, mid - 6);
      ctx.fillText(`rms ${rmsText}`, stripW + 4, mid + 6);
    } else {
      ctx.fillText(`${name} · ${rmsText}`, stripW + 4, mid);
    }
  }
}
