// The selected lane's controls: a visible label per control (its accessible name), the menus
// from the server's hello.options, the server's messages beside the controls they name.

import { h, setAttr, setText } from "./dom";
import {
  CUSTOM_INIT,
  FIELDS,
  choiceKey,
  formatValue,
  menuFor,
  parseText,
  type Choice,
  type FieldDef,
} from "./fields";
import type { ErrorItem, Lane } from "./protocol";

const CUSTOM_KEY = "__custom__";

interface Row {
  def: FieldDef;
  row: HTMLElement;
  input: HTMLInputElement | HTMLSelectElement;
  choices: Choice[];
  badge: HTMLElement;
  error: HTMLElement | null;
  /** The init control's text field for any spec ("custom spec…"). */
  spec?: HTMLInputElement;
  specRow?: HTMLElement;
}

export interface ControlHooks {
  /** A control changed the selected lane's field to this value. */
  change(field: string, value: unknown): void;
}

export class Controls {
  readonly el: HTMLElement;
  private readonly heading: HTMLElement;
  private readonly rows = new Map<string, Row>();
  /** Fields typed into since their last commit: a server state does not overwrite them. */
  private readonly typing = new Set<string>();
  private initCustom = false;

  constructor(
    options: Record<string, unknown>,
    private readonly hooks: ControlHooks,
  ) {
    this.heading = h("h2", { id: "controls-title" }, "Lane 1 settings");
    const form = h("form", { class: "controls", "aria-labelledby": "controls-title" });
    form.addEventListener("submit", (e) => e.preventDefault());
    for (const def of FIELDS) {
      const row = this.buildRow(def, options);
      this.rows.set(def.field, row);
      form.append(row.row);
      if (row.specRow) form.append(row.specRow);
    }
    this.el = h(
      "div",
      {},
      this.heading,
      h("p", { class: "note" }, "Settings of the selected lane. Text fields apply on Enter or when you leave them."),
      form,
    );
  }

  private buildRow(def: FieldDef, options: Record<string, unknown>): Row {
    const id = `control-${def.field}`;
    const label = h("label", { for: id }, def.label);
    const badge = h("span", { class: "differs", hidden: true, title: "This setting differs between the lanes" }, "differs");
    let input: HTMLInputElement | HTMLSelectElement;
    let choices: Choice[] = [];
    if (def.kind === "text") {
      input = h("input", { id, type: "text", autocomplete: "off", spellcheck: "false", name: def.field });
      const el = input;
      el.addEventListener("input", () => this.typing.add(def.field));
      el.addEventListener("change", () => {
        this.typing.delete(def.field);
        this.hooks.change(def.field, parseText(def, el.value));
      });
    } else {
      choices = menuFor(def, options).filter((c) => c.label !== CUSTOM_INIT && c.value !== null);
      const sel = h("select", { id, name: def.field });
      input = sel;
      sel.addEventListener("change", () => {
        if (sel.value === CUSTOM_KEY) {
          this.initCustom = true;
          this.showSpec(true);
          this.rows.get("init")?.spec?.focus();
          return;
        }
        if (def.kind === "init") {
          this.initCustom = false;
          this.showSpec(false);
        }
        this.hooks.change(def.field, JSON.parse(sel.value) as unknown);
      });
    }
    const hint = def.hint ? h("span", { class: "hint" }, def.hint) : null;
    const row = h("div", { class: "field", "data-field": def.field }, label, badge, input, hint);
    const result: Row = { def, row, input, choices, badge, error: null };
    if (def.kind === "init") {
      const specId = "control-init-spec";
      const spec = h("input", { id: specId, type: "text", autocomplete: "off", spellcheck: "false", name: "init_spec" });
      spec.addEventListener("input", () => this.typing.add("init"));
      spec.addEventListener("change", () => {
        this.typing.delete("init");
        this.hooks.change("init", spec.value.trim());
      });
      result.spec = spec;
      result.specRow = h(
        "div",
        { class: "field spec", hidden: true },
        h("label", { for: specId }, "Init spec"),
        spec,
        h("span", { class: "hint" }, "e.g. normal(std=0.1), uniform(a=-0.5, b=0.5), lsuv"),
      );
    }
    return result;
  }

