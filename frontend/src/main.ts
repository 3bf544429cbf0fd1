// The initlab playground's page: lanes of settings, trained by the server (docs/playground.md),
// drawn live. The server checks every value; the page shows its messages.

import "uplot/dist/uPlot.min.css";
import "./style.css";

import { Controls } from "./controls";
import { h, setAttr, setText } from "./dom";
import { differingFields } from "./fields";
import { LaneRun } from "./history";
import { LaneCard } from "./lanecard";
import type { ErrorItem, Hello, Lane, PageMsg, Preset, ServerMsg, StateMsg } from "./protocol";
import { decodeFragment, encodeFragment } from "./share";

function clone<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

function limitNumber(limits: Record<string, unknown>, ...keys: string[]): number | null {
  for (const k of keys) {
    const v = limits[k];
    if (typeof v === "number") return v;
  }
  return null;
}

/** The limits as a sentence, e.g. "Limits: 8 lanes, width ≤ 512, 12 hidden layers, 4 open pages at once." */
function describeLimits(limits: Record<string, unknown>): string {
  const known: [string[], (v: number) => string][] = [
    [["lanes", "max_lanes"], (v) => `${v} lanes`],
    [["width", "max_width"], (v) => `width ≤ ${v} units a layer`],
    [["depth", "max_depth", "hidden_layers", "max_hidden_layers"], (v) => `${v} hidden layers`],
    [["pages", "max_pages", "sessions", "max_sessions"], (v) => `${v} open pages at once`],
  ];
  const used = new Set<string>();
  const parts: string[] = [];
  for (const [keys, say] of known) {
    for (const k of keys) {
      const v = limits[k];
      if (typeof v === "number") {
        parts.push(say(v));
        used.add(k);
        break;
      }
    }
  }
  for (const [k, v] of Object.entries(limits)) {
    if (!used.has(k) && (typeof v === "number" || typeof v === "string")) parts.push(`${k.replace(/_/g, " ")}: ${v}`);
  }
  return parts.length ? `Limits: ${parts.join(", ")}.` : "";
}

class App {
  private ws: WebSocket | null = null;
  private hello: Hello | null = null;
  /** The lanes as the controls show them (a refused value stays here until fixed). */
  private drafts: Lane[] = [];
  /** The lanes the server trains (its last `state`). */
  private applied: Lane[] = [];
  private runs: LaneRun[] = [];
  private cards: LaneCard[] = [];
  private selected = 0;
  private playing = false;
  private errors: ErrorItem[] = [];
  /** Page-side notices that name no control (a bad link, a lost connection). */
  private notices: string[] = [];
  /** The messages sent and not yet answered, oldest first: the server answers each one,
   * in order, with one `state` or one `errors`. */
  private inflight: PageMsg["type"][] = [];
  /** Lanes whose new run has not started on the page since the last configure or reset was
   * sent: a run starts with its `data` message, which may come before or after the `state`
   * (and the server drops an earlier configure's data when a later one replaces it). */
  private needData = new Set<number>();
  private logScale = false;
  private drawScheduled = false;
  private live = false;
  private lastFragment = "";
  private controls: Controls | null = null;
  private readonly observer: IntersectionObserver;

  private readonly root: HTMLElement;
  private readonly connection = h("p", { class: "connection", role: "status" }, "Connecting…");
  private readonly limitsEl = h("p", { class: "limits", "data-testid": "limits" });
  private readonly controlsBox = h("div");
  /** Messages that name no control: a refused page, a lost connection, a bad link. */
  private readonly general = h("div", { class: "general-errors" });
  private readonly lanesBox = h("div", { class: "lanes" });
  private readonly presetsBox = h("div", { class: "preset-buttons" });
  private readonly playButton = h("button", { type: "button", class: "primary" }, "Play");
  private readonly stepButton = h("button", { type: "button" }, "Step");
  private readonly resetButton = h("button", { type: "button" }, "Reset");
  private readonly addButton = h("button", { type: "button", "aria-describedby": "add-reason" }, "Add configuration");
  private readonly addReason = h("span", { id: "add-reason", class: "reason" });
  private readonly removeButton = h("button", { type: "button" }, "Remove");
  private readonly commandButton = h("button", { type: "button" }, "Copy as command");
  private readonly shareButton = h("button", { type: "button" }, "Share link");
  private readonly csvButton = h("button", { type: "button" }, "Export CSV");
  private readonly logBox = h("input", { type: "checkbox", id: "log-scale" });
  private readonly commandOut = h("code", { "data-testid": "command" });
  private readonly commandNote = h("span", { class: "note" });
  private readonly shareOut = h("code", { "data-testid": "share-link" });
  private readonly shareNote = h("span", { class: "note" });

