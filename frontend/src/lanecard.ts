// One lane's card: its numbers, what differs from the other lanes, the verdicts with their
// fixes, and its live charts.

import { drawHist, drawMap } from "./canvas";
import { Chart, type ChartSpec } from "./charts";
import { h, setAttr, setText } from "./dom";
import { FIELD_LABEL, describe } from "./fields";
import type { LaneRun } from "./history";
import type { ErrorItem, Lane, Verdict } from "./protocol";
import { OKABE_ITO, seriesColour } from "./palette";

export interface CardHooks {
  select(lane: number): void;
  fix(lane: number, changes: Lane): void;
}

/** What a status means, in words, when the server sends no message of its own. */
const STATUS_WORDS: Record<string, string> = {
  waiting: "waiting for the server to build this lane",
  ready: "press Play or Step",
  diverged: "the cost is no longer a finite number (NaN or ∞): the weights blew up. Lower the learning rate, clip the gradients or add batch norm",
  failed: "training stopped with an error",
  budget: "the step budget is spent",
  converged: "the cost stopped improving",
};

function legend(items: [string, string][]): HTMLElement {
  return h(
    "span",
    { class: "legend" },
    ...items.map(([label, colour]) =>
      h("span", { class: "key" }, h("span", { class: "swatch", style: `background:${colour}` }), label),
    ),
  );
}

function panel(title: string, ...body: (Node | null)[]): HTMLElement {
  return h("figure", { class: "panel" }, h("figcaption", {}, title), ...body);
}

/** 4 significant digits: 0.6931, 12.35, 7.000e-6. */
function fourDigits(v: number): string {
  return v !== 0 && Math.abs(v) < 1e-3 ? v.toExponential(3) : v.toPrecision(4);
}

function pct(v: number): string {
  return `${(v * 100).toFixed(1)} %`;
}

export class LaneCard {
  readonly el: HTMLElement;
  visible = true;
  private readonly title: HTMLElement;
  private readonly stepEl: HTMLElement;
  private readonly statusEl: HTMLElement;
  private readonly lossEl: HTMLElement;
  private readonly accEl: HTMLElement;
  private readonly spsEl: HTMLElement;
  private readonly diffEl: HTMLElement;
  private readonly errorsEl: HTMLElement;
  private readonly verdictsEl: HTMLElement;
  private readonly noVerdicts: HTMLElement;
  private verdictKey = "";
  private readonly cost: Chart;
  private readonly acc: Chart;
  private readonly ratio: Chart;
  private readonly clip: Chart;
  private readonly ratioLegend: HTMLElement;
  private ratioLegendKey = "";
  private readonly mapCanvas: HTMLCanvasElement;
  private readonly mapNote: HTMLElement;
  private readonly actCanvas: HTMLCanvasElement;
  private readonly gradCanvas: HTMLCanvasElement;
  private readonly panels: HTMLElement;