  private showSpec(show: boolean): void {
    const row = this.rows.get("init");
    if (row?.specRow) row.specRow.hidden = !show;
  }

  /** A new lane is selected: forget what was typed and the custom-spec choice. */
  selectLane(index: number): void {
    this.typing.clear();
    this.initCustom = false;
    setText(this.heading, `Lane ${index + 1} settings`);
  }

  /** Draw the selected lane's values (not over a field the user is typing into). */
  render(lane: Lane, differing: Set<string>): void {
    for (const [field, row] of this.rows) {
      row.badge.hidden = !differing.has(field);
      row.row.classList.toggle("is-different", differing.has(field));
      const value = lane[field];
      if (this.typing.has(field)) continue;
      if (row.def.kind === "text") {
        const text = formatValue(field, value);
        if (row.input.value !== text) row.input.value = text;
      } else {
        this.renderSelect(row, value);
      }
    }
  }

  private renderSelect(row: Row, value: unknown): void {
    const sel = row.input as HTMLSelectElement;
    const key = choiceKey(value);
    const isInit = row.def.kind === "init";
    const known = row.choices.some((c) => choiceKey(c.value) === key);
    const custom = isInit && (this.initCustom || !known);
    // The menu, plus the current value when the menu lacks it (a preset's batch size of 20).
    const entries: [string, string][] = row.choices.map((c) => [choiceKey(c.value), c.label]);
    if (!known && !isInit && value !== undefined) entries.push([key, formatValue(row.def.field, value)]);
    if (isInit) entries.push([CUSTOM_KEY, CUSTOM_INIT]);
    const current = [...sel.options].map((o) => [o.value, o.text]);
    if (JSON.stringify(current) !== JSON.stringify(entries)) {
      sel.replaceChildren(...entries.map(([k, label]) => h("option", { value: k }, label)));
    }
    const want = custom ? CUSTOM_KEY : key;
    if (sel.value !== want) sel.value = want;
    if (isInit && row.spec) {
      this.showSpec(custom);
      const text = typeof value === "string" ? value : formatValue("init", value);
      if (row.spec.value !== text) row.spec.value = text;
    }
  }

  /** The server's messages about the selected lane, each beside its control; returns those
   * that name no control. */
  renderErrors(errors: ErrorItem[]): string[] {
    const byField = new Map<string, string[]>();
    const general: string[] = [];
    for (const e of errors) {
      if (e.field !== null && this.rows.has(e.field)) {
        byField.set(e.field, [...(byField.get(e.field) ?? []), e.message]);
      } else {
        general.push(e.field ? `${e.field}: ${e.message}` : e.message);
      }
    }
    for (const [field, row] of this.rows) {
      const messages = byField.get(field);
      const id = `error-${field}`;
      if (messages) {
        if (!row.error) {
          row.error = h("p", { class: "error", role: "alert", id });
          (row.specRow && !row.specRow.hidden ? row.specRow : row.row).append(row.error);
        }
        setText(row.error, messages.join(" "));
        setAttr(row.input, "aria-describedby", id);
        setAttr(row.input, "aria-invalid", "true");
        if (row.spec) {
          setAttr(row.spec, "aria-describedby", id);
          setAttr(row.spec, "aria-invalid", "true");
        }
      } else {
        row.error?.remove();
        row.error = null;
        setAttr(row.input, "aria-describedby", null);
        setAttr(row.input, "aria-invalid", null);
        if (row.spec) {
          setAttr(row.spec, "aria-describedby", null);
          setAttr(row.spec, "aria-invalid", null);
        }
      }
    }
    return general;
  }
}