  constructor(root: HTMLElement) {
    this.root = root;
    this.observer = new IntersectionObserver((entries) => {
      for (const entry of entries) {
        const card = this.cards.find((c) => c.el === entry.target);
        if (!card) continue;
        card.visible = entry.isIntersecting;
        if (card.visible && this.runs[card.index]?.dirty) this.scheduleDraw();
      }
    });
    this.layout();
    this.bindButtons();
    this.enable(false);
    window.addEventListener("hashchange", () => this.onHashChange());
    this.connect();
  }

  private layout(): void {
    const toolbar = h(
      "div",
      { class: "toolbar", role: "toolbar", "aria-label": "Training" },
      this.playButton,
      this.stepButton,
      this.resetButton,
      h("span", { class: "sep" }),
      this.addButton,
      this.removeButton,
      h("span", { class: "sep" }),
      this.commandButton,
      this.shareButton,
      this.csvButton,
      h("span", { class: "sep" }),
      h("span", { class: "check" }, this.logBox, h("label", { for: "log-scale" }, "Log scale")),
    );
    const presets = h("fieldset", { class: "presets" }, h("legend", {}, "Presets"), this.presetsBox);
    const outputs = h(
      "div",
      { class: "outputs" },
      this.addReason,
      h("p", { class: "out" }, h("span", { class: "out-label" }, "Command: "), this.commandOut, " ", this.commandNote),
      h("p", { class: "out" }, h("span", { class: "out-label" }, "Link: "), this.shareOut, " ", this.shareNote),
    );
    this.root.replaceChildren(
      h(
        "header",
        { class: "top" },
        h("h1", {}, "initlab playground"),
        h("p", { class: "tagline" }, "Try inits, batch norm, batch sizes, optimizers and clipping side by side; watch why a network trains or not."),
        this.limitsEl,
        this.connection,
      ),
      h(
        "div",
        { class: "body" },
        h("aside", { class: "sidebar", "aria-label": "Lane settings" }, this.general, this.controlsBox),
        h("main", { class: "work" }, toolbar, presets, outputs, this.lanesBox),
      ),
    );
  }

  /** The buttons work once the server has said hello, and not after the connection closed. */
  private enable(on: boolean): void {
    this.live = on;
    for (const b of [this.playButton, this.stepButton, this.resetButton, this.commandButton, this.shareButton, this.csvButton]) {
      b.disabled = !on;
    }
    this.syncLanes();
  }

  private bindButtons(): void {
    this.playButton.addEventListener("click", () => this.send({ type: this.playing ? "pause" : "play" }));
    this.stepButton.addEventListener("click", () => this.send({ type: "step" }));
    this.resetButton.addEventListener("click", () => this.send({ type: "reset" }));
    this.addButton.addEventListener("click", () => this.addLane());
    this.removeButton.addEventListener("click", () => this.removeLane());
    this.commandButton.addEventListener("click", () => void this.copyCommand());
    this.shareButton.addEventListener("click", () => void this.shareLink());
    this.csvButton.addEventListener("click", () => this.exportCsv());
    this.logBox.addEventListener("change", () => {
      this.logScale = this.logBox.checked;
      for (const run of this.runs) run.dirty = true;
      this.scheduleDraw();
    });
  }

  // ---- the connection ----