  constructor(
    readonly index: number,
    private readonly hooks: CardHooks,
    /** The histograms' shared bin edges of log10 |value| (hello.hist_edges). */
    private readonly edges: number[],
  ) {
    const n = index + 1;
    this.title = h("h3", {}, `Lane ${n}`);
    this.stepEl = h("span", { "data-testid": "lane-step" }, "0");
    // polite: a screen reader hears "diverged at step …" without the step counter's noise
    this.statusEl = h("p", { class: "status", "data-testid": "lane-status", "aria-live": "polite" }, "waiting");
    this.lossEl = h("span", { "data-testid": "lane-loss" }, "—");
    this.accEl = h("span", { "data-testid": "lane-accuracy" }, "—");
    this.spsEl = h("span", {}, "—");
    this.diffEl = h("p", { class: "diff", "data-testid": "lane-diff" });
    this.errorsEl = h("div", { class: "lane-errors", "data-testid": "lane-errors" });
    this.verdictsEl = h("ul", { class: "verdicts", "data-testid": "lane-verdicts", "aria-label": `Lane ${n} verdicts` });
    this.noVerdicts = h("p", { class: "no-verdicts" }, "No verdict yet.");

    const chartBox = (): HTMLElement => h("div", { class: "chart" });
    const costBox = chartBox();
    const accBox = chartBox();
    const ratioBox = chartBox();
    const clipBox = chartBox();
    this.cost = new Chart(costBox, 130);
    this.acc = new Chart(accBox, 130);
    this.ratio = new Chart(ratioBox, 130);
    this.clip = new Chart(clipBox, 130);
    this.ratioLegend = h("span", { class: "legend" });
    this.mapCanvas = h("canvas", { role: "img", "aria-label": `Lane ${n} decision map` });
    this.mapNote = h("p", { class: "note" }, "Waiting for the data.");
    this.actCanvas = h("canvas", { role: "img", "aria-label": `Lane ${n} activation histograms per layer over time` });
    this.gradCanvas = h("canvas", { role: "img", "aria-label": `Lane ${n} gradient histograms per layer over time` });

    this.panels = h(
      "div",
      { class: "panels" },
      panel("cost", legend([["train batch", OKABE_ITO.skyBlue], ["test", OKABE_ITO.vermillion]]), costBox),
      panel("accuracy", legend([["train", OKABE_ITO.blue], ["test", OKABE_ITO.orange]]), accBox),
      panel("decision map", legend([["● train", "#444"], ["○ test", "#444"]]), this.mapCanvas, this.mapNote),
      panel("update : weight ratio ‖ΔW‖/‖W‖ per layer", this.ratioLegend, ratioBox),
      panel("activations, log10 |h| over steps", this.actCanvas),
      panel("∂loss/∂h, log10 |g| over steps", this.gradCanvas),
      panel("clipping", legend([["clip rate", OKABE_ITO.vermillion], ["pre-clip norm (right, log)", OKABE_ITO.blue]]), clipBox),
      h(
        "p",
        { class: "note hist-note" },
        "Histograms, one band per hidden layer: left to right, the training steps; bottom to top, " +
          "|value| from 1e-8 to 1e4 on a log scale (dashed: 1), darker where most units are. The thin " +
          "row under each band is the share of exact zeros (dead units, zero gradients). A band " +
          "sliding down the layers or over time is vanishing; up is exploding.",
      ),
    );

    this.el = h(
      "section",
      { class: "lane", "aria-label": `Lane ${n}`, tabindex: 0 },
      h(
        "header",
        {},
        this.title,
        h(
          "dl",
          { class: "numbers" },
          h("div", {}, h("dt", {}, "step"), h("dd", {}, this.stepEl)),
          h("div", {}, h("dt", {}, "cost"), h("dd", {}, this.lossEl)),
          h("div", {}, h("dt", {}, "test acc."), h("dd", {}, this.accEl)),
          h("div", {}, h("dt", {}, "steps/s"), h("dd", {}, this.spsEl)),
        ),
      ),
      this.statusEl,
      this.diffEl,
      this.errorsEl,
      this.verdictsEl,
      this.noVerdicts,
      this.panels,
    );
    this.el.addEventListener("click", () => this.hooks.select(this.index));
    this.el.addEventListener("keydown", (e) => {
      if (e.target === this.el && (e.key === "Enter" || e.key === " ")) {
        e.preventDefault();
        this.hooks.select(this.index);
      }
    });
  }

  setSelected(selected: boolean): void {
    setAttr(this.el, "aria-current", selected ? "true" : null);
  }

