// The messages between the page and the server (docs/playground.md is the contract).

/** A lane's settings. The page keeps what the user typed (a draft may hold a bad value, which
 * the server answers with a message), so a lane is an open record, not a checked type. */
export type Lane = Record<string, unknown>;

export type Status =
  | "ready"
  | "training"
  | "paused"
  | "diverged"
  | "converged"
  | "budget"
  | "failed";

/** One sample of a lane's training; a number that was not finite arrives as null. */
export interface Point {
  step: number;
  loss: number | null;
  test_cost: number | null;
  train_acc: number | null;
  test_acc: number | null;
  grad_norm: number | null;
  clip_rate: number | null;
}

export interface Ratios {
  step: number;
  layers: string[];
  values: (number | number[] | null)[];
}

export interface HistLayer {
  name: string;
  act: number[];
  grad: number[];
  act_rms: number | null;
  grad_rms: number | null;
}

export interface Hist {
  step: number;
  layers: HistLayer[];
}

export interface DecisionMap {
  step: number;
  size: number;
  prob: (number | null)[];
}

export interface Fix {
  label: string;
  changes: Lane;
}

export interface Verdict {
  kind: string;
  title: string;
  evidence: string;
  fix: Fix | null;
}

/** A lane's news since the previous update: a field that is absent or null has not changed. */
export interface LaneUpdate {
  lane: number;
  step?: number;
  epoch?: number;
  status?: Status;
  message?: string | null;
  steps_per_second?: number | null;
  points?: Point[];
  ratios?: Ratios | null;
  hist?: Hist | null;
  map?: DecisionMap | null;
  verdicts?: Verdict[] | null;
}

export interface Preset {
  name?: string;
  title: string;
  description?: string;
  lanes: Lane[];
}

/** What the page needs to draw its controls: the same in `hello` and GET /api/options. */
export interface Options {
  limits: Record<string, unknown>;
  options: Record<string, unknown>;
  presets: Preset[];
  default_lane: Lane;
  hist_edges: number[];
}

export interface Hello extends Options {
  type: "hello";
  session: string;
}

export interface StateMsg {
  type: "state";
  playing: boolean;
  lanes: Lane[];
}

export interface DataMsg {
  type: "data";
  lane: number;
  dims: number;
  classes: number;
  extent: [number, number, number, number] | null;
  train: [number, number, number][];
  test: [number, number, number][];
}

export interface UpdateMsg {
  type: "update";
  lanes: LaneUpdate[];
}

export interface ErrorItem {
  lane: number | null;
  field: string | null;
  message: string;
}

export interface ErrorsMsg {
  type: "errors";
  errors: ErrorItem[];
}

export type ServerMsg = Hello | StateMsg | DataMsg | UpdateMsg | ErrorsMsg;

export type PageMsg =
  | { type: "configure"; lanes: Lane[] }
  | { type: "play" }
  | { type: "pause" }
  | { type: "step" }
  | { type: "reset" };