  private connect(): void {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}/ws`);
    this.ws = ws;
    ws.addEventListener("open", () => setText(this.connection, "Connected."));
    ws.addEventListener("message", (e) => {
      if (typeof e.data !== "string") return;
      let msg: ServerMsg;
      try {
        msg = JSON.parse(e.data) as ServerMsg;
      } catch {
        return;
      }
      this.onMessage(msg);
    });
    ws.addEventListener("close", (e) => {
      const why = e.reason ? ` (${e.reason})` : "";
      setText(this.connection, `Disconnected from the server${why}: reload the page to reconnect.`);
      this.connection.classList.add("lost");
      this.notices = [`The connection to the server is closed${why}. Reload the page to reconnect.`];
      this.inflight = [];
      this.enable(false);
      this.renderErrors();
    });
  }

  private send(msg: PageMsg): void {
    if (this.ws === null || this.ws.readyState !== WebSocket.OPEN) return;
    this.inflight.push(msg.type);
    if (msg.type === "configure") this.needData = new Set(msg.lanes.map((_, i) => i));
    if (msg.type === "reset") this.needData = new Set(this.applied.map((_, i) => i));
    this.ws.send(JSON.stringify(msg));
  }

  private configure(): void {
    this.send({ type: "configure", lanes: clone(this.drafts) });
    this.syncLanes();
  }

  /** A configure is unanswered: the lanes the page shows are not yet the server's. */
  private configuring(): boolean {
    return this.inflight.includes("configure");
  }

  private onMessage(msg: ServerMsg): void {
    switch (msg.type) {
      case "hello":
        this.onHello(msg);
        break;
      case "state":
        this.onState(msg);
        break;
      case "data": {
        this.needData.delete(msg.lane);
        const run = this.run(msg.lane);
        run.restart(msg);
        this.cards[msg.lane]?.updateText(run);
        this.scheduleDraw();
        break;
      }
      case "update":
        for (const u of msg.lanes) {
          const run = this.run(u.lane);
          run.apply(u);
          this.cards[u.lane]?.updateText(run);
        }
        this.scheduleDraw();
        break;
      case "errors":
        // An answer (a refused configure, Play with no lanes), or a refused page (unasked).
        // A refused configure changed nothing: no new run is coming.
        if (this.inflight.shift() === "configure" && !this.configuring()) {
          this.needData.clear();
          if (this.applied.length > 0 && this.drafts.length !== this.applied.length) {
            // A refused preset, link or new lane: back to the lanes that train; the
            // messages say why, above the lanes (their lane numbers no longer apply).
            this.drafts = clone(this.applied);
            this.selected = Math.min(this.selected, this.drafts.length - 1);
            this.controls?.selectLane(this.selected);
            this.errors = msg.errors.map((e) => ({
              ...e,
              lane: null,
              field: null,
              message: e.lane === null ? e.message : `Lane ${e.lane + 1}: ${e.message}`,
            }));
            this.syncLanes();
            this.renderErrors();
            break;
          }
        }
        this.errors = msg.errors;
        this.renderErrors();
        break;
    }
  }

  private onHello(msg: Hello): void {
    this.hello = msg;
    setText(this.limitsEl, describeLimits(msg.limits));
    this.controls = new Controls(msg.options, { change: (field, value) => this.onControl(field, value) });
    this.controlsBox.replaceChildren(this.controls.el);
    this.presetsBox.replaceChildren(...msg.presets.map((p) => this.presetButton(p)));
    this.live = true;
    this.enable(true);
    const shared = decodeFragment(location.hash);
    if (shared instanceof Error) this.notices = [shared.message];
    if (shared !== null && !(shared instanceof Error)) {
      this.drafts = clone(shared.lanes);
      this.selected = shared.selected;
      this.configure();
    } else {
      // Not a link: one lane of the defaults (a new session has no lanes).
      this.drafts = [clone(msg.default_lane)];
      this.selected = 0;
      this.configure();
    }
    this.renderErrors();
  }

  private onState(msg: StateMsg): void {
    this.playing = msg.playing;
    setText(this.playButton, msg.playing ? "Pause" : "Play");
    setAttr(this.playButton, "aria-pressed", null);
    this.applied = clone(msg.lanes);
    const answered = this.inflight.shift();
    // While a later configure is unanswered, the drafts are ahead of this state: keep them.
    if (!this.configuring()) {
      if (answered === "configure") {
        // The server took every lane as sent (now in full, with the defaults filled in).
        this.drafts = clone(msg.lanes);
        this.errors = [];
      } else if (this.errors.length === 0) {
        // Otherwise keep a refused value in its control, so that the user can fix it.
        this.drafts = clone(msg.lanes);
      }
    }
    this.syncLanes();
    this.renderErrors();
    this.writeFragment();
  }

  // ---- lanes ----

  private run(i: number): LaneRun {
    let run = this.runs[i];
    if (!run) {
      run = new LaneRun();
      this.runs[i] = run;
    }
    return run;
  }

  /** Cards, controls, buttons and differences brought in line with the drafts. */
  private syncLanes(): void {
    const n = this.drafts.length;
    if (this.selected >= n) this.selected = Math.max(0, n - 1);
    while (this.cards.length > n) {
      const card = this.cards.pop();
      if (card) {
        this.observer.unobserve(card.el);
        card.destroy();
      }
    }
    while (this.cards.length < n) {
      const card = new LaneCard(
        this.cards.length,
        { select: (i) => this.select(i), fix: (i, changes) => this.applyFix(i, changes) },
        this.hello?.hist_edges ?? [],
      );
      this.cards.push(card);
      this.lanesBox.append(card.el);
      this.observer.observe(card.el);
      const run = this.run(card.index);
      run.dirty = true;
      card.updateText(run);
    }
    // What differs between the lanes as they train (a refused value is not training).
    const training = this.drafts.map((d, i) => this.applied[i] ?? d);
    const differing = differingFields(training);
    this.cards.forEach((card, i) => {
      card.setSelected(i === this.selected);
      const lane = training[i] ?? {};
      card.setDiff(
        differing.map((f) => [f, lane[f]] as [string, unknown]),
        n,
      );
    });
    const lane = this.drafts[this.selected];
    if (this.controls && lane) this.controls.render(lane, new Set(differing));
    const max = limitNumber(this.hello?.limits ?? {}, "lanes", "max_lanes") ?? 8;
    const full = n >= max;
    this.addButton.disabled = full || !this.live;
    setText(this.addReason, full ? `At most ${max} lanes: remove one to add another.` : "");
    this.removeButton.disabled = n <= 1 || !this.live;
    setAttr(this.removeButton, "title", n <= 1 ? "The last lane cannot be removed." : null);
    this.scheduleDraw();
  }

  private select(i: number): void {
    if (i === this.selected || i >= this.drafts.length) return;
    this.selected = i;
    this.controls?.selectLane(i);
    this.syncLanes();
    this.renderErrors();
    this.writeFragment();
  }

  private onControl(field: string, value: unknown): void {
    const lane = this.drafts[this.selected];
    if (!lane) return;
    lane[field] = value;
    this.configure();
  }

  private applyFix(i: number, changes: Lane): void {
    const lane = this.drafts[i];
    if (!lane) return;
    Object.assign(lane, clone(changes));
    this.configure();
  }

  private addLane(): void {
    const lane = this.drafts[this.selected];
    if (!lane) return;
    this.drafts.push(clone(lane));
    this.runs.length = Math.min(this.runs.length, this.drafts.length - 1);
    this.selected = this.drafts.length - 1;
    this.controls?.selectLane(this.selected);
    this.configure();
  }

  private removeLane(): void {
    if (this.drafts.length <= 1) return;
    this.drafts.splice(this.selected, 1);
    this.applied.splice(this.selected, 1);
    this.runs.splice(this.selected, 1);
    this.errors = [];
    if (this.selected >= this.drafts.length) this.selected = this.drafts.length - 1;
    this.controls?.selectLane(this.selected);
    for (const card of this.cards) card.setErrors([], false);
    this.configure();
    this.renderErrors();
  }

  private presetButton(preset: Preset): HTMLButtonElement {
    const b = h("button", { type: "button", class: "preset" }, preset.title);
    if (preset.description) b.title = preset.description;
    b.addEventListener("click", () => {
      const base = this.hello?.default_lane ?? {};
      this.drafts = preset.lanes.map((l) => ({ ...clone(base), ...clone(l) }));
      this.errors = [];
      this.selected = 0;
      this.controls?.selectLane(0);
      this.configure();
      this.renderErrors();
    });
    return b;
  }

  private renderErrors(): void {
    const mine = this.errors.filter((e) => e.lane === this.selected || e.lane === null);
    const unplaced = this.controls
      ? this.controls.renderErrors(mine)
      : mine.map((e) => (e.field ? `${e.field}: ${e.message}` : e.message));
    const general = [...unplaced, ...this.notices];
    if (general.length === 0) {
      this.general.replaceChildren();
      this.general.removeAttribute("role");
      this.general.removeAttribute("id");
    } else {
      this.general.setAttribute("role", "alert");
      this.general.id = "error-general";
      this.general.replaceChildren(...general.map((m) => h("p", { class: "error" }, m)));
    }
    this.cards.forEach((card, i) => {
      card.setErrors(
        this.errors.filter((e) => e.lane === i),
        i === this.selected,
      );
    });
  }

  // ---- share, command, CSV ----

  private writeFragment(): void {
    if (this.applied.length === 0) return;
    const lanes = this.applied;
    const fragment = encodeFragment({ lanes, selected: Math.min(this.selected, lanes.length - 1) });
    if (fragment === this.lastFragment && location.hash === fragment) return;
    this.lastFragment = fragment;
    history.replaceState(null, "", `${location.pathname}${location.search}${fragment}`);
  }

  private onHashChange(): void {
    if (location.hash === this.lastFragment) return;
    const shared = decodeFragment(location.hash);
    if (shared === null) return;
    if (shared instanceof Error) {
      this.notices = [shared.message];
      this.renderErrors();
      return;
    }
    this.notices = [];
    this.drafts = clone(shared.lanes);
    this.selected = shared.selected;
    this.controls?.selectLane(this.selected);
    this.configure();
    this.renderErrors();
  }

  private async toClipboard(text: string): Promise<boolean> {
    try {
      if (!navigator.clipboard) return false;
      await navigator.clipboard.writeText(text);
      return true;
    } catch {
      return false;
    }
  }

  private async copyCommand(): Promise<void> {
    const lane = this.applied[this.selected] ?? this.drafts[this.selected];
    if (!lane) return;
    // The steps taken so far (before the first step, the server's default budget).
    const steps = this.runs[this.selected]?.step ?? 0;
    setText(this.commandNote, "");
    try {
      const res = await fetch("/api/command", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(steps >= 1 ? { lane, steps } : { lane }),
      });
      const body = (await res.json()) as {
        command?: string;
        note?: string | null;
        errors?: ErrorItem[];
        detail?: unknown;
      };
      if (res.ok && typeof body.command === "string") {
        setText(this.commandOut, body.command);
        this.commandOut.classList.remove("error");
        const copied = await this.toClipboard(body.command);
        const how = copied ? "(copied to the clipboard)" : "(select it to copy)";
        setText(this.commandNote, body.note ? `${how} Note: ${body.note}` : how);
      } else {
        const messages = body.errors?.map((e) => e.message) ?? [JSON.stringify(body.detail ?? body)];
        this.commandOut.classList.add("error");
        setText(this.commandOut, `No command: ${messages.join(" ")}`);
      }
    } catch (err) {
      this.commandOut.classList.add("error");
      setText(this.commandOut, `No command: the server did not answer (${String(err)}).`);
    }
  }

  private async shareLink(): Promise<void> {
    this.writeFragment();
    const url = location.href;
    setText(this.shareOut, url);
    const copied = await this.toClipboard(url);
    setText(this.shareNote, copied ? "(copied to the clipboard)" : "(select it to copy)");
  }

  private exportCsv(): void {
    const session = this.hello?.session;
    if (!session) return;
    const i = this.selected;
    const a = h("a", {
      href: `/api/sessions/${encodeURIComponent(session)}/lanes/${i}/history.csv`,
      download: `initlab-lane-${i + 1}.csv`,
    });
    document.body.append(a);
    a.click();
    a.remove();
  }

  // ---- drawing ----

  private scheduleDraw(): void {
    if (this.drawScheduled) return;
    this.drawScheduled = true;
    requestAnimationFrame(() => {
      this.drawScheduled = false;
      this.cards.forEach((card, i) => {
        const run = this.runs[i];
        if (!run || !run.dirty || !card.visible) return;
        run.dirty = false;
        card.drawCharts(run, this.logScale);
      });
    });
  }

  // ---- what the tests read ----

  snapshot(): { config: Lane; draft: Lane; status: string; step: number; points: unknown[]; verdicts: unknown[] }[] {
    return this.drafts.map((draft, i) => {
      const run = this.runs[i];
      return {
        config: clone(this.applied[i] ?? draft),
        draft: clone(draft),
        status: this.configuring() || this.needData.has(i) ? "waiting" : (run?.status ?? "waiting"),
        step: run?.step ?? 0,
        points: clone(run?.points ?? []),
        verdicts: clone(run?.verdicts ?? []),
      };
    });
  }

  selectedLane(): number {
    return this.selected;
  }

  isPlaying(): boolean {
    return this.playing;
  }

  session(): string | null {
    return this.hello?.session ?? null;
  }

  pageErrors(): ErrorItem[] {
    return clone(this.errors);
  }
}

declare global {
  interface Window {
    initlabPlayground: {
      lanes(): ReturnType<App["snapshot"]>;
      selected(): number;
      playing(): boolean;
      session(): string | null;
      errors(): ErrorItem[];
    };
  }
}

const root = document.getElementById("app");
if (root) {
  const app = new App(root);
  window.initlabPlayground = Object.freeze({
    lanes: () => app.snapshot(),
    selected: () => app.selectedLane(),
    playing: () => app.isPlaying(),
    session: () => app.session(),
    errors: () => app.pageErrors(),
  });
}