  /** The numbers and the status: cheap, so done on every message. */
  updateText(run: LaneRun): void {
    setText(this.stepEl, String(run.step));
    const words = run.message ?? STATUS_WORDS[run.status] ?? "";
    // The status word first ("diverged: …"), once, even when the message starts with it.
    const text = !words ? run.status : words.startsWith(run.status) ? words : `${run.status}: ${words}`;
    setText(this.statusEl, text);
    this.el.dataset["status"] = run.status;
    const loss = run.lastLoss();
    setText(this.lossEl, loss === undefined ? "—" : loss === null ? "not finite" : fourDigits(loss));
    const acc = run.lastTestAccuracy();
    setText(this.accEl, acc === null ? "—" : pct(acc));
    setText(this.spsEl, run.stepsPerSecond === null ? "—" : String(Math.round(run.stepsPerSecond)));
    this.setVerdicts(run.verdicts, run.status);
  }

  private setVerdicts(answer: Verdict[] | null, status: string): void {
    const verdicts = answer ?? [];
    // The list is rebuilt only when its verdicts or fixes change: new numbers in the
    // evidence (each probe has some) are written into the items, so a fix button that has
    // the keyboard's focus keeps it.
    const shape = verdicts.map((v) => [v.kind, v.title, v.fix?.label ?? null, v.fix?.changes ?? null]);
    const key = JSON.stringify([answer === null, shape, status === "failed"]);
    if (key === this.verdictKey) {
      const items = this.verdictsEl.querySelectorAll(".evidence");
      verdicts.forEach((v, i) => {
        const item = items[i];
        if (item && item.textContent !== v.evidence) item.textContent = v.evidence;
      });
      return;
    }
    this.verdictKey = key;
    this.verdictsEl.replaceChildren(
      ...verdicts.map((v) => {
        const fix = v.fix;
        return h(
          "li",
          { "data-kind": v.kind, class: `verdict verdict-${v.kind}` },
          h("strong", {}, v.title),
          " ",
          h("span", { class: "evidence" }, v.evidence),
          fix
            ? h("span", { class: "fix" }, " ", this.fixButton(fix.label, fix.changes))
            : null,
        );
      }),
    );
    // "Healthy" only once the probe has looked, and never for a run that failed.
    this.noVerdicts.textContent =
      answer === null || status === "failed"
        ? "No verdict yet."
        : "Healthy: the probe finds nothing wrong.";
    this.noVerdicts.hidden = verdicts.length > 0;
  }

  private fixButton(label: string, changes: Lane): HTMLButtonElement {
    const b = h("button", { type: "button", class: "fix-button" }, label);
    b.title = `Apply to lane ${this.index + 1}: ${Object.entries(changes)
      .map(([k, v]) => describe(k, v))
      .join(", ")}`;
    b.addEventListener("click", () => this.hooks.fix(this.index, changes));
    return b;
  }

  /** The fields where this lane differs from the others (`init: zeros`). */
  setDiff(items: [string, unknown][], lanes: number): void {
    if (lanes < 2) {
      this.diffEl.replaceChildren("The only lane.");
      return;
    }
    if (items.length === 0) {
      this.diffEl.replaceChildren("Same settings as the other lanes.");
      return;
    }
    const parts: (Node | string)[] = ["Differs: "];
    items.forEach(([field, value], i) => {
      if (i > 0) parts.push(", ");
      parts.push(h("mark", {}, describe(field, value)));
    });
    const text = parts.map((p) => (typeof p === "string" ? p : p.textContent)).join("");
    if (this.diffEl.textContent !== text) this.diffEl.replaceChildren(...parts);
  }

  /** The server's messages about this lane, shown here when it is not the selected lane (the
   * selected lane's show beside their controls). */
  setErrors(errors: ErrorItem[], selected: boolean): void {
    if (errors.length === 0) {
      this.errorsEl.replaceChildren();
      this.errorsEl.removeAttribute("role");
      this.errorsEl.hidden = true;
      return;
    }
    this.errorsEl.hidden = false;
    if (selected) {
      this.errorsEl.removeAttribute("role");
      this.errorsEl.replaceChildren(
        h("p", {}, "The server refused these settings (the messages are beside the controls); the lane keeps training on its last good ones."),
      );
      return;
    }
    this.errorsEl.setAttribute("role", "alert");
    this.errorsEl.replaceChildren(
      ...errors.map((e) =>
        h("p", {}, e.field ? `${FIELD_LABEL[e.field] ?? e.field}: ${e.message}` : e.message),
      ),
    );
  }

