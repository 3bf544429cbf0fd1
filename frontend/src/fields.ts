// A lane's fields as controls: labels, menus, and the text ↔ value conversions. The page
// checks nothing: a value it cannot read as a number goes to the server as typed, and the
// server's message is the one shown.

import type { Lane } from "./protocol";

export type Kind = "select" | "text" | "init";

export interface FieldDef {
  field: string;
  label: string;
  kind: Kind;
  /** The menu when the server's hello.options does not give one. */
  fallback?: unknown[];
  /** Parse the text as numbers (anything else is sent as typed); for a menu, its entries
   * that read as numbers are numbers (the server lists batch sizes as "8"). */
  numeric?: boolean;
  hint?: string;
}

export interface Choice {
  value: unknown;
  label: string;
}

export const CUSTOM_INIT = "custom spec…";

export const INIT_MENU: Choice[] = [
  { label: "zeros", value: "zeros" },
  { label: "ones", value: "ones" },
  { label: "small ×0.01", value: "normal(std=0.01)" },
  { label: "large ×10", value: "normal(std=10)" },
  { label: "uniform U(±1/√fan_in)", value: "torch_default" },
  { label: "Xavier", value: "xavier_normal" },
  { label: "He", value: "he_normal" },
  { label: "LeCun", value: "lecun_normal" },
  { label: "orthogonal", value: "orthogonal" },
  { label: "LSUV", value: "lsuv" },
];

export const FIELDS: FieldDef[] = [
  {
    field: "data",
    label: "Data",
    kind: "select",
    fallback: ["circles", "moons", "xor", "spiral", "blobs", "digits", "mnist"],
  },
  { field: "noise", label: "Noise", kind: "text", numeric: true, hint: "0 … 1, 2-D sets" },
  { field: "points", label: "Points", kind: "text", numeric: true, hint: "50 … 5000, 2-D sets" },
  { field: "train_share", label: "Train share", kind: "text", numeric: true, hint: "0.1 … 0.9" },
  { field: "hidden", label: "Hidden layers", kind: "text", hint: "widths, e.g. 10,5 (empty: none)" },
  {
    field: "activation",
    label: "Activation",
    kind: "select",
    fallback: ["relu", "leaky_relu", "tanh", "sigmoid", "gelu", "selu", "linear"],
  },
  { field: "init", label: "Init", kind: "init" },
  { field: "bias_init", label: "Bias init", kind: "text", hint: "an init spec" },
  { field: "batch_norm", label: "Batch norm", kind: "select", fallback: ["none", "before", "after"] },
  {
    field: "batch_size",
    label: "Batch size",
    kind: "select",
    numeric: true,
    fallback: ["full", 1, 8, 16, 32, 64, 128],
  },
  {
    field: "optimizer",
    label: "Optimizer",
    kind: "select",
    fallback: ["sgd", "momentum", "nesterov", "rmsprop", "adam", "adamw"],
  },
  { field: "lr", label: "Learning rate", kind: "text", numeric: true, hint: "> 0" },
  {
    field: "schedule",
    label: "Schedule",
    kind: "select",
    fallback: ["constant", "step_decay(1000)", "exponential(0.99)", "cosine(100)"],
  },
  { field: "clip", label: "Clipping", kind: "select", fallback: ["none", "value", "norm", "adaptive"] },
  { field: "clip_threshold", label: "Clip threshold", kind: "text", numeric: true, hint: "> 0" },
  { field: "seed", label: "Seed", kind: "text", numeric: true, hint: "an int ≥ 0" },
];

export const FIELD_LABEL: Record<string, string> = Object.fromEntries(
  FIELDS.map((f) => [f.field, f.label]),
);

/** One menu entry from the server: a plain value, or an object with a value and a label. */
export function toChoice(item: unknown): Choice {
  if (item !== null && typeof item === "object" && !Array.isArray(item)) {
    const o = item as Record<string, unknown>;
    const value = "value" in o ? o["value"] : "spec" in o ? o["spec"] : "name" in o ? o["name"] : o["id"];
    const label = o["label"] ?? o["title"] ?? value;
    return { value, label: String(label) };
  }
  return { value: item, label: String(item) };
}

/** The menu for a field: the server's (hello.options[field]) where it gives one. */
export function menuFor(def: FieldDef, options: Record<string, unknown>): Choice[] {
  const given = options[def.field];
  let menu: Choice[];
  if (Array.isArray(given) && given.length > 0) menu = given.map(toChoice);
  else if (def.kind === "init") menu = INIT_MENU;
  else menu = (def.fallback ?? []).map(toChoice);
  if (!def.numeric) return menu;
  return menu.map((c) => {
    const n = typeof c.value === "string" && c.value.trim() !== "" ? Number(c.value) : NaN;
    return Number.isFinite(n) ? { value: n, label: c.label } : c;
  });
}

/** A select's option value for a lane value (JSON, so 8 and "8" stay apart). */
export function choiceKey(value: unknown): string {
  return JSON.stringify(value ?? null);
}

/** How a lane value shows in a text field. */
export function formatValue(field: string, value: unknown): string {
  if (value === null || value === undefined) return "";
  if (field === "hidden" && Array.isArray(value)) return value.map((v) => String(v)).join(",");
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

function numberOrText(text: string): unknown {
  const t = text.trim();
  if (t === "") return t;
  const n = Number(t);
  return Number.isFinite(n) ? n : t;
}

/** The value a text field sends: numbers where the text reads as one, else the text. */
export function parseText(def: FieldDef, text: string): unknown {
  if (def.field === "hidden") {
    const t = text.trim().replace(/^\[|\]$/g, "").trim();
    if (t === "") return [];
    return t
      .split(/[\s,]+/)
      .filter((s) => s !== "")
      .map(numberOrText);
  }
  if (def.numeric) return numberOrText(text);
  return text.trim();
}

/** A value as the lane cards and the diff name it (`init: zeros`, `hidden: 10,5`). */
export function describe(field: string, value: unknown): string {
  return `${field}: ${formatValue(field, value)}`;
}

/** The fields whose values are not the same in every lane. */
export function differingFields(lanes: Lane[]): string[] {
  if (lanes.length < 2) return [];
  const fields = new Set<string>();
  for (const lane of lanes) for (const k of Object.keys(lane)) fields.add(k);
  const order = FIELDS.map((f) => f.field);
  return [...fields]
    .filter((f) => new Set(lanes.map((l) => JSON.stringify(l[f] ?? null))).size > 1)
    .sort((a, b) => rank(order, a) - rank(order, b));
}

function rank(order: string[], field: string): number {
  const i = order.indexOf(field);
  return i < 0 ? order.length : i;
}