  /** The charts and canvases: at most once per animation frame, and only when on screen. */
  drawCharts(run: LaneRun, logCost: boolean): void {
    const width = Math.max(140, this.panels.clientWidth / 2 - 16);
    const x = run.points.map((p) => p.step);
    const col = (k: "loss" | "test_cost" | "train_acc" | "test_acc" | "grad_norm" | "clip_rate"): (number | null)[] =>
      run.points.map((p) => p[k]);

    const costSpec: ChartSpec = {
      series: [
        { label: "train batch", colour: OKABE_ITO.skyBlue, width: 1 },
        { label: "test", colour: OKABE_ITO.vermillion, width: 2 },
      ],
      y: { log: logCost },
    };
    this.cost.resize(width);
    this.cost.draw(costSpec, x, [col("loss"), col("test_cost")]);

    this.acc.resize(width);
    this.acc.draw(
      {
        series: [
          { label: "train", colour: OKABE_ITO.blue, width: 1.5 },
          { label: "test", colour: OKABE_ITO.orange, width: 2 },
        ],
        y: { log: false, range: [0, 1], format: (v) => `${Math.round(v * 100)}%` },
      },
      x,
      [col("train_acc"), col("test_acc")],
    );

    const layers = run.ratioLayers;
    const legendKey = layers.join("\n");
    if (legendKey !== this.ratioLegendKey) {
      this.ratioLegendKey = legendKey;
      this.ratioLegend.replaceChildren(
        ...layers.map((name, i) =>
          h("span", { class: "key" }, h("span", { class: "swatch", style: `background:${seriesColour(i)}` }), name),
        ),
        h("span", { class: "key" }, h("span", { class: "swatch dashed" }), "1e-3 guide"),
      );
    }
    this.ratio.resize(width);
    this.ratio.draw(
      {
        series: layers.map((name, i) => ({ label: name, colour: seriesColour(i), width: 1.25 })),
        y: { log: true, include: [1e-3] },
        guide: { value: 1e-3, label: "1e-3" },
      },
      run.ratios.map((r) => r.step),
      layers.map((_, i) => run.ratios.map((r) => r.values[i] ?? null)),
    );

    this.clip.resize(width);
    this.clip.draw(
      {
        series: [
          { label: "clip rate", colour: OKABE_ITO.vermillion, width: 1.5 },
          { label: "pre-clip norm", colour: OKABE_ITO.blue, width: 1, scale: "y2" },
        ],
        y: { log: false, range: [0, 1], format: (v) => `${Math.round(v * 100)}%` },
        y2: { log: true },
      },
      x,
      [col("clip_rate"), col("grad_norm")],
    );

    const data = run.data;
    if (data && data.dims === 2 && data.extent) {
      this.mapCanvas.hidden = false;
      this.mapNote.hidden = true;
      drawMap(this.mapCanvas, Math.min(width, 150), data, run.map);
    } else {
      this.mapCanvas.hidden = true;
      this.mapNote.hidden = false;
      setText(
        this.mapNote,
        data
          ? `No decision map: this data has ${data.dims} features, and the map is drawn over the plane of a 2-D set.`
          : "Waiting for the data.",
      );
    }
    drawHist(this.actCanvas, width, run.hists, "act", this.edges);
    drawHist(this.gradCanvas, width, run.hists, "grad", this.edges);
  }

  destroy(): void {
    this.cost.destroy();
    this.acc.destroy();
    this.ratio.destroy();
    this.clip.destroy();
    this.el.remove();
  }
}
